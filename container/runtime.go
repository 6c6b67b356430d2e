package container

import (
	"context"
	"io"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"go.opentelemetry.io/otel/attribute"

	"github.com/crisp-runtime/crisp/container/monitor"
	"github.com/crisp-runtime/crisp/internal/tracing"
)

// Process is a created container as its monitor runs it. *monitor.Container
// implements it; tests use fakes.
type Process interface {
	Start() error
	Status() monitor.Status
	Wait() <-chan struct{}
	Stop(ctx context.Context, sig syscall.Signal, timeout time.Duration) error
	Destroy() error
	Update(r *specs.LinuxResources) error
	Exec(ctx context.Context, p *specs.Process, stdin io.Reader, stdout, stderr io.Writer, tty bool, resize <-chan monitor.TermSize) (int, error)
	Attach(ctx context.Context, stdin io.Reader, stdout, stderr io.Writer, resize <-chan monitor.TermSize) error
	ReopenLog() error
	Stats() (*monitor.Stats, error)
	// Usage is the part of Stats that the CRI reports, read more cheaply.
	Usage() (*monitor.Stats, error)
	// MonitorRunning reports whether the monitor process is alive.
	MonitorRunning() bool
}

// Runtime creates and re-attaches to monitors.
type Runtime interface {
	Create(ctx context.Context, cfg monitor.Config) (Process, error)
	Load(bundle, stateDir string) (Process, error)
}

// MonitorRuntime is the real Runtime: per-container crisp-monitor processes.
type MonitorRuntime struct{}

// Create spawns a monitor that creates the container.
func (MonitorRuntime) Create(ctx context.Context, cfg monitor.Config) (Process, error) {
	ctx, span := tracing.Start(ctx, "container.monitor_create", attribute.String("crisp.container", cfg.ID))
	c, err := monitor.Create(ctx, cfg)
	tracing.End(span, err)
	if err != nil {
		// A typed nil would make a non-nil interface.
		return nil, err
	}
	return c, nil
}

// Load re-attaches to the monitor of a container created earlier.
func (MonitorRuntime) Load(bundle, stateDir string) (Process, error) {
	c, err := monitor.Load(bundle, stateDir)
	if err != nil {
		return nil, err
	}
	return c, nil
}
