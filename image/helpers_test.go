package image

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"k8s.io/klog/v2"
)

// testRegistry is go-containerregistry's in-process registry on 127.0.0.1,
// wrapped to count blob GETs and to corrupt chosen blobs.
type testRegistry struct {
	t    *testing.T
	srv  *httptest.Server
	host string

	mu       sync.Mutex
	blobGETs map[string]int    // digest -> GETs
	tamper   map[string][]byte // digest -> bytes to serve instead
	stall    map[string]bool   // digest -> send a little, then nothing
	requests int
	auth     string // "user:pass" required for every request if set
}

func newTestRegistry(t *testing.T) *testRegistry {
	t.Helper()
	r := &testRegistry{t: t, blobGETs: map[string]int{}, tamper: map[string][]byte{}, stall: map[string]bool{}}
	inner := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.requests++
		auth, tampered, stall := r.auth, []byte(nil), false
		if i := strings.Index(req.URL.Path, "/blobs/sha256:"); i >= 0 && req.Method == http.MethodGet {
			d := req.URL.Path[i+len("/blobs/"):]
			r.blobGETs[d]++
			tampered, stall = r.tamper[d], r.stall[d]
		}
		r.mu.Unlock()
		if auth != "" {
			if u, p, ok := req.BasicAuth(); !ok || u+":"+p != auth {
				w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
				http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"login"}]}`, http.StatusUnauthorized)
				return
			}
		}
		if tampered != nil {
			w.Header().Set("Content-Length", fmt.Sprint(len(tampered)))
			w.Write(tampered)
			return
		}
		if stall {
			w = &stallingWriter{ResponseWriter: w, ctx: req.Context(), left: 512}
		}
		inner.ServeHTTP(w, req)
	}))
	t.Cleanup(r.srv.Close)
	r.host = strings.TrimPrefix(r.srv.URL, "http://")
	return r
}

func (r *testRegistry) gets(d string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.blobGETs[d]
}

func (r *testRegistry) totalBlobGETs() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, c := range r.blobGETs {
		n += c
	}
	return n
}

// push writes img to this registry as repo:tag ("repo" without host).
func (r *testRegistry) push(repoTag string, img v1.Image) {
	r.t.Helper()
	ref, err := name.ParseReference(r.host+"/"+repoTag, name.Insecure)
	if err != nil {
		r.t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		r.t.Fatalf("push %s: %v", ref, err)
	}
}

func (r *testRegistry) pushIndex(repoTag string, idx v1.ImageIndex) {
	r.t.Helper()
	ref, err := name.ParseReference(r.host+"/"+repoTag, name.Insecure)
	if err != nil {
		r.t.Fatal(err)
	}
	if err := remote.WriteIndex(ref, idx); err != nil {
		r.t.Fatalf("push %s: %v", ref, err)
	}
}

// testImage builds a schema 2 image of n random layers plus extra layers,
// with an Env so the config is checked end to end.
func testImage(t *testing.T, n int, extra ...v1.Layer) v1.Image {
	t.Helper()
	var layers []v1.Layer
	for range n {
		l, err := random.Layer(2048, types.DockerLayer)
		if err != nil {
			t.Fatal(err)
		}
		layers = append(layers, l)
	}
	img, err := mutate.AppendLayers(empty.Image, append(layers, extra...)...)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Config.Env = []string{"PATH=/bin", fmt.Sprintf("LAYERS=%d", len(layers))}
	cf.Config.Cmd = []string{"/bin/sh"}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func mustDigest(t *testing.T, img interface{ Digest() (v1.Hash, error) }) string {
	t.Helper()
	h, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return h.String()
}

func imageID(t *testing.T, img v1.Image) string {
	t.Helper()
	h, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	return h.String()
}

func layerDigests(t *testing.T, img v1.Image) (blobs, diffIDs []string) {
	t.Helper()
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range ls {
		b, _ := l.Digest()
		d, _ := l.DiffID()
		blobs, diffIDs = append(blobs, b.String()), append(diffIDs, d.String())
	}
	return blobs, diffIDs
}

func compressedBytes(t *testing.T, l v1.Layer) []byte {
	t.Helper()
	rc, err := l.Compressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func newTestStore(t *testing.T, root string, mod func(*Options)) *Store {
	t.Helper()
	opts := Options{Root: root, InsecureRegistries: []string{"127.0.0.1:*", "localhost:*"}}
	if mod != nil {
		mod(&opts)
	}
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	testStores.Store(root, s)
	return s
}

// testStores lets storeContent wait for the background deletion of the
// store it looks at, so tests see the state a finished removal leaves.
var testStores sync.Map // root -> *Store

// dirNames lists a directory, ignoring a missing one.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}

func storeContent(t *testing.T, root string) (blobs, layers, tmp []string) {
	if s, ok := testStores.Load(root); ok {
		s.(*Store).trash.Wait()
	}
	return dirNames(t, filepath.Join(root, "blobs", "sha256")),
		dirNames(t, filepath.Join(root, "layers", "sha256")),
		dirNames(t, filepath.Join(root, "tmp"))
}

// pushTLS pushes a one-layer image to an httptest TLS server, trusting it.
func pushTLS(t *testing.T, srv *httptest.Server, ref string) v1.Image {
	t.Helper()
	img := testImage(t, 1)
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img, remote.WithTransport(srv.Client().Transport)); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	return img
}

// TestMain registers klog's flags so `go test ./image -args -v=2` shows the
// pull steps.
func TestMain(m *testing.M) {
	klog.InitFlags(nil)
	flag.Parse()
	os.Exit(m.Run())
}

// setStall makes GETs of blob digest stall (on) or answer again.
func (r *testRegistry) setStall(digest string, on bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if on {
		r.stall[digest] = true
	} else {
		delete(r.stall, digest)
	}
}

// layerDigest is the compressed digest of layer i of img.
func layerDigest(t *testing.T, img v1.Image, i int) string {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	d, err := layers[i].Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

// stallingWriter passes the first bytes of a response on, then blocks until
// the client goes away: a registry that keeps the connection but sends
// nothing.
type stallingWriter struct {
	http.ResponseWriter
	ctx  context.Context
	left int
}

func (s *stallingWriter) Write(b []byte) (int, error) {
	if len(b) <= s.left {
		s.left -= len(b)
		return s.ResponseWriter.Write(b)
	}
	n, _ := s.ResponseWriter.Write(b[:s.left])
	s.left = 0
	s.ResponseWriter.(http.Flusher).Flush()
	<-s.ctx.Done()
	return n, s.ctx.Err()
}
