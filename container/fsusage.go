package container

import (
	"time"

	"github.com/crisp-runtime/crisp/image"
)

// WritableLayersUsage sums the writable layers from the sampler's cache, so
// that ImageFsInfo, which kubelet calls every few seconds, walks nothing.
// Mountpoint is the directory that holds the layers; Timestamp is the
// oldest sample's. A container not sampled yet is missing until the
// sampler's next pass.
func (m *Manager) WritableLayersUsage() image.FilesystemUsage {
	u := image.FilesystemUsage{Mountpoint: m.store.root, Timestamp: time.Now()}
	m.stats.mu.Lock()
	defer m.stats.mu.Unlock()
	for _, fs := range m.stats.fs {
		u.UsedBytes += fs.Bytes
		u.InodesUsed += fs.Inodes
		if fs.Timestamp.Before(u.Timestamp) {
			u.Timestamp = fs.Timestamp
		}
	}
	return u
}
