package streaming

import (
	"context"
	"fmt"
	"io"

	utilexec "k8s.io/utils/exec"

	"github.com/crisp-runtime/crisp/errdefs"
	"github.com/crisp-runtime/crisp/internal/metrics"
)

// runtime is what the library calls once a session's streams exist.
type runtime struct{ s *Server }

// Exec reports a non-zero exit as utilexec.CodeExitError: that is the one
// error type the library turns into the exit code kubectl exits with,
// rather than an internal error.
func (r *runtime) Exec(ctx context.Context, containerID string, cmd []string, stdin io.Reader, stdout, stderr io.WriteCloser, tty bool, resize <-chan TerminalSize) error {
	if r.s.containers == nil {
		return fmt.Errorf("exec: %w", errdefs.ErrUnimplemented)
	}
	ctx, done := r.s.sessionContext(ctx)
	defer done()
	code, err := r.s.containers.Exec(ctx, containerID, cmd, stdin, stdout, stderr, tty, resize)
	if err != nil {
		return err
	}
	if code != 0 {
		return utilexec.CodeExitError{Err: fmt.Errorf("command %q exited with code %d", cmd, code), Code: code}
	}
	return nil
}

func (r *runtime) Attach(ctx context.Context, containerID string, stdin io.Reader, stdout, stderr io.WriteCloser, tty bool, resize <-chan TerminalSize) error {
	if r.s.containers == nil {
		return fmt.Errorf("attach: %w", errdefs.ErrUnimplemented)
	}
	ctx, done := r.s.sessionContext(ctx)
	defer done()
	return r.s.containers.Attach(ctx, containerID, stdin, stdout, stderr, tty, resize)
}

// PortForward is called once per forwarded connection; the library gives it
// no request context, so it ends on the server's.
func (r *runtime) PortForward(ctx context.Context, podID string, port int32, stream io.ReadWriteCloser) error {
	if !r.s.acquire() {
		metrics.StreamingRefused(metrics.StreamPortForward)
		return fmt.Errorf("port forward to %d: too many streams: %w", port, errdefs.ErrResourceExhausted)
	}
	defer r.s.release()
	if !r.s.track(nil) {
		return fmt.Errorf("port forward to %d: streaming server is shutting down: %w", port, errdefs.ErrUnavailable)
	}
	defer r.s.untrack(nil)
	ctx, done := r.s.sessionContext(ctx)
	defer done()
	return r.s.portForward(ctx, podID, port, stream)
}

// sessionContext ends with either the caller's context or the server.
func (s *Server) sessionContext(ctx context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(s.base, cancel)
	return ctx, func() { stop(); cancel() }
}
