package container

import (
	"context"
	"io"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/crisp-runtime/crisp/container/monitor"
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
	c, err := monitor.Create(ctx, cfg)
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
