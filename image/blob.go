package image

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"

	"github.com/crisp-runtime/crisp/internal/atomicfile"
)

// errDigestMismatch marks content that does not hash to its digest.
var errDigestMismatch = errors.New("digest mismatch")

func (s *Store) hasBlob(h string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, ok := s.blobs[h]
	return ok
}

// verifier checks a stream against its descriptor while it is read: it counts
// and hashes, and refuses to read past the expected size so a hostile
// registry cannot stream forever.
type verifier struct {
	r      io.Reader
	h      hash.Hash
	n      int64
	size   int64 // <= 0: unknown
	digest string
}

func newVerifier(r io.Reader, digest string, size int64) *verifier {
	return &verifier{r: r, h: sha256.New(), size: size, digest: digest}
}

func (v *verifier) Read(p []byte) (int, error) {
	n, err := v.r.Read(p)
	v.h.Write(p[:n])
	v.n += int64(n)
	if v.size > 0 && v.n > v.size {
		return n, fmt.Errorf("blob %s is larger than its descriptor's %d bytes: %w", v.digest, v.size, errDigestMismatch)
	}
	// go-containerregistry verifies too and fails the last read with its
	// own untyped error; if every byte arrived, report our typed verdict.
	if err != nil && err != io.EOF && v.size > 0 && v.n == v.size {
		if cerr := v.check(); cerr != nil {
			return n, cerr
		}
	}
	return n, err
}

// check is called after the stream was read to EOF.
func (v *verifier) check() error {
	if v.size > 0 && v.n != v.size {
		return fmt.Errorf("blob %s: got %d bytes, descriptor says %d: %w", v.digest, v.n, v.size, errDigestMismatch)
	}
	if got := "sha256:" + hex.EncodeToString(v.h.Sum(nil)); got != v.digest {
		return fmt.Errorf("blob %s: content hashes to %s: %w", v.digest, got, errDigestMismatch)
	}
	return nil
}

// putBlob stores small content (manifests) already in memory.
func (s *Store) putBlob(digest string, data []byte) error {
	sum := sha256.Sum256(data)
	if got := "sha256:" + hex.EncodeToString(sum[:]); got != digest {
		return fmt.Errorf("content %s hashes to %s: %w", digest, got, errDigestMismatch)
	}
	if s.hasBlob(hexOf(digest)) {
		return nil
	}
	f, err := os.CreateTemp(s.tmpDir(), "blob-")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	_, err = f.Write(data)
	return s.finishBlob(f, err, digest)
}

// fetchBlob streams a blob into the store, verified against digest and size.
func (s *Store) fetchBlob(ctx context.Context, rc io.ReadCloser, digest string, size int64) error {
	defer rc.Close()
	f, err := os.CreateTemp(s.tmpDir(), "blob-")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	v := newVerifier(rc, digest, size)
	_, err = io.Copy(f, v)
	if err == nil {
		err = v.check()
	}
	if err == nil {
		err = ctx.Err()
	}
	return s.finishBlob(f, err, digest)
}

// finishBlob syncs and closes a verified temporary file and renames it into
// place. err is the outcome of writing it; on error the file is dropped.
func (s *Store) finishBlob(f *os.File, err error, digest string) error {
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return s.commitBlob(f.Name(), digest)
}

// commitBlob renames a complete, verified, synced file into blobs/. If the
// blob appeared meanwhile (a concurrent pull) the copy is discarded.
func (s *Store) commitBlob(tmp, digest string) error {
	h := hexOf(digest)
	s.mu.Lock()
	if _, ok := s.blobs[h]; ok {
		s.mu.Unlock()
		return os.Remove(tmp)
	}
	if err := os.Rename(tmp, s.blobPath(h)); err != nil {
		s.mu.Unlock()
		return fmt.Errorf("store blob %s: %w", digest, err)
	}
	var size uint64
	if fi, err := os.Stat(s.blobPath(h)); err == nil {
		size = diskBytes(fi)
	}
	s.blobs[h] = size
	s.used.UsedBytes += size
	s.used.InodesUsed++
	s.mu.Unlock()
	// Durable before any image metadata that references it is written.
	return atomicfile.SyncDir(s.blobDir())
}
