package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// memory measures the daemon's idle RSS, the PSS that each running pod adds
// (the processes named by -comm that appeared while the pods started, so the
// workload's own sleep is left out), List* latency with o.listCount
// containers present, and the daemon's RSS after o.cycles pod cycles.
func (b *bench) memory(ctx context.Context) {
	for _, r := range b.rts {
		if r.pid > 0 {
			b.res.set("6a daemon RSS, idle", "Mi", r.name, rssMiB(r.pid))
		}
	}
	type podSet struct {
		pods, ctrs []string
		cfgs       []*runtimeapi.PodSandboxConfig
	}
	sets := map[string]*podSet{}
	for _, r := range b.rts {
		before := pidSet()
		s := &podSet{}
		for i := 0; i < b.o.memPods; i++ {
			pod, cfg := b.runPod(ctx, r)
			s.pods, s.cfgs = append(s.pods, pod), append(s.cfgs, cfg)
			s.ctrs = append(s.ctrs, b.startCtr(ctx, r, pod, cfg, "app"))
		}
		sets[r.name] = s
		time.Sleep(time.Second) // let shims and monitors settle
		var pss float64
		comms := map[string]int{}
		for pid := range pidSet() {
			if before[pid] || comm(pid) == workloadComm || !r.owns(pid) {
				continue
			}
			pss += pssMiB(pid)
			comms[comm(pid)]++
		}
		b.res.set(fmt.Sprintf("6b PSS added per running pod (%d pods)", b.o.memPods), "Mi", r.name, pss/float64(b.o.memPods))
		b.res.note("%s: processes added for %d pods (by comm): %v", r.name, b.o.memPods, comms)
		if r.pid > 0 {
			b.res.set(fmt.Sprintf("6c daemon RSS, %d pods running", b.o.memPods), "Mi", r.name, rssMiB(r.pid))
		}
	}

	// Fill the pods up to o.listCount containers for the List* timings.
	if b.o.scenarios["list"] && b.o.memPods > 0 {
		for _, r := range b.rts {
			s := sets[r.name]
			for i := len(s.ctrs); i < b.o.listCount; i++ {
				k := i % len(s.pods)
				s.ctrs = append(s.ctrs, b.startCtr(ctx, r, s.pods[k], s.cfgs[k], fmt.Sprintf("extra%d", i)))
			}
		}
		for i := 0; i < b.o.iterations*3; i++ {
			b.interleave(i, func(r *runtime) {
				t := time.Now()
				cs, err := r.rt.ListContainers(ctx, &runtimeapi.ListContainersRequest{})
				must(err)
				b.res.add(fmt.Sprintf("7a ListContainers (%d containers)", b.o.listCount), r.name, time.Since(t))
				if len(cs.Containers) < b.o.listCount {
					fatalf("%s: ListContainers returned %d, want ≥ %d", r.name, len(cs.Containers), b.o.listCount)
				}
				t = time.Now()
				_, err = r.rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
				must(err)
				b.res.add(fmt.Sprintf("7b ListPodSandbox (%d pods)", b.o.memPods), r.name, time.Since(t))
			})
		}
	}
	for _, r := range b.rts {
		for _, p := range sets[r.name].pods {
			removePod(ctx, r, p)
		}
	}

	if !b.o.scenarios["memory"] || b.o.cycles == 0 {
		return
	}
	for i := 0; i < b.o.cycles; i++ {
		b.interleave(i, func(r *runtime) {
			pod, _ := b.runPod(ctx, r)
			removePod(ctx, r, pod)
		})
	}
	for _, r := range b.rts {
		if r.pid > 0 {
			b.res.set(fmt.Sprintf("6d daemon RSS after %d pod cycles", b.o.cycles), "Mi", r.name, rssMiB(r.pid))
		}
	}
}

// workloadComm is the containers' own process, the same on every runtime.
const workloadComm = "sleep"

// owns tells whether pid descends from the daemon or from a process whose
// executable lies under the runtime's -exe prefix (containerd's shims
// daemonize and are children of init).
func (r *runtime) owns(pid int) bool {
	for i := 0; pid > 1 && i < 64; i++ {
		if pid == r.pid {
			return true
		}
		if r.exe != "" {
			if exe, err := os.Readlink(filepath.Join("/proc", strconv.Itoa(pid), "exe")); err == nil && strings.HasPrefix(exe, r.exe) {
				return true
			}
		}
		pid = int(procKiB(pid, "status", "PPid"))
	}
	return false
}

func pidSet() map[int]bool {
	ents, _ := os.ReadDir("/proc")
	s := map[int]bool{}
	for _, e := range ents {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			s[pid] = true
		}
	}
	return s
}

func comm(pid int) string {
	b, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "comm"))
	return strings.TrimSpace(string(b))
}

// procKiB returns the kB value of key in a /proc/<pid>/ file.
func procKiB(pid int, file, key string) float64 {
	f, err := os.Open(filepath.Join("/proc", strconv.Itoa(pid), file))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), key+":"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb
		}
	}
	return 0
}

func rssMiB(pid int) float64 { return procKiB(pid, "status", "VmRSS") / 1024 }
func pssMiB(pid int) float64 { return procKiB(pid, "smaps_rollup", "Pss") / 1024 }
