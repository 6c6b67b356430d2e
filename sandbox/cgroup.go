package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/moby/sys/mountinfo"
	lcgroups "github.com/opencontainers/cgroups"
	"github.com/opencontainers/cgroups/manager"
	"golang.org/x/sys/unix"

	"github.com/crisp-runtime/crisp/internal/helpercgroup"
)

// cgroups creates and removes pod cgroup directories in every hierarchy:
// each v1 controller mount (and name=systemd), or the single v2 tree.
// Kubelet usually made the pod cgroup already; crisp creates what is missing
// and records exactly what it created so that Remove deletes only that.
type cgroups struct {
	// roots are the hierarchy mount points.
	roots []string
	// mu serialises creation and removal so that one pod's Remove cannot
	// rmdir a shared parent (e.g. /crisp) between another pod's check and
	// mkdir.
	mu sync.Mutex
	// systemd: pod cgroups are slices and helpers' cgroups scopes, made
	// and removed through systemd (the systemd cgroup driver).
	systemd bool
}

const cgroupRoot = "/sys/fs/cgroup"

// detectCgroups finds the hierarchies. On a unified (v2) host that is the
// root alone; in hybrid mode every v1 hierarchy and the v2 mount.
func detectCgroups() (*cgroups, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(cgroupRoot, &st); err != nil {
		return nil, fmt.Errorf("cgroups: %w", err)
	}
	if st.Type == unix.CGROUP2_SUPER_MAGIC {
		return &cgroups{roots: []string{cgroupRoot}}, nil
	}
	// Hybrid mode: the controller-less v2 mount counts too, because
	// libcontainer creates each container's parents there as well and only
	// the pod, which outlives its containers, can remove them.
	mounts, err := mountinfo.GetMounts(mountinfo.FSTypeFilter("cgroup", "cgroup2"))
	if err != nil {
		return nil, fmt.Errorf("cgroups: %w", err)
	}
	seen := map[string]bool{}
	c := &cgroups{}
	for _, m := range mounts {
		// A hierarchy mounted twice (bind mounts) has one tree; the
		// first mount point, by its root inside the hierarchy, is enough.
		if m.Root != "/" || seen[m.Mountpoint] {
			continue
		}
		seen[m.Mountpoint] = true
		c.roots = append(c.roots, m.Mountpoint)
	}
	if len(c.roots) == 0 {
		return nil, errors.New("cgroups: no cgroup hierarchy is mounted")
	}
	return c, nil
}

// podCgroupPath turns the CRI cgroup_parent into the pod's cgroupfs path.
// Kubelet sends the pod cgroup itself; with the systemd driver it is a slice
// name (kubepods-burstable-pod<uid>.slice) which maps to nested directories.
func podCgroupPath(parent, id string) (string, error) {
	if parent == "" {
		return "/crisp/pod-" + id, nil
	}
	if strings.HasSuffix(parent, ".slice") && !strings.Contains(parent, "/") {
		return expandSlice(parent)
	}
	if strings.Contains(parent, "..") {
		return "", fmt.Errorf("linux.cgroup_parent %q must not contain \"..\"", parent)
	}
	clean := path.Clean("/" + parent)
	if clean == "/" {
		return "", fmt.Errorf("linux.cgroup_parent %q: a pod cannot use the root cgroup", parent)
	}
	return clean, nil
}

// defaultPodSlicePrefix names the slice of a pod that comes without a
// cgroup_parent under the systemd driver: crisp-pod<id>.slice, in
// crisp.slice, as /crisp/pod-<id> is with the cgroupfs driver.
const defaultPodSlicePrefix = "crisp-pod"

// podPath is podCgroupPath for the configured driver. With systemd the
// parent must be a slice: containers become scopes in it, and only a slice
// can hold those. It comes as a name (kubepods-burstable-pod<uid>.slice) or,
// as kubelet sends it, as the slice's expanded path
// (/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid>.slice);
// a path must be where systemd puts its last element.
func (c *cgroups) podPath(parent, id string) (string, error) {
	if !c.systemd {
		return podCgroupPath(parent, id)
	}
	if parent == "" {
		return expandSlice(defaultPodSlicePrefix + id + ".slice")
	}
	slice := path.Base(parent)
	if !strings.HasSuffix(slice, ".slice") {
		return "", fmt.Errorf("linux.cgroup_parent %q is not a systemd slice, but the cgroup driver is systemd", parent)
	}
	p, err := expandSlice(slice)
	if err != nil {
		return "", err
	}
	if strings.Contains(parent, "/") && path.Clean(parent) != p {
		return "", fmt.Errorf("linux.cgroup_parent %q is not where systemd puts slice %s (%s)", parent, slice, p)
	}
	return p, nil
}

// parentSlice is the slice a slice lives in, from its name: a-b-c.slice
// is in a-b.slice, a.slice in the root slice.
func parentSlice(slice string) string {
	name := strings.TrimSuffix(slice, ".slice")
	if i := strings.LastIndexByte(name, '-'); i > 0 {
		return name[:i] + ".slice"
	}
	return "-.slice"
}

// expandSlice is systemd's slice naming: a-b-c.slice lives in
// /a.slice/a-b.slice/a-b-c.slice.
func expandSlice(slice string) (string, error) {
	name := strings.TrimSuffix(slice, ".slice")
	if name == "" || name == "-" || strings.Contains(name, "--") || strings.HasPrefix(name, "-") || strings.HasSuffix(name, "-") {
		return "", fmt.Errorf("linux.cgroup_parent %q is not a valid systemd slice", slice)
	}
	var p, prefix string
	for _, part := range strings.Split(name, "-") {
		if prefix != "" {
			prefix += "-"
		}
		prefix += part
		p += "/" + prefix + ".slice"
	}
	return p, nil
}

// plan lists the directories that do not exist yet, parents first, without
// creating anything: the plan is persisted before the directories are made,
// so a crash between the two cannot leak them.
func (c *cgroups) plan(cgPath string) []string {
	var missing []string
	for _, root := range c.roots {
		// Parents first: once one is missing, so are all below it.
		var chain []string
		for p := cgPath; p != "/" && p != "."; p = path.Dir(p) {
			chain = append([]string{filepath.Join(root, p)}, chain...)
		}
		for i, d := range chain {
			if _, err := os.Stat(d); errors.Is(err, os.ErrNotExist) {
				missing = append(missing, chain[i:]...)
				break
			}
		}
	}
	return missing
}

// create makes the planned directories that are still missing and returns
// those it made. Under systemd a missing pod slice is started as a
// transient slice unit instead (systemd makes its parent slices), and the
// plan is returned as made: remove then stops that unit.
func (c *cgroups) create(planned []string) ([]string, error) {
	if c.systemd {
		if len(planned) == 0 {
			return nil, nil
		}
		if err := podSlice(path.Base(planned[len(planned)-1])).Apply(-1); err != nil {
			return nil, fmt.Errorf("create pod slice: %w", err)
		}
		return planned, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var made []string
	for _, d := range planned {
		err := os.Mkdir(d, 0o755)
		if errors.Is(err, os.ErrNotExist) {
			// A shared parent (/crisp, a kubelet QoS cgroup) was removed by
			// another pod's or daemon's cleanup since plan looked. Re-create
			// it without recording it: whoever owns it removes it.
			if err = mkdirParents(filepath.Dir(d)); err == nil {
				err = os.Mkdir(d, 0o755)
			}
		}
		if errors.Is(err, os.ErrExist) {
			// Another daemon may have just made it and not filled its
			// cpuset yet; a child made below it would inherit nothing.
			if err := inheritCpuset(d); err != nil {
				return made, err
			}
			continue
		}
		if err != nil {
			return made, fmt.Errorf("create pod cgroup: %w", err)
		}
		made = append(made, d)
		if err := inheritCpuset(d); err != nil {
			return made, err
		}
		enableControllers(filepath.Dir(d))
	}
	return made, nil
}

// enableControllers turns on, for the children of a v2 cgroup, every
// controller it has, as kubelet does for the pod cgroups it makes: a pod
// cgroup crisp made then has pids.max, memory.max, ... from the start for
// pod-level limits, not only once a container's start (libcontainer) has
// enabled them along its path. Best effort: a controller that cannot be
// enabled (a parent with processes of its own) is what libcontainer reports
// at container start anyway.
func enableControllers(dir string) {
	if !unified(dir) {
		return
	}
	avail, err := os.ReadFile(filepath.Join(dir, "cgroup.controllers"))
	if err != nil {
		return
	}
	on, _ := os.ReadFile(filepath.Join(dir, "cgroup.subtree_control"))
	enabled := strings.Fields(string(on))
	for _, c := range strings.Fields(string(avail)) {
		if !slices.Contains(enabled, c) {
			_ = os.WriteFile(filepath.Join(dir, "cgroup.subtree_control"), []byte("+"+c), 0o644)
		}
	}
}

// inheritCpuset fills a new v1 cpuset cgroup from its parent: the kernel
// creates it with no CPUs and no memory nodes, and refuses tasks (ENOSPC)
// until both are set.
//
// cgroup v2 needs none of it: there an empty cpuset.cpus (or .mems) means
// "the parent's", the root has no such files to copy from, and copying
// would pin the pod to today's CPUs when the parent's set changes later.
func inheritCpuset(dir string) error {
	if unified(dir) {
		return nil
	}
	for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
		cur, err := os.ReadFile(filepath.Join(dir, f))
		if errors.Is(err, os.ErrNotExist) {
			return nil // not a cpuset hierarchy, or v2
		}
		if err != nil {
			return err
		}
		if strings.TrimSpace(string(cur)) != "" {
			continue
		}
		parent, err := os.ReadFile(filepath.Join(filepath.Dir(dir), f))
		if err != nil {
			return err
		}
		if strings.TrimSpace(string(parent)) == "" {
			// A shared parent that another process created but has
			// not filled yet: fill it first (the root is never empty).
			if err := inheritCpuset(filepath.Dir(dir)); err != nil {
				return err
			}
			if parent, err = os.ReadFile(filepath.Join(filepath.Dir(dir), f)); err != nil {
				return err
			}
		}
		if err := os.WriteFile(filepath.Join(dir, f), parent, 0o644); err != nil {
			return fmt.Errorf("initialise %s: %w", filepath.Join(dir, f), err)
		}
	}
	return nil
}

// unified reports whether dir is on a cgroup v2 file system.
func unified(dir string) bool {
	var st unix.Statfs_t
	return unix.Statfs(dir, &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC
}

// remove deletes the given directories children first. A cgroup still in
// use (EBUSY: tasks; ENOTEMPTY: child cgroups, e.g. another pod under a
// shared parent) is left alone; only leaves that are really ours fail loudly.
func (c *cgroups) remove(dirs []string, leaf string) error {
	if c.systemd {
		// Only the pod's own slice: stopping a parent slice would stop
		// every other pod's units in it.
		for _, d := range dirs {
			if path.Base(d) == leaf {
				return podSlice(leaf).Destroy()
			}
		}
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var firstErr error
	for i := len(dirs) - 1; i >= 0; i-- {
		err := unix.Rmdir(dirs[i])
		switch {
		case err == nil, errors.Is(err, unix.ENOENT):
		case errors.Is(err, unix.EBUSY), errors.Is(err, unix.ENOTEMPTY):
			if path.Base(dirs[i]) == leaf && firstErr == nil {
				firstErr = fmt.Errorf("remove pod cgroup %s: still in use: %w", dirs[i], err)
			}
		default:
			if firstErr == nil {
				firstErr = fmt.Errorf("remove pod cgroup %s: %w", dirs[i], err)
			}
		}
	}
	return firstErr
}

// reaperCgroup is where a shared-PID pod's reaper lives: a leaf of its own
// under the pod, out of the daemon's cgroup (so that a restart of crisp's
// systemd unit does not kill it) and not in the pod cgroup itself (on v2 a
// process there would stop controllers being enabled for the containers).
func (c *cgroups) reaperCgroup(cgPath, id string) helpercgroup.Leaf {
	return helpercgroup.Leaf{Pod: cgPath, Kind: helpercgroup.KindReaper, ID: id, Systemd: c.systemd}
}

// podSlice is a pod slice unit, made through libcontainer's systemd
// manager as kubelet makes its pod slices.
type podSlice string

func (s podSlice) manager() (lcgroups.Manager, error) {
	return manager.New(&lcgroups.Cgroup{
		Systemd: true, Name: string(s), Parent: parentSlice(string(s)),
		Resources: &lcgroups.Resources{SkipDevices: true},
	})
}

// Apply starts the slice (pid -1: no process; an existing unit is fine).
func (s podSlice) Apply(pid int) error {
	m, err := s.manager()
	if err != nil {
		return err
	}
	return m.Apply(pid)
}

// Destroy stops the slice and removes its directory.
func (s podSlice) Destroy() error {
	m, err := s.manager()
	if err != nil {
		return err
	}
	if err := m.Destroy(); err != nil {
		return fmt.Errorf("remove pod slice %s: %w", string(s), err)
	}
	return nil
}

// mkdirParents is MkdirAll for cgroupfs: each new cpuset directory must get
// cpus and mems from its parent before anything is created below it.
func mkdirParents(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	if err := mkdirParents(filepath.Dir(dir)); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	enableControllers(filepath.Dir(dir))
	return inheritCpuset(dir)
}
