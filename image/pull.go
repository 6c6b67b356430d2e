package image

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"
	"k8s.io/klog/v2"

	"github.com/crisp-runtime/crisp/errdefs"
	"github.com/crisp-runtime/crisp/internal/failpoint"
	"github.com/crisp-runtime/crisp/internal/metrics"
)

// Manifests and configs are read into memory; real ones are kilobytes.
const maxManifestSize = 8 << 20

// puller is the state of one Pull.
type puller struct {
	s     *Store
	ref   Reference
	eps   []*endpoint
	first int // endpoint that resolved the reference; tried first for blobs
	pins  *pins
	// slots bounds the layer downloads in flight (max_concurrent_downloads).
	slots    chan struct{}
	progress pullProgress
}

// Pull fetches ref (tag, digest, or both) and returns the stored image. The
// image is recorded under ref's upstream name even when a mirror served it.
func (s *Store) Pull(ctx context.Context, rawRef string, auth *Auth) (*Image, error) {
	ref, err := ParseReference(rawRef)
	if err != nil {
		return nil, err
	}
	ctx, done, err := s.begin(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	start := time.Now()
	p := &puller{s: s, ref: ref, pins: &pins{s: s}, slots: make(chan struct{}, s.opts.MaxConcurrentDownloads)}
	defer p.pins.release()

	img, err := p.pull(ctx, auth)
	metrics.ImagePulled(err, time.Since(start))
	if err != nil {
		if ctx.Err() != nil && !isCtxErr(err) {
			// Report the cancellation as the cause (gRPC Canceled or
			// DeadlineExceeded), keeping what it interrupted for the log.
			err = fmt.Errorf("pull %s: %w (interrupted: %v)", ref, ctx.Err(), err)
		}
		klog.FromContext(ctx).Error(err, "Pull failed", "ref", ref, "duration", time.Since(start).Round(time.Millisecond))
		return nil, err
	}
	klog.FromContext(ctx).V(2).Info("Pulled", "ref", ref, "imageID", img.ID, "duration", time.Since(start).Round(time.Millisecond))
	return img, nil
}

func (p *puller) pull(ctx context.Context, auth *Auth) (*Image, error) {
	s, ref := p.s, p.ref
	var tags []string
	if t := ref.TagRef(); t != "" {
		tags = append(tags, t)
	}
	// Pulling by a digest that is already here needs no registry at all.
	if ref.Digest != "" {
		s.mu.RLock()
		id, ok := s.refs[ref.DigestRef()]
		var m imageMeta
		if ok {
			m = s.images[id].meta
		}
		s.mu.RUnlock()
		if ok && p.pinPresent(m) {
			return s.commitImage(m, tags, []string{ref.DigestRef()})
		}
	}

	eps, err := s.endpoints(ref, auth)
	if err != nil {
		return nil, err
	}
	p.eps = eps
	t0 := time.Now()
	data, mediaType, digest, err := p.resolve(ctx)
	if err != nil {
		return nil, err
	}
	klog.FromContext(ctx).V(2).Info("Pull resolved", "ref", ref, "digest", digest, "mediaType", mediaType, "endpoint", p.eps[p.first].display, "duration", time.Since(t0).Round(time.Millisecond))
	digests := []string{ref.Name() + "@" + digest}

	var manifests []string
	var mf ocispec.Manifest
	for depth := 0; ; depth++ {
		if len(data) > maxManifestSize {
			return nil, fmt.Errorf("image %q: manifest %s is %d bytes, larger than %d", ref.String(), digest, len(data), maxManifestSize)
		}
		p.pins.add(pinBlob, digest)
		if err := s.putBlob(digest, data); err != nil {
			return nil, fmt.Errorf("manifest %s: %w", digest, err)
		}
		manifests = append(manifests, digest)
		kind, err := manifestKind(mediaType, data)
		if err != nil {
			return nil, fmt.Errorf("image %q: %w", ref.String(), err)
		}
		if kind == kindManifest {
			if err := json.Unmarshal(data, &mf); err != nil {
				return nil, fmt.Errorf("image %q: manifest %s: %w", ref.String(), digest, err)
			}
			break
		}
		if depth > 2 {
			return nil, fmt.Errorf("image %q: indexes nested too deep", ref.String())
		}
		child, err := selectPlatform(data)
		if err != nil {
			return nil, fmt.Errorf("image %q: %w", ref.String(), err)
		}
		klog.FromContext(ctx).V(2).Info("Pull: the index selects a manifest", "ref", ref, "index", digest, "manifest", child.Digest)
		digest = child.Digest.String()
		if data, mediaType, err = p.fetchManifest(ctx, child); err != nil {
			return nil, err
		}
	}

	cfg, err := p.fetchConfig(ctx, mf)
	if err != nil {
		return nil, err
	}
	m := imageMeta{ID: mf.Config.Digest.String(), Manifests: manifests, Config: cfg.Config}
	m.Size = uint64(mf.Config.Size)
	var specs []layerSpec
	for i, l := range mf.Layers {
		if strings.Contains(l.MediaType, "encrypted") {
			return nil, fmt.Errorf("image %q: encrypted layer %s: %w", ref.String(), l.Digest, errdefs.ErrUnimplemented)
		}
		if why := validateDigest(l.Digest.String()); why != "" || l.Size <= 0 {
			return nil, fmt.Errorf("image %q: layer %d: bad descriptor (%s, size %d)", ref.String(), i, l.Digest, l.Size)
		}
		spec := layerSpec{diffID: cfg.RootFS.DiffIDs[i].String(), blob: l.Digest.String(), size: l.Size}
		specs = append(specs, spec)
		m.Layers = append(m.Layers, layerRef{DiffID: spec.diffID, Blob: spec.blob, Size: spec.size})
		m.Size += uint64(l.Size)
		p.pins.add(pinBlob, spec.blob)
		p.pins.add(pinLayer, spec.diffID)
	}

	t0 = time.Now()
	p.progress.layers = len(specs)
	for _, l := range specs {
		if !s.hasLayer(hexOf(l.diffID)) {
			p.progress.want.Add(l.size)
		}
	}
	stop := make(chan struct{})
	go p.progress.report(ctx, ref, t0, stop)
	// Every layer gets its goroutine at once: downloads wait for a slot,
	// each unpack follows its download.
	g, gctx := errgroup.WithContext(ctx)
	for _, l := range specs {
		g.Go(func() error {
			err := p.ensureLayer(gctx, l)
			if err == nil {
				p.progress.layersDone.Add(1)
			}
			return err
		})
	}
	err = g.Wait()
	close(stop)
	if err != nil {
		return nil, err
	}
	klog.FromContext(ctx).V(2).Info("Pull: layers ready", "ref", ref, "layers", len(specs), "duration", time.Since(t0).Round(time.Millisecond))
	if err := failpoint.Hit("image-pull/after-unpack"); err != nil {
		return nil, err
	}
	// Only now, with every blob and layer in place, is the image recorded.
	return s.commitImage(m, tags, digests)
}

// pinPresent pins the layers of m and reports whether they are all still
// present: a concurrent Remove may have collected them after m was read.
func (p *puller) pinPresent(m imageMeta) bool {
	for _, l := range m.Layers {
		p.pins.add(pinLayer, l.DiffID)
	}
	for _, l := range m.Layers {
		if !p.s.hasLayer(hexOf(l.DiffID)) {
			return false
		}
	}
	return true
}

// resolve fetches the manifest or index that ref names from the first
// endpoint that has it.
func (p *puller) resolve(ctx context.Context) (data []byte, mediaType, digest string, err error) {
	p.first, err = p.each(ctx, "image "+quote(p.ref.String()), func(ep *endpoint) error {
		var target name.Reference = ep.repo.Tag(p.ref.Tag)
		if p.ref.Digest != "" {
			target = ep.repo.Digest(p.ref.Digest)
		}
		desc, err := ep.puller.Get(ctx, target)
		if err != nil {
			return err
		}
		data, mediaType, digest = desc.Manifest, string(desc.MediaType), desc.Digest.String()
		return nil
	})
	return data, mediaType, digest, err
}

// fetchManifest fetches a manifest an index points to.
func (p *puller) fetchManifest(ctx context.Context, d ocispec.Descriptor) (data []byte, mediaType string, err error) {
	if d.Size > maxManifestSize {
		return nil, "", fmt.Errorf("manifest %s: %d bytes is too large", d.Digest, d.Size)
	}
	_, err = p.each(ctx, "manifest "+d.Digest.String(), func(ep *endpoint) error {
		desc, err := ep.puller.Get(ctx, ep.repo.Digest(d.Digest.String()))
		if err != nil {
			return err
		}
		data, mediaType = desc.Manifest, string(desc.MediaType)
		return nil
	})
	return data, mediaType, err
}

// fetchConfig makes the config blob present and parses it.
func (p *puller) fetchConfig(ctx context.Context, mf ocispec.Manifest) (*ocispec.Image, error) {
	d := mf.Config
	switch d.MediaType {
	case ocispec.MediaTypeImageConfig, "application/vnd.docker.container.image.v1+json":
	default:
		return nil, fmt.Errorf("image %q: config media type %q is not a container image: %w", p.ref.String(), d.MediaType, errdefs.ErrUnimplemented)
	}
	if why := validateDigest(d.Digest.String()); why != "" || d.Size <= 0 || d.Size > maxManifestSize {
		return nil, fmt.Errorf("image %q: bad config descriptor (%s, size %d)", p.ref.String(), d.Digest, d.Size)
	}
	digest := d.Digest.String()
	p.pins.add(pinBlob, digest)
	h := hexOf(digest)
	if !p.s.hasBlob(h) {
		err := p.s.once(ctx, "blob:"+h, func(ctx context.Context) error {
			if p.s.hasBlob(h) {
				return nil
			}
			_, err := p.each(ctx, "config "+digest, func(ep *endpoint) error {
				lyr, err := ep.puller.Layer(ctx, ep.repo.Digest(digest))
				if err != nil {
					return err
				}
				rc, err := lyr.Compressed()
				if err != nil {
					return err
				}
				if err := p.s.fetchBlob(ctx, rc, digest, d.Size); err != nil {
					return err
				}
				metrics.ImageBytesPulled(d.Size)
				return nil
			})
			return err
		})
		if err != nil {
			return nil, err
		}
	}
	data, err := os.ReadFile(p.s.blobPath(h))
	if err != nil {
		return nil, err
	}
	var cfg ocispec.Image
	if err := json.Unmarshal(data, &cfg); err != nil {
		return nil, fmt.Errorf("image %q: config %s: %w", p.ref.String(), digest, err)
	}
	if cfg.RootFS.Type != "layers" || len(cfg.RootFS.DiffIDs) != len(mf.Layers) {
		return nil, fmt.Errorf("image %q: config %s lists %d diffIDs of type %q for %d layers",
			p.ref.String(), digest, len(cfg.RootFS.DiffIDs), cfg.RootFS.Type, len(mf.Layers))
	}
	for _, d := range cfg.RootFS.DiffIDs {
		if why := validateDigest(d.String()); why != "" {
			return nil, fmt.Errorf("image %q: config %s: %s", p.ref.String(), digest, why)
		}
	}
	return &cfg, nil
}

// each runs fn against the endpoints, the one that resolved the reference
// first, until one succeeds. Every failure moves on to the next endpoint, as
// containerd does; the combined error is classified by pullError.
// It returns the index of the endpoint that succeeded.
func (p *puller) each(ctx context.Context, what string, fn func(*endpoint) error) (int, error) {
	var attempts []attempt
	for i := range p.eps {
		idx := (p.first + i) % len(p.eps)
		ep := p.eps[idx]
		err := fn(ep)
		if err == nil {
			return idx, nil
		}
		if ctx.Err() != nil {
			return -1, ctx.Err()
		}
		klog.FromContext(ctx).V(2).Info("Pull: endpoint failed", "ref", p.ref, "what", what, "endpoint", ep.display, "err", err)
		attempts = append(attempts, attempt{ep: ep, err: err})
	}
	return -1, pullError(what, p.ref.Domain, attempts)
}
