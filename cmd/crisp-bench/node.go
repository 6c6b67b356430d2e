package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crisp-runtime/crisp/internal/fanout"
)

// The "node" scenario fills each runtime up to kubelet's default of 110
// pods, then to 20 pods of 5 containers, and times what kubelet does
// every few seconds on such a node (List*, *Stats). Its knobs are
// registered here so that the scenario stays one file.
var nodeOpts struct {
	pods, multiPods, multiCtrs int
	subnets                    listFlag
}

func init() {
	flag.IntVar(&nodeOpts.pods, "node-pods", 110, "node scenario: pods with one container each (kubelet's default maxPods)")
	flag.IntVar(&nodeOpts.multiPods, "node-multi-pods", 20, "node scenario: pods in the multi-container phase")
	flag.IntVar(&nodeOpts.multiCtrs, "node-multi-containers", 5, "node scenario: containers per pod in the multi-container phase")
	flag.Var(&nodeOpts.subnets, "subnet", "NAME=CIDR: the runtime's pod subnet, checked in the node scenario")
}

// nodeSet is what one phase started on one runtime.
type nodeSet struct {
	pods []string
	ctrs []string
}

func (b *bench) node(ctx context.Context) {
	// Phase 1: 110 pods with one container each, started o.parallel at a
	// time, runtimes one after the other (the first runtime first); both
	// stay up for the latency rounds, which interleave.
	n := nodeOpts.pods
	sets := map[string]*nodeSet{}
	perPod := map[string]float64{}
	for _, r := range b.rts {
		perPod[r.name] = b.nodeFill(ctx, r, n, 1, sets)
	}
	b.nodeLatency(ctx, sets, fmt.Sprintf("%d pods", n))
	b.nodeDrain(ctx, sets, fmt.Sprintf("N3 stop + remove %d pods, %d at once", n, b.o.parallel))

	// Phase 2: pods with several containers, the other runtime first.
	m, k := nodeOpts.multiPods, nodeOpts.multiCtrs
	if m == 0 || k == 0 {
		return
	}
	sets = map[string]*nodeSet{}
	for i := range b.rts {
		r := b.rts[len(b.rts)-1-i]
		pss := b.nodeFill(ctx, r, m, k, sets)
		if k > 1 {
			// The pod's first container costs what phase 1 measured; the
			// rest is what each further container adds.
			b.res.set(fmt.Sprintf("N8 PSS added per extra container (%d x %d)", m, k), "Mi", r.name, (pss-perPod[r.name])/float64(k-1))
		}
	}
	b.nodeLatency(ctx, sets, fmt.Sprintf("%d pods x %d", m, k))
	b.nodeDrain(ctx, sets, "")
}

// nodeFill starts pods pods of ctrs containers each on r, o.parallel pods
// at a time (a pod's containers one after the other, as kubelet starts
// them), waits until ListContainers shows them all running, records the
// time, memory and limit checks, and returns the PSS added per pod.
func (b *bench) nodeFill(ctx context.Context, r *runtime, pods, ctrs int, sets map[string]*nodeSet) float64 {
	label := fmt.Sprintf("%d pods x %d", pods, ctrs)
	fmt.Fprintf(os.Stderr, "crisp-bench: node: %s: %s\n", r.name, label)
	rssBefore := 0.0
	if r.pid > 0 {
		rssBefore = rssMiB(r.pid)
	}
	before := pidSet()
	s := &nodeSet{pods: make([]string, pods), ctrs: make([]string, pods*ctrs)}
	sets[r.name] = s
	t0 := time.Now()
	fanout.Do(pods, b.o.parallel, func(i int) {
		pod, cfg := b.runPod(ctx, r)
		s.pods[i] = pod
		for c := 0; c < ctrs; c++ {
			s.ctrs[i*ctrs+c] = b.startCtr(ctx, r, pod, cfg, fmt.Sprintf("app%d", c))
		}
	})
	waitRunning(ctx, r, s.ctrs)
	metric := "N1 %d pods x 1 ctr, %d at once → all running"
	if ctrs > 1 {
		metric = "N6 %d pods x %d ctrs, %d at once → all running"
		b.res.add(fmt.Sprintf(metric, pods, ctrs, b.o.parallel), r.name, time.Since(t0))
	} else {
		b.res.add(fmt.Sprintf(metric, pods, b.o.parallel), r.name, time.Since(t0))
	}

	time.Sleep(time.Second) // let shims and monitors settle
	var pss float64
	comms := map[string]int{}
	tasks := 0
	for pid := range pidSet() {
		if before[pid] || !r.owns(pid) {
			continue
		}
		tasks += int(procKiB(pid, "status", "Threads"))
		if comm(pid) == workloadComm {
			continue
		}
		pss += pssMiB(pid)
		comms[comm(pid)]++
	}
	per := pss / float64(pods)
	phase := "N2"
	if ctrs > 1 {
		phase = "N7"
	}
	b.res.set(fmt.Sprintf("%s PSS added per pod (%s)", phase, label), "Mi", r.name, per)
	if r.pid > 0 {
		rss := rssMiB(r.pid)
		b.res.set(fmt.Sprintf("%s daemon RSS, %s running", phase, label), "Mi", r.name, rss)
		b.res.set(fmt.Sprintf("%s daemon RSS added per pod (%s)", phase, label), "Mi", r.name, (rss-rssBefore)/float64(pods))
	}
	b.res.note("%s: %s: processes added (by comm): %v; %d tasks (threads) added, kernel.pid_max %s", r.name, label, comms, tasks, readTrim("/proc/sys/kernel/pid_max"))
	b.nodeChecks(ctx, r, label, s)
	return per
}

// nodeChecks notes whether the limits a full node runs into held: every
// pod in its own cgroup under the cgroup parent with its container in it,
// a distinct address in the runtime's subnet, the daemon's descriptors
// against its limit, and a container's own limits.
func (b *bench) nodeChecks(ctx context.Context, r *runtime, label string, s *nodeSet) {
	parent := fmt.Sprintf("/sys/fs/cgroup/memory%s-%s", b.o.cgroup, r.name)
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		parent = fmt.Sprintf("/sys/fs/cgroup%s-%s", b.o.cgroup, r.name)
	}
	podCgroups, withWorkload := 0, 0
	ents, _ := os.ReadDir(parent)
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		podCgroups++
		if cgroupHasComm(filepath.Join(parent, e.Name()), workloadComm) {
			withWorkload++
		}
	}
	_, subnet, _ := net.ParseCIDR(lookup(nodeOpts.subnets, r.name))
	ips := map[string]bool{}
	inSubnet := 0
	for _, pod := range s.pods {
		st, err := r.rt.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: pod})
		must(err)
		ip := st.GetStatus().GetNetwork().GetIp()
		ips[ip] = ip != ""
		if subnet != nil && subnet.Contains(net.ParseIP(ip)) {
			inSubnet++
		}
	}
	distinct := 0
	for _, ok := range ips {
		if ok {
			distinct++
		}
	}
	fds, limit := 0, ""
	if r.pid > 0 {
		ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", r.pid))
		fds = len(ents)
		limit = procLimit(r.pid, "Max open files")
	}
	res, err := r.rt.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: s.ctrs[len(s.ctrs)-1],
		Cmd: []string{"sh", "-c", "echo nofile=$(ulimit -n) nproc=$(ulimit -u) pids=$(cat /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/pids.max 2>/dev/null)"}, Timeout: 10})
	inside := ""
	if err != nil {
		inside = "exec failed: " + err.Error()
	} else {
		inside = strings.TrimSpace(string(res.Stdout))
	}
	b.res.note("%s: %s: %d pod cgroups under %s (%d with their workload), %d/%d pods with a distinct IP, %d in %s; daemon fds %d (soft,hard limit %s); last container: %s",
		r.name, label, podCgroups, parent, withWorkload, distinct, len(s.pods), inSubnet, lookup(nodeOpts.subnets, r.name), fds, limit, inside)
	if withWorkload < len(s.pods) || distinct < len(s.pods) || (subnet != nil && inSubnet < len(s.pods)) {
		fatalf("%s: %s: a limit did not hold (see the note above): %d/%d pod cgroups with a workload, %d distinct IPs, %d in the subnet",
			r.name, label, withWorkload, len(s.pods), distinct, inSubnet)
	}
}

// nodeLatency times the List and stats calls kubelet makes, interleaved
// between the runtimes, with every runtime's pods of sets present. Each
// call must see at least the pods or containers of its set.
func (b *bench) nodeLatency(ctx context.Context, sets map[string]*nodeSet, size string) {
	fmt.Fprintf(os.Stderr, "crisp-bench: node: latency at %s\n", size)
	type call struct {
		metric string
		fn     func(r *runtime, s *nodeSet, i int) (got, want int, err error)
	}
	calls := []call{
		{"N4 ListContainers", func(r *runtime, s *nodeSet, _ int) (int, int, error) {
			resp, err := r.rt.ListContainers(ctx, &runtimeapi.ListContainersRequest{})
			return len(resp.GetContainers()), len(s.ctrs), err
		}},
		{"N4 ListPodSandbox", func(r *runtime, s *nodeSet, _ int) (int, int, error) {
			resp, err := r.rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
			return len(resp.GetItems()), len(s.pods), err
		}},
		{"N5 ContainerStats", func(r *runtime, s *nodeSet, i int) (int, int, error) {
			_, err := r.rt.ContainerStats(ctx, &runtimeapi.ContainerStatsRequest{ContainerId: s.ctrs[i%len(s.ctrs)]})
			return 1, 1, err
		}},
		{"N5 ListContainerStats", func(r *runtime, s *nodeSet, _ int) (int, int, error) {
			resp, err := r.rt.ListContainerStats(ctx, &runtimeapi.ListContainerStatsRequest{})
			return len(resp.GetStats()), len(s.ctrs), err
		}},
		{"N5 ListPodSandboxStats", func(r *runtime, s *nodeSet, _ int) (int, int, error) {
			resp, err := r.rt.ListPodSandboxStats(ctx, &runtimeapi.ListPodSandboxStatsRequest{})
			return len(resp.GetStats()), len(s.pods), err
		}},
	}
	for i := 0; i < b.o.iterations*3; i++ {
		b.interleave(i, func(r *runtime) {
			for _, c := range calls {
				t := time.Now()
				got, want, err := c.fn(r, sets[r.name], i)
				must(err)
				b.res.add(c.metric+" ("+size+")", r.name, time.Since(t))
				if got < want {
					fatalf("%s: %s returned %d, want ≥ %d", r.name, c.metric[3:], got, want)
				}
			}
		})
	}
}

// nodeDrain stops and removes every pod of sets, o.parallel at a time,
// timing each runtime's whole drain under metric if it is not empty.
func (b *bench) nodeDrain(ctx context.Context, sets map[string]*nodeSet, metric string) {
	for _, r := range b.rts {
		s := sets[r.name]
		t := time.Now()
		fanout.Do(len(s.pods), b.o.parallel, func(i int) { removePod(ctx, r, s.pods[i]) })
		if metric != "" {
			b.res.add(metric, r.name, time.Since(t))
		}
	}
}

// waitRunning polls ListContainers until every id is RUNNING.
func waitRunning(ctx context.Context, r *runtime, ids []string) {
	for tries := 0; ; tries++ {
		cs, err := r.rt.ListContainers(ctx, &runtimeapi.ListContainersRequest{
			Filter: &runtimeapi.ContainerFilter{State: &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_RUNNING}}})
		must(err)
		running := 0
		for _, c := range cs.Containers {
			if slices.Contains(ids, c.Id) {
				running++
			}
		}
		if running == len(ids) {
			return
		}
		if tries > 600 {
			fatalf("%s: %d of %d containers running after a minute", r.name, running, len(ids))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// cgroupHasComm tells whether a process named comm is in dir's cgroup tree.
func cgroupHasComm(dir, want string) bool {
	found := false
	_ = filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || found || d.IsDir() || d.Name() != "cgroup.procs" {
			return nil
		}
		data, _ := os.ReadFile(path)
		for _, f := range strings.Fields(string(data)) {
			if pid, err := strconv.Atoi(f); err == nil && comm(pid) == want {
				found = true
			}
		}
		return nil
	})
	return found
}

// procLimit returns "soft,hard" of a /proc/<pid>/limits row.
func procLimit(pid int, name string) string {
	data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/limits", pid))
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, name); ok {
			if f := strings.Fields(rest); len(f) >= 2 {
				return f[0] + "," + f[1]
			}
		}
	}
	return "?"
}

func readTrim(path string) string {
	data, _ := os.ReadFile(path)
	return strings.TrimSpace(string(data))
}
