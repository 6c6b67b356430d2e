package process

import (
	"io"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/crisp-runtime/crisp/container/monitor/internal/proto"
)

// libctSteps name the steps inside libcontainer's Start by the debug message
// its parent side logs when the step ends; the init's own steps show up as
// the sync messages the parent reads from it.
var libctSteps = []struct{ prefix, name string }{
	{"runc exeseal: ", "libct.seal-exe"},
	{"mount source thread: successfully running", "libct.exec-init+cgroup-apply+nsexec"},
	{"read sync type:procHooks", "libct.init-mounts"},
	{"writing sync type:procHooksDone", "libct.cgroup-set"},
	{"read sync type:procReady", "libct.pivot-root+sysctls"},
	{"writing sync type:procRun", "libct.rlimits+state"},
	{"sync pipe closed", "libct.seccomp+caps"},
}

// libctHook records libcontainer's step messages as marks.
type libctHook struct {
	mu    sync.Mutex
	marks []proto.Mark
	out   io.Writer
	fmt   logrus.Formatter
}

func (h *libctHook) Levels() []logrus.Level { return logrus.AllLevels }

func (h *libctHook) Fire(e *logrus.Entry) error {
	if e.Level <= logrus.InfoLevel {
		// What libcontainer logs at info and above still reaches the
		// monitor's log, as without the hook.
		if b, err := h.fmt.Format(e); err == nil {
			h.out.Write(b)
		}
		return nil
	}
	for _, s := range libctSteps {
		if strings.HasPrefix(e.Message, s.prefix) {
			h.mu.Lock()
			h.marks = append(h.marks, proto.Mark{Name: s.name, At: time.Now().UnixNano()})
			h.mu.Unlock()
			break
		}
	}
	return nil
}

// traceLibcontainer makes libcontainer's debug messages marks until the
// returned function is called, which gives them back in order.
func traceLibcontainer() func() []proto.Mark {
	std := logrus.StandardLogger()
	h := &libctHook{out: std.Out, fmt: std.Formatter}
	level, hooks := std.GetLevel(), std.ReplaceHooks(logrus.LevelHooks{})
	std.AddHook(h)
	std.SetOutput(io.Discard)
	std.SetLevel(logrus.DebugLevel)
	return func() []proto.Mark {
		std.SetLevel(level)
		std.SetOutput(h.out)
		std.ReplaceHooks(hooks)
		h.mu.Lock()
		defer h.mu.Unlock()
		return h.marks
	}
}
