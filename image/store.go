// Package image is crisp's image service: it pulls images from registries
// (with mirrors), keeps them in a content-addressed store of blobs and
// unpacked layer directories, and answers kubelet's image queries from memory.
package image

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"k8s.io/klog/v2"

	"github.com/crisp-runtime/crisp/config"
	"github.com/crisp-runtime/crisp/errdefs"
	"github.com/crisp-runtime/crisp/image/unpack"
)

// DefaultMaxConcurrentDownloads is used when Options leaves it zero.
const DefaultMaxConcurrentDownloads = 3

// Options configure a Store. Root is usually config.Config.ImageRoot().
type Options struct {
	Root                   string
	Registries             map[string]config.Registry
	InsecureRegistries     []string
	PinnedImages           []string
	MaxConcurrentDownloads int
	// ProgressTimeout abandons a layer download that receives nothing for
	// this long (0: never).
	ProgressTimeout time.Duration
	// LayerLimits bound what one layer may unpack to (zero: unbounded).
	LayerLimits unpack.Limits
}

// Image is what the CRI reports about an image.
type Image struct {
	ID          string   // "sha256:<hex of config digest>"
	RepoTags    []string // "docker.io/library/busybox:1.28"
	RepoDigests []string // "docker.io/library/busybox@sha256:<digest pulled>"
	Size        uint64   // compressed layers + config, like containerd
	Config      ocispec.ImageConfig
	DiffIDs     []string // uncompressed layer digests, bottom first
	Pinned      bool
}

// Usage is the space the store occupies.
type Usage struct {
	Mountpoint string
	UsedBytes  uint64
	InodesUsed uint64
}

// Store is the image store. All methods are safe for concurrent use.
type Store struct {
	root       string
	opts       Options
	pinned     map[string]bool // normalized tag and digest refs
	transports transports

	flightMu sync.Mutex
	flights  map[string]*flight // see once

	// ctx is cancelled by Close so that running pulls stop; pulls is waited on.
	ctx    context.Context
	cancel context.CancelFunc
	pulls  sync.WaitGroup
	trash  sync.WaitGroup // background deletion of collected trees

	// metaMu serializes every change of images, leases and garbage
	// collection, including their disk writes, so that readers holding mu
	// are never blocked by an fsync.
	metaMu sync.Mutex

	// mu guards the in-memory state below.
	mu     sync.RWMutex
	closed bool
	images map[string]*record   // by ID
	refs   map[string]string    // tag ref or digest ref -> ID
	blobs  map[string]uint64    // hex -> bytes on disk
	layers map[string]layerInfo // diffID hex -> usage
	leases map[string]lease     // owner -> lease
	// quarantined: unreadable lease files (see Quarantined).
	quarantined []string
	inflight    map[string]int // pin key -> pulls using it (see pins)
	used        Usage

	syncer syncer // flushes committed layers (durable.go)
}

// record is one image: its persisted metadata and the snapshot handed out.
type record struct {
	meta imageMeta
	img  *Image
}

// Directory layout under Root.
func (s *Store) blobDir() string            { return filepath.Join(s.root, "blobs", "sha256") }
func (s *Store) blobPath(hex string) string { return filepath.Join(s.blobDir(), hex) }
func (s *Store) layerDir() string           { return filepath.Join(s.root, "layers", "sha256") }
func (s *Store) layerPath(hex string) string {
	return filepath.Join(s.layerDir(), hex)
}
func (s *Store) layerInfoDir() string { return filepath.Join(s.root, "layers", "info") }
func (s *Store) layerInfoPath(hex string) string {
	return filepath.Join(s.layerInfoDir(), hex+".json")
}
func (s *Store) imageDir() string { return filepath.Join(s.root, "images") }
func (s *Store) imagePath(id string) string {
	return filepath.Join(s.imageDir(), hexOf(id)+".json")
}
func (s *Store) leaseDir() string { return filepath.Join(s.root, "leases") }
func (s *Store) tmpDir() string   { return filepath.Join(s.root, "tmp") }

// New opens or creates the store at opts.Root: it removes what interrupted
// work left behind, loads the metadata, drops images whose layers are gone
// and collects unreferenced content.
func New(opts Options) (*Store, error) {
	if opts.Root == "" || !filepath.IsAbs(opts.Root) {
		return nil, errdefs.InvalidArgument("image store root must be an absolute path, got %q", opts.Root)
	}
	if opts.MaxConcurrentDownloads <= 0 {
		opts.MaxConcurrentDownloads = DefaultMaxConcurrentDownloads
	}
	s := &Store{
		root:     filepath.Clean(opts.Root),
		opts:     opts,
		pinned:   map[string]bool{},
		images:   map[string]*record{},
		refs:     map[string]string{},
		blobs:    map[string]uint64{},
		layers:   map[string]layerInfo{},
		leases:   map[string]lease{},
		inflight: map[string]int{},
		flights:  map[string]*flight{},
	}
	s.used.Mountpoint = s.root
	s.syncer.pending = map[string]layerInfo{}
	s.syncer.idle.L = &s.syncer.mu
	for _, p := range opts.PinnedImages {
		ref, err := ParseReference(p)
		if err != nil {
			klog.InfoS("Image store: ignoring a pinned image", "err", err)
			continue
		}
		for _, r := range []string{ref.TagRef(), ref.DigestRef()} {
			if r != "" {
				s.pinned[r] = true
			}
		}
	}
	// 0700: unpacked layers hold setuid binaries and secrets baked into
	// images; nobody but root has business walking them.
	if err := os.MkdirAll(s.root, 0o700); err != nil {
		return nil, fmt.Errorf("image store: %w", err)
	}
	// Everything in tmp/ is work that was never renamed into place.
	if err := os.RemoveAll(s.tmpDir()); err != nil {
		return nil, fmt.Errorf("image store: clean %s: %w", s.tmpDir(), err)
	}
	for _, d := range []string{s.blobDir(), s.layerDir(), s.layerInfoDir(), s.imageDir(), s.leaseDir(), s.tmpDir()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("image store: %w", err)
		}
	}
	spreadNewTrees(s.tmpDir())
	if err := s.load(); err != nil {
		return nil, err
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.removeTrash(s.gcLocked())
	s.resumeSync() // after everything above that writes the maps unlocked
	klog.V(2).InfoS("Image store loaded", "root", s.root, "images", len(s.images), "layers", len(s.layers), "blobs", len(s.blobs))
	return s, nil
}

// Close stops running pulls, waits for them and releases idle connections.
// The store must not be used afterwards.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	s.pulls.Wait()
	s.waitSynced()
	s.trash.Wait()
	s.transports.close()
	return nil
}

// begin registers a pull so Close can wait for it, and ties ctx to the store.
func (s *Store) begin(ctx context.Context) (context.Context, func(), error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, nil, fmt.Errorf("image store is closed: %w", errdefs.ErrUnavailable)
	}
	s.pulls.Add(1)
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(s.ctx, cancel)
	return ctx, func() { stop(); cancel(); s.pulls.Done() }, nil
}

// Get resolves ref (ID, ID prefix, tag or digest reference) from memory.
func (s *Store) Get(ref string) (*Image, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	id, _, err := s.lookupLocked(ref)
	if err != nil {
		return nil, err
	}
	return s.images[id].img.clone(), nil
}

// List returns every image, from memory.
func (s *Store) List() []*Image {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]*Image, 0, len(s.images))
	for _, r := range s.images {
		out = append(out, r.img.clone())
	}
	return out
}

// LayerDirs returns the unpacked layers of an image as overlayfs wants its
// lowerdir list: top layer first. A layer that occurs more than once is
// listed only at its topmost position: applying the same content again
// below changes nothing, and overlayfs refuses duplicate lower directories.
func (s *Store) LayerDirs(ref string) ([]string, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	id, _, err := s.lookupLocked(ref)
	if err != nil {
		return nil, err
	}
	ls := s.images[id].meta.Layers
	seen := map[string]bool{}
	dirs := make([]string, 0, len(ls))
	for i := len(ls) - 1; i >= 0; i-- {
		h := hexOf(ls[i].DiffID)
		if seen[h] {
			continue
		}
		seen[h] = true
		dirs = append(dirs, s.layerPath(h))
	}
	return dirs, nil
}

// Usage reports the bytes and inodes of blobs and layers, maintained as
// content is added and removed: kubelet calls it every few seconds.
func (s *Store) Usage() (Usage, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.used, nil
}

func (img *Image) clone() *Image {
	c := *img
	c.RepoTags = append([]string(nil), img.RepoTags...)
	c.RepoDigests = append([]string(nil), img.RepoDigests...)
	c.DiffIDs = append([]string(nil), img.DiffIDs...)
	// Callers get their own config: the gRPC layer may, say, append to Env.
	c.Config.Env = slices.Clone(img.Config.Env)
	c.Config.Entrypoint = slices.Clone(img.Config.Entrypoint)
	c.Config.Cmd = slices.Clone(img.Config.Cmd)
	c.Config.Volumes = maps.Clone(img.Config.Volumes)
	c.Config.ExposedPorts = maps.Clone(img.Config.ExposedPorts)
	c.Config.Labels = maps.Clone(img.Config.Labels)
	return &c
}
