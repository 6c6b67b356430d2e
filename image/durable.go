package image

import (
	"encoding/json"
	"sync"

	"k8s.io/klog/v2"

	"github.com/crisp-runtime/crisp/image/unpack"
	"github.com/crisp-runtime/crisp/internal/atomicfile"
	"github.com/crisp-runtime/crisp/internal/bootid"
)

// A pull does not wait for its layers to reach the disk. Flushing a large
// layer costs as long as the disk takes to write it (about 13 s per GB on
// the development VM's disk), more than the rest of the pull; yet only a
// crash of the kernel (power loss, panic) can lose page-cache data, never a
// crash or restart of crisp. So a layer is committed with the boot id it
// was written in (layerInfo.Unsynced), a background syncer flushes the
// filesystem once for every batch of such layers and then clears the
// mark, and a layer still marked at start-up from an earlier boot is
// dropped (with the images that use it, as if never pulled; kubelet pulls
// again). A layer marked in this boot is intact in the page cache and is
// only queued for the syncer again. Where the kernel names no boot, layers
// are flushed before they are committed, as every layer was before.

// syncer flushes committed layers in the background.
type syncer struct {
	mu      sync.Mutex
	pending map[string]layerInfo // diffID hex -> info as committed
	running bool
	idle    sync.Cond // signalled when a flush ends
}

// deferSync reports whether a new layer may be committed before it is
// flushed, and returns the mark to record with it.
func deferSync() (string, bool) {
	id := bootid.Current()
	return id, id != ""
}

// queueSync hands a committed, unflushed layer to the syncer.
func (s *Store) queueSync(h string, info layerInfo) {
	y := &s.syncer
	y.mu.Lock()
	defer y.mu.Unlock()
	y.pending[h] = info
	s.startSyncLocked()
}

// resumeSync starts the syncer on the layers load found unflushed; load
// only queues them, as the syncer reads the layer map load is filling.
func (s *Store) resumeSync() {
	s.syncer.mu.Lock()
	defer s.syncer.mu.Unlock()
	if len(s.syncer.pending) > 0 {
		s.startSyncLocked()
	}
}

func (s *Store) startSyncLocked() {
	if !s.syncer.running {
		s.syncer.running = true
		go s.syncLoop()
	}
}

// syncLoop flushes until nothing is pending: one syncfs covers every layer
// queued before it started.
func (s *Store) syncLoop() {
	y := &s.syncer
	for {
		y.mu.Lock()
		batch := y.pending
		y.pending = map[string]layerInfo{}
		if len(batch) == 0 {
			y.running = false
			y.idle.Broadcast()
			y.mu.Unlock()
			return
		}
		y.mu.Unlock()
		if err := unpack.SyncDir(s.layerDir()); err != nil {
			// Still marked: dropped after a reboot, retried at the next
			// start-up or batch.
			klog.ErrorS(err, "Image store: flushing unpacked layers failed; they are dropped if the node reboots before a later flush succeeds", "layers", len(batch))
			continue
		}
		for h, info := range batch {
			s.markSynced(h, info)
		}
	}
}

// markSynced clears a flushed layer's mark, unless the layer was removed
// meanwhile.
func (s *Store) markSynced(h string, info layerInfo) {
	s.metaMu.Lock()
	defer s.metaMu.Unlock()
	s.syncer.mu.Lock()
	_, requeued := s.syncer.pending[h] // removed and pulled again meanwhile
	s.syncer.mu.Unlock()
	if requeued || !s.hasLayer(h) {
		return
	}
	info.Unsynced = ""
	data, err := json.Marshal(info)
	if err == nil {
		err = atomicfile.WriteFile(s.layerInfoPath(h), data, 0o600)
	}
	if err != nil {
		klog.ErrorS(err, "Image store: recording a flushed layer failed", "layer", h)
	}
}

// waitSynced blocks until the syncer is idle (Close: a clean shutdown
// leaves no layer to drop after the reboot that may follow).
func (s *Store) waitSynced() {
	y := &s.syncer
	y.mu.Lock()
	defer y.mu.Unlock()
	for y.running {
		y.idle.Wait()
	}
}
