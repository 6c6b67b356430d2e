package container

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// PodStats is a pod's usage: the sum of its containers' (crisp runs no
// process of its own in a pod) and the pod network's counters.
type PodStats struct {
	Timestamp  time.Time
	Total      Stats
	Network    *NetStats
	Containers []*Snapshot
	Stats      []*Stats
}

// NetStats are the pod network namespace's interface counters.
type NetStats struct {
	Timestamp  time.Time
	Interfaces []IfaceStats // the default (eth0) first when present
}

// IfaceStats is one interface's counters.
type IfaceStats struct {
	Name                                 string
	RxBytes, RxErrors, TxBytes, TxErrors uint64
	RxPackets, RxDropped                 uint64
	TxPackets, TxDropped                 uint64
}

// PodStats sums the usage of a pod's containers, read now. hostNetwork
// pods report no network stats (they would be the node's).
func (m *Manager) PodStats(podID string, podNetwork bool) *PodStats {
	return m.podStats(podID, podNetwork, m.usageStats, readNetDev)
}

// SampledPodStats is PodStats from the sampler's samples where it has
// them, network counters included, for ListPodSandboxStats (see
// ListStats).
func (m *Manager) SampledPodStats(podID string, podNetwork bool) *PodStats {
	return m.podStats(podID, podNetwork, func(s *Snapshot) *Stats { return m.sampled(s, m.usageStats) },
		func(pid int) (*NetStats, error) { return m.sampledNet(podID, pid) })
}

// sampledNet returns the pod's network counters of the sampler's last
// round if they are about one period old at most, else reads them from pid.
func (m *Manager) sampledNet(podID string, pid int) (*NetStats, error) {
	s := m.stats
	s.mu.Lock()
	n := s.net[podID]
	maxAge := s.period + s.period/2
	s.mu.Unlock()
	if n != nil && time.Since(n.Timestamp) < maxAge {
		return n, nil
	}
	return readNetDev(pid)
}

// podStats sums what stats returns for each of the pod's containers; net
// reads the network counters through one of its processes.
func (m *Manager) podStats(podID string, podNetwork bool, stats func(*Snapshot) *Stats, net func(pid int) (*NetStats, error)) *PodStats {
	ps := &PodStats{Timestamp: time.Now(), Containers: m.List(Filter{PodID: podID})}
	ps.Stats = make([]*Stats, len(ps.Containers))
	for i, snap := range ps.Containers {
		ps.Stats[i] = stats(snap)
	}
	var rate uint64
	haveRate := false
	for i, st := range ps.Stats {
		t := &ps.Total
		t.HasCgroup = t.HasCgroup || st.HasCgroup
		t.CPUUsageNanos += st.CPUUsageNanos
		if st.CPUNanoCores != nil {
			rate += *st.CPUNanoCores
			haveRate = true
		}
		t.MemoryUsageBytes += st.MemoryUsageBytes
		t.MemoryWorkingSetBytes += st.MemoryWorkingSetBytes
		t.MemoryRSSBytes += st.MemoryRSSBytes
		t.PageFaults += st.PageFaults
		t.MajorPageFaults += st.MajorPageFaults
		t.Pids += st.Pids
		if podNetwork && ps.Network == nil && ps.Containers[i].Status.State == StateRunning && ps.Containers[i].Status.Pid > 0 {
			// Any process in the pod's netns shows its counters; reading
			// /proc/<pid>/net/dev needs no setns, so no thread games.
			if n, err := net(ps.Containers[i].Status.Pid); err == nil {
				ps.Network = n
			}
		}
	}
	if haveRate {
		ps.Total.CPUNanoCores = &rate
	}
	ps.Total.Timestamp = ps.Timestamp
	return ps
}

// readNetDev parses /proc/<pid>/net/dev, skipping loopback.
func readNetDev(pid int) (*NetStats, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/net/dev", pid))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseNetDev(bufio.NewScanner(f))
}

func parseNetDev(sc *bufio.Scanner) (*NetStats, error) {
	n := &NetStats{Timestamp: time.Now()}
	for line := 0; sc.Scan(); line++ {
		if line < 2 {
			continue // two header lines
		}
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		name = strings.TrimSpace(name)
		f := strings.Fields(rest)
		if name == "lo" || len(f) < 12 {
			continue
		}
		num := func(i int) uint64 { v, _ := strconv.ParseUint(f[i], 10, 64); return v }
		s := IfaceStats{
			Name:    name,
			RxBytes: num(0), RxPackets: num(1), RxErrors: num(2), RxDropped: num(3),
			TxBytes: num(8), TxPackets: num(9), TxErrors: num(10), TxDropped: num(11),
		}
		if name == "eth0" {
			n.Interfaces = append([]IfaceStats{s}, n.Interfaces...)
		} else {
			n.Interfaces = append(n.Interfaces, s)
		}
	}
	return n, sc.Err()
}
