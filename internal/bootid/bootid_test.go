package bootid

import "testing"

func TestSame(t *testing.T) {
	cur := Current()
	if len(cur) != 36 {
		t.Fatalf("Current() = %q, want a UUID", cur)
	}
	for _, c := range []struct {
		rec      string
		volatile bool
		want     bool
	}{
		{cur, false, true},
		{cur, true, true},
		{"00000000-0000-0000-0000-000000000000", true, false},
		{"", true, true},
		{"", false, false},
	} {
		if got := Same(c.rec, c.volatile); got != c.want {
			t.Errorf("Same(%q, %v) = %v", c.rec, c.volatile, got)
		}
	}
}
