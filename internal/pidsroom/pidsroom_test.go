package pidsroom

import (
	"os"
	"path/filepath"
	"testing"
)

// The smallest room of the monitor's cgroup and its ancestors counts; a
// cgroup without a limit ("max") or without the files does not; the root
// is not read.
func TestTightest(t *testing.T) {
	root := t.TempDir()
	write := func(dir, max, cur string) {
		t.Helper()
		d := filepath.Join(root, dir)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, v := range map[string]string{"pids.max": max, "pids.current": cur} {
			if v != "" {
				if err := os.WriteFile(filepath.Join(d, name), []byte(v+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	write("", "5", "5") // the root's files are never read
	write("kubepods", "max", "900")
	write("kubepods/pod1", "100", "60")
	write("kubepods/pod1/crisp-monitor-c1", "max", "7")
	leaf := filepath.Join(root, "kubepods/pod1/crisp-monitor-c1")
	if l, limited := Tightest(root, leaf); !limited || l.Room() != 40 || l.Dir != filepath.Join(root, "kubepods/pod1") {
		t.Fatalf("%+v limited %v, want the pod's 40", l, limited)
	}
	write("kubepods", "1000", "990")
	if l, _ := Tightest(root, leaf); l.Room() != 10 {
		t.Fatalf("%+v, want kubepods' room of 10", l)
	}
	if _, limited := Tightest(root, filepath.Join(root, "nowhere/deep")); limited {
		t.Fatal("a cgroup without files is limited")
	}
}
