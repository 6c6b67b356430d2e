package fanout

import (
	"sync"
	"sync/atomic"
	"testing"
)

func TestDoCallsEachIndexOnceWithinWidth(t *testing.T) {
	for _, tc := range []struct{ n, width int }{{0, 4}, {1, 4}, {5, 1}, {100, 3}, {7, 0}, {3, 10}} {
		var mu sync.Mutex
		seen := map[int]int{}
		var running, peak atomic.Int32
		Do(tc.n, tc.width, func(i int) {
			r := running.Add(1)
			for {
				p := peak.Load()
				if r <= p || peak.CompareAndSwap(p, r) {
					break
				}
			}
			mu.Lock()
			seen[i]++
			mu.Unlock()
			running.Add(-1)
		})
		if len(seen) != tc.n {
			t.Errorf("n=%d width=%d: %d distinct indexes called, want %d", tc.n, tc.width, len(seen), tc.n)
		}
		for i, c := range seen {
			if i < 0 || i >= tc.n || c != 1 {
				t.Errorf("n=%d width=%d: index %d called %d times", tc.n, tc.width, i, c)
			}
		}
		if limit := int32(max(1, tc.width)); peak.Load() > limit {
			t.Errorf("n=%d width=%d: %d calls at once, want ≤ %d", tc.n, tc.width, peak.Load(), limit)
		}
	}
}
