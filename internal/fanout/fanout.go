// Package fanout runs the iterations of a loop on a few goroutines.
package fanout

import "sync"

// Do calls fn(i) for every i in [0, n) from at most width goroutines at
// once and returns when all calls have. fn must be safe to run
// concurrently; each i is passed exactly once.
func Do(n, width int, fn func(i int)) {
	width = max(1, min(width, n))
	if width == 1 {
		for i := 0; i < n; i++ {
			fn(i)
		}
		return
	}
	next := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < width; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				fn(i)
			}
		}()
	}
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
}
