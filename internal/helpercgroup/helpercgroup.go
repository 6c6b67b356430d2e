// Package helpercgroup gives crisp's long-lived helper processes — each
// container's monitor and a shared-PID pod's reaper — a cgroup of their own
// under the pod, out of the daemon's cgroup. Under systemd, stopping or
// restarting crisp's unit signals every process of the unit's cgroup
// (KillMode=control-group, the default): helpers left there would die with
// the daemon and take the containers' logs, exit codes or whole PID
// namespaces with them. Placed under the pod, as CRI-O places conmon, they
// are charged to the pod they serve and go away with it.
//
// The cgroup is a leaf (a process may not live in a v2 cgroup that has
// controllers enabled for children): <pod>/<kind>-<id> with the cgroupfs
// driver, in every v1 hierarchy or the v2 tree; a transient scope
// <kind>-<id>.scope in the pod slice with the systemd driver, which systemd
// removes by itself once its process has exited.
package helpercgroup

import (
	"errors"
	"fmt"
	"path"

	"github.com/opencontainers/cgroups"
	"github.com/opencontainers/cgroups/manager"
)

// Kinds of helper, used as the cgroup name's (or the scope's) prefix.
const (
	KindMonitor = "crisp-monitor"
	KindReaper  = "crisp-reaper"
)

// Leaf names one helper's cgroup. It is persisted (in a monitor's config),
// so the field names are part of the on-disk format.
type Leaf struct {
	// Pod is the pod cgroup: a cgroupfs path (/kubepods/burstable/pod<uid>),
	// or with Systemd the pod slice's unit name or its expanded path
	// (kubepods-burstable-pod<uid>.slice).
	Pod string `json:"pod"`
	// Kind is KindMonitor or KindReaper; ID the container's or pod's id.
	Kind string `json:"kind"`
	ID   string `json:"id"`
	// Systemd makes the leaf a transient scope started over D-Bus.
	Systemd bool `json:"systemd,omitempty"`
}

// IsZero reports a leaf that was never set (records of older versions):
// the helper then stays where it was started.
func (l Leaf) IsZero() bool { return l.Pod == "" }

// Name is the leaf's cgroup directory name: <kind>-<id>, plus .scope
// under systemd.
func (l Leaf) Name() string {
	if l.Systemd {
		return l.Kind + "-" + l.ID + ".scope"
	}
	return l.Kind + "-" + l.ID
}

func (l Leaf) validate() error {
	switch {
	case l.Pod == "" || l.Kind == "" || l.ID == "":
		return errors.New("helper cgroup: pod, kind and id must be set")
	case l.Systemd && !isSlice(path.Base(l.Pod)):
		return errors.New("helper cgroup: " + l.Pod + " is not a systemd slice")
	case !l.Systemd && !path.IsAbs(l.Pod):
		return errors.New("helper cgroup: " + l.Pod + " is not an absolute cgroupfs path")
	}
	return nil
}

func isSlice(name string) bool {
	return len(name) > len(".slice") && path.Ext(name) == ".slice"
}

// config is the leaf in libcontainer's terms. No resources are set: the
// helper shares the pod's limits. Not SkipDevices: on v1 that would also
// skip joining the devices hierarchy, leaving the helper in the daemon's.
func (l Leaf) config() (*cgroups.Cgroup, error) {
	if err := l.validate(); err != nil {
		return nil, err
	}
	res := &cgroups.Resources{}
	if l.Systemd {
		return &cgroups.Cgroup{
			Systemd: true, Parent: path.Base(l.Pod),
			ScopePrefix: l.Kind, Name: l.ID, Resources: res,
		}, nil
	}
	return &cgroups.Cgroup{Path: path.Join(l.Pod, l.Name()), Resources: res}, nil
}

// Join creates the leaf (creating missing parents, and on v2 enabling the
// pod's controllers for it) and moves pid into it.
func (l Leaf) Join(pid int) error {
	cg, err := l.config()
	if err != nil {
		return err
	}
	m, err := manager.New(cg)
	if err != nil {
		return err
	}
	if err := m.Apply(pid); err != nil {
		return fmt.Errorf("helper cgroup %s: join: %w", l.Name(), err)
	}
	return nil
}

// Remove deletes the leaf (stops the scope). The helper must be gone;
// a leaf that does not exist is fine.
func (l Leaf) Remove() error {
	cg, err := l.config()
	if err != nil {
		return err
	}
	m, err := manager.New(cg)
	if err != nil {
		return err
	}
	if err := m.Destroy(); err != nil {
		return fmt.Errorf("helper cgroup %s: remove: %w", l.Name(), err)
	}
	return nil
}
