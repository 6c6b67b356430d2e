package image

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"k8s.io/klog/v2"

	"github.com/crisp-runtime/crisp/errdefs"
)

// imageMeta is the persisted record of an image, images/<id hex>.json.
type imageMeta struct {
	ID          string   `json:"id"`
	RepoTags    []string `json:"repoTags,omitempty"`
	RepoDigests []string `json:"repoDigests,omitempty"`
	// Manifests are the index and manifest blobs pulled for this image.
	Manifests []string            `json:"manifests"`
	Layers    []layerRef          `json:"layers"` // bottom first
	Size      uint64              `json:"size"`
	Config    ocispec.ImageConfig `json:"config"`
	// Updated (unix ns) decides which image owns a tag if a crash left two
	// files claiming it (a tag move writes two files).
	Updated int64 `json:"updated"`
}

// layerRef is one layer of an image: its uncompressed digest (the unpacked
// directory) and the compressed blob it came from.
type layerRef struct {
	DiffID string `json:"diffID"`
	Blob   string `json:"blob"`
	Size   int64  `json:"size"`
}

func hexOf(digest string) string { return strings.TrimPrefix(digest, "sha256:") }

// newRecord builds the snapshot handed to callers.
func (s *Store) newRecord(m imageMeta) *record {
	img := &Image{
		ID:          m.ID,
		RepoTags:    slices.Clone(m.RepoTags),
		RepoDigests: slices.Clone(m.RepoDigests),
		Size:        m.Size,
		Config:      m.Config,
	}
	for _, l := range m.Layers {
		img.DiffIDs = append(img.DiffIDs, l.DiffID)
	}
	for _, r := range append(slices.Clone(m.RepoTags), m.RepoDigests...) {
		if s.pinned[r] {
			img.Pinned = true
		}
	}
	return &record{meta: m, img: img}
}

// lookupLocked resolves ref to an image ID. Order: full ID, then tag or
// digest reference, then a unique ID prefix of at least 12 hex digits.
// name is the tag or digest reference that matched, "" for a match by ID.
func (s *Store) lookupLocked(ref string) (id, name string, err error) {
	if ref == "" {
		return "", "", errdefs.InvalidArgument("empty image reference")
	}
	bare := strings.TrimPrefix(ref, "sha256:")
	if sha256HexRE.MatchString(bare) {
		if _, ok := s.images["sha256:"+bare]; ok {
			return "sha256:" + bare, "", nil
		}
		return "", "", errdefs.NotFound("image %q", ref)
	}
	parsed, perr := ParseReference(ref)
	if perr == nil {
		key := parsed.TagRef()
		if parsed.Digest != "" {
			key = parsed.DigestRef()
		}
		if id, ok := s.refs[key]; ok {
			return id, key, nil
		}
	}
	if hexPrefixRE.MatchString(bare) {
		var found []string
		for id := range s.images {
			if strings.HasPrefix(hexOf(id), bare) {
				found = append(found, id)
			}
		}
		if len(found) == 1 {
			return found[0], "", nil
		}
		if len(found) > 1 {
			return "", "", errdefs.InvalidArgument("image ID prefix %q is ambiguous (%d images)", ref, len(found))
		}
	} else if perr != nil {
		return "", "", perr
	}
	return "", "", errdefs.NotFound("image %q", ref)
}

// commitImage records a pulled image under tags and digests, moving any of
// them away from the image that held them before. Like containerd, an image
// that loses its tag this way stays, reachable by its digest; it is deleted
// only when it has neither tags nor digests left. Caller holds no locks.
func (s *Store) commitImage(m imageMeta, tags, digests []string) (*Image, error) {
	var trash []string
	defer func() { s.emptyTrash(trash) }()
	s.metaMu.Lock()
	defer s.metaMu.Unlock()

	s.mu.RLock()
	if old, ok := s.images[m.ID]; ok {
		// Same image pulled again (maybe via another tag or manifest):
		// keep what it had and add the new names.
		m.RepoTags = old.meta.RepoTags
		m.RepoDigests = old.meta.RepoDigests
		m.Manifests = mergeUnique(old.meta.Manifests, m.Manifests)
	}
	for _, l := range m.Layers {
		if _, ok := s.layers[hexOf(l.DiffID)]; !ok {
			// Cannot happen while the caller pins its layers; refuse
			// rather than persist an image that New() would drop.
			s.mu.RUnlock()
			return nil, fmt.Errorf("image %s: layer %s vanished before the image was recorded: %w", m.ID, l.DiffID, errdefs.ErrUnavailable)
		}
	}
	m.RepoTags = mergeUnique(m.RepoTags, tags)
	m.RepoDigests = mergeUnique(m.RepoDigests, digests)
	m.Updated = time.Now().UnixNano()
	// Others that lose a name to this image.
	changed := map[string]imageMeta{}
	for _, r := range append(slices.Clone(tags), digests...) {
		if id, ok := s.refs[r]; ok && id != m.ID {
			om, seen := changed[id]
			if !seen {
				om = s.images[id].meta
				om.RepoTags, om.RepoDigests = slices.Clone(om.RepoTags), slices.Clone(om.RepoDigests)
			}
			om.RepoTags = slices.DeleteFunc(om.RepoTags, func(t string) bool { return t == r })
			om.RepoDigests = slices.DeleteFunc(om.RepoDigests, func(t string) bool { return t == r })
			changed[id] = om
		}
	}
	s.mu.RUnlock()

	// The new owner first: after a crash in between, both files claim the
	// name and load() gives it to the newer one.
	if err := s.writeImageMeta(m); err != nil {
		return nil, err
	}
	// From here the pull has succeeded. Failing to update a previous owner
	// leaves its file with an older claim, which load() resolves the same
	// way memory does now, so it is logged rather than returned.
	var deleted []string
	for id, om := range changed {
		if len(om.RepoTags) == 0 && len(om.RepoDigests) == 0 {
			if err := s.deleteImageMeta(id); err != nil {
				klog.ErrorS(err, "Image store: deleting an image that lost its last name failed", "imageID", id)
			}
			deleted = append(deleted, id)
			continue
		}
		if err := s.writeImageMeta(om); err != nil {
			klog.ErrorS(err, "Image store: updating an image that lost a name failed", "imageID", id)
		}
	}

	s.mu.Lock()
	rec := s.newRecord(m)
	s.setLocked(rec)
	for id, om := range changed {
		if !slices.Contains(deleted, id) {
			s.setLocked(s.newRecord(om))
		}
	}
	for _, id := range deleted {
		s.unsetLocked(id)
	}
	img := rec.img.clone()
	s.mu.Unlock()
	if len(deleted) > 0 {
		trash = s.gcLocked()
	}
	return img, nil
}

// setLocked installs rec, replacing the previous record of its ID and its
// references. Caller holds mu for writing.
func (s *Store) setLocked(rec *record) {
	s.unsetLocked(rec.meta.ID)
	s.images[rec.meta.ID] = rec
	for _, r := range rec.meta.RepoTags {
		s.refs[r] = rec.meta.ID
	}
	for _, r := range rec.meta.RepoDigests {
		s.refs[r] = rec.meta.ID
	}
}

// unsetLocked removes an image and the references that point at it.
func (s *Store) unsetLocked(id string) {
	old, ok := s.images[id]
	if !ok {
		return
	}
	for _, r := range append(slices.Clone(old.meta.RepoTags), old.meta.RepoDigests...) {
		if s.refs[r] == id {
			delete(s.refs, r)
		}
	}
	delete(s.images, id)
}

// mergeUnique appends the elements of b missing from a, keeping order.
func mergeUnique(a, b []string) []string {
	out := slices.Clone(a)
	for _, x := range b {
		if !slices.Contains(out, x) {
			out = append(out, x)
		}
	}
	return out
}

// referencedLocked returns the blobs and layers that images and leases keep
// alive, plus what running pulls have pinned. Caller holds mu.
func (s *Store) referencedLocked() (blobs, layers map[string]bool) {
	blobs, layers = map[string]bool{}, map[string]bool{}
	for id, r := range s.images {
		blobs[hexOf(id)] = true
		for _, d := range r.meta.Manifests {
			blobs[hexOf(d)] = true
		}
		for _, l := range r.meta.Layers {
			blobs[hexOf(l.Blob)] = true
			layers[hexOf(l.DiffID)] = true
		}
	}
	for _, l := range s.leases {
		for _, d := range l.Layers {
			layers[hexOf(d)] = true
		}
	}
	if len(s.quarantined) > 0 {
		// An unreadable lease may name any of them.
		for h := range s.layers {
			layers[h] = true
		}
	}
	for k := range maps.Keys(s.inflight) {
		kind, h, _ := strings.Cut(k, ":")
		if kind == pinBlob {
			blobs[h] = true
		} else {
			layers[h] = true
		}
	}
	return blobs, layers
}

// pin keys: a running pull pins every blob and layer it is about to use so
// that garbage collection (run by a concurrent Remove) cannot delete content
// between the pull finding it present and the pull's metadata referencing it.
const (
	pinBlob  = "b"
	pinLayer = "l"
)

type pins struct {
	s    *Store
	keys []string
}

// add pins sha256 digest d of kind; not safe for concurrent use on one pins.
func (p *pins) add(kind, d string) {
	k := kind + ":" + hexOf(d)
	p.s.mu.Lock()
	p.s.inflight[k]++
	p.s.mu.Unlock()
	p.keys = append(p.keys, k)
}

func (p *pins) release() {
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	for _, k := range p.keys {
		if p.s.inflight[k]--; p.s.inflight[k] <= 0 {
			delete(p.s.inflight, k)
		}
	}
	p.keys = nil
}
