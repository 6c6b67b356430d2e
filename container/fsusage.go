package container

import "time"

// LayersUsage is what all writable layers hold together, as last sampled.
type LayersUsage struct {
	// Root is the directory that holds the writable layers.
	Root          string
	Bytes, Inodes uint64
	// Timestamp is the oldest sample's.
	Timestamp time.Time
}

// WritableLayersUsage sums the writable layers from the sampler's cache, so
// that ImageFsInfo, which kubelet calls every few seconds, walks nothing.
// A container not sampled yet is missing until the sampler's next pass.
func (m *Manager) WritableLayersUsage() LayersUsage {
	u := LayersUsage{Root: m.store.root, Timestamp: time.Now()}
	m.stats.mu.Lock()
	defer m.stats.mu.Unlock()
	for _, fs := range m.stats.fs {
		u.Bytes += fs.Bytes
		u.Inodes += fs.Inodes
		if fs.Timestamp.Before(u.Timestamp) {
			u.Timestamp = fs.Timestamp
		}
	}
	return u
}
