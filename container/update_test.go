package container

import (
	"context"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/crisp-runtime/crisp/container/monitor"
	"github.com/crisp-runtime/crisp/sandbox"
)

// An update replaces the limits but not the device rules, which CDI devices
// and NRI plugins added at create and the monitor keeps.
func TestUpdateKeepsDeviceRules(t *testing.T) {
	e := newEnv(t)
	e.pods.pods["shared"] = &sandbox.Sandbox{ID: "shared", State: sandbox.StateReady, Namespaces: map[string]string{sandbox.NSPID: "/proc/1/ns/pid"}}
	e.put(t, "aaaa1111", "shared", "c", monitor.StateRunning, nil)
	en, _ := e.m.containers.Get("aaaa1111")
	c := en.Load().clone()
	c.Process = &specs.Process{Args: []string{"sleep", "1d"}}
	major, minor := int64(10), int64(229)
	rules := []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}, {Allow: true, Type: "c", Major: &major, Minor: &minor, Access: "rw"}}
	c.Resources = &specs.LinuxResources{Devices: rules}
	en.Store(c)

	if err := e.m.UpdateResources(context.Background(), "aaaa1111", &Resources{CPUShares: 512}); err != nil {
		t.Fatal(err)
	}
	s, _ := e.m.Get("aaaa1111")
	got := s.Resources.Devices
	if len(got) != 2 || !got[1].Allow || *got[1].Major != 10 || *got[1].Minor != 229 || got[1].Access != "rw" {
		t.Errorf("device rules after an update: %+v", got)
	}
	if s.Resources.CPU == nil || *s.Resources.CPU.Shares != 512 {
		t.Errorf("cpu after an update: %+v", s.Resources.CPU)
	}
}
