package process

import (
	"os"
	"path/filepath"
	"testing"
)

func TestOOMCounterReadsV1OOMControl(t *testing.T) {
	f := filepath.Join(t.TempDir(), "memory.oom_control")
	// v1's memory.oom_control mixes flags and the counter.
	if err := os.WriteFile(f, []byte("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := oomCounter{file: f}
	if n, err := c.read(); err != nil || n != 3 {
		t.Fatalf("oom_kill %d %v", n, err)
	}
	c.start = 3
	if c.killed() {
		t.Fatal("killed with the counter unchanged since create")
	}
	c.start = 2
	if !c.killed() {
		t.Fatal("not killed although the counter rose")
	}
}
