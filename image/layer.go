package image

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"k8s.io/klog/v2"

	"github.com/crisp-runtime/crisp/image/unpack"
	"github.com/crisp-runtime/crisp/internal/atomicfile"
	"github.com/crisp-runtime/crisp/internal/failpoint"
	"github.com/crisp-runtime/crisp/internal/metrics"
	"github.com/crisp-runtime/crisp/internal/tracing"
)

// layerSpec is one layer to make present: its compressed blob (as the
// manifest describes it) and its uncompressed digest (from the config).
type layerSpec struct {
	diffID string
	blob   string
	size   int64
}

func (s *Store) hasLayer(h string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, ok := s.layers[h]
	return ok
}

// flight is one running call of once.
type flight struct {
	done chan struct{}
	err  error
}

// once runs fn at most once at a time per key (a digest) across all pulls;
// concurrent callers wait for the running call and share its result, so a
// blob shared by two images is fetched and unpacked once. The caller that
// runs fn does so in its own goroutine, so when its context is cancelled it
// returns only after fn has cleaned up. A waiter whose context is alive
// retries instead of failing with the cancellation of the caller it waited
// for.
func (s *Store) once(ctx context.Context, key string, fn func(context.Context) error) error {
	for {
		s.flightMu.Lock()
		if f, ok := s.flights[key]; ok {
			s.flightMu.Unlock()
			select {
			case <-f.done:
				if f.err != nil && isCtxErr(f.err) && ctx.Err() == nil {
					continue
				}
				return f.err
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		f := &flight{done: make(chan struct{})}
		s.flights[key] = f
		s.flightMu.Unlock()
		func() {
			defer func() {
				s.flightMu.Lock()
				delete(s.flights, key)
				s.flightMu.Unlock()
				close(f.done)
			}()
			f.err = fn(ctx)
		}()
		return f.err
	}
}

// ensureLayer makes layer l present in layers/, downloading and unpacking it
// unless it already is. The caller has pinned it.
func (p *puller) ensureLayer(ctx context.Context, l layerSpec) error {
	s := p.s
	h := hexOf(l.diffID)
	if s.hasLayer(h) {
		klog.FromContext(ctx).V(2).Info("Pull: layer already present", "ref", p.ref, "layer", l.diffID)
		return nil
	}
	ctx, span := tracing.Start(ctx, "image.pull_layer", attribute.String("image.layer.digest", l.blob), attribute.Int64("image.layer.size", l.size))
	err := s.once(ctx, "layer:"+h, func(ctx context.Context) error {
		if s.hasLayer(h) { // finished by the call we were waiting for
			return nil
		}
		_, err := p.each(ctx, "layer "+l.blob, func(ep *endpoint) error {
			start := time.Now()
			if err := p.fetchLayer(ctx, ep, l); err != nil {
				return err
			}
			metrics.ImageBytesPulled(l.size)
			metrics.LayerUnpacked()
			klog.FromContext(ctx).V(2).Info("Pull: layer fetched", "ref", p.ref, "blob", l.blob, "bytes", l.size, "endpoint", ep.display, "duration", time.Since(start).Round(time.Millisecond))
			return nil
		})
		return err
	})
	tracing.End(span, err)
	return err
}

// fetchLayer downloads layer l from ep into a temporary file while
// unpacking it from that file as the bytes arrive. The download holds one
// of the pull's download slots only while it downloads, so the next
// layer's download starts when this one's ends, not when its unpack does;
// each layer unpacks into a directory of its own, so layers unpack in
// parallel and their order matters only when overlayfs stacks them.
func (p *puller) fetchLayer(ctx context.Context, ep *endpoint, l layerSpec) (err error) {
	s := p.s
	work, err := os.MkdirTemp(s.tmpDir(), "layer-"+hexOf(l.diffID)[:12]+"-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	// The compressed blob is only a buffer between download and unpack:
	// nothing reads a layer's blob again once it is unpacked (CRI-O keeps
	// none either), and it is deleted before most of it reaches the disk.
	f, err := os.Create(filepath.Join(work, "blob"))
	if err != nil {
		return err
	}
	defer f.Close()

	dctx, cancel := context.WithCancel(ctx)
	defer cancel()
	d := newDownload(f, l.size, nil)
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		if err := p.download(dctx, ep, l, d); err != nil {
			d.fail(err)
		}
	}()
	err = s.unpackLayer(ctx, d.follow(), l, filepath.Join(work, "fs"))
	if err != nil {
		// A failed download is the cause of whatever the unpack tripped over.
		if derr := d.failure(); derr != nil {
			err = derr
		}
	}
	cancel()
	<-finished
	return err
}

// download fetches l's blob into d once a download slot is free. The stall
// clock starts only then and counts bytes of every range request, so a pull
// that waits for a slot or moves slowly is never taken for stalled.
func (p *puller) download(ctx context.Context, ep *endpoint, l layerSpec, d *download) error {
	select {
	case p.slots <- struct{}{}:
		defer func() { <-p.slots }()
	case <-ctx.Done():
		return ctx.Err()
	}
	guard := newStallGuard(ctx, p.s.opts.ProgressTimeout, "layer "+l.blob, ep.display)
	defer guard.Stop()
	d.onRecv = func(n int) {
		guard.Progress()
		p.progress.received(n)
	}
	client, err := ep.blobClient(guard.Context())
	if err != nil {
		return guard.Err(err)
	}
	return guard.Err(d.run(guard.Context(), client, ep.blobURL(l.blob)))
}

// unpackLayer unpacks a compressed layer stream into fsDir in one pass: the
// bytes are hashed, decompressed, hashed again for the diffID and
// extracted. Nothing becomes visible unless both digests verify: the layer
// directory is renamed into place only afterwards.
func (s *Store) unpackLayer(ctx context.Context, body io.Reader, l layerSpec, fsDir string) (err error) {
	ctx, span := tracing.Start(ctx, "image.unpack", attribute.String("image.layer.diff_id", l.diffID))
	defer func() { tracing.End(span, err) }()
	if err := os.Mkdir(fsDir, 0o755); err != nil {
		return err
	}
	compressed := newVerifier(body, l.blob, l.size)
	var src io.Reader = compressed
	dec, err := unpack.Decompress(src)
	if err != nil {
		return fmt.Errorf("layer %s: %w", l.blob, s.blame(compressed, src, err))
	}
	defer dec.Close()
	diff := sha256.New()
	tarStream := readAhead(dec, diff)
	// Stopped before anything else reads src, sums diff or closes dec.
	defer tarStream.Close()
	if _, err := unpack.Apply(ctx, tarStream, fsDir, s.opts.LayerLimits); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		tarStream.Close()
		return fmt.Errorf("unpack layer %s: %w", l.blob, s.blame(compressed, src, err))
	}
	// Extracted into tmp/, nothing verified yet.
	if err := failpoint.Hit("image-pull/mid-layer"); err != nil {
		return err
	}
	// Apply stops at the tar end marker; the padding after it is part of
	// both digests, so read the streams to their ends.
	if _, err := io.Copy(io.Discard, tarStream); err != nil {
		tarStream.Close()
		return fmt.Errorf("layer %s: %w", l.blob, s.blame(compressed, src, err))
	}
	tarStream.Close()
	if _, err := io.Copy(io.Discard, src); err != nil {
		return fmt.Errorf("layer %s: %w", l.blob, err)
	}
	if err := compressed.check(); err != nil {
		return err
	}
	if got := "sha256:" + hex.EncodeToString(diff.Sum(nil)); got != l.diffID {
		return fmt.Errorf("layer %s: uncompressed content hashes to %s, image config says %s: %w", l.blob, got, l.diffID, errDigestMismatch)
	}
	info, err := measure(fsDir)
	if err != nil {
		return err
	}
	return s.commitLayer(hexOf(l.diffID), fsDir, info)
}

// blame explains a decompression or extraction failure: if the compressed
// bytes do not match their digest, that corruption is the cause to report,
// not whatever the decompressor or tar reader tripped over.
func (s *Store) blame(v *verifier, src io.Reader, err error) error {
	if errors.Is(err, errDigestMismatch) {
		return err
	}
	if _, cerr := io.Copy(io.Discard, src); cerr != nil {
		if errors.Is(cerr, errDigestMismatch) {
			return cerr
		}
		return fmt.Errorf("%w (and reading the rest failed: %v)", err, cerr)
	}
	if cerr := v.check(); cerr != nil {
		return cerr
	}
	return err
}

// commitLayer renames an unpacked, verified directory into place. Its
// bookkeeping file is written first, so New() can treat a layer directory
// without one as incomplete; it marks the layer unflushed, and the syncer
// flushes it after the pull (durable.go).
func (s *Store) commitLayer(h, dir string, info layerInfo) error {
	var ok bool
	if info.Unsynced, ok = deferSync(); !ok {
		if err := unpack.SyncDir(dir); err != nil {
			return err
		}
	}
	data, err := json.Marshal(info)
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(s.layerInfoPath(h), data, 0o600); err != nil {
		return err
	}
	s.mu.Lock()
	if _, ok := s.layers[h]; ok {
		s.mu.Unlock()
		if info.Unsynced != "" {
			s.queueSync(h, info) // its info was just marked again
		}
		return nil
	}
	if err := os.Rename(dir, s.layerPath(h)); err != nil {
		s.mu.Unlock()
		return fmt.Errorf("store layer sha256:%s: %w", h, err)
	}
	s.layers[h] = info
	s.used.UsedBytes += info.Bytes
	s.used.InodesUsed += info.Inodes + 1
	s.mu.Unlock()
	if info.Unsynced != "" {
		s.queueSync(h, info)
	}
	return atomicfile.SyncDir(s.layerDir())
}

// measure walks a freshly unpacked layer once to count what Usage reports:
// allocated bytes and inodes, hard links counted once.
func measure(dir string) (layerInfo, error) {
	var li layerInfo
	seen := map[uint64]bool{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Nlink > 1 && !fi.IsDir() {
			if seen[st.Ino] {
				return nil
			}
			seen[st.Ino] = true
		}
		li.Inodes++
		li.Bytes += diskBytes(fi)
		return nil
	})
	return li, err
}
