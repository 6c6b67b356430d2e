package process

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/crisp-runtime/crisp/internal/testutil"
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

// TestOOMCounterWatchOutlivesTheFile: under the systemd driver the scope,
// and its memory.events, may be gone by the time the init's exit is seen;
// a rise noticed while the file existed still counts.
func TestOOMCounterWatchOutlivesTheFile(t *testing.T) {
	f := filepath.Join(t.TempDir(), "memory.events")
	write := func(body string) {
		t.Helper()
		// In place, as the kernel updates the file: the watch is on its inode.
		fh, err := os.OpenFile(f, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := fh.WriteString(body); err != nil {
			t.Fatal(err)
		}
		fh.Close()
	}
	write("low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\noom_group_kill 0\n")
	c := oomCounter{file: f, start: 1}
	c.watch(t.Logf)
	time.Sleep(50 * time.Millisecond)
	if c.killed() {
		t.Fatal("killed with the counter unchanged since create")
	}
	write("low 0\nhigh 0\nmax 9\noom 2\noom_kill 2\noom_group_kill 0\n")
	testutil.WaitFor(t, "the watch to see the rise", 5*time.Second, c.seen.Load)
	if err := os.Remove(f); err != nil {
		t.Fatal(err)
	}
	if !c.killed() {
		t.Fatal("the OOM kill was forgotten with the file")
	}

	// Without a rise and without the file: not killed.
	g := filepath.Join(t.TempDir(), "memory.events")
	if err := os.WriteFile(g, []byte("oom_kill 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d := oomCounter{file: g}
	d.watch(t.Logf)
	os.Remove(g)
	time.Sleep(50 * time.Millisecond)
	if d.killed() {
		t.Fatal("killed without a rise")
	}
}
