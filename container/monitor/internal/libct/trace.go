package libct

import (
	"io"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/runc/libcontainer"
	"github.com/sirupsen/logrus"
)

// Step is a step inside libcontainer's Start or Run, named by the debug
// message its parent side logs when the step ends (Prefix).
type Step struct{ Prefix, Name string }

// Mark is when a step ended.
type Mark struct {
	Name string
	At   time.Time
}

// ExecSteps are the steps of libcontainer's Run of an exec'd process as
// its parent side sees them.
var ExecSteps = []Step{
	{Prefix: "runc exeseal: ", Name: "libct.seal-exe"},
	{Prefix: "reading sync", Name: "libct.exec-init+nsexec+cgroup-join"},
	{Prefix: "read sync type:procReady", Name: "libct.init-setup"},
	{Prefix: "writing sync type:procRun", Name: "libct.rlimits"},
	{Prefix: "sync pipe closed", Name: "libct.seccomp+caps"},
}

// tracing is held while a trace runs: logrus is one logger per process.
var tracing sync.Mutex

// Trace records, until stop is called, when libcontainer logs the message
// ending each of steps (the first time). Only one trace runs at a time in a
// process: if another runs, ok is false and nothing is traced. What
// libcontainer logs at info level and above still reaches the log.
func Trace(steps []Step) (stop func() []Mark, ok bool) {
	if !tracing.TryLock() {
		return nil, false
	}
	std := logrus.StandardLogger()
	h := &traceHook{steps: steps, out: std.Out, format: std.Formatter}
	level, hooks := std.GetLevel(), std.ReplaceHooks(logrus.LevelHooks{})
	std.AddHook(h)
	std.SetOutput(io.Discard)
	std.SetLevel(logrus.DebugLevel)
	return func() []Mark {
		std.SetLevel(level)
		std.SetOutput(h.out)
		std.ReplaceHooks(hooks)
		tracing.Unlock()
		h.mu.Lock()
		defer h.mu.Unlock()
		return h.marks
	}, true
}

type traceHook struct {
	steps  []Step
	out    io.Writer
	format logrus.Formatter

	mu    sync.Mutex
	marks []Mark
	next  int // steps before it have been seen
}

func (h *traceHook) Levels() []logrus.Level { return logrus.AllLevels }

func (h *traceHook) Fire(e *logrus.Entry) error {
	if e.Level <= logrus.InfoLevel {
		if b, err := h.format.Format(e); err == nil {
			h.out.Write(b)
		}
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	// In order: a step's message logged again later (such as "reading
	// sync") does not end it twice.
	for i := h.next; i < len(h.steps); i++ {
		if strings.HasPrefix(e.Message, h.steps[i].Prefix) {
			h.marks = append(h.marks, Mark{Name: h.steps[i].Name, At: time.Now()})
			h.next = i + 1
			break
		}
	}
	return nil
}

// TracedRun is lc.Run(proc) with the ends of steps recorded, unless another
// trace runs at the same time in this process (then marks is empty).
func TracedRun(lc *libcontainer.Container, proc *libcontainer.Process, steps []Step) (marks []Mark, err error) {
	stop, ok := Trace(steps)
	if !ok {
		return nil, lc.Run(proc)
	}
	err = lc.Run(proc)
	return stop(), err
}
