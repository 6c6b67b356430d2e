package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"k8s.io/klog/v2"

	"github.com/crisp-runtime/crisp/config"
	"github.com/crisp-runtime/crisp/cri"
	"github.com/crisp-runtime/crisp/image"
	"github.com/crisp-runtime/crisp/image/unpack"
	"github.com/crisp-runtime/crisp/internal/timeouts"
	"github.com/crisp-runtime/crisp/network"
	"github.com/crisp-runtime/crisp/sandbox"
	"github.com/crisp-runtime/crisp/streaming"
)

const (
	// maxMsgSize matches containerd's: list answers on busy nodes exceed gRPC's 4 MiB default.
	maxMsgSize = 16 << 20
)

func serve(cfg *config.Config) error {
	// Checked before anything exists: a limit the daemon cannot grant is a
	// configuration error.
	host, ulimits, err := containerRlimits(cfg)
	if err != nil {
		return err
	}
	shm, err := shmOptions(cfg)
	if err != nil {
		return err
	}
	for _, d := range []string{cfg.Root, cfg.State, filepath.Dir(cfg.Listen)} {
		if err := os.MkdirAll(d, 0o711); err != nil {
			return err
		}
	}
	unlock, err := lockRoot(cfg.Root)
	if err != nil {
		return err
	}
	defer unlock()
	stopTracing, err := startTracing(cfg)
	if err != nil {
		return err
	}
	defer stopTracing()

	images, err := image.New(image.Options{
		Root:                   cfg.ImageRoot(),
		Registries:             cfg.Registries,
		InsecureRegistries:     cfg.InsecureRegistries,
		PinnedImages:           cfg.PinnedImages,
		MaxConcurrentDownloads: cfg.MaxConcurrentDownloads,
		ProgressTimeout:        cfg.ImagePullProgressTimeout,
		LayerLimits:            unpack.Limits{MaxBytes: cfg.MaxLayerBytes, MaxEntries: cfg.MaxLayerEntries},
	})
	if err != nil {
		return fmt.Errorf("image store: %w", err)
	}
	defer images.Close()

	netMgr, err := network.New(network.Options{
		ConfDir:  cfg.CNI.ConfDir,
		BinDirs:  cfg.CNI.BinDirs,
		CacheDir: filepath.Join(cfg.Root, "cni-cache"),
	})
	if err != nil {
		return fmt.Errorf("network: %w", err)
	}

	// Recovery finishes before the socket exists: kubelet must never see
	// a pod list that lacks pods of the previous run.
	mon, err := monitorBinary(cfg.State)
	if err != nil {
		return err
	}
	pods, err := sandbox.New(context.Background(), sandbox.Options{
		Root:    cfg.SandboxRoot(),
		State:   cfg.State,
		Network: netMgr,
		// Shared-PID pods keep this process as their reaper: the lean
		// binary costs a fraction of the daemon's memory per pod.
		Exe:          mon,
		CgroupDriver: cfg.CgroupDriver,
		Shm:          shm,
		Rlimits:      host,
	})
	if err != nil {
		return fmt.Errorf("sandboxes: %w", err)
	}
	devices, err := newCDIRegistry(cfg)
	if err != nil {
		return err
	}
	containers, err := newContainerManager(cfg, images, pods, mon, ulimits, devices)
	if err != nil {
		return fmt.Errorf("containers: %w", err)
	}
	defer containers.Close()
	pods.SetContainerStopper(containers)
	pods.SetEventSink(containers.PublishPodEvent)
	stopNRI, err := startNRI(cfg, pods, containers, devices)
	if err != nil {
		return err
	}
	defer stopNRI()

	// Listening before the CRI socket exists means every URL handed out
	// is served; the port is known even when a random one was asked for.
	streams, err := streaming.New(streaming.Options{
		Address:         cfg.Streaming.Address,
		Port:            cfg.Streaming.Port,
		TLSCertFile:     cfg.Streaming.TLSCertFile,
		TLSKeyFile:      cfg.Streaming.TLSKeyFile,
		IdleTimeout:     cfg.Streaming.IdleTimeout,
		CreationTimeout: cfg.Streaming.CreationTimeout,
		MaxStreams:      cfg.Streaming.MaxStreams,
		Pods:            cri.StreamingPods(pods),
		Containers:      streamingContainers{containers},
	})
	if err != nil {
		return err
	}
	// Ends exec/attach/port-forward sessions, which are not in-flight RPCs.
	defer streams.Close()

	stopMetrics, err := startMetrics(cfg, pods, containers, images)
	if err != nil {
		return err
	}
	defer stopMetrics()

	srv := cri.New(cri.Deps{Config: cfg, Version: version, Images: images, Network: netMgr, Sandboxes: pods, Streaming: streams, Containers: containers})
	opts := append(cri.Interceptors(), grpc.MaxRecvMsgSize(maxMsgSize), grpc.MaxSendMsgSize(maxMsgSize))
	g := grpc.NewServer(opts...)
	srv.Register(g)

	lis, err := listen(cfg.Listen)
	if err != nil {
		return err
	}

	defer dumpStacksOnSIGUSR1()()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	done := make(chan error, 1)
	go func() { done <- g.Serve(lis) }()
	go func() {
		if err := streams.Serve(); err != nil {
			done <- fmt.Errorf("streaming server: %w", err)
		}
	}()
	klog.InfoS("crisp serving CRI", "version", version, "listen", cfg.Listen, "root", cfg.Root, "state", cfg.State)

	select {
	case sig := <-sigs:
		klog.InfoS("Finishing in-flight requests", "signal", sig)
		stopped := make(chan struct{})
		srv.EndStreams()
		go func() { g.GracefulStop(); close(stopped) }()
		select {
		case <-stopped:
		case <-time.After(timeouts.Shutdown):
			klog.InfoS("In-flight requests still running; closing them", "waited", timeouts.Shutdown)
			g.Stop()
		}
		// Containers are deliberately left running: kubelet expects a runtime
		// restart to be invisible to workloads.
		klog.InfoS("crisp stopped")
		return nil
	case err := <-done:
		return err
	}
}

// listen creates the CRI socket. A stale socket from a crashed daemon is
// replaced, but a live one means another crisp owns this path.
func listen(path string) (net.Listener, error) {
	if _, err := os.Stat(path); err == nil {
		if c, err := net.DialTimeout("unix", path, timeouts.SocketProbe); err == nil {
			c.Close()
			return nil, fmt.Errorf("another process is serving on %s", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, err
		}
	}
	lis, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	// Connecting needs write permission, which the default umask gives nobody
	// but root, so widening to the group here opens no early window.
	if err := os.Chmod(path, 0o660); err != nil {
		lis.Close()
		return nil, err
	}
	return lis, nil
}

// lockRoot keeps two daemons from sharing one root, which would corrupt state.
func lockRoot(root string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(root, "crisp.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("root %s is in use by another crisp", root)
		}
		return nil, err
	}
	return func() { f.Close() }, nil
}
