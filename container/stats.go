package container

import (
	"io/fs"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"time"

	"k8s.io/klog/v2"

	"github.com/crisp-runtime/crisp/container/monitor"
	"github.com/crisp-runtime/crisp/internal/fanout"
)

// defaultStatsInterval is the sampler's period: CPU rates are averaged over
// it (like cAdvisor's housekeeping) and writable layers are walked every
// fsEvery periods, since walking a big upper dir is not cheap.
const (
	defaultStatsInterval = 10 * time.Second
	fsEvery              = 6
	// minRateWindow keeps rapid polls from computing a rate over a few
	// microseconds of CPU time.
	minRateWindow = time.Second
)

// Stats is one container's resource usage: the cgroup's counters as the
// monitor reads them, plus what the sampler derives or caches.
type Stats struct {
	monitor.Stats
	// CPUNanoCores is the usage rate since the previous sample; nil until
	// there are two samples.
	CPUNanoCores *uint64
	// HasCgroup is false for containers whose cgroup is gone (exited) or
	// could not be read; only the writable layer is then known.
	HasCgroup     bool
	WritableLayer FSUsage
	// Files counts the open files of the container's processes, as of its
	// Timestamp (zero without a cgroup).
	Files FileUsage
}

// PSI is a cgroup pressure file as the monitor reads it, named here so that
// callers of this package need no other.
type (
	PSI     = monitor.PSI
	PSIData = monitor.PSIData
)

// FSUsage is a writable layer's size, as of Timestamp, and the size of the
// filesystem holding it.
type FSUsage struct {
	Timestamp  time.Time
	Mountpoint string // the directory measured
	Bytes      uint64
	Inodes     uint64
	// Capacity of the filesystem under Mountpoint; zero if statfs failed.
	FSBytes, FSInodes, FSInodesFree uint64
}

type cpuSample struct {
	at    time.Time
	usage uint64
	rate  *uint64 // computed against the sample before this one
}

// sampler keeps, for every container, the previous CPU sample, the latest
// cgroup sample, the last writable layer size and open file count, so that
// stats and metrics calls are cheap.
type sampler struct {
	m     *Manager
	mu    sync.Mutex
	cpu   map[string]cpuSample
	fs    map[string]FSUsage
	files map[string]FileUsage
	last  map[string]*Stats // the latest cgroup sample, see cachedStats
	// net holds each pod's network counters as of the last round, by pod
	// id, for SampledPodStats; rebuilt every round.
	net map[string]*NetStats
	// period is run's interval; 0 while no sampler runs.
	period time.Duration
}

func newSampler(m *Manager) *sampler {
	return &sampler{m: m, cpu: map[string]cpuSample{}, fs: map[string]FSUsage{}, files: map[string]FileUsage{}, last: map[string]*Stats{}}
}

func (s *sampler) forget(id string) {
	s.mu.Lock()
	delete(s.cpu, id)
	delete(s.fs, id)
	delete(s.files, id)
	delete(s.last, id)
	s.mu.Unlock()
}

// prune drops what a sample recorded for a container after forget had
// already run (a Stats call or a pass racing RemoveContainer).
func (s *sampler) prune() {
	s.mu.Lock()
	ids := make([]string, 0, len(s.cpu))
	for id := range s.cpu {
		ids = append(ids, id)
	}
	for id := range s.last {
		ids = append(ids, id)
	}
	for id := range s.files {
		ids = append(ids, id)
	}
	for id := range s.fs {
		ids = append(ids, id)
	}
	s.mu.Unlock()
	for _, id := range ids {
		// Ids are never reused: one not indexed now never comes back.
		if _, ok := s.m.entryOf(id); !ok {
			s.forget(id)
		}
	}
}

func (s *sampler) run(interval time.Duration, stop <-chan struct{}) {
	s.mu.Lock()
	s.period = interval
	s.mu.Unlock()
	t := time.NewTicker(interval)
	defer t.Stop()
	for n := 0; ; n++ {
		net := map[string]*NetStats{}
		for _, snap := range s.m.List(Filter{}) {
			if st := snap.Status.State; st == StateRunning || st == StateCreated {
				s.m.containerStats(snap) // records the CPU sample
			}
			if n%fsEvery == 0 {
				s.measureFS(snap.Container)
			}
			if _, ok := net[snap.PodID]; !ok && snap.Status.State == StateRunning && snap.Status.Pid > 0 {
				if ns, err := readNetDev(snap.Status.Pid); err == nil {
					net[snap.PodID] = ns
				}
			}
		}
		s.mu.Lock()
		s.net = net
		s.mu.Unlock()
		s.prune()
		select {
		case <-stop:
			return
		case <-t.C:
		}
	}
}

// rate records a CPU sample and returns the usage rate since the previous
// sample. Within minRateWindow of it, the last rate is returned unchanged
// rather than one computed over a sliver of time.
func (s *sampler) rate(id string, now time.Time, usage uint64) *uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	prev, ok := s.cpu[id]
	switch {
	case !ok || usage < prev.usage || now.Before(prev.at):
		// First sample, or a counter reset.
		s.cpu[id] = cpuSample{at: now, usage: usage}
		return nil
	case now.Sub(prev.at) < minRateWindow:
		return prev.rate
	}
	r := uint64(float64(usage-prev.usage) / now.Sub(prev.at).Seconds())
	s.cpu[id] = cpuSample{at: now, usage: usage, rate: &r}
	return &r
}

// writable returns the cached writable layer usage, measuring once if the
// container has none yet (a new container's upper dir is nearly empty).
func (s *sampler) writable(c *Container) FSUsage {
	s.mu.Lock()
	u, ok := s.fs[c.ID]
	s.mu.Unlock()
	if ok {
		return u
	}
	return s.measureFS(c)
}

// measureFS walks what the container has written: its upper directory, or
// a native root's whole copy (the image included: any of it may have been
// changed, and nothing else holds it).
func (s *sampler) measureFS(c *Container) FSUsage {
	id, dir := c.ID, s.m.writableDir(c)
	u := FSUsage{Timestamp: time.Now(), Mountpoint: dir}
	// Each inode once, as containerd's snapshotter usage counts: an image
	// links many names to one file (busybox's 260 applets: a native
	// root's copy of 7 MB counted by name was 207 MB).
	linked := map[uint64]bool{}
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // vanished while walking: the container writes
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		st, ok := info.Sys().(*syscall.Stat_t)
		if ok && !d.IsDir() && st.Nlink > 1 {
			if linked[st.Ino] {
				return nil
			}
			linked[st.Ino] = true
		}
		u.Inodes++
		if ok {
			u.Bytes += uint64(st.Blocks) * 512
		}
		return nil
	})
	if err != nil {
		klog.V(4).InfoS("Measuring the writable layer failed", "container", id, "err", err)
	}
	var sfs syscall.Statfs_t
	if err := syscall.Statfs(dir, &sfs); err == nil {
		u.FSBytes = sfs.Blocks * uint64(sfs.Bsize)
		u.FSInodes, u.FSInodesFree = sfs.Files, sfs.Ffree
	}
	if _, ok := s.m.entryOf(id); ok { // not removed meanwhile
		s.mu.Lock()
		s.fs[id] = u
		s.mu.Unlock()
	}
	return u
}

// entryOf reports whether id is still indexed.
func (m *Manager) entryOf(id string) (*entry, bool) { return m.containers.Get(id) }

// Stats returns a container's usage as the CRI reports it: cgroup counters
// read now, the CPU rate against the sampler's previous sample, the
// writable layer as last sampled.
func (m *Manager) Stats(id string) (*Snapshot, *Stats, error) {
	e, err := m.lookup(id)
	if err != nil {
		return nil, nil, err
	}
	snap := e.snapshot()
	return snap, m.usageStats(snap), nil
}

// ListStats returns the usage of the containers f selects for
// ListContainerStats, which kubelet calls for the whole node every few
// seconds: like cAdvisor, and like PodMetrics, it serves the sampler's
// latest sample of each running container (Stats.Timestamp says when it
// was taken; CPUNanoCores is the rate over the sampler's period) rather
// than reading a node's worth of cgroups per call. Containers the sampler
// has not seen yet are read now, on as many threads as Go runs.
func (m *Manager) ListStats(f Filter) ([]*Snapshot, []*Stats) {
	snaps := m.List(f)
	stats := make([]*Stats, len(snaps))
	fanout.Do(len(snaps), runtime.GOMAXPROCS(0), func(i int) { stats[i] = m.sampled(snaps[i], m.usageStats) })
	return snaps, stats
}

// usageStats is what the CRI reports: the cgroup's Usage, none of the
// sampler's extras (open files), and it is not kept as the sampler's
// sample, which metrics serve and which must stay complete.
func (m *Manager) usageStats(snap *Snapshot) *Stats {
	return m.readStats(snap, Process.Usage)
}

// containerStats is the full sample the sampler takes and metrics serve.
func (m *Manager) containerStats(snap *Snapshot) *Stats {
	st := m.readStats(snap, Process.Stats)
	if st.HasCgroup {
		st.Files = m.stats.openFiles(snap.ID, st.Processes, st.Timestamp)
		m.stats.keep(snap.ID, st)
	}
	return st
}

// readStats reads a container's cgroup with read and records the CPU
// sample its rate is computed against.
func (m *Manager) readStats(snap *Snapshot, read func(Process) (*monitor.Stats, error)) *Stats {
	st := &Stats{WritableLayer: m.stats.writable(snap.Container)}
	st.Timestamp = time.Now()
	e, ok := m.entryOf(snap.ID)
	if !ok || e.proc == nil || snap.Status.State == StateExited {
		return st
	}
	ms, err := read(e.proc)
	if err != nil {
		klog.V(4).InfoS("Reading container stats failed", "container", snap.ID, "err", err)
		return st
	}
	st.HasCgroup = true
	st.Stats = *ms
	st.CPUNanoCores = m.stats.rate(snap.ID, ms.Timestamp, ms.CPUUsageNanos)
	return st
}
