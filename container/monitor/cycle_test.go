package monitor

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/crisp-runtime/crisp/internal/testutil"
)

// monitorPids returns the pids of running crisp-monitor processes started
// from the test's binary.
func monitorPids() []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.HasPrefix(string(b), monitorBin+"\x00") {
			pids = append(pids, atoi(e.Name()))
		}
	}
	return pids
}

// 20 create/start/stop/destroy cycles leave no process, zombie, cgroup or
// state behind. Also measures create+start latency.
func TestCycles(t *testing.T) {
	const n = 20
	var createD, startD, total []time.Duration
	for i := 0; i < n; i++ {
		cfg := testConfig(t, testOpts{args: []string{"sleep"}})
		t0 := time.Now()
		c, err := Create(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		t1 := time.Now()
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		t2 := time.Now()
		createD, startD, total = append(createD, t1.Sub(t0)), append(startD, t2.Sub(t1)), append(total, t2.Sub(t0))
		if err := c.Stop(context.Background(), syscall.SIGTERM, time.Second); err != nil {
			t.Fatal(err)
		}
		if err := c.Destroy(); err != nil {
			t.Fatal(err)
		}
		assertNoCgroup(t, cfg.ID)
		for _, p := range []string{cfg.Bundle, cfg.StateDir} {
			if _, err := os.Stat(p); err == nil {
				t.Fatalf("%s left behind", p)
			}
		}
	}
	// The monitors are reaped by their watchers shortly after the exit.
	testutil.WaitFor(t, "monitors to be gone", 5*time.Second, func() bool {
		return len(monitorPids()) == 0 && len(zombiesOf(map[int]bool{os.Getpid(): true})) == 0
	})
	if ents, _ := os.ReadDir(testRun); len(ents) > 0 {
		t.Errorf("state dirs left in %s: %d", testRun, len(ents))
	}
	t.Logf("create p50 %v, start p50 %v, create+start p50 %v p90 %v (n=%d)",
		pct(createD, 50), pct(startD, 50), pct(total, 50), pct(total, 90), n)
}

func pct(ds []time.Duration, p int) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[(len(s)-1)*p/100]
}

// No zombies: the monitor reaps the container init and orphans; the daemon
// reaps the monitor.
func TestNoZombies(t *testing.T) {
	c := run(t, testOpts{args: []string{"stubborn"}})
	waitLog(t, c.cfg.LogPath, 5*time.Second, func(l []string) bool { return len(l) == 1 })
	mon := c.rec.MonitorPid
	if err := c.Stop(context.Background(), syscall.SIGKILL, 0); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "monitor to be reaped", 5*time.Second, func() bool {
		_, err := os.Stat("/proc/" + itoa(mon))
		return err != nil
	})
	if z := zombiesOf(map[int]bool{os.Getpid(): true, mon: true, c.Status().Pid: true}); len(z) > 0 {
		t.Fatalf("zombies: %v", z)
	}
}

// Reports the monitor's memory while a container runs and logs.
func TestMonitorMemory(t *testing.T) {
	var cs []*testContainer
	for i := 0; i < 5; i++ {
		c := run(t, testOpts{args: []string{"ticker"}, stdin: true})
		cs = append(cs, c)
	}
	for _, c := range cs {
		waitLog(t, c.cfg.LogPath, 5*time.Second, func(l []string) bool { return len(l) >= 10 })
	}
	time.Sleep(500 * time.Millisecond)
	for i, c := range cs {
		m := readSmaps(t, c.rec.MonitorPid)
		priv := m["Private_Dirty"] + m["Private_Clean"]
		t.Logf("monitor %d: Rss %d kB, Pss %d kB (Pss_Anon %d, Pss_File %d), Private_Dirty %d kB, Private_Clean %d kB, Anonymous %d kB",
			i, m["Rss"], m["Pss"], m["Pss_Anon"], m["Pss_File"], m["Private_Dirty"], m["Private_Clean"], m["Anonymous"])
		// Private_Dirty is what each additional container really costs
		// (the binary's text is shared between monitors).
		if m["Private_Dirty"] > 4096 {
			t.Errorf("monitor private dirty memory %d kB", m["Private_Dirty"])
		}
		_ = priv
	}
}

// A process that exits at once wakes Start's wait for the fifo and its
// wait for the init's exit together; Start must still succeed, since the
// init did start it.
func TestStartOfInstantExit(t *testing.T) {
	for i := 0; i < 15; i++ {
		c := run(t, testOpts{args: []string{"exit", "3"}})
		if st := waitExit(t, c.Container, 10*time.Second); st.ExitCode != 3 || st.StartedAt.IsZero() {
			t.Fatalf("run %d: exit %d started %v", i, st.ExitCode, st.StartedAt)
		}
		c.destroy(t)
	}
}
