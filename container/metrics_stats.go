package container

import "time"

// metricsStats is PodStats for PodMetrics, which kubelet calls for every
// pod at each scrape: like cAdvisor, it serves the sampler's latest
// cgroup sample of each running container (Stats.Timestamp says when it was
// taken) instead of reading every cgroup again, and reads only containers
// the sampler has not seen yet. The network counters are read for the call.
func (m *Manager) metricsStats(podID string, podNetwork bool) *PodStats {
	return m.podStats(podID, podNetwork, m.cachedStats, readNetDev)
}

// keep records st as the container's latest sample.
func (s *sampler) keep(id string, st *Stats) {
	if _, ok := s.m.entryOf(id); !ok { // removed meanwhile
		return
	}
	s.mu.Lock()
	s.last[id] = st
	s.mu.Unlock()
}

// cachedStats returns the sampler's sample (see sampled) or reads the whole
// cgroup now.
func (m *Manager) cachedStats(snap *Snapshot) *Stats { return m.sampled(snap, m.containerStats) }

// sampled returns the latest sample if the sampler took it within about
// one period (the slack covers a slow round over many containers) and the
// container has not exited since; otherwise it calls read.
func (m *Manager) sampled(snap *Snapshot, read func(*Snapshot) *Stats) *Stats {
	s := m.stats
	s.mu.Lock()
	st, ok := s.last[snap.ID]
	maxAge := s.period + s.period/2
	s.mu.Unlock()
	if ok && snap.Status.State == StateRunning && time.Since(st.Timestamp) < maxAge {
		// The writable layer has its own, slower, cache.
		c := *st
		c.WritableLayer = s.writable(snap.Container)
		return &c
	}
	return read(snap)
}
