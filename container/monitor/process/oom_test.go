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
	write := func(body string) { writeInPlace(t, f, body) }
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

// TestOOMCounterParentWitness: the kernel's rate limit can hold back the
// notification of the kill itself until systemd has removed the scope; the
// watch then only saw the "max" event before it. The parent's counter,
// which counts its descendants' kills on cgroup v2, decides — only for an
// init that died of SIGKILL in a cgroup that was at its limit.
func TestOOMCounterParentWitness(t *testing.T) {
	setup := func(t *testing.T) (c *oomCounter, own, parent string) {
		pod := t.TempDir()
		scope := filepath.Join(pod, "ctr.scope")
		if err := os.Mkdir(scope, 0o755); err != nil {
			t.Fatal(err)
		}
		own = filepath.Join(scope, "memory.events")
		parent = filepath.Join(pod, "memory.events")
		writeInPlace(t, parent, "max 7\noom 3\noom_kill 3\n")
		writeInPlace(t, own, "max 0\noom 0\noom_kill 0\n")
		c = &oomCounter{file: own}
		c.setParent()
		if c.parentFile != parent || c.parentStart.Load() != 3 {
			t.Fatalf("parent %q baseline %d", c.parentFile, c.parentStart.Load())
		}
		return c, own, parent
	}

	t.Run("kill counted only in the parent after the scope vanished", func(t *testing.T) {
		c, own, parent := setup(t)
		c.watch(t.Logf)
		// A sibling's kill before this container was at its limit moves
		// the baseline when the "max" event is read.
		writeInPlace(t, parent, "max 9\noom 4\noom_kill 4\n")
		writeInPlace(t, own, "max 2\noom 0\noom_kill 0\n")
		testutil.WaitFor(t, "the watch to see the max event", 5*time.Second, func() bool {
			return c.pressure.Load() && c.parentStart.Load() == 4
		})
		writeInPlace(t, parent, "max 12\noom 5\noom_kill 5\n")
		if err := os.Remove(own); err != nil {
			t.Fatal(err)
		}
		if c.killedBy(false) {
			t.Fatal("OOM-killed although the init did not die of SIGKILL")
		}
		if !c.killedBy(true) {
			t.Fatal("the kill the parent counted was not reported")
		}
	})

	t.Run("exit reaped before the watch ran", func(t *testing.T) {
		// killedBy drains the events queued so far itself: the max event
		// is counted even if the watch's goroutine has not woken yet.
		c, own, parent := setup(t)
		c.watch(t.Logf)
		writeInPlace(t, own, "max 2\noom 1\noom_kill 0\n")
		// The kill itself reaches the parent's count but, its notification
		// lost, only the removal reaches the watch.
		if err := os.Remove(own); err != nil {
			t.Fatal(err)
		}
		writeInPlace(t, parent, "max 12\noom 4\noom_kill 4\n")
		if !c.killedBy(true) {
			t.Fatal("the kill the parent counted was not reported")
		}
	})

	t.Run("no kill in the parent", func(t *testing.T) {
		c, own, _ := setup(t)
		c.watch(t.Logf)
		writeInPlace(t, own, "max 2\noom 0\noom_kill 0\n")
		testutil.WaitFor(t, "the watch to see the max event", 5*time.Second, c.pressure.Load)
		os.Remove(own)
		if c.killedBy(true) {
			t.Fatal("OOM-killed without a kill anywhere")
		}
	})

	t.Run("never at its limit", func(t *testing.T) {
		// SIGKILLed by a stop while a sibling was OOM-killed: not this
		// container's OOM kill.
		c, own, parent := setup(t)
		c.watch(t.Logf)
		writeInPlace(t, parent, "max 12\noom 5\noom_kill 5\n")
		time.Sleep(50 * time.Millisecond)
		os.Remove(own)
		if c.killedBy(true) {
			t.Fatal("OOM-killed although the container never reached its limit")
		}
	})
}

// writeInPlace rewrites f in place, as the kernel updates a cgroup file:
// an inotify watch is on its inode.
func writeInPlace(t *testing.T, f, body string) {
	t.Helper()
	fh, err := os.OpenFile(f, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fh.WriteString(body); err != nil {
		t.Fatal(err)
	}
	fh.Close()
}
