//go:build integration

package test

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crisp-runtime/crisp/test/harness"
)

const (
	busybox   = "registry.k8s.io/e2e-test-images/busybox:1.29-2"
	bigImage  = "crisp-test/big:1" // ~50 MB in several layers, see hack/images
	tagsImage = "gcr.io/k8s-staging-cri-tools/test-image-tags"
)

func pull(t *testing.T, d *harness.Daemon, ref string) string {
	t.Helper()
	resp, err := d.Images.PullImage(harness.Ctx(t), &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: ref}})
	if err != nil {
		t.Fatalf("pull %s: %v", ref, err)
	}
	if !strings.HasPrefix(resp.ImageRef, "sha256:") {
		t.Fatalf("pull %s: image ref %q is not a config digest", ref, resp.ImageRef)
	}
	return resp.ImageRef
}

func imageStatus(t *testing.T, d *harness.Daemon, ref string) *runtimeapi.Image {
	t.Helper()
	st, err := d.Images.ImageStatus(harness.Ctx(t), &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: ref}})
	if err != nil {
		t.Fatalf("status %s: %v", ref, err)
	}
	return st.GetImage()
}

func TestImagePullStatusListRemove(t *testing.T) {
	harness.RequireRegistry(t)
	d := harness.Start(t)
	id := pull(t, d, busybox)

	img := imageStatus(t, d, busybox)
	if img == nil || img.Id != id {
		t.Fatalf("status by tag: %+v, want id %s", img, id)
	}
	if len(img.RepoTags) != 1 || img.RepoTags[0] != busybox {
		t.Errorf("repo tags %v: the upstream name must be kept through the mirror", img.RepoTags)
	}
	if len(img.RepoDigests) != 1 || !strings.HasPrefix(img.RepoDigests[0], "registry.k8s.io/e2e-test-images/busybox@sha256:") {
		t.Errorf("repo digests %v", img.RepoDigests)
	}
	if img.Size == 0 {
		t.Error("image size is 0")
	}
	for _, ref := range []string{id, strings.TrimPrefix(id, "sha256:"), img.RepoDigests[0]} {
		if got := imageStatus(t, d, ref); got == nil || got.Id != id {
			t.Errorf("status by %q: %+v", ref, got)
		}
	}

	list, err := d.Images.ListImages(harness.Ctx(t), &runtimeapi.ListImagesRequest{})
	if err != nil || len(list.Images) != 1 || list.Images[0].Id != id {
		t.Fatalf("list: %v %v", list, err)
	}
	filtered, err := d.Images.ListImages(harness.Ctx(t), &runtimeapi.ListImagesRequest{Filter: &runtimeapi.ImageFilter{Image: &runtimeapi.ImageSpec{Image: "docker.io/library/absent:1"}}})
	if err != nil || len(filtered.Images) != 0 {
		t.Fatalf("filtered list for an absent image: %v %v", filtered, err)
	}

	fs, err := d.Images.ImageFsInfo(harness.Ctx(t), &runtimeapi.ImageFsInfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	usage := fs.ImageFilesystems[0]
	if usage.UsedBytes.GetValue() == 0 || usage.InodesUsed.GetValue() == 0 || usage.FsId.GetMountpoint() == "" {
		t.Fatalf("image fs info: %+v", usage)
	}

	if _, err := d.Images.RemoveImage(harness.Ctx(t), &runtimeapi.RemoveImageRequest{Image: &runtimeapi.ImageSpec{Image: busybox}}); err != nil {
		t.Fatal(err)
	}
	if img := imageStatus(t, d, id); img != nil {
		t.Fatalf("image still present after removal: %+v", img)
	}
	// Removal is idempotent.
	if _, err := d.Images.RemoveImage(harness.Ctx(t), &runtimeapi.RemoveImageRequest{Image: &runtimeapi.ImageSpec{Image: busybox}}); err != nil {
		t.Fatalf("second removal: %v", err)
	}
	fs2, err := d.Images.ImageFsInfo(harness.Ctx(t), &runtimeapi.ImageFsInfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if fs2.ImageFilesystems[0].UsedBytes.GetValue() >= usage.UsedBytes.GetValue() {
		t.Errorf("used bytes did not go down after removal: %d -> %d", usage.UsedBytes.GetValue(), fs2.ImageFilesystems[0].UsedBytes.GetValue())
	}
}

func TestImageTagsShareOneImage(t *testing.T) {
	harness.RequireRegistry(t)
	d := harness.Start(t)
	var ids []string
	for _, tag := range []string{"1", "2", "3"} {
		ids = append(ids, pull(t, d, tagsImage+":"+tag))
	}
	if ids[0] != ids[1] || ids[1] != ids[2] {
		t.Fatalf("same image under three tags got ids %v", ids)
	}
	img := imageStatus(t, d, ids[0])
	if len(img.RepoTags) != 3 {
		t.Fatalf("want 3 repo tags, got %v", img.RepoTags)
	}
	// One tag of several: only that tag goes.
	if _, err := d.Images.RemoveImage(harness.Ctx(t), &runtimeapi.RemoveImageRequest{Image: &runtimeapi.ImageSpec{Image: tagsImage + ":2"}}); err != nil {
		t.Fatal(err)
	}
	if img := imageStatus(t, d, tagsImage+":2"); img != nil {
		t.Errorf("removed tag 2 still resolves to %s", img.Id)
	}
	for _, tag := range []string{"1", "3"} {
		if img := imageStatus(t, d, tagsImage+":"+tag); img == nil || img.Id != ids[0] {
			t.Errorf("tag %s lost with tag 2: %v", tag, img)
		}
	}
	if img := imageStatus(t, d, ids[0]); len(img.GetRepoTags()) != 2 {
		t.Errorf("tags after removing one: %v", img.GetRepoTags())
	}
	// By ID (what kubelet and crictl send): the image with all its tags.
	if _, err := d.Images.RemoveImage(harness.Ctx(t), &runtimeapi.RemoveImageRequest{Image: &runtimeapi.ImageSpec{Image: ids[0]}}); err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{tagsImage + ":1", tagsImage + ":3", ids[0]} {
		if img := imageStatus(t, d, ref); img != nil {
			t.Errorf("%s survived removal of the image by ID", ref)
		}
	}
}

func TestImagePullErrors(t *testing.T) {
	harness.RequireRegistry(t)
	d := harness.Start(t)
	// A port nobody listens on: bind and close one.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close()

	for name, tc := range map[string]struct {
		ref     string
		code    codes.Code
		message string
	}{
		"empty":          {"", codes.InvalidArgument, "image"},
		"malformed":      {"Not A Ref!!", codes.InvalidArgument, "Not A Ref!!"},
		"bad digest":     {"busybox@sha256:1234", codes.InvalidArgument, "sha256:1234"},
		"unknown tag":    {"registry.k8s.io/e2e-test-images/busybox:no-such-tag", codes.NotFound, "no-such-tag"},
		"unknown repo":   {"gcr.io/k8s-staging-cri-tools/no-such-image:1", codes.NotFound, "no-such-image"},
		"unreachable":    {dead + "/x/y:1", codes.Unavailable, dead},
		"oversized name": {strings.Repeat("a", 5000) + ":1", codes.InvalidArgument, ""},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := d.Images.PullImage(harness.Ctx(t), &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: tc.ref}})
			if status.Code(err) != tc.code || !strings.Contains(err.Error(), tc.message) {
				t.Fatalf("pull %.40q: want %v mentioning %q, got %v", tc.ref, tc.code, tc.message, err)
			}
		})
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	_, err = d.Images.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: bigRef()}})
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("pull with 1ms deadline: want DeadlineExceeded, got %v", err)
	}
	// The daemon is still healthy and lost nothing.
	if _, err := d.Runtime.Version(harness.Ctx(t), &runtimeapi.VersionRequest{}); err != nil {
		t.Fatal(err)
	}
}

func bigRef() string { return harness.RegistryAddr() + "/" + bigImage }

func layerDirs(t *testing.T, d *harness.Daemon) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(d.Root, "images", "layers", "sha256"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

func TestConcurrentPullsDoTheWorkOnce(t *testing.T) {
	harness.RequireRegistry(t)
	d := harness.Start(t)
	const n = 6
	ids := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ids[i] = pull(t, d, bigRef())
		}()
	}
	wg.Wait()
	for _, id := range ids[1:] {
		if id != ids[0] {
			t.Fatalf("concurrent pulls disagree: %v", ids)
		}
	}
	st, err := d.Images.ImageStatus(harness.Ctx(t), &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: ids[0]}, Verbose: true})
	if err != nil {
		t.Fatal(err)
	}
	layers := layerDirs(t, d)
	if strings.Count(st.Info["info"], "sha256:") < len(layers) {
		t.Fatalf("more layer directories (%d) than the image has layers: %s", len(layers), st.Info["info"])
	}
	tmp, _ := os.ReadDir(filepath.Join(d.Root, "images", "tmp"))
	if len(tmp) != 0 {
		t.Fatalf("temporary files left after pulls: %d", len(tmp))
	}
}

func TestImagesSurviveRestartAndKill(t *testing.T) {
	harness.RequireRegistry(t)
	d := harness.Start(t)
	id := pull(t, d, busybox)
	before := imageStatus(t, d, busybox)

	d.Restart(t)
	if got := imageStatus(t, d, busybox); got == nil || got.Id != id || strings.Join(got.RepoDigests, ",") != strings.Join(before.RepoDigests, ",") {
		t.Fatalf("after restart: %+v, want %+v", got, before)
	}
	d.Kill9AndRestart(t)
	if got := imageStatus(t, d, id); got == nil || got.Id != id {
		t.Fatalf("after kill -9: %+v", got)
	}
}

// TestKillDuringPullLeavesConsistentStore kills the daemon in the middle of a
// pull: afterwards the half-done work is gone and the pull succeeds.
func TestKillDuringPullLeavesConsistentStore(t *testing.T) {
	harness.RequireRegistry(t)
	d := harness.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		_, _ = d.Images.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: bigRef()}})
	}()
	time.Sleep(150 * time.Millisecond)
	d.Kill9AndRestart(t)
	if img := imageStatus(t, d, bigRef()); img != nil {
		t.Logf("the pull finished before the kill; the store must still be consistent")
	}
	tmp, _ := os.ReadDir(filepath.Join(d.Root, "images", "tmp"))
	if len(tmp) != 0 {
		t.Fatalf("leftovers of the interrupted pull were not removed at start-up: %d entries", len(tmp))
	}
	pull(t, d, bigRef())
}

// corruptingProxy forwards to the test registry but flips a byte in every
// layer blob, like a broken mirror or a tampered cache would.
func corruptingProxy(t *testing.T) string {
	return blobProxy(t, func(_ *http.Request, resp *http.Response) io.ReadCloser {
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil && resp.StatusCode == http.StatusOK && len(body) > 100 && !bytes.HasPrefix(body, []byte("{")) {
			body[len(body)/2] ^= 0xff
		}
		return io.NopCloser(bytes.NewReader(body))
	})
}

func TestCorruptedBlobRejected(t *testing.T) {
	harness.RequireRegistry(t)
	d := harness.Start(t)
	proxy := corruptingProxy(t)
	_, err := d.Images.PullImage(harness.Ctx(t), &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: proxy + "/" + bigImage}})
	if err == nil {
		t.Fatal("a corrupted layer was accepted")
	}
	if !strings.Contains(strings.ToLower(err.Error()), "digest") {
		t.Errorf("error should say the digest did not match: %v", err)
	}
	if n := len(layerDirs(t, d)); n != 0 {
		t.Fatalf("%d layer directories kept from a corrupted pull", n)
	}
	list, _ := d.Images.ListImages(harness.Ctx(t), &runtimeapi.ListImagesRequest{})
	if len(list.GetImages()) != 0 {
		t.Fatalf("image recorded despite corruption: %v", list.Images)
	}
}
