package container

import (
	"testing"

	"github.com/crisp-runtime/crisp/container/spec"
	"github.com/crisp-runtime/crisp/internal/helpercgroup"
)

func TestMonitorCgroup(t *testing.T) {
	fs := &Manager{specOpts: spec.Options{CgroupDriver: "cgroupfs"}}
	want := helpercgroup.Leaf{Pod: "/kubepods/podabc", Kind: helpercgroup.KindMonitor, ID: "c1"}
	if got := fs.monitorCgroup("/kubepods/podabc", "c1"); got != want {
		t.Errorf("cgroupfs: %+v, want %+v", got, want)
	}
	sd := &Manager{specOpts: spec.Options{CgroupDriver: "systemd"}}
	if got := sd.monitorCgroup("/kubepods.slice/kubepods-podabc.slice", "c1"); !got.Systemd || got.Name() != "crisp-monitor-c1.scope" {
		t.Errorf("systemd: %+v (%s)", got, got.Name())
	}
	// A pod recorded without a cgroup: the monitor stays where it starts.
	if got := fs.monitorCgroup("", "c1"); !got.IsZero() {
		t.Errorf("no pod cgroup: %+v", got)
	}
}
