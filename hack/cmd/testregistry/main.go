// Command testregistry serves a small OCI Distribution registry for crisp's
// tests. It wraps go-containerregistry's pkg/registry with:
//
//   - a disk-backed blob store (<dir>/blobs/sha256/<hex>), and
//   - persistent manifests: every successful manifest PUT/DELETE is recorded
//     in <dir>/manifests/journal.jsonl (manifest bodies are stored
//     content-addressed in <dir>/manifests/sha256/<hex>) and replayed into
//     the in-memory manifest store at start-up.
//
// So a restarted registry serves everything pushed before, without a re-push.
//
// Usage: testregistry [--addr 127.0.0.1:5000] [--dir _output/registry] [--verbose]
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// diskBlobs is a content-addressed blob store on disk. Blobs are only
// renamed into place after the registry has verified their digest, so Stat
// can trust the file size without re-hashing.
type diskBlobs struct {
	dir string
}

var (
	_ registry.BlobHandler       = (*diskBlobs)(nil)
	_ registry.BlobStatHandler   = (*diskBlobs)(nil)
	_ registry.BlobPutHandler    = (*diskBlobs)(nil)
	_ registry.BlobDeleteHandler = (*diskBlobs)(nil)
)

func (d *diskBlobs) path(h v1.Hash) (string, error) {
	if h.Algorithm != "sha256" || len(h.Hex) != 64 || strings.ContainsAny(h.Hex, "/.") {
		return "", fmt.Errorf("%w: unsupported digest %s", registry.ErrNotFound, h)
	}
	return filepath.Join(d.dir, h.Algorithm, h.Hex), nil
}

func (d *diskBlobs) Stat(_ context.Context, _ string, h v1.Hash) (int64, error) {
	p, err := d.path(h)
	if err != nil {
		return 0, err
	}
	fi, err := os.Stat(p)
	if errors.Is(err, os.ErrNotExist) {
		return 0, registry.ErrNotFound
	} else if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

func (d *diskBlobs) Get(_ context.Context, _ string, h v1.Hash) (io.ReadCloser, error) {
	p, err := d.path(h)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, registry.ErrNotFound
	}
	return f, err
}

func (d *diskBlobs) Put(_ context.Context, _ string, h v1.Hash, rc io.ReadCloser) error {
	defer rc.Close()
	p, err := d.path(h)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(p), ".upload-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	// rc verifies size and digest while it is read: an error here means
	// the upload is bad and must not land.
	_, err = io.Copy(f, rc)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, p)
}

func (d *diskBlobs) Delete(_ context.Context, _ string, h v1.Hash) error {
	p, err := d.path(h)
	if err != nil {
		return err
	}
	err = os.Remove(p)
	if errors.Is(err, os.ErrNotExist) {
		return registry.ErrNotFound
	}
	return err
}

// journalEntry records one manifest operation.
type journalEntry struct {
	Op          string `json:"op"` // "put" or "delete"
	Repo        string `json:"repo"`
	Target      string `json:"target"` // tag or digest
	Digest      string `json:"digest,omitempty"`
	ContentType string `json:"contentType,omitempty"`
}

// manifestStore persists manifest PUTs/DELETEs and replays them.
type manifestStore struct {
	dir   string
	mu    sync.Mutex
	state map[string]string // repo + "\x00" + target -> digest (last put)
}

func (m *manifestStore) journalPath() string { return filepath.Join(m.dir, "journal.jsonl") }

func (m *manifestStore) append(e journalEntry) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	key := e.Repo + "\x00" + e.Target
	if e.Op == "put" && m.state[key] == e.Digest {
		return nil // unchanged: keep the journal small on idempotent re-pushes
	}
	f, err := os.OpenFile(m.journalPath(), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	b, _ := json.Marshal(e)
	if _, err := f.Write(append(b, '\n')); err != nil {
		return err
	}
	if e.Op == "put" {
		m.state[key] = e.Digest
	} else {
		delete(m.state, key)
	}
	return nil
}

func (m *manifestStore) storeBody(body []byte) (string, error) {
	h, _, err := v1.SHA256(bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	p := filepath.Join(m.dir, h.Algorithm, h.Hex)
	if _, err := os.Stat(p); err == nil {
		return h.String(), nil
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return "", err
	}
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, body, 0o644); err != nil {
		return "", err
	}
	return h.String(), os.Rename(tmp, p)
}

// replay feeds the journal back into the registry handler.
func (m *manifestStore) replay(h http.Handler) (int, error) {
	f, err := os.Open(m.journalPath())
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	} else if err != nil {
		return 0, err
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var e journalEntry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			continue // torn last line after a crash
		}
		url := "/v2/" + e.Repo + "/manifests/" + e.Target
		key := e.Repo + "\x00" + e.Target
		switch e.Op {
		case "put":
			hash, err := v1.NewHash(e.Digest)
			if err != nil {
				continue
			}
			body, err := os.ReadFile(filepath.Join(m.dir, hash.Algorithm, hash.Hex))
			if err != nil {
				log.Printf("replay: missing manifest body %s for %s:%s", e.Digest, e.Repo, e.Target)
				continue
			}
			req := httptest.NewRequest(http.MethodPut, url, bytes.NewReader(body))
			req.Header.Set("Content-Type", e.ContentType)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusCreated {
				log.Printf("replay: PUT %s: %d %s", url, rec.Code, rec.Body.String())
				continue
			}
			m.state[key] = e.Digest
			n++
		case "delete":
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodDelete, url, nil))
			delete(m.state, key)
		}
	}
	return n, sc.Err()
}

// manifestRequest reports whether r targets /v2/<repo>/manifests/<target>.
func manifestRequest(r *http.Request) (repo, target string, ok bool) {
	p := strings.TrimPrefix(r.URL.Path, "/v2/")
	if p == r.URL.Path {
		return "", "", false
	}
	i := strings.LastIndex(p, "/manifests/")
	if i <= 0 {
		return "", "", false
	}
	repo, target = p[:i], p[i+len("/manifests/"):]
	if target == "" || strings.Contains(target, "/") {
		return "", "", false
	}
	return repo, target, true
}

type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.code = code
	s.ResponseWriter.WriteHeader(code)
}

// persist wraps the registry handler and journals successful manifest writes.
func persist(inner http.Handler, ms *manifestStore) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		repo, target, ok := manifestRequest(r)
		if !ok || (r.Method != http.MethodPut && r.Method != http.MethodDelete) {
			inner.ServeHTTP(w, r)
			return
		}
		var body []byte
		if r.Method == http.MethodPut {
			b, err := io.ReadAll(io.LimitReader(r.Body, 16<<20))
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			body = b
			r.Body = io.NopCloser(bytes.NewReader(b))
		}
		sr := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		inner.ServeHTTP(sr, r)
		switch {
		case r.Method == http.MethodPut && sr.code == http.StatusCreated:
			dgst, err := ms.storeBody(body)
			if err == nil {
				err = ms.append(journalEntry{Op: "put", Repo: repo, Target: target, Digest: dgst, ContentType: r.Header.Get("Content-Type")})
			}
			if err != nil {
				log.Printf("persist manifest %s:%s: %v", repo, target, err)
			}
		case r.Method == http.MethodDelete && sr.code == http.StatusAccepted:
			if err := ms.append(journalEntry{Op: "delete", Repo: repo, Target: target}); err != nil {
				log.Printf("persist delete %s:%s: %v", repo, target, err)
			}
		}
	})
}

func main() {
	addr := flag.String("addr", "127.0.0.1:5000", "address to listen on")
	dir := flag.String("dir", "_output/registry", "directory holding blobs and manifests")
	verbose := flag.Bool("verbose", false, "log every request")
	flag.Parse()

	for _, d := range []string{filepath.Join(*dir, "blobs"), filepath.Join(*dir, "manifests")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			log.Fatal(err)
		}
	}
	reqLog := log.New(io.Discard, "", 0)
	if *verbose {
		reqLog = log.New(os.Stderr, "testregistry: ", log.LstdFlags)
	}
	inner := registry.New(
		registry.Logger(reqLog),
		registry.WithBlobHandler(&diskBlobs{dir: filepath.Join(*dir, "blobs")}),
	)
	ms := &manifestStore{dir: filepath.Join(*dir, "manifests"), state: map[string]string{}}
	n, err := ms.replay(inner)
	if err != nil {
		log.Fatalf("replaying manifests: %v", err)
	}

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Handler: persist(inner, ms), ReadHeaderTimeout: 30 * time.Second}
	log.Printf("testregistry: serving %s from %s (%d manifests restored)", ln.Addr(), *dir, n)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
}
