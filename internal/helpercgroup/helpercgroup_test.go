package helpercgroup

import (
	"encoding/json"
	"testing"
)

func TestLeafConfig(t *testing.T) {
	l := Leaf{Pod: "/kubepods/burstable/podabc", Kind: KindMonitor, ID: "c1"}
	cg, err := l.config()
	if err != nil || cg.Systemd || cg.Path != "/kubepods/burstable/podabc/crisp-monitor-c1" {
		t.Fatalf("cgroupfs config = %+v, %v", cg, err)
	}
	// The pod slice may come as kubelet's name or as its expanded path.
	for _, pod := range []string{"kubepods-burstable-podabc.slice", "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-podabc.slice"} {
		l := Leaf{Pod: pod, Kind: KindReaper, ID: "p1", Systemd: true}
		cg, err := l.config()
		if err != nil || !cg.Systemd || cg.Parent != "kubepods-burstable-podabc.slice" || cg.ScopePrefix != KindReaper || cg.Name != "p1" || cg.Path != "" {
			t.Fatalf("systemd config of %q = %+v, %v", pod, cg, err)
		}
		if l.Name() != "crisp-reaper-p1.scope" {
			t.Errorf("Name = %q", l.Name())
		}
	}
	for _, bad := range []Leaf{
		{Pod: "kubepods/podabc", Kind: KindMonitor, ID: "c1"},
		{Pod: "/kubepods/podabc", Kind: KindMonitor, ID: "c1", Systemd: true},
		{Pod: "/kubepods/podabc", Kind: KindMonitor},
		{},
	} {
		if _, err := bad.config(); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

// A monitor's config written by a version without the field has no leaf.
func TestLeafZero(t *testing.T) {
	var v struct {
		L Leaf `json:"monitor_cgroup,omitzero"`
	}
	if err := json.Unmarshal([]byte(`{}`), &v); err != nil || !v.L.IsZero() {
		t.Fatalf("%+v %v", v, err)
	}
	b, _ := json.Marshal(v)
	if string(b) != `{}` {
		t.Errorf("zero leaf marshals as %s", b)
	}
}
