package container

import "github.com/crisp-runtime/crisp/internal/helpercgroup"

// monitorCgroup is where a container's monitor lives: a leaf (a scope under
// systemd) in the pod cgroup beside the containers', so that restarting
// crisp's systemd unit leaves it running and the pod pays for it. A pod
// without a cgroup (records of old versions) keeps the monitor in the
// daemon's cgroup.
func (m *Manager) monitorCgroup(podCgroup, id string) helpercgroup.Leaf {
	if podCgroup == "" {
		return helpercgroup.Leaf{}
	}
	return helpercgroup.Leaf{
		Pod: podCgroup, Kind: helpercgroup.KindMonitor, ID: id,
		Systemd: m.specOpts.CgroupDriver == "systemd",
	}
}
