// Package phase times the steps of the start path (RunPodSandbox,
// CreateContainer, StartContainer, ExecSync) and logs them as one line per
// call at -v=4, which `crisp-bench -phase-log` turns into the phase table of
// the benchmark. A nil *Timer does nothing, so callers need no checks.
package phase

import (
	"context"
	"strconv"
	"strings"
	"time"

	"k8s.io/klog/v2"
)

// Step is one timed step.
type Step struct {
	Name string
	D    time.Duration
}

// Timer collects the steps of one call, each from the end of the previous.
type Timer struct {
	start, last time.Time
	steps       []Step
}

// Start returns a timer whose first step begins now.
func Start() *Timer {
	now := time.Now()
	return &Timer{start: now, last: now}
}

// Mark ends the current step, naming it.
func (t *Timer) Mark(name string) {
	if t == nil {
		return
	}
	t.MarkAt(name, time.Now())
}

// MarkAt ends the current step at a time taken elsewhere, such as in the
// container's monitor (same wall clock, another process). A time before the
// previous mark counts as zero.
func (t *Timer) MarkAt(name string, at time.Time) {
	if t == nil {
		return
	}
	d := at.Sub(t.last)
	if d < 0 {
		d = 0
	} else {
		t.last = at
	}
	t.steps = append(t.steps, Step{name, d})
}

// Steps returns the steps so far.
func (t *Timer) Steps() []Step {
	if t == nil {
		return nil
	}
	return t.steps
}

// String is the log form: "name=ms name=ms ... total=ms", in milliseconds
// with two decimals.
func (t *Timer) String() string {
	if t == nil {
		return ""
	}
	var b strings.Builder
	for _, s := range t.steps {
		b.WriteString(s.Name)
		b.WriteByte('=')
		b.WriteString(ms(s.D))
		b.WriteByte(' ')
	}
	b.WriteString("total=")
	b.WriteString(ms(t.last.Sub(t.start)))
	return b.String()
}

func ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d.Microseconds())/1000, 'f', 2, 64)
}

// Verbosity is the klog level at which phases are logged.
const Verbosity = 4

// Enabled reports whether phases are logged; callers that would pay for
// timing (a monitor asked to report its marks) check it.
func Enabled(logger klog.Logger) bool { return logger.V(Verbosity).Enabled() }

// Log writes the steps as one line, `"Phases" <logger's values> ms="<String>"`;
// the RPC interceptor's logger names the method and the ids.
func (t *Timer) Log(logger klog.Logger) {
	if t == nil || !Enabled(logger) {
		return
	}
	logger.V(Verbosity).Info("Phases", "ms", t.String())
}

// Parse reads the ms value of a Phases line back into steps (without
// total); crisp-bench uses it.
func Parse(s string) (steps []Step, total time.Duration) {
	for _, f := range strings.Fields(s) {
		name, v, ok := strings.Cut(f, "=")
		if !ok {
			continue
		}
		x, err := strconv.ParseFloat(v, 64)
		if err != nil {
			continue
		}
		d := time.Duration(x * float64(time.Millisecond))
		if name == "total" {
			total = d
			continue
		}
		steps = append(steps, Step{name, d})
	}
	return steps, total
}

type ctxKey struct{}

// With returns ctx carrying t, for steps timed in lower layers (the
// monitor's spawn under a container create).
func With(ctx context.Context, t *Timer) context.Context {
	return context.WithValue(ctx, ctxKey{}, t)
}

// From returns the timer ctx carries, or nil.
func From(ctx context.Context) *Timer {
	t, _ := ctx.Value(ctxKey{}).(*Timer)
	return t
}
