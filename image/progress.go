package image

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/crisp-runtime/crisp/errdefs"
)

// stallGuard abandons a download whose body stops delivering bytes. kubelet
// gives PullImage no deadline, so a registry that keeps the connection open
// but sends nothing would otherwise hold the pull, and the pod waiting for
// it, forever (containerd's image_pull_progress_timeout exists for the same
// reason). The download's context is cancelled with a cause that says so,
// and the next endpoint (another mirror, the upstream) is tried.
type stallGuard struct {
	ctx    context.Context
	cancel context.CancelCauseFunc
	timer  *time.Timer
	after  time.Duration
	cause  error
}

// newStallGuard watches a download of what from host; after <= 0 never
// fires. Stop must be called.
func newStallGuard(ctx context.Context, after time.Duration, what, host string) *stallGuard {
	g := &stallGuard{after: after}
	g.ctx, g.cancel = context.WithCancelCause(ctx)
	if after > 0 {
		g.cause = fmt.Errorf("%s from %s made no progress for %v: %w", what, host, after, errdefs.ErrUnavailable)
		g.timer = time.AfterFunc(after, func() { g.cancel(g.cause) })
	}
	return g
}

// Context is the one the download must use, so that the cancellation
// aborts a blocked read.
func (g *stallGuard) Context() context.Context { return g.ctx }

// Reader counts every read that delivers bytes as progress.
func (g *stallGuard) Reader(r io.Reader) io.Reader {
	if g.timer == nil {
		return r
	}
	return &progressReader{r: r, g: g}
}

// Err is err, or the stall when that is why the download failed.
func (g *stallGuard) Err(err error) error {
	if err != nil && g.cause != nil && context.Cause(g.ctx) == g.cause {
		return g.cause
	}
	return err
}

func (g *stallGuard) Stop() {
	if g.timer != nil {
		g.timer.Stop()
	}
	g.cancel(nil)
}

type progressReader struct {
	r io.Reader
	g *stallGuard
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 {
		p.g.timer.Reset(p.g.after)
	}
	return n, err
}
