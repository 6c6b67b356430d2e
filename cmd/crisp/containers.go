package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"k8s.io/klog/v2"

	"github.com/crisp-runtime/crisp/config"
	"github.com/crisp-runtime/crisp/container"
	"github.com/crisp-runtime/crisp/container/cdi"
	"github.com/crisp-runtime/crisp/container/monitor"
	"github.com/crisp-runtime/crisp/container/monitor/process"
	"github.com/crisp-runtime/crisp/container/spec"
	"github.com/crisp-runtime/crisp/cri"
	"github.com/crisp-runtime/crisp/image"
	"github.com/crisp-runtime/crisp/sandbox"
	"github.com/crisp-runtime/crisp/streaming"
)

// monitorName is the per-container monitor's program name. The crisp binary
// serves as the monitor itself when started under that name, which is the
// fallback when no separate crisp-monitor binary is installed.
const monitorName = "crisp-monitor"

// runMonitorIfRequested dispatches the helper processes that are the crisp
// binary re-executed: libcontainer's container init (for exec) and the
// monitor fallback. Neither returns.
func runMonitorIfRequested() {
	monitor.InitIfRequested()
	if filepath.Base(os.Args[0]) == monitorName {
		os.Exit(process.Main(os.Args[1:]))
	}
}

// newContainerManager recovers the containers of a previous run; like pod
// recovery it finishes before the socket exists.
func newContainerManager(cfg *config.Config, images *image.Store, pods *sandbox.Manager, mon string, ulimits []specs.POSIXRlimit, devices *cdi.Registry) (*container.Manager, error) {
	opts, err := spec.DetectOptions()
	if err != nil {
		return nil, err
	}
	opts.CgroupDriver = cfg.CgroupDriver
	opts.Rlimits = ulimits
	return container.New(context.Background(), container.Options{
		Root:          cfg.ContainerRoot(),
		State:         cfg.State,
		Images:        images,
		Sandboxes:     pods,
		MonitorBinary: mon,
		Spec:          opts,
		CDI:           devices,
		// Records of an older crisp hold the CRI message; only cri knows it.
		DecodeCRIConfig: cri.DecodeContainerConfig,
	})
}

// newCDIRegistry reads the CDI spec directories; nil when CDI is disabled.
func newCDIRegistry(cfg *config.Config) (*cdi.Registry, error) {
	if !cfg.CDI.Enable {
		klog.InfoS("CDI is disabled: containers that request CDI devices are refused")
		return nil, nil
	}
	return cdi.New(cfg.CDI.SpecDirs)
}

// monitorBinary finds crisp-monitor: $CRISP_MONITOR_BINARY, next to the
// crisp binary, or on PATH. Without one, the crisp binary is the monitor,
// through a symlink named crisp-monitor in the state directory: it works
// everywhere, but each monitor then carries the daemon's larger binary.
func monitorBinary(state string) (string, error) {
	if p := os.Getenv("CRISP_MONITOR_BINARY"); p != "" {
		return p, nil
	}
	self, err := os.Executable()
	if err != nil {
		return "", err
	}
	if p := filepath.Join(filepath.Dir(self), monitorName); isExecutable(p) {
		return p, nil
	}
	if p, err := exec.LookPath(monitorName); err == nil {
		if abs, err := filepath.Abs(p); err == nil {
			return abs, nil
		}
	}
	dir := filepath.Join(state, "bin")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	link := filepath.Join(dir, monitorName)
	if cur, err := os.Readlink(link); err != nil || cur != self {
		tmp := link + ".tmp"
		os.Remove(tmp)
		if err := os.Symlink(self, tmp); err != nil {
			return "", fmt.Errorf("monitor link: %w", err)
		}
		if err := os.Rename(tmp, link); err != nil {
			return "", fmt.Errorf("monitor link: %w", err)
		}
	}
	klog.InfoS("No monitor binary next to crisp or on PATH: the crisp binary serves as the container monitor", "monitor", monitorName, "crisp", self)
	return link, nil
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			klog.InfoS("Cannot stat a monitor binary candidate", "path", p, "err", err)
		}
		return false
	}
	return fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// streamingContainers lets the streaming server exec into and attach to
// containers without the two packages knowing each other.
type streamingContainers struct{ m *container.Manager }

func (s streamingContainers) Running(id string) (string, error) { return s.m.Running(id) }

func (s streamingContainers) Exec(ctx context.Context, id string, cmd []string, stdin io.Reader, stdout, stderr io.WriteCloser, tty bool, resize <-chan streaming.TerminalSize) (int, error) {
	return s.m.Exec(ctx, id, cmd, readerOrNil(stdin), writerOrNil(stdout), writerOrNil(stderr), tty, termSizes(ctx, resize))
}

func (s streamingContainers) Attach(ctx context.Context, id string, stdin io.Reader, stdout, stderr io.WriteCloser, _ bool, resize <-chan streaming.TerminalSize) error {
	return s.m.Attach(ctx, id, readerOrNil(stdin), writerOrNil(stdout), writerOrNil(stderr), termSizes(ctx, resize))
}

// termSizes converts the library's resize events to the monitor's.
func termSizes(ctx context.Context, in <-chan streaming.TerminalSize) <-chan monitor.TermSize {
	if in == nil {
		return nil
	}
	out := make(chan monitor.TermSize)
	go func() {
		defer close(out)
		for {
			select {
			case <-ctx.Done():
				return
			case sz, ok := <-in:
				if !ok {
					return
				}
				select {
				case out <- monitor.TermSize{Width: sz.Width, Height: sz.Height}:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out
}

// readerOrNil and writerOrNil turn typed nils into untyped ones: the monitor
// tells "stream not requested" by a nil interface.
func readerOrNil(r io.Reader) io.Reader {
	if isNil(r) {
		return nil
	}
	return r
}

func writerOrNil(w io.WriteCloser) io.Writer {
	if isNil(w) {
		return nil
	}
	return w
}

func isNil(v any) bool {
	if v == nil {
		return true
	}
	switch rv := reflect.ValueOf(v); rv.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Chan, reflect.Func, reflect.Interface, reflect.Slice:
		return rv.IsNil()
	}
	return false
}
