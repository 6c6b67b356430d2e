//go:build integration

package test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crisp-runtime/crisp/test/harness"
)

// containerd's shim plus pause process cost about 5.8 MiB PSS per pod; crisp
// promises less than a third of that.
const maxPodOverheadKiB = 1900

// TestContainerFootprint runs 20 pods with one sleeping container each, then
// 20 shared-PID pods, and measures what crisp adds per pod with every pod
// running: the container's monitor, and the pod's reaper where the pod
// shares one PID namespace. PSS splits shared pages among their users, so it
// is the memory one more pod really costs.
func TestContainerFootprint(t *testing.T) {
	harness.RequireRegistry(t)
	d := harness.Start(t)
	pull(t, d, ctrImage)
	const pods = 20
	type podProcs struct{ monitor, reaper int }
	run := func(name string, sharedPID bool) []podProcs {
		var out []podProcs
		for i := 0; i < pods; i++ {
			cfg := podConfig(fmt.Sprintf("%s%d", name, i))
			cfg.LogDirectory = t.TempDir()
			cfg.Linux.SecurityContext.NamespaceOptions.Network = runtimeapi.NamespaceMode_NODE
			if sharedPID {
				cfg.Linux.SecurityContext.NamespaceOptions.Pid = runtimeapi.NamespaceMode_POD
			}
			pod := runPod(t, d, cfg)
			id := runCtr(t, d, pod, cfg, ctrConfig("c", "sleep 100000"))
			p := podProcs{monitor: ppid(t, int(ctrPid(t, d, id)))}
			if sharedPID {
				_, info := podStatus(t, d, pod)
				if info.Reaper == nil {
					t.Fatalf("shared-PID pod %s has no reaper", pod)
				}
				p.reaper = info.Reaper.PID
			}
			out = append(out, p)
		}
		return out
	}
	plain := run("fp", false)
	shared := run("fpshared", true)
	time.Sleep(time.Second) // let start-up garbage be collected

	report := func(what string, list []podProcs) {
		var mon, reap, monRSS, reapRSS int
		for _, p := range list {
			pss, rss := smapsRollup(t, p.monitor)
			mon, monRSS = mon+pss, monRSS+rss
			if p.reaper != 0 {
				pss, rss := smapsRollup(t, p.reaper)
				reap, reapRSS = reap+pss, reapRSS+rss
			}
		}
		n := len(list)
		perPod := (mon + reap) / n
		t.Logf("%s: per pod %d KiB PSS (monitor %d KiB PSS / %d KiB RSS, reaper %d KiB PSS / %d KiB RSS), %d pods running",
			what, perPod, mon/n, monRSS/n, reap/n, reapRSS/n, 2*pods)
		if perPod > maxPodOverheadKiB {
			t.Errorf("%s: crisp adds %d KiB PSS per pod, want < %d KiB", what, perPod, maxPodOverheadKiB)
		}
	}
	report("pods with one container", plain)
	report("shared-PID pods with one container", shared)
}

// TestContainerLatency measures, with CNI and RuntimeDefault seccomp as
// kubelet runs them, container create+start in a ready pod (50 runs) and
// pod+container ready from nothing (30 runs). It fails on errors, not on
// time: the numbers are in the log, and speed is judged by make bench
// against containerd in the same run, not by a bound a loaded machine trips.
func TestContainerLatency(t *testing.T) {
	harness.RequireRegistry(t)
	pn := harness.PodNetwork(t)
	d := harness.Start(t, harness.WithCNI(pn.ConfDir))
	pull(t, d, ctrImage)
	ctrCfg := func(name string) *runtimeapi.ContainerConfig {
		cfg := ctrConfig(name, "sleep 100000")
		cfg.Linux.SecurityContext.Seccomp = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}
		return cfg
	}

	podCfg := podConfig("latency")
	podCfg.LogDirectory = t.TempDir()
	pod := runPod(t, d, podCfg)
	var ctrLat []time.Duration
	for i := 0; i < 50; i++ {
		cfg := ctrCfg(fmt.Sprintf("c%d", i))
		start := time.Now()
		id := runCtr(t, d, pod, podCfg, cfg)
		ctrLat = append(ctrLat, time.Since(start))
		removeCtr(t, d, id)
	}
	p50, p95 := percentiles(ctrLat)
	t.Logf("container create+start in a ready pod (CNI, RuntimeDefault seccomp), %d runs: p50 %v p95 %v", len(ctrLat), p50, p95)
	removePod(t, d, pod)

	var podLat []time.Duration
	for i := 0; i < 30; i++ {
		cfg := podConfig(fmt.Sprintf("lat%d", i))
		cfg.LogDirectory = t.TempDir()
		start := time.Now()
		resp, err := d.Runtime.RunPodSandbox(harness.Ctx(t), &runtimeapi.RunPodSandboxRequest{Config: cfg})
		if err != nil {
			t.Fatal(err)
		}
		runCtr(t, d, resp.PodSandboxId, cfg, ctrCfg("c"))
		podLat = append(podLat, time.Since(start))
		stopPod(t, d, resp.PodSandboxId)
		removePod(t, d, resp.PodSandboxId)
	}
	p50, p95 = percentiles(podLat)
	t.Logf("pod (CNI) + container (RuntimeDefault seccomp) running, %d runs: p50 %v p95 %v", len(podLat), p50, p95)
}

func percentiles(d []time.Duration) (p50, p95 time.Duration) {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return d[len(d)/2], d[(len(d)*95+99)/100-1]
}

func removeCtr(t *testing.T, d *harness.Daemon, id string) {
	t.Helper()
	if _, err := d.Runtime.StopContainer(harness.Ctx(t), &runtimeapi.StopContainerRequest{ContainerId: id}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Runtime.RemoveContainer(harness.Ctx(t), &runtimeapi.RemoveContainerRequest{ContainerId: id}); err != nil {
		t.Fatal(err)
	}
}

// ctrPid is the container's init process on the host, from the verbose status.
func ctrPid(t *testing.T, d *harness.Daemon, id string) int64 {
	t.Helper()
	resp, err := d.Runtime.ContainerStatus(harness.Ctx(t), &runtimeapi.ContainerStatusRequest{ContainerId: id, Verbose: true})
	if err != nil {
		t.Fatal(err)
	}
	var info struct {
		Pid int64 `json:"pid"`
	}
	if err := json.Unmarshal([]byte(resp.Info["info"]), &info); err != nil || info.Pid <= 0 {
		t.Fatalf("no pid in verbose status of %s: %s", id, resp.Info["info"])
	}
	return info.Pid
}

func ppid(t *testing.T, pid int) int {
	t.Helper()
	for _, line := range strings.Split(readFile(t, fmt.Sprintf("/proc/%d/status", pid)), "\n") {
		if v, ok := strings.CutPrefix(line, "PPid:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no PPid for %d", pid)
	return 0
}

// smapsRollup returns a process's PSS and RSS in KiB.
func smapsRollup(t *testing.T, pid int) (pss, rss int) {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		n, _ := strconv.Atoi(fields[1])
		switch fields[0] {
		case "Pss:":
			pss = n
		case "Rss:":
			rss = n
		}
	}
	return pss, rss
}
