package image

import (
	"os"
	"path/filepath"
	"slices"
	"strings"

	"k8s.io/klog/v2"

	"github.com/crisp-runtime/crisp/errdefs"
	"github.com/crisp-runtime/crisp/internal/failpoint"
)

// Remove deletes what ref names. By tag, when the image has other tags:
// only that tag, so a tag shared by two deployments is not pulled from under
// the other (what CRI-O does). By its last tag, by digest reference or by
// image ID (full or unique prefix): the whole image with all its names,
// because an image nobody can name any more is only garbage. Content no
// image or lease references any more is then garbage collected. An image
// mounted as a volume (LeaseMounted) is not removed: ErrFailedPrecondition.
// An unknown ref is ErrNotFound; the gRPC layer decides that this is success.
func (s *Store) Remove(ref string) error {
	var trash []string
	defer func() { s.emptyTrash(trash) }()
	s.metaMu.Lock()
	defer s.metaMu.Unlock()

	s.mu.RLock()
	id, name, err := s.lookupLocked(ref)
	var m imageMeta
	var mountedBy []string
	if err == nil {
		m = s.images[id].meta
		mountedBy = s.mountedByLocked(id)
	}
	s.mu.RUnlock()
	if err != nil {
		return err
	}
	untagOnly := name != "" && slices.Contains(m.RepoTags, name) && len(m.RepoTags) > 1
	if !untagOnly && len(mountedBy) > 0 {
		return errdefs.FailedPrecondition("image %s is mounted as a volume (%s): remove the containers that mount it first",
			id, strings.Join(mountedBy, ", "))
	}

	// Persist first, then forget and collect: a crash leaves at worst
	// unreferenced content, which New() collects.
	if !untagOnly {
		if err := s.deleteImageMeta(id); err != nil {
			return err
		}
		// Unreferenced content stays until start-up collects it.
		_ = failpoint.Hit("image-remove/after-record-delete")
		s.mu.Lock()
		s.unsetLocked(id)
		s.mu.Unlock()
		klog.V(2).InfoS("Image removed", "imageID", id, "ref", ref)
		trash = s.gcLocked()
		return nil
	}
	m.RepoTags = slices.DeleteFunc(slices.Clone(m.RepoTags), func(r string) bool { return r == name })
	if err := s.writeImageMeta(m); err != nil {
		return err
	}
	s.mu.Lock()
	s.setLocked(s.newRecord(m))
	s.mu.Unlock()
	klog.V(2).InfoS("Image tag removed", "imageID", id, "tag", name)
	return nil
}

// gcLocked deletes blobs and layers referenced by no image, no lease and no
// running pull. Blobs are unlinked and layer directories moved to tmp/
// while mu is held, so a pull that finds them absent and fetches them again
// never races with the deletion of the old copy; the (slow) removal of the
// moved trees is left to the caller via the returned paths, to be done with
// no lock held. Caller holds metaMu, not mu.
func (s *Store) gcLocked() (trash []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	blobs, layers := s.referencedLocked()
	for h, size := range s.blobs {
		if blobs[h] {
			continue
		}
		if err := os.Remove(s.blobPath(h)); err != nil && !os.IsNotExist(err) {
			klog.ErrorS(err, "Image store: removing a blob failed", "blob", h)
			continue
		}
		delete(s.blobs, h)
		s.used.UsedBytes -= size
		s.used.InodesUsed--
		klog.V(3).InfoS("Image store: blob collected", "blob", "sha256:"+h)
	}
	for h, li := range s.layers {
		if layers[h] {
			continue
		}
		// Bookkeeping first: a layer directory without it is what New()
		// treats as incomplete and removes.
		if err := os.Remove(s.layerInfoPath(h)); err != nil && !os.IsNotExist(err) {
			klog.ErrorS(err, "Image store: removing a layer failed", "layer", h)
			continue
		}
		p, err := s.moveToTrash(s.layerPath(h))
		if err != nil {
			klog.ErrorS(err, "Image store: removing a layer failed", "layer", h)
			continue
		}
		trash = append(trash, p)
		delete(s.layers, h)
		s.used.UsedBytes -= li.Bytes
		s.used.InodesUsed -= li.Inodes + 1
		klog.V(3).InfoS("Image store: layer collected", "layer", "sha256:"+h)
	}
	return trash
}

// moveToTrash renames path into a fresh directory under tmp/ and returns
// that directory. The rename is atomic, so the tree is never half-deleted at
// its real path; a crash before the removal leaves it in tmp/, which New()
// clears.
func (s *Store) moveToTrash(path string) (string, error) {
	dst, err := os.MkdirTemp(s.tmpDir(), "gc-")
	if err != nil {
		return "", err
	}
	if err := os.Rename(path, filepath.Join(dst, "d")); err != nil {
		os.Remove(dst)
		if os.IsNotExist(err) {
			return "", nil
		}
		return "", err
	}
	return dst, nil
}

// emptyTrash deletes collected trees in the background: the CRI lets
// RemoveImage return before the space is freed, and the trees already left
// their real paths (a crash leaves them in tmp/, which New clears). Close
// waits for it.
func (s *Store) emptyTrash(paths []string) {
	if len(paths) == 0 {
		return
	}
	s.trash.Add(1)
	go func() {
		defer s.trash.Done()
		s.removeTrash(paths)
	}()
}

func (s *Store) removeTrash(paths []string) {
	for _, p := range paths {
		if p == "" {
			continue
		}
		if err := os.RemoveAll(p); err != nil {
			klog.ErrorS(err, "Image store: removing a file failed", "path", p)
		}
	}
}

// removeTree deletes a tree at once (used at New(), with nothing running).
func (s *Store) removeTree(path string) {
	p, err := s.moveToTrash(path)
	if err != nil {
		klog.ErrorS(err, "Image store: removing a file failed", "path", path)
		p = path
	}
	s.removeTrash([]string{p})
}
