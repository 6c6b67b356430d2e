package container

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"k8s.io/klog/v2"

	"github.com/crisp-runtime/crisp/container/cdi"
	"github.com/crisp-runtime/crisp/container/monitor"
	"github.com/crisp-runtime/crisp/container/spec"
	"github.com/crisp-runtime/crisp/errdefs"
	"github.com/crisp-runtime/crisp/image"
	"github.com/crisp-runtime/crisp/internal/failpoint"
	"github.com/crisp-runtime/crisp/internal/ids"
	"github.com/crisp-runtime/crisp/internal/phase"
	"github.com/crisp-runtime/crisp/internal/timeouts"
	"github.com/crisp-runtime/crisp/sandbox"
)

// undo collects rollback steps of a multi-step operation, run in reverse.
type undo []func()

func (u *undo) add(f func()) { *u = append(*u, f) }
func (u undo) run() {
	for i := len(u) - 1; i >= 0; i-- {
		u[i]()
	}
}

// Create creates a container in pod podID; it is started by Start. On any
// failure everything done so far is rolled back.
func (m *Manager) Create(ctx context.Context, podID string, cfg *Config) (_ string, retErr error) {
	if err := validateCreate(podID, cfg); err != nil {
		return "", err
	}
	if _, _, err := sandbox.RootfsKind(cfg.Annotations); err != nil {
		return "", err
	}
	pt := phase.From(ctx)
	cdiDevices, err := cdi.Requested(cfg.CDIDevices, cfg.Annotations)
	if err != nil {
		return "", err
	}
	if err := m.cdi.Allow(cdiDevices); err != nil {
		return "", err
	}
	id := ids.New()
	key := nameKey(podID, cfg.Name, cfg.Attempt)
	if err := m.names.Reserve(key, id); err != nil {
		return "", err
	}
	var rollback undo
	defer func() {
		if retErr != nil {
			rollback.run()
		}
	}()
	rollback.add(func() { m.names.Release(key, id) })

	// Indexed (hidden) before the pod is checked: a pod stop that starts
	// now finds this entry and waits for its lock, so it cannot miss a
	// container created in a pod it is tearing down.
	e := &entry{podID: podID}
	e.Lock()
	defer e.Unlock()
	m.containers.AddHidden(id, e)
	rollback.add(func() { m.containers.Delete(id, e) })

	sb, err := m.sandboxes.Get(podID)
	if err != nil {
		return "", err
	}
	if sb.State != sandbox.StateReady {
		return "", errdefs.FailedPrecondition("pod sandbox %s is not ready", podID)
	}
	img, err := m.images.Get(cfg.Image.Image)
	if err != nil {
		return "", fmt.Errorf("image %q: %w", cfg.Image.Image, err)
	}
	stopSig, err := spec.StopSignal(img.Config)
	if err != nil {
		return "", fmt.Errorf("image %s: %w", img.ID, err)
	}
	logPath, err := containerLogPath(sb.Config.LogDirectory, cfg.LogPath)
	if err != nil {
		return "", err
	}
	vols, err := m.resolveImageVolumes(cfg)
	if err != nil {
		return "", err
	}
	rootKind, err := rootfsKind(sb, cfg)
	if err != nil {
		return "", err
	}
	pt.Mark("lookup")
	c := &Container{
		ID: id, PodID: podID, Name: cfg.Name, Attempt: cfg.Attempt,
		Phase:        PhaseCreating,
		CreatedAt:    time.Now(),
		Image:        imageInfo(cfg.Image, img),
		LogPath:      logPath,
		Rootfs:       m.rootfsDir(id),
		RootfsKind:   rootKind,
		ImageVolumes: vols,
		StopSignal:   int(stopSig),
		Config:       *cfg,
	}

	// The record goes first: whatever follows, a crash leaves a record in
	// PhaseCreating that start-up rolls back.
	if err := m.commit(e, c); err != nil {
		return "", err
	}
	pt.Mark("record")
	rollback.add(func() {
		if err := m.store.deleteRecord(id); err != nil {
			klog.FromContext(ctx).Info("Rolling back a failed CreateContainer", "container", id, "err", err)
		}
		os.RemoveAll(m.store.dir(id))
	})
	// Durable by the time the container is (waited for before the
	// created record): the fsyncs run alongside the rootfs mount and the
	// monitor's create rather than before them, and outside the image
	// store's lock, which parallel creates would queue on.
	syncLease, err := m.images.LeaseDeferred(id, img.ID)
	if err != nil {
		return "", err
	}
	leaseSynced := make(chan error, 1)
	go func() { leaseSynced <- syncLease() }()
	rollback.add(func() {
		if err := m.images.Unlease(id); err != nil {
			klog.FromContext(ctx).Info("Rolling back a failed CreateContainer", "container", id, "err", err)
		}
	})
	layers, err := m.images.LayerDirs(img.ID)
	if err != nil {
		return "", err
	}
	// Registered first: a failed mount has already made the mountpoint.
	rollback.add(func() {
		if err := m.unmountRootfs(id, c.Rootfs); err != nil {
			klog.FromContext(ctx).Info("Rolling back a failed CreateContainer", "container", id, "err", err)
		}
	})
	c.IDMap = rootfsIDMap(sb)
	pt.Mark("lease")
	if c.RootfsKind == RootfsNative {
		// The copy is in the container's directory, which the rollback
		// removes: a failed or interrupted copy leaves nothing.
		if err := m.copyNativeRoot(ctx, c, layers); err != nil {
			return "", err
		}
		pt.Mark("rootfs-copy")
	} else {
		c.LowerDirs = layers
	}
	if err := m.mountRoot(c); err != nil {
		return "", err
	}
	pt.Mark("rootfs")
	if err := failpoint.Hit("ctr-create/after-rootfs-mount"); err != nil {
		return "", err
	}
	rollback.add(func() {
		if err := m.releaseImageVolumes(id, len(vols)); err != nil {
			klog.FromContext(ctx).Info("Rolling back a failed CreateContainer", "container", id, "err", err)
		}
	})
	volSrcs, err := m.mountImageVolumes(id, vols, c.IDMap)
	if err != nil {
		return "", err
	}

	pt.Mark("volumes")
	s, err := m.generateSpec(c, sb, img, volSrcs)
	if err != nil {
		return "", err
	}
	pt.Mark("spec")
	// CDI devices are part of what the request asked for, so plugins see
	// them in the spec (as with containerd and CRI-O).
	if err := m.cdi.Inject(s, cdiDevices); err != nil {
		return "", err
	}
	// Plugins adjust the spec before anything runs from it; until the
	// container is listed, a connecting plugin waits for it.
	hooks := m.lifecycleHooks()
	unblock := hooks.BlockSync()
	defer unblock()
	if err := hooks.CreateContainer(ctx, sb, c, s); err != nil {
		return "", err
	}
	rollback.add(func() { hooks.UndoCreateContainer(context.WithoutCancel(ctx), sb, c) })
	c.Process, c.Resources = s.Process, s.Linux.Resources
	if logPath != "" {
		if err := makeLogDir(sb.Config.LogDirectory, cfg.LogPath); err != nil {
			return "", err
		}
	}
	pt.Mark("hooks+logdir")

	// Follows the client's deadline and rolls back when it passes: kubelet
	// would not start a container it has no ID for (the cancellation policy
	// in internal/timeouts).
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeouts.ContainerCreate)
		defer cancel()
	}
	proc, err := m.runtime.Create(ctx, monitor.Config{
		ID:            id,
		Bundle:        m.bundleDir(id),
		StateDir:      m.monitorStateDir(id),
		Spec:          s,
		LogPath:       logPath,
		LogRoot:       logRoot(sb.Config.LogDirectory, logPath),
		Stdin:         cfg.Stdin,
		StdinOnce:     cfg.StdinOnce,
		Tty:           cfg.Tty,
		MonitorBinary: m.monitor,
		SystemdCgroup: m.specOpts.CgroupDriver == "systemd",
		MonitorCgroup: m.monitorCgroup(sb.Cgroup, id),
	})
	if err != nil {
		return "", classifyInitError(fmt.Errorf("create container: %w", err))
	}
	rollback.add(func() {
		if err := proc.Destroy(); err != nil {
			klog.FromContext(ctx).Info("Rolling back a failed CreateContainer", "container", id, "err", err)
		}
	})

	if err := failpoint.Hit("ctr-create/after-monitor-spawn"); err != nil {
		return "", err
	}
	if err := <-leaseSynced; err != nil {
		return "", fmt.Errorf("image lease: %w", err)
	}
	pt.Mark("lease-sync-wait")
	c = c.clone()
	c.Phase = PhaseCreated
	if err := m.commit(e, c); err != nil {
		return "", err
	}
	pt.Mark("record-created")
	e.proc = proc
	m.containers.Show(e)
	m.watchExit(e)
	m.events.publish(Event{Type: EventCreated, ContainerID: id, PodID: podID, Time: time.Now()})
	hooks.PostCreateContainer(ctx, sb, e.snapshot())
	return id, nil
}

// classifyInitError gives what the container's init reported a gRPC code.
// The text crossed two process boundaries (init to monitor to daemon), so
// it is all there is to go by. A command that cannot be executed is the
// request's fault; other init failures (a bind mount source that is not
// there, a device or sysctl the node refuses) are the node not being in the
// state the request needs.
func classifyInitError(err error) error {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "error during container init: exec:"):
		return fmt.Errorf("%w (the command, config.command/args or the image's entrypoint and cmd, cannot be executed in the container): %w", err, errdefs.ErrInvalidArgument)
	case strings.Contains(msg, "error during container init"):
		return errdefs.FailedPrecondition("%w", err)
	}
	return err
}

func validateCreate(podID string, cfg *Config) error {
	switch {
	case podID == "":
		return errdefs.InvalidArgument("pod_sandbox_id is required")
	case cfg == nil:
		return errdefs.InvalidArgument("config is required")
	case cfg.Name == "":
		return errdefs.InvalidArgument("config.metadata.name is required")
	case cfg.Image.Image == "":
		return errdefs.InvalidArgument("config.image.image is required")
	}
	return nil
}

// containerLogPath joins the pod's log directory and the container's log
// path (kubelet sends "<name>/<attempt>.log"). Either being empty means no
// log, as in containerd. The path must stay inside the directory.
func containerLogPath(dir, rel string) (string, error) {
	if dir == "" || rel == "" {
		return "", nil
	}
	if !filepath.IsAbs(dir) {
		return "", errdefs.InvalidArgument("pod log_directory %q is not absolute", dir)
	}
	if !filepath.IsLocal(rel) {
		return "", errdefs.InvalidArgument("config.log_path %q must be a relative path inside the pod's log directory", rel)
	}
	return filepath.Join(dir, rel), nil
}

// makeLogDir creates the directories of a container's log path. Those under
// the pod's log directory may have been planted by a container (a hostPath
// of it): they are resolved inside it, never leading out.
func makeLogDir(dir, rel string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if sub := filepath.Dir(rel); sub != "." {
		if err := pathrs.MkdirAll(dir, sub, 0o755); err != nil {
			return fmt.Errorf("log directory of %q in %s: %w", rel, dir, err)
		}
	}
	return nil
}

// logRoot is the bound of the monitor's log path: the pod's log directory.
func logRoot(dir, logPath string) string {
	if logPath == "" {
		return ""
	}
	return dir
}

// imageInfo records the names kubelet and critest compare: image_id is the
// image id (same as ImageStatus.id and PullImage's image_ref), image_ref a
// repo digest when there is one (containerd's choice), and the image name
// what the user asked for.
func imageInfo(req spec.ImageSpec, img *image.Image) ImageInfo {
	info := ImageInfo{ID: img.ID, Ref: img.ID, Name: req.UserSpecifiedImage}
	if len(img.RepoDigests) > 0 {
		info.Ref = img.RepoDigests[0]
	}
	if info.Name == "" {
		info.Name = req.Image
		// kubelet passes the id; a tag says more to people.
		if isImageID(info.Name, img.ID) && len(img.RepoTags) > 0 {
			info.Name = img.RepoTags[0]
		}
	}
	return info
}

func isImageID(ref, id string) bool {
	hex := strings.TrimPrefix(id, "sha256:")
	r := strings.TrimPrefix(ref, "sha256:")
	return len(r) >= 12 && strings.HasPrefix(hex, r)
}

// generateSpec builds the OCI spec from the pod's record (never from the
// request's copy of the sandbox config, which a client controls).
func (m *Manager) generateSpec(c *Container, sb *sandbox.Sandbox, img *image.Image, imageVolumes map[string]string) (*specs.Spec, error) {
	cfg := &c.Config
	in := spec.Input{
		ID:           c.ID,
		Pod:          podSpec(sb),
		Config:       cfg,
		Image:        img.Config,
		ImageName:    c.Image.Name,
		RootfsPath:   c.Rootfs,
		ImageVolumes: imageVolumes,
		Options:      m.specOpts,
	}
	if nso := cfg.Security.Namespaces; nso.PID == sandbox.ModeTarget {
		ns, err := m.targetPIDNS(nso.TargetID, c.PodID)
		if err != nil {
			return nil, err
		}
		in.TargetPIDNS = ns
	}
	s, notes, err := spec.Generate(in)
	if err != nil {
		return nil, err
	}
	clampCaps(cfg, s.Process)
	if notes.OOMScoreAdjClamped {
		// Once per daemon: it is a property of the node, not of a pod.
		m.oomClampLogged.Do(func() {
			klog.InfoS("crisp lacks CAP_SYS_RESOURCE: container oom_score_adj values below the daemon's own are raised to it", "firstContainer", c.ID, "requested", notes.RequestedOOMScoreAdj)
		})
	}
	for _, w := range notes.Warnings {
		// Most warnings describe the node (a missing cgroup controller) and
		// kubelet triggers them for every container: say each once.
		if _, seen := m.warned.LoadOrStore(w, true); seen {
			klog.V(4).InfoS(w, "container", c.ID, "name", c.Name)
			continue
		}
		klog.InfoS(w+" (logged once per daemon)", "container", c.ID, "name", c.Name)
	}
	return s, nil
}

// targetPIDNS is the PID namespace of a running container of the same pod
// (kubectl debug's process-namespace targeting).
func (m *Manager) targetPIDNS(target, podID string) (string, error) {
	if target == "" {
		return "", errdefs.InvalidArgument("namespace_options.target_id is required for pid mode TARGET")
	}
	e, err := m.lookup(target)
	if err != nil {
		return "", fmt.Errorf("target container: %w", err)
	}
	s := e.snapshot()
	if s.PodID != podID {
		return "", errdefs.InvalidArgument("target container %s is in another pod", target)
	}
	if s.Status.State != StateRunning || s.Status.Pid <= 0 {
		return "", errdefs.FailedPrecondition("target container %s is not running", target)
	}
	p := fmt.Sprintf("/proc/%d/ns/pid", s.Status.Pid)
	if _, err := os.Stat(p); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", errdefs.FailedPrecondition("target container %s is not running", target)
		}
		return "", err
	}
	return p, nil
}

// podSpec describes the sandbox to spec generation.
func podSpec(sb *sandbox.Sandbox) spec.Pod {
	md := sb.Config.Metadata
	ns := sb.Config.Namespaces
	return spec.Pod{
		ID: sb.ID, Name: md.Name, Namespace: md.Namespace, UID: md.UID,
		NetNS:          sb.Namespaces[sandbox.NSNet],
		IPCNS:          sb.Namespaces[sandbox.NSIPC],
		UTSNS:          sb.Namespaces[sandbox.NSUTS],
		PIDNS:          sb.Namespaces[sandbox.NSPID],
		UserNS:         sb.Namespaces[sandbox.NSUser],
		UIDMappings:    ociIDMaps(ns.UIDs),
		GIDMappings:    ociIDMaps(ns.GIDs),
		CgroupParent:   sb.Cgroup,
		HostsPath:      sb.HostsPath,
		ResolvConfPath: sb.ResolvPath,
		HostnamePath:   sb.HostnamePath,
		ShmPath:        sb.ShmPath,
		Hostname:       sb.Hostname,
		Sysctls:        sb.Config.Sysctls,
		Privileged:     sb.Config.Privileged,
		PIDMode:        ns.PID,
		Ulimits:        sb.Config.Annotations[sandbox.UlimitsAnnotation],
	}
}
