package phase

import (
	"context"
	"testing"
	"time"
)

func TestTimerRoundTrip(t *testing.T) {
	tm := Start()
	base := tm.last
	tm.MarkAt("a", base.Add(1500*time.Microsecond))
	tm.MarkAt("b", base.Add(1200*time.Microsecond)) // before a: zero, and a stays the end
	tm.MarkAt("c", base.Add(4*time.Millisecond))
	s := tm.String()
	if want := "a=1.50 b=0.00 c=2.50 total=4.00"; s != want {
		t.Fatalf("String() = %q, want %q", s, want)
	}
	steps, total := Parse(`x ` + s)
	if len(steps) != 3 || steps[0] != (Step{"a", 1500 * time.Microsecond}) || steps[2] != (Step{"c", 2500 * time.Microsecond}) || total != 4*time.Millisecond {
		t.Fatalf("Parse = %v, %v", steps, total)
	}
}

func TestNilTimer(t *testing.T) {
	var tm *Timer
	tm.Mark("a")
	tm.MarkAt("b", time.Now())
	if tm.Steps() != nil || tm.String() != "" {
		t.Fatal("a nil timer recorded something")
	}
	if From(context.Background()) != nil {
		t.Fatal("timer from an empty context")
	}
	tm2 := Start()
	if From(With(context.Background(), tm2)) != tm2 {
		t.Fatal("With/From lost the timer")
	}
}
