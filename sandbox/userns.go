package sandbox

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"

	"github.com/crisp-runtime/crisp/errdefs"
	"github.com/crisp-runtime/crisp/internal/idmap"
	"github.com/crisp-runtime/crisp/internal/timeouts"
	"github.com/crisp-runtime/crisp/sandbox/podinit"
)

// IDMap maps Size ids from ContainerID inside the pod to HostID on the node.
type IDMap struct {
	ContainerID uint32 `json:"containerId"`
	HostID      uint32 `json:"hostId"`
	Size        uint32 `json:"size"`
}

// UsernsPod says whether the pod has a user namespace of its own.
func (o NamespaceOptions) UsernsPod() bool { return o.User == ModePod }

// RootIDs are the host uid and gid of the pod's root; ok is false without a
// pod user namespace.
func (o NamespaceOptions) RootIDs() (uid, gid uint32, ok bool) {
	if !o.UsernsPod() || len(o.UIDs) == 0 || len(o.GIDs) == 0 {
		return 0, 0, false
	}
	return o.UIDs[0].HostID, o.GIDs[0].HostID, true
}

// validateUserns accepts what kubelet sends for hostUsers: false, one
// mapping each for uids and gids that maps the pod's root, and nothing that
// would share a host namespace with the pod's user namespace: crisp does not
// advertise user_namespaces_host_network, and a host namespace is not owned by
// the pod's user namespace, so its root could not manage it anyway.
func validateUserns(o NamespaceOptions) error {
	switch o.User {
	case "", ModeNode:
		if len(o.UIDs)+len(o.GIDs) > 0 {
			return errdefs.InvalidArgument("namespace_options.userns_options: uids and gids are only valid with mode POD")
		}
		return nil
	case ModePod:
	default:
		return errdefs.InvalidArgument("namespace_options.userns_options.mode %q is not supported: use POD or NODE", o.User)
	}
	for field, m := range map[string]NamespaceMode{"network": o.Network, "pid": o.PID, "ipc": o.IPC} {
		if m == ModeNode {
			return errdefs.InvalidArgument("namespace_options: a pod with its own user namespace cannot use the host's %s namespace", field)
		}
	}
	if err := validateIDMaps("uids", o.UIDs); err != nil {
		return err
	}
	return validateIDMaps("gids", o.GIDs)
}

func validateIDMaps(field string, maps []IDMap) error {
	switch len(maps) {
	case 0:
		return errdefs.InvalidArgument("namespace_options.userns_options.%s: mode POD needs a mapping", field)
	case 1:
	default:
		// runc could write several, but kubelet sends one and an
		// idmapped layer needs the same single range.
		return errdefs.InvalidArgument("namespace_options.userns_options.%s: exactly one mapping is supported, got %d", field, len(maps))
	}
	m := maps[0]
	switch {
	case m.Size == 0:
		return errdefs.InvalidArgument("namespace_options.userns_options.%s: length must not be 0", field)
	case m.ContainerID != 0:
		return errdefs.InvalidArgument("namespace_options.userns_options.%s: the mapping must start at container id 0 (the pod's root), got %d", field, m.ContainerID)
	case m.HostID == 0:
		return errdefs.InvalidArgument("namespace_options.userns_options.%s: host id 0 would make the node's root the pod's", field)
	// (uid_t)-1 is not an id, so a range may end at math.MaxUint32-1.
	case uint64(m.HostID)+uint64(m.Size) > math.MaxUint32:
		return errdefs.InvalidArgument("namespace_options.userns_options.%s: host ids %d+%d exceed the 32-bit id space", field, m.HostID, m.Size)
	}
	return nil
}

// probeMap is the mapping of the throw-away user namespace the probe uses;
// any range works, this one is what critest uses.
var probeMap = []IDMap{{ContainerID: 0, HostID: 65536, Size: 65536}}

// UserNamespaces says whether pods can have their own user namespace, nil
// when they can. It is checked once: an overlay whose lower layer is an
// idmapped mount, on the filesystem of crisp's root, in a user namespace made
// the way pods' are, is exactly what a container of such a pod needs.
func (m *Manager) UserNamespaces() error {
	m.usernsOnce.Do(func() {
		m.usernsErr = m.probeUserns()
		if m.usernsErr != nil {
			m.usernsErr = fmt.Errorf("user namespaces are not supported on this node: %w", m.usernsErr)
			klog.InfoS("User namespaces unavailable", "err", m.usernsErr)
		}
	})
	return m.usernsErr
}

func (m *Manager) probeUserns() error {
	if err := searchable(filepath.Dir(m.pins.dir)); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeouts.NamespaceSpawn)
	defer cancel()
	ns := NamespaceOptions{User: ModePod, UIDs: probeMap, GIDs: probeMap}
	c, err := m.pins.start(ctx, unix.CLONE_NEWUSER, podinit.Spec{}, &ns)
	if err != nil {
		return err
	}
	defer c.stop()
	userns, err := os.Open(fmt.Sprintf("/proc/%d/ns/user", c.cmd.Process.Pid))
	if err != nil {
		return err
	}
	defer userns.Close()

	return idmap.ProbeOverlay(filepath.Join(m.store.root, ".idmap-probe"), userns, probeMap[0].HostID)
}

// userChild makes cmd's child the root of the user namespace it is cloned
// with. The mappings are written by the parent before the child goes on,
// then the child becomes uid and gid 0 there (with no supplementary groups,
// dropping the daemon's): as an unmapped uid it would lose every capability at
// exec, and it needs CAP_SYS_ADMIN and CAP_NET_ADMIN over the namespaces it
// owns to set the hostname and sysctls. Being the pod's root, it can no longer
// walk directories the node's root keeps private, so the binary is executed
// through an open file, not its path. The returned file is the caller's to
// close once the child started.
func userChild(cmd *exec.Cmd, ns *NamespaceOptions) (*os.File, error) {
	if ns == nil || !ns.UsernsPod() {
		return nil, errors.New("a user namespace needs mappings")
	}
	exe, err := os.Open(cmd.Path)
	if err != nil {
		return nil, fmt.Errorf("pod init binary: %w", err)
	}
	attr := cmd.SysProcAttr
	attr.UidMappings = sysIDMaps(ns.UIDs)
	attr.GidMappings = sysIDMaps(ns.GIDs)
	// "allow" stays: containers joining the namespace set their groups.
	attr.GidMappingsEnableSetgroups = true
	attr.Credential = &syscall.Credential{Uid: 0, Gid: 0}
	cmd.Path = fmt.Sprintf("/proc/self/fd/%d", 3+len(cmd.ExtraFiles))
	cmd.ExtraFiles = append(cmd.ExtraFiles, exe)
	return exe, nil
}

func sysIDMaps(maps []IDMap) []syscall.SysProcIDMap {
	out := make([]syscall.SysProcIDMap, len(maps))
	for i, m := range maps {
		out[i] = syscall.SysProcIDMap{ContainerID: int(m.ContainerID), HostID: int(m.HostID), Size: int(m.Size)}
	}
	return out
}

// searchable checks that every directory from dir up is searchable by any
// user: runc, already the root of the pod's user namespace and so not the
// node's, reaches container root filesystems below the state directory by
// path.
func searchable(dir string) error {
	for p := filepath.Clean(dir); ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return err
		}
		if fi.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("%s (mode %#o) is not searchable by other users, so a pod's user namespace root cannot reach the container root filesystems below it: chmod o+x it", p, fi.Mode().Perm())
		}
		if p == "/" {
			return nil
		}
	}
}
