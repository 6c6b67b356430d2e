//go:build integration

package test

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	ggcrmutate "github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/gzip"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crisp-runtime/crisp/test/harness"
)

// blobProxy forwards to the test registry and lets a test reshape the body
// of every blob GET (throttle, stall, corrupt); shape also sees the request
// for its digest and Range header. It returns the proxy's host:port.
func blobProxy(t *testing.T, shape func(req *http.Request, resp *http.Response) io.ReadCloser) string {
	t.Helper()
	target, _ := url.Parse("http://" + harness.RegistryAddr())
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.ModifyResponse = func(resp *http.Response) error {
		if resp.Request.Method == http.MethodGet && strings.Contains(resp.Request.URL.Path, "/blobs/") {
			resp.Body = shape(resp.Request, resp)
		}
		return nil
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: rp}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return l.Addr().String()
}

func blobDigest(req *http.Request) string {
	return req.URL.Path[strings.LastIndex(req.URL.Path, "/")+1:]
}

// throttled delivers at most n bytes per tick, until ctx ends.
type throttled struct {
	r    io.ReadCloser
	n    int
	tick time.Duration
	done <-chan struct{}
}

func (s *throttled) Read(p []byte) (int, error) {
	select {
	case <-time.After(s.tick):
	case <-s.done:
		return 0, io.ErrUnexpectedEOF
	}
	return s.r.Read(p[:min(len(p), s.n)])
}

func (s *throttled) Close() error { return s.r.Close() }

// TestSlowPullIsNotCancelled: a pull that moves slowly but steadily runs
// far past the progress timeout and succeeds, even for layers that wait
// longer than the timeout for a download slot (containerd#12811's kind of
// bug is a timer that counts time rather than bytes). The pull's progress
// is logged while it runs.
func TestSlowPullIsNotCancelled(t *testing.T) {
	harness.RequireRegistry(t)
	const timeout = time.Second
	d := harness.Start(t, harness.WithArgs("--image-pull-progress-timeout", timeout.String(), "--max-concurrent-downloads", "1"))
	// 8 KiB every 16 ms, about 500 KiB/s: busybox's 3.3 MB layer takes ~6 s.
	proxy := blobProxy(t, func(req *http.Request, resp *http.Response) io.ReadCloser {
		return &throttled{r: resp.Body, n: 8 << 10, tick: 16 * time.Millisecond, done: req.Context().Done()}
	})
	start := time.Now()
	pull(t, d, proxy+"/"+whiteoutImage)
	took := time.Since(start)
	if took < 3*timeout {
		t.Fatalf("the throttled pull took %v, not long enough past the %v progress timeout to test it", took, timeout)
	}
	log, _ := os.ReadFile(d.LogPath)
	if !strings.Contains(string(log), `"Pull progress"`) || !strings.Contains(string(log), "layersDone=") {
		t.Errorf("a %v pull logged no progress line:\n%s", took.Round(time.Second), d.LogTail(20))
	}
	t.Logf("throttled pull took %v with a %v progress timeout", took.Round(100*time.Millisecond), timeout)
}

// stalled sends the first bytes of a body and then nothing until the client
// gives up.
type stalled struct {
	r    io.ReadCloser
	left int
	done <-chan struct{}
}

func (s *stalled) Read(p []byte) (int, error) {
	if s.left <= 0 {
		<-s.done
		return 0, io.ErrUnexpectedEOF
	}
	n, err := s.r.Read(p[:min(len(p), s.left)])
	s.left -= n
	return n, err
}

func (s *stalled) Close() error { return s.r.Close() }

// TestStalledPullFailsWithActionableError: a registry that stops sending
// mid-layer fails the pull after the progress timeout as Unavailable, with
// an error that names the layer, the endpoint and the setting. Nothing of
// the stalled layer is kept; the layers that completed are, for the retry.
func TestStalledPullFailsWithActionableError(t *testing.T) {
	harness.RequireRegistry(t)
	d := harness.Start(t, harness.WithArgs("--image-pull-progress-timeout", "1s"))
	proxy := blobProxy(t, func(req *http.Request, resp *http.Response) io.ReadCloser {
		if resp.ContentLength > 1<<20 {
			return &stalled{r: resp.Body, left: 64 << 10, done: req.Context().Done()}
		}
		return resp.Body
	})
	_, err := d.Images.PullImage(harness.Ctx(t), &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: proxy + "/" + whiteoutImage}})
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("stalled pull: want Unavailable, got %v", err)
	}
	for _, want := range []string{"made no progress for 1s", "image_pull_progress_timeout", proxy, "layer sha256:"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q: %v", want, err)
		}
	}
	if n := len(layerDirs(t, d)); n >= 3 {
		t.Errorf("%d layer directories after a pull whose layer stalled", n)
	}
	tmp, _ := os.ReadDir(filepath.Join(d.Root, "images", "tmp"))
	if len(tmp) != 0 {
		t.Errorf("temporary files left after the failed pull: %d", len(tmp))
	}
	pull(t, d, harness.RegistryAddr()+"/"+whiteoutImage)
	if n := len(layerDirs(t, d)); n != 3 {
		t.Errorf("%d layer directories after the retry, want 3", n)
	}
}

// rangedImage pushes (once; its content is fixed) an image whose one layer
// is large enough to be fetched in range requests: a 40 MiB file of
// incompressible bytes. It returns the repository path, the layer's blob
// digest and diffID, and the file's sha256.
func rangedImage(t *testing.T) (ref, blob, diffID, fileSum string) {
	t.Helper()
	data := make([]byte, 40<<20)
	rand.NewChaCha8([32]byte{'c', 'r', 'i', 's', 'p'}).Read(data)
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	hdr := &tar.Header{Name: "data/blob.bin", Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg, ModTime: time.Unix(1704067200, 0)}
	if err := tw.WriteHeader(hdr); err != nil {
		t.Fatal(err)
	}
	tw.Write(data)
	tw.Close()
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestSpeed)
	zw.Write(tb.Bytes())
	zw.Close()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(gz.Bytes())), nil },
		tarball.WithMediaType(types.OCILayer))
	if err != nil {
		t.Fatal(err)
	}
	img, err := ggcrmutate.AppendLayers(ggcrmutate.MediaType(empty.Image, types.OCIManifestSchema1), layer)
	if err != nil {
		t.Fatal(err)
	}
	img, err = ggcrmutate.ConfigFile(img, mustConfig(t, img))
	if err != nil {
		t.Fatal(err)
	}
	ref = "crisp-test/ranged:1"
	r, err := name.ParseReference(harness.RegistryAddr()+"/"+ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatalf("pushing %s: %v", r, err)
	}
	b, _ := layer.Digest()
	dd, _ := layer.DiffID()
	sum := sha256.Sum256(data)
	return ref, b.String(), dd.String(), hex.EncodeToString(sum[:])
}

func mustConfig(t *testing.T, img v1.Image) *v1.ConfigFile {
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.Architecture, cf.OS = "amd64", "linux"
	cf.Config.Cmd = []string{"/bin/true"}
	return cf
}

// TestRangedPull: a large layer is fetched in parallel range requests from
// a registry that serves them, verified as it arrives and unpacked intact;
// one corrupted range fails the pull with a digest error and keeps nothing.
func TestRangedPull(t *testing.T) {
	harness.RequireRegistry(t)
	ref, blob, diffID, fileSum := rangedImage(t)

	t.Run("intact", func(t *testing.T) {
		d := harness.Start(t)
		var mu sync.Mutex
		ranges := map[string]int{} // Range header -> status
		proxy := blobProxy(t, func(req *http.Request, resp *http.Response) io.ReadCloser {
			if blobDigest(req) == blob {
				mu.Lock()
				ranges[req.Header.Get("Range")] = resp.StatusCode
				mu.Unlock()
			}
			return resp.Body
		})
		pull(t, d, proxy+"/"+ref)
		mu.Lock()
		defer mu.Unlock()
		partial := 0
		for r, code := range ranges {
			if r != "" && code == http.StatusPartialContent {
				partial++
			}
		}
		if partial < 2 || ranges[""] != 0 {
			t.Errorf("the 40 MiB layer was not fetched in ranges: %v", ranges)
		}
		f := filepath.Join(d.Root, "images", "layers", "sha256", strings.TrimPrefix(diffID, "sha256:"), "data", "blob.bin")
		got, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if sum := sha256.Sum256(got); hex.EncodeToString(sum[:]) != fileSum {
			t.Fatalf("%s: content differs from the layer's (%d bytes)", f, len(got))
		}
	})

	t.Run("corrupted range", func(t *testing.T) {
		d := harness.Start(t)
		proxy := blobProxy(t, func(req *http.Request, resp *http.Response) io.ReadCloser {
			// The second range: the first has been verified by then.
			if blobDigest(req) != blob || !strings.HasPrefix(req.Header.Get("Range"), fmt.Sprintf("bytes=%d-", 16<<20)) {
				return resp.Body
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || len(body) < 1000 {
				t.Errorf("second range: %d bytes, %v", len(body), err)
			} else {
				body[len(body)/2] ^= 0xff
			}
			return io.NopCloser(bytes.NewReader(body))
		})
		_, err := d.Images.PullImage(harness.Ctx(t), &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: proxy + "/" + ref}})
		if err == nil || !strings.Contains(err.Error(), "digest") {
			t.Fatalf("a corrupted range was accepted or not reported as a digest mismatch: %v", err)
		}
		if n := len(layerDirs(t, d)); n != 0 {
			t.Fatalf("%d layer directories kept from a corrupted pull", n)
		}
		if list, _ := d.Images.ListImages(harness.Ctx(t), &runtimeapi.ListImagesRequest{}); len(list.GetImages()) != 0 {
			t.Fatalf("image recorded despite corruption: %v", list.Images)
		}
	})
}

// TestLayerOrderWithParallelUnpack: the whiteout image's data layer is held
// back so that the layer above it, whose whiteouts and opaque directory
// delete the data layer's files, is unpacked and committed first; the
// container still sees the layers applied in manifest order.
func TestLayerOrderWithParallelUnpack(t *testing.T) {
	harness.RequireRegistry(t)
	r, err := name.ParseReference(harness.RegistryAddr()+"/"+whiteoutImage, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(r)
	if err != nil {
		t.Fatal(err)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 3 {
		t.Fatalf("%s: %d layers, %v", r, len(layers), err)
	}
	dataBlob, _ := layers[1].Digest()
	upperBlob, _ := layers[2].Digest()

	d := harness.Start(t)
	proxy := blobProxy(t, func(req *http.Request, resp *http.Response) io.ReadCloser {
		if blobDigest(req) == dataBlob.String() {
			select {
			case <-time.After(2 * time.Second):
			case <-req.Context().Done():
			}
		}
		return resp.Body
	})
	ref := proxy + "/" + whiteoutImage
	pull(t, d, ref)
	fetched := func(blob v1.Hash) int {
		log, _ := os.ReadFile(d.LogPath)
		for i, line := range strings.Split(string(log), "\n") {
			if strings.Contains(line, `"Pull: layer fetched"`) && strings.Contains(line, `blob="`+blob.String()+`"`) {
				return i
			}
		}
		return -1
	}
	upperAt, dataAt := fetched(upperBlob), fetched(dataBlob)
	if upperAt < 0 || dataAt < 0 || upperAt > dataAt {
		t.Fatalf("the upper layer was not unpacked before the held-back data layer (log positions %d, %d):\n%s", upperAt, dataAt, d.LogTail(30))
	}

	pod, podCfg := ctrPod(t, d, "layer-order")
	cfg := ctrConfig("ls", "cd /data && find . | sort && cat keep.txt opaque/new.txt")
	cfg.Image = &runtimeapi.ImageSpec{Image: ref, UserSpecifiedImage: ref}
	id := runCtr(t, d, pod, podCfg, cfg)
	if st := waitExited(t, d, id, 30*time.Second); st.ExitCode != 0 {
		t.Fatalf("listing /data exited %d", st.ExitCode)
	}
	var got []string
	for _, l := range readCRILog(t, logPathOf(podCfg, cfg)) {
		got = append(got, l.text)
	}
	want := []string{".", "./keep.txt", "./links", "./links/hardlink.txt", "./links/original.txt", "./links/symlink-abs",
		"./links/symlink-rel", "./opaque", "./opaque/new.txt", "./plain", "./plain/a.txt", "./plain/b.txt", "keep", "new"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("/data in the container:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
