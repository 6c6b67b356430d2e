//go:build integration

package test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crisp-runtime/crisp/test/harness"
)

// soakCycles is how many pod+container cycles TestSoak runs: 50 in `make
// test`, CRISP_SOAK_CYCLES (1000 in `make soak`) otherwise.
func soakCycles(t *testing.T) int {
	s := os.Getenv("CRISP_SOAK_CYCLES")
	if s == "" {
		return 50
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		t.Fatalf("CRISP_SOAK_CYCLES=%q is not a positive number", s)
	}
	return n
}

// usage is what the daemon holds, counted from outside.
type usage struct {
	fds, goroutines, threads, rssKiB int
	mounts, cgroups, ips, files      int
	procs                            int // monitors and reapers
}

func (u usage) String() string {
	return fmt.Sprintf("fds=%d goroutines=%d threads=%d rss=%.1fMiB mounts=%d cgroups=%d ips=%d files=%d procs=%d",
		u.fds, u.goroutines, u.threads, float64(u.rssKiB)/1024, u.mounts, u.cgroups, u.ips, u.files, u.procs)
}

func procStatusField(t *testing.T, pid int, field string) int {
	t.Helper()
	for _, l := range strings.Split(readFile(t, fmt.Sprintf("/proc/%d/status", pid)), "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			n, _ := strconv.Atoi(strings.Fields(v)[0])
			return n
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

func countTree(dirs ...string) int {
	n := 0
	for _, dir := range dirs {
		filepath.WalkDir(dir, func(p string, e os.DirEntry, err error) error {
			if err == nil && p != dir {
				n++
			}
			return nil
		})
	}
	return n
}

// crispCgroups counts cgroup directories below crisp's default parent in
// every hierarchy.
func crispCgroups() int {
	roots, _ := filepath.Glob("/sys/fs/cgroup/*/crisp")
	if _, err := os.Stat("/sys/fs/cgroup/crisp"); err == nil {
		roots = append(roots, "/sys/fs/cgroup/crisp")
	}
	n := 0
	for _, r := range roots {
		filepath.WalkDir(r, func(p string, e os.DirEntry, err error) error {
			if err == nil && e.IsDir() && p != r {
				n++
			}
			return nil
		})
	}
	return n
}

func measure(t *testing.T, d *harness.Daemon, pn *harness.PodNet) usage {
	t.Helper()
	pid := d.PID()
	g, _ := goroutineDump(t, d)
	return usage{
		fds:        countEntries(t, pid, "fd"),
		goroutines: g,
		threads:    countEntries(t, pid, "task"),
		rssKiB:     procStatusField(t, pid, "VmRSS"),
		mounts:     len(harness.MountsBelow(d.Dir)),
		cgroups:    crispCgroups(),
		ips:        len(pn.AllocatedIPs()),
		files:      countTree(d.Root, d.State),
		procs:      len(takeFootprint(d, pn, harness.Binary(t), nil).procs),
	}
}

// soakCycle is one pod's life as kubelet drives it: run, create, start,
// exec, read the log, stop, remove.
func soakCycle(t *testing.T, d *harness.Daemon, i int) {
	cfg := podConfig(fmt.Sprintf("soak-%d", i))
	cfg.LogDirectory = filepath.Join(t.TempDir(), fmt.Sprint(i))
	if i%2 == 1 {
		cfg.Linux.SecurityContext.NamespaceOptions.Pid = runtimeapi.NamespaceMode_POD
	}
	resp, err := d.Runtime.RunPodSandbox(harness.Ctx(t), &runtimeapi.RunPodSandboxRequest{Config: cfg})
	if err != nil {
		t.Fatalf("cycle %d: RunPodSandbox: %v", i, err)
	}
	pod := resp.PodSandboxId
	ctrCfg := ctrConfig("soak", fmt.Sprintf("echo line-%d; exec sleep 3600", i))
	ctr := runCtr(t, d, pod, cfg, ctrCfg)
	if out := execSync(t, d, ctr, 10, "echo", fmt.Sprint("exec-", i)); string(out.Stdout) != fmt.Sprintf("exec-%d\n", i) || out.ExitCode != 0 {
		t.Fatalf("cycle %d: exec: %q %q %d", i, out.Stdout, out.Stderr, out.ExitCode)
	}
	want := fmt.Sprintf("line-%d", i)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if b, _ := os.ReadFile(logPathOf(cfg, ctrCfg)); strings.Contains(string(b), " stdout F "+want+"\n") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("cycle %d: %q not in the container's log", i, want)
		}
	}
	stopPod(t, d, pod)
	removePod(t, d, pod)
}

// TestSoak runs pod+container cycles with exec and logs and compares what
// the daemon holds before and after: fds, goroutines, mounts, cgroups, IPs,
// files and helper processes must not have grown; threads may grow by a few
// (the Go runtime keeps idle threads), RSS is reported.
func TestSoak(t *testing.T) {
	harness.RequireRegistry(t)
	pn := harness.PodNetwork(t)
	d := harness.Start(t, harness.WithCNI(pn.ConfDir))
	pull(t, d, ctrImage)
	n := soakCycles(t)
	// Warm-up: connection pools, caches and lazily made directories
	// exist after the first cycles and are no leak.
	for i := range 3 {
		soakCycle(t, d, i)
	}
	before := measure(t, d, pn)
	start := time.Now()
	for i := range n {
		soakCycle(t, d, 3+i)
		if (i+1)%100 == 0 {
			t.Logf("%d cycles, %v", i+1, time.Since(start).Round(time.Second))
		}
	}
	elapsed := time.Since(start)
	// Goroutines of finished RPCs and exits end asynchronously.
	var after usage
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		after = measure(t, d, pn)
		if after.fds <= before.fds && after.goroutines <= before.goroutines || time.Now().After(deadline) {
			break
		}
	}
	t.Logf("%d cycles in %v (%v per cycle)\nbefore: %v\nafter:  %v", n, elapsed.Round(time.Second), (elapsed / time.Duration(n)).Round(time.Millisecond), before, after)
	for _, c := range []struct {
		what       string
		got, want  int
		allowAbove int
	}{
		{"fds", after.fds, before.fds, 0},
		{"goroutines", after.goroutines, before.goroutines, 0},
		{"threads", after.threads, before.threads, 8},
		{"mounts", after.mounts, before.mounts, 0},
		{"cgroups", after.cgroups, before.cgroups, 0},
		{"IPs", after.ips, before.ips, 0},
		{"files under root and state", after.files, before.files, 0},
		{"monitor and reaper processes", after.procs, before.procs, 0},
	} {
		// Growth is a leak. Fewer is not: the baseline may still hold the
		// pull's idle registry connection (an fd, two goroutines), which
		// net/http closes after 90 s.
		if c.got > c.want+c.allowAbove {
			t.Errorf("%s: %d before %d cycles, %d after (tolerance +%d)", c.what, c.want, n, c.got, c.allowAbove)
		}
	}
	checkNoZombies(t, d)
}
