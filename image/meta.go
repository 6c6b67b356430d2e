package image

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"k8s.io/klog/v2"

	"github.com/crisp-runtime/crisp/internal/atomicfile"
	"github.com/crisp-runtime/crisp/internal/bootid"
)

// layerInfo is the bookkeeping of one unpacked layer, layers/info/<hex>.json.
// It lives next to, not inside, the layer directory because that directory
// is an overlayfs lowerdir and everything in it is visible in containers.
type layerInfo struct {
	Bytes  uint64 `json:"bytes"`
	Inodes uint64 `json:"inodes"`
	// Unsynced is the boot id the layer was committed in until it is known
	// to be on disk (see durable.go).
	Unsynced string `json:"unsynced,omitempty"`
}

// removeDurably deletes path (if present) and makes the deletion durable.
func removeDurably(path string) error {
	if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		return err
	}
	return atomicfile.SyncDir(filepath.Dir(path))
}

func (s *Store) writeImageMeta(m imageMeta) error {
	data, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(s.imagePath(m.ID), data, 0o600)
}

func (s *Store) deleteImageMeta(id string) error {
	return removeDurably(s.imagePath(id))
}

// load reads the store into memory at New(). Everything present was renamed
// into place only once complete, so only cross-file consistency is checked:
// layers without bookkeeping (or the reverse) are removed, images whose
// layers are missing are dropped, and a tag claimed by two images after a
// crash goes to the newer one.
func (s *Store) load() error {
	if err := s.loadBlobs(); err != nil {
		return err
	}
	if err := s.loadLayers(); err != nil {
		return err
	}
	if err := s.loadImages(); err != nil {
		return err
	}
	return s.loadLeases()
}

func (s *Store) loadBlobs() error {
	entries, err := os.ReadDir(s.blobDir())
	if err != nil {
		return fmt.Errorf("image store: %w", err)
	}
	for _, e := range entries {
		p := filepath.Join(s.blobDir(), e.Name())
		fi, err := os.Lstat(p)
		if err != nil || !sha256HexRE.MatchString(e.Name()) || !fi.Mode().IsRegular() {
			klog.InfoS("Image store: removing a stray file", "path", p)
			os.RemoveAll(p)
			continue
		}
		s.blobs[e.Name()] = diskBytes(fi)
		s.used.UsedBytes += s.blobs[e.Name()]
		s.used.InodesUsed++
	}
	return nil
}

func (s *Store) loadLayers() error {
	infos := map[string]layerInfo{}
	entries, err := os.ReadDir(s.layerInfoDir())
	if err != nil {
		return fmt.Errorf("image store: %w", err)
	}
	for _, e := range entries {
		p := filepath.Join(s.layerInfoDir(), e.Name())
		h, ok := strings.CutSuffix(e.Name(), ".json")
		var li layerInfo
		if ok && sha256HexRE.MatchString(h) && readJSON(p, &li) == nil {
			infos[h] = li
			continue
		}
		klog.InfoS("Image store: removing a stray file", "path", p)
		os.RemoveAll(p)
	}
	entries, err = os.ReadDir(s.layerDir())
	if err != nil {
		return fmt.Errorf("image store: %w", err)
	}
	for _, e := range entries {
		h := e.Name()
		li, ok := infos[h]
		if !ok || !e.IsDir() {
			// A layer is renamed into place after its bookkeeping is
			// written; a directory without it was interrupted mid-GC.
			klog.InfoS("Image store: removing an incomplete layer", "layer", h)
			s.removeTree(filepath.Join(s.layerDir(), h))
			continue
		}
		if li.Unsynced != "" && li.Unsynced != bootid.Current() {
			// Committed before a reboot that may have lost what was not
			// yet flushed (durable.go).
			klog.InfoS("Image store: removing a layer not flushed to disk before the node rebooted", "layer", h)
			os.Remove(s.layerInfoPath(h))
			s.removeTree(filepath.Join(s.layerDir(), h))
			delete(infos, h)
			continue
		}
		if li.Unsynced != "" {
			s.syncer.pending[h] = li // resumeSync, once loaded
		}
		s.layers[h] = li
		s.used.UsedBytes += li.Bytes
		s.used.InodesUsed += li.Inodes + 1 // +1: the info file
		delete(infos, h)
	}
	for h := range infos {
		klog.InfoS("Image store: removing the bookkeeping of a missing layer", "layer", h)
		os.Remove(s.layerInfoPath(h))
	}
	return nil
}

func (s *Store) loadImages() error {
	entries, err := os.ReadDir(s.imageDir())
	if err != nil {
		return fmt.Errorf("image store: %w", err)
	}
	var metas []imageMeta
	for _, e := range entries {
		p := filepath.Join(s.imageDir(), e.Name())
		var m imageMeta
		h, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || !sha256HexRE.MatchString(h) || readJSON(p, &m) != nil || m.ID != "sha256:"+h {
			klog.InfoS("Image store: removing unreadable image metadata", "path", p)
			os.Remove(p)
			continue
		}
		missing := slices.IndexFunc(m.Layers, func(l layerRef) bool { _, ok := s.layers[hexOf(l.DiffID)]; return !ok })
		if missing >= 0 {
			klog.InfoS("Image store: dropping an image whose layer is missing", "imageID", m.ID, "tags", m.RepoTags, "layer", m.Layers[missing].DiffID)
			os.Remove(p)
			continue
		}
		metas = append(metas, m)
	}
	// Newest first, so the first claim of a name wins.
	slices.SortFunc(metas, func(a, b imageMeta) int { return int64Cmp(b.Updated, a.Updated) })
	for _, m := range metas {
		n := len(m.RepoTags) + len(m.RepoDigests)
		taken := func(r string) bool { _, ok := s.refs[r]; return ok }
		m.RepoTags = slices.DeleteFunc(m.RepoTags, taken)
		m.RepoDigests = slices.DeleteFunc(m.RepoDigests, taken)
		if len(m.RepoTags)+len(m.RepoDigests) != n {
			klog.InfoS("Image store: image lost names to newer images (interrupted tag move)", "imageID", m.ID)
			if len(m.RepoTags)+len(m.RepoDigests) == 0 {
				os.Remove(s.imagePath(m.ID))
				continue
			}
			if err := s.writeImageMeta(m); err != nil {
				return err
			}
		}
		s.setLocked(s.newRecord(m))
	}
	return nil
}

func readJSON(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return json.Unmarshal(data, v)
}

func int64Cmp(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// diskBytes is the space a file occupies (allocated blocks), which is what
// "used bytes" means to kubelet's eviction manager.
func diskBytes(fi os.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Blocks) * 512
	}
	return uint64(fi.Size())
}
