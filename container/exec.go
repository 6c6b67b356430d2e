package container

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/crisp-runtime/crisp/container/monitor"
	"github.com/crisp-runtime/crisp/errdefs"
	"github.com/crisp-runtime/crisp/internal/phase"
)

// MaxExecSyncOutput caps ExecSync's two streams together: a chatty probe
// must not make the daemon buffer without bound. containerd caps each stream
// at 16 MiB, so more than 16 MiB in all makes a response over the gRPC
// message limit (crisp's and kubelet's: 16 MiB) and the call fails; one
// budget a little under the limit returns the output truncated instead.
// Output beyond it is dropped; the command still runs to completion.
const MaxExecSyncOutput = 16<<20 - 64<<10

// ExecResult is what ExecSync returns.
type ExecResult struct {
	Stdout, Stderr []byte
	ExitCode       int
}

// ExecSync runs cmd in a running container with the container's user,
// capabilities, environment, working directory and seccomp filter, and
// collects its output. timeout 0 means none. When the timeout passes, the
// command and everything it started are killed (the container keeps
// running) and the error wraps context.DeadlineExceeded, which kubelet's
// prober takes for a probe timeout.
func (m *Manager) ExecSync(ctx context.Context, id string, cmd []string, timeout time.Duration) (*ExecResult, error) {
	if len(cmd) == 0 {
		return nil, errdefs.InvalidArgument("cmd is required")
	}
	if timeout < 0 {
		return nil, errdefs.InvalidArgument("timeout must not be negative")
	}
	e, p, err := m.execProcess(id, cmd, false)
	if err != nil {
		return nil, err
	}
	s := e.snapshot()

	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, timeout, errExecTimeout)
		defer cancel()
	}
	budget := &outputBudget{left: MaxExecSyncOutput}
	stdout, stderr := &cappedBuffer{budget: budget}, &cappedBuffer{budget: budget}
	phase.From(ctx).Mark("lookup")
	code, err := e.proc.Exec(ctx, p, nil, stdout, stderr, false, nil)
	if err != nil {
		if context.Cause(ctx) == errExecTimeout {
			return nil, fmt.Errorf("command %q timed out after %v: %w", strings.Join(cmd, " "), timeout, context.DeadlineExceeded)
		}
		if errors.Is(err, monitor.ErrNotRunning) {
			return nil, errdefs.FailedPrecondition("container %s: %w", s.ID, err)
		}
		if err2 := pidsFullError(s.ID, s.Status.Pid, err); err2 != err {
			return nil, err2
		}
		return nil, fmt.Errorf("exec in container %s: %w", s.ID, err)
	}
	return &ExecResult{Stdout: stdout.b, Stderr: stderr.b, ExitCode: code}, nil
}

var errExecTimeout = errors.New("exec timeout")

// execProcess is the container's own process spec with cmd as arguments, so
// an exec runs with the same user, capabilities, environment, working
// directory and seccomp filter as the container.
func (m *Manager) execProcess(id string, cmd []string, tty bool) (*entry, *specs.Process, error) {
	e, err := m.lookup(id)
	if err != nil {
		return nil, nil, err
	}
	s := e.snapshot()
	if s.Status.State != StateRunning {
		return nil, nil, errdefs.FailedPrecondition("container %s is %s", s.ID, s.Status.State)
	}
	if s.Process == nil {
		return nil, nil, fmt.Errorf("container %s has no process spec", s.ID)
	}
	p := *s.Process
	p.Args = append([]string(nil), cmd...)
	p.Terminal = tty
	p.ConsoleSize = nil
	return e, &p, nil
}

// Running resolves id for the streaming server, which only serves exec and
// attach to running containers.
func (m *Manager) Running(id string) (string, error) {
	e, err := m.lookup(id)
	if err != nil {
		return "", err
	}
	s := e.snapshot()
	if s.Status.State != StateRunning {
		return "", errdefs.FailedPrecondition("container %s is %s", s.ID, s.Status.State)
	}
	return s.ID, nil
}

// Exec runs cmd with the client's streams (kubectl exec); the exit code is
// the process's. Cancelling ctx (the client went away) kills the process and
// its children.
func (m *Manager) Exec(ctx context.Context, id string, cmd []string, stdin io.Reader, stdout, stderr io.Writer, tty bool, resize <-chan monitor.TermSize) (int, error) {
	if len(cmd) == 0 {
		return -1, errdefs.InvalidArgument("cmd is required")
	}
	e, p, err := m.execProcess(id, cmd, tty)
	if err != nil {
		return -1, err
	}
	code, err := e.proc.Exec(ctx, p, stdin, stdout, stderr, tty, resize)
	if errors.Is(err, monitor.ErrNotRunning) {
		return -1, errdefs.FailedPrecondition("container %s: %w", id, err)
	}
	if err != nil && ctx.Err() == nil {
		err = pidsFullError(id, e.snapshot().Status.Pid, err)
	}
	return code, err
}

// Attach connects the client's streams to the container's main process,
// through its monitor, which holds the stdio.
func (m *Manager) Attach(ctx context.Context, id string, stdin io.Reader, stdout, stderr io.Writer, resize <-chan monitor.TermSize) error {
	e, err := m.lookup(id)
	if err != nil {
		return err
	}
	err = e.proc.Attach(ctx, stdin, stdout, stderr, resize)
	if errors.Is(err, monitor.ErrNotRunning) {
		return errdefs.FailedPrecondition("container %s: %w", id, err)
	}
	return err
}

// outputBudget is what the cappedBuffers sharing it may still keep.
type outputBudget struct {
	mu   sync.Mutex
	left int
}

func (b *outputBudget) take(n int) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n = min(n, b.left)
	b.left -= n
	return n
}

// cappedBuffer keeps what its budget allows and discards the rest while
// reporting success, so the writer (the process's pipe) is never blocked.
type cappedBuffer struct {
	b      []byte
	budget *outputBudget
}

func (c *cappedBuffer) Write(p []byte) (int, error) {
	c.b = append(c.b, p[:c.budget.take(len(p))]...)
	return len(p), nil
}
