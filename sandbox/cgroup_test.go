package sandbox

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestPodCgroupPath(t *testing.T) {
	for _, tc := range []struct{ parent, want string }{
		{"", "/crisp/pod-ID"},
		{"/kubepods/besteffort/podabc", "/kubepods/besteffort/podabc"},
		{"kubepods/podabc/", "/kubepods/podabc"},
		{"kubepods-besteffort-podabc.slice", "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-podabc.slice"},
	} {
		got, err := podCgroupPath(tc.parent, "ID")
		if err != nil || got != tc.want {
			t.Errorf("podCgroupPath(%q) = %q, %v; want %q", tc.parent, got, err, tc.want)
		}
	}
	for _, bad := range []string{"/", "/kubepods/../..", "-.slice", "a--b.slice"} {
		if _, err := podCgroupPath(bad, "ID"); err == nil {
			t.Errorf("podCgroupPath(%q) accepted", bad)
		}
	}
}

func TestCgroupPlanCreateRemove(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	os.MkdirAll(filepath.Join(a, "kubepods"), 0o755) // kubelet made part of it in one hierarchy
	os.MkdirAll(b, 0o755)
	c := &cgroups{roots: []string{a, b}}

	plan := c.plan("/kubepods/pod1")
	want := []string{filepath.Join(a, "kubepods/pod1"), filepath.Join(b, "kubepods"), filepath.Join(b, "kubepods/pod1")}
	if !reflect.DeepEqual(plan, want) {
		t.Fatalf("plan = %v, want %v", plan, want)
	}
	made, err := c.create(plan)
	if err != nil || !reflect.DeepEqual(made, want) {
		t.Fatalf("create = %v, %v", made, err)
	}
	// A sibling pod made later keeps the shared parent alive.
	sibling, _ := c.create(c.plan("/kubepods/pod2"))
	if err := c.remove(made, "pod1"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(b, "kubepods/pod2")); err != nil {
		t.Fatalf("removing pod1 touched pod2: %v", err)
	}
	if _, err := os.Stat(filepath.Join(a, "kubepods")); err != nil {
		t.Fatalf("a directory crisp did not create was removed: %v", err)
	}
	if err := c.remove(sibling, "pod2"); err != nil {
		t.Fatal(err)
	}
	// b/kubepods was recorded by pod1, which could not remove it then; it
	// stays (harmless, empty) rather than being removed by a pod that did
	// not create it.
	if _, err := os.Stat(filepath.Join(a, "kubepods/pod1")); !os.IsNotExist(err) {
		t.Fatal("pod1 cgroup left")
	}
	// Removing twice is fine.
	if err := c.remove(made, "pod1"); err != nil {
		t.Fatal(err)
	}
}

// A child below a shared parent that another daemon created but has not
// filled yet gets the grandparent's cpus and mems, and so does the parent.
func TestInheritCpusetFillsEmptyParent(t *testing.T) {
	root := t.TempDir()
	parent := filepath.Join(root, "crisp")
	child := filepath.Join(parent, "pod-1")
	if err := os.MkdirAll(child, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(dir, cpus, mems string) {
		for f, v := range map[string]string{"cpuset.cpus": cpus, "cpuset.mems": mems} {
			if err := os.WriteFile(filepath.Join(dir, f), []byte(v), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	write(root, "0-1\n", "0\n")
	write(parent, "\n", "\n")
	write(child, "\n", "\n")
	if err := inheritCpuset(child); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{parent, child} {
		cpus, _ := os.ReadFile(filepath.Join(d, "cpuset.cpus"))
		mems, _ := os.ReadFile(filepath.Join(d, "cpuset.mems"))
		if string(cpus) != "0-1\n" || string(mems) != "0\n" {
			t.Errorf("%s: cpus %q mems %q", d, cpus, mems)
		}
	}
}

func TestPodPathSystemd(t *testing.T) {
	c := &cgroups{systemd: true}
	for _, tc := range []struct{ parent, want string }{
		// No cgroup_parent: a slice of its own in crisp.slice, never the
		// cgroupfs default that every container create would refuse.
		{"", "/crisp.slice/crisp-podID.slice"},
		{"kubepods-burstable-podabc.slice", "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-podabc.slice"},
		{"machine.slice", "/machine.slice"},
		// kubelet's form: the slice's expanded path.
		{"/kubepods.slice/kubepods-podabc.slice", "/kubepods.slice/kubepods-podabc.slice"},
		{"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-podabc.slice", "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-podabc.slice"},
	} {
		got, err := c.podPath(tc.parent, "ID")
		if err != nil || got != tc.want {
			t.Errorf("podPath(%q) = %q, %v; want %q", tc.parent, got, err, tc.want)
		}
	}
	for _, bad := range []string{"/kubepods/burstable/podabc", "/other.slice/kubepods-podabc.slice", "/kubepods-podabc.slice", "kubepods", "a--b.slice", "-.slice"} {
		if _, err := c.podPath(bad, "ID"); err == nil {
			t.Errorf("podPath(%q) accepted under systemd", bad)
		}
	}
	if got, _ := (&cgroups{}).podPath("", "ID"); got != "/crisp/pod-ID" {
		t.Errorf("cgroupfs default = %q", got)
	}
}

func TestParentSlice(t *testing.T) {
	for in, want := range map[string]string{
		"kubepods-burstable-podabc.slice": "kubepods-burstable.slice",
		"crisp-podID.slice":               "crisp.slice",
		"crisp.slice":                     "-.slice",
	} {
		if got := parentSlice(in); got != want {
			t.Errorf("parentSlice(%q) = %q, want %q", in, got, want)
		}
	}
}
