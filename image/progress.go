package image

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"k8s.io/klog/v2"

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
		g.cause = fmt.Errorf("%s from %s made no progress for %v (image_pull_progress_timeout): %w", what, host, after, errdefs.ErrUnavailable)
		g.timer = time.AfterFunc(after, func() { g.cancel(g.cause) })
	}
	return g
}

// Context is the one the download must use, so that the cancellation
// aborts a blocked read.
func (g *stallGuard) Context() context.Context { return g.ctx }

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

// Progress restarts the clock: bytes arrived.
func (g *stallGuard) Progress() {
	if g.timer != nil {
		g.timer.Reset(g.after)
	}
}

// progressEvery is how often a running pull logs its progress at -v=1.
const progressEvery = 5 * time.Second

// pullProgress counts what one pull has done, for a person watching the
// log: bytes received against bytes to fetch, and layers unpacked.
type pullProgress struct {
	got, want  atomic.Int64
	layersDone atomic.Int32
	layers     int
}

func (p *pullProgress) received(n int) { p.got.Add(int64(n)) }

// report logs the progress every progressEvery until stop is closed; a pull
// that ends sooner logs nothing.
func (p *pullProgress) report(ctx context.Context, ref Reference, start time.Time, stop <-chan struct{}) {
	log := klog.FromContext(ctx).V(1)
	if !log.Enabled() {
		return
	}
	t := time.NewTicker(progressEvery)
	defer t.Stop()
	last, lastAt := int64(0), start
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			got := p.got.Load()
			rate := float64(got-last) / now.Sub(lastAt).Seconds()
			log.Info("Pull progress", "ref", ref, "received", humanBytes(got), "of", humanBytes(p.want.Load()),
				"rate", humanBytes(int64(rate))+"/s", "layersDone", fmt.Sprintf("%d/%d", p.layersDone.Load(), p.layers),
				"elapsed", now.Sub(start).Round(time.Second))
			last, lastAt = got, now
		}
	}
}

// humanBytes formats n in binary units with three significant digits.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, i := float64(n), -1
	for v >= unit && i < 4 {
		v /= unit
		i++
	}
	return fmt.Sprintf("%.3g %ciB", v, "KMGTP"[i])
}
