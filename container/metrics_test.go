package container

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/crisp-runtime/crisp/container/monitor"
	"github.com/crisp-runtime/crisp/internal/testutil"
)

func TestCountOpenFiles(t *testing.T) {
	root := t.TempDir()
	mk := func(pid, fd, target string) {
		dir := filepath.Join(root, pid, "fd")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, filepath.Join(dir, fd)); err != nil {
			t.Fatal(err)
		}
	}
	mk("10", "0", "/dev/null")
	mk("10", "1", "pipe:[77]")
	mk("10", "3", "socket:[12345]")
	mk("11", "0", "socket:[12346]")
	// pid 12 has exited: skipped, not an error.
	u := countOpenFiles(root, []int{10, 11, 12})
	if u.FDs != 4 || u.Sockets != 2 {
		t.Fatalf("got %+v, want 4 fds, 2 sockets", u)
	}
}

func TestOpenFilesCachedWithinPeriod(t *testing.T) {
	m := &Manager{containers: newIndex(nil)}
	m.containers.AddHidden("c", &entry{})
	s := newSampler(m)
	m.stats = s
	pid := os.Getpid()
	t0 := time.Now()
	first := s.openFiles("c", []int{pid}, t0)
	if first.FDs == 0 {
		t.Fatal("this test process has no open files?")
	}
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if got := s.openFiles("c", []int{pid}, t0.Add(filesMaxAge/2)); got != first {
		t.Fatalf("recounted within the period: %+v, want cached %+v", got, first)
	}
	later := t0.Add(filesMaxAge + time.Second)
	if got := s.openFiles("c", []int{pid}, later); got.FDs <= first.FDs || !got.Timestamp.Equal(later) {
		t.Fatalf("after the period got %+v, want a new count above %d", got, first.FDs)
	}
	s.forget("c")
	if _, ok := s.files["c"]; ok {
		t.Fatal("forget kept the open file count")
	}
}

func TestParseNetDevPacketsAndDrops(t *testing.T) {
	in := `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
  eth0:   1234      10    2    4    0     0          0         0     5678      20    3    5    0     0       0          0
`
	n, err := parseNetDev(bufio.NewScanner(strings.NewReader(in)))
	if err != nil {
		t.Fatal(err)
	}
	e := n.Interfaces[0]
	if e.RxPackets != 10 || e.RxDropped != 4 || e.TxPackets != 20 || e.TxDropped != 5 {
		t.Fatalf("%+v", e)
	}
}

func TestMetricsStatsServesTheSamplersSample(t *testing.T) {
	e := newEnv(t)
	e.put(t, "run1", "pod1", "app", monitor.StateRunning, nil)
	e.put(t, "exit1", "pod1", "done", monitor.StateExited, nil)
	byID := func(ps *PodStats) map[string]*Stats {
		out := map[string]*Stats{}
		for i, s := range ps.Containers {
			out[s.ID] = ps.Stats[i]
		}
		return out
	}

	// Without a running sampler every call reads the cgroup.
	a := byID(e.m.metricsStats("pod1", false))["run1"]
	time.Sleep(time.Millisecond)
	b := byID(e.m.metricsStats("pod1", false))["run1"]
	if !a.HasCgroup || a.Timestamp.Equal(b.Timestamp) {
		t.Fatalf("no sampler: got a cached sample (%v, %v)", a.Timestamp, b.Timestamp)
	}

	e.m.stats.mu.Lock()
	e.m.stats.period = time.Hour
	e.m.stats.mu.Unlock()
	a = e.m.containerStats(e.m.List(Filter{ID: "run1"})[0]) // as the sampler's round does
	// The CRI's reads are not the sampler's sample: they read less.
	time.Sleep(time.Millisecond)
	e.m.PodStats("pod1", false)
	time.Sleep(time.Millisecond)
	got := byID(e.m.metricsStats("pod1", false))
	if c := got["run1"]; !c.Timestamp.Equal(a.Timestamp) || c.CPUUsageNanos != a.CPUUsageNanos {
		t.Fatalf("running container: sample of %v, want the sampler's of %v", c.Timestamp, a.Timestamp)
	}
	if x := got["exit1"]; x.HasCgroup {
		t.Fatal("exited container reported with cgroup stats")
	}
	// Live reads are unaffected.
	if l := byID(e.m.PodStats("pod1", false))["run1"]; l.Timestamp.Equal(a.Timestamp) {
		t.Fatal("PodStats served a cached sample")
	}
}

// The list calls kubelet polls serve the sampler's sample; the calls for
// one container or pod read the cgroup now.
func TestListStatsServeTheSamplersSample(t *testing.T) {
	e := newEnv(t)
	e.put(t, "run1", "pod1", "app", monitor.StateRunning, nil)
	e.put(t, "run2", "pod2", "app", monitor.StateRunning, nil)
	listed := func() map[string]*Stats {
		snaps, stats := e.m.ListStats(Filter{})
		out := map[string]*Stats{}
		for i, s := range snaps {
			out[s.ID] = stats[i]
		}
		return out
	}
	// No sampler: every call reads.
	a := listed()
	time.Sleep(time.Millisecond)
	if b := listed(); !a["run1"].HasCgroup || a["run1"].Timestamp.Equal(b["run1"].Timestamp) {
		t.Fatalf("no sampler: ListStats served a cached sample (%v, %v)", a["run1"].Timestamp, b["run1"].Timestamp)
	}

	e.m.stats.mu.Lock()
	e.m.stats.period = time.Hour
	e.m.stats.mu.Unlock()
	sample := e.m.containerStats(e.m.List(Filter{ID: "run1"})[0])
	time.Sleep(time.Millisecond)
	got := listed()
	if c := got["run1"]; !c.Timestamp.Equal(sample.Timestamp) || c.CPUUsageNanos != sample.CPUUsageNanos {
		t.Errorf("ListStats: sample of %v, want the sampler's of %v", c.Timestamp, sample.Timestamp)
	}
	if c := got["run2"]; !c.HasCgroup || !c.Timestamp.After(sample.Timestamp) {
		t.Errorf("ListStats: a container the sampler has not seen: %+v", c)
	}
	if ps := e.m.SampledPodStats("pod1", false); len(ps.Stats) != 1 || !ps.Stats[0].Timestamp.Equal(sample.Timestamp) || ps.Total.CPUUsageNanos != sample.CPUUsageNanos {
		t.Errorf("SampledPodStats: %+v, want the sampler's sample", ps.Stats)
	}
	// The pod's network counters too: pid 4242 (the fake's) is no pod.
	e.m.stats.mu.Lock()
	e.m.stats.net = map[string]*NetStats{"pod1": {Timestamp: time.Now(), Interfaces: []IfaceStats{{Name: "eth0", RxBytes: 42}}}}
	e.m.stats.mu.Unlock()
	if n := e.m.SampledPodStats("pod1", true).Network; n == nil || len(n.Interfaces) != 1 || n.Interfaces[0].RxBytes != 42 {
		t.Errorf("SampledPodStats network %+v, want the sampler's", n)
	}
	if n := e.m.SampledPodStats("pod1", false).Network; n != nil {
		t.Errorf("SampledPodStats of a hostNetwork pod: network %+v", n)
	}
	if _, st, err := e.m.Stats("run1"); err != nil || st.Timestamp.Equal(sample.Timestamp) {
		t.Errorf("Stats served the sample (%v)", err)
	}
	if ps := e.m.PodStats("pod1", false); ps.Stats[0].Timestamp.Equal(sample.Timestamp) {
		t.Error("PodStats served the sample")
	}
	// A read for the CRI is not kept as the sample: metrics need more.
	e.m.stats.mu.Lock()
	kept := e.m.stats.last["run2"]
	e.m.stats.mu.Unlock()
	if kept != nil {
		t.Errorf("ListStats's read of run2 kept as the sampler's sample: %+v", kept)
	}
}

func TestWritableLayersUsageSumsTheSamples(t *testing.T) {
	m := &Manager{store: &store{root: "/var/lib/crisp/containers"}}
	m.stats = newSampler(m)
	before := time.Now()
	if u := m.WritableLayersUsage(); u.UsedBytes != 0 || u.InodesUsed != 0 || u.Mountpoint != m.store.root || u.Timestamp.Before(before) {
		t.Fatalf("no container: %+v", u)
	}
	old := before.Add(-time.Minute)
	m.stats.fs["a"] = FSUsage{Timestamp: old, Bytes: 4096, Inodes: 2}
	m.stats.fs["b"] = FSUsage{Timestamp: before, Bytes: 8192, Inodes: 3}
	if u := m.WritableLayersUsage(); u.UsedBytes != 12288 || u.InodesUsed != 5 || !u.Timestamp.Equal(old) {
		t.Fatalf("two containers: %+v, want 12288 bytes, 5 inodes as of the older sample", u)
	}
}

// A sample taken while its container is being removed (a Stats call or
// the sampler's pass racing RemoveContainer) lands after forget: the next
// pass drops what belongs to no indexed container.
func TestSamplerDropsRemovedContainers(t *testing.T) {
	m := &Manager{containers: newIndex(nil)}
	s := newSampler(m)
	m.stats = s
	t0 := time.Now()
	s.rate("gone", t0, 1)
	s.mu.Lock()
	s.last["gone"], s.fs["gone"], s.files["gone"] = &Stats{}, FSUsage{}, FileUsage{}
	s.mu.Unlock()
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { s.run(time.Millisecond, stop); close(done) }()
	defer func() { close(stop); <-done }()
	testutil.WaitFor(t, "the sampler to drop a removed container", 10*time.Second, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.cpu)+len(s.fs)+len(s.files)+len(s.last) == 0
	})
}
