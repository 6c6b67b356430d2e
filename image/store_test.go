package image

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/crisp-runtime/crisp/errdefs"
)

func pull(t *testing.T, s *Store, ref string) *Image {
	t.Helper()
	img, err := s.Pull(context.Background(), ref, nil)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func get(t *testing.T, s *Store, ref string) *Image {
	t.Helper()
	img, err := s.Get(ref)
	if err != nil {
		t.Fatalf("Get(%s): %v", ref, err)
	}
	return img
}

// A re-pulled tag that now names another image moves; the old image keeps
// its digest, as in containerd, until it is removed explicitly.
func TestTagMovesToNewImage(t *testing.T) {
	reg := newTestRegistry(t)
	a, b := testImage(t, 2), testImage(t, 2)
	root := t.TempDir()
	s := newTestStore(t, root, nil)
	tag := reg.host + "/app:v1"

	reg.push("app:v1", a)
	oldImg := pull(t, s, tag)
	reg.push("app:v1", b)
	newImg := pull(t, s, tag)

	if oldImg.ID == newImg.ID {
		t.Fatal("test images have the same ID")
	}
	if got := get(t, s, tag); got.ID != newImg.ID {
		t.Errorf("tag resolves to %s, want the new image", got.ID)
	}
	old := get(t, s, oldImg.ID)
	if len(old.RepoTags) != 0 || !slices.Equal(old.RepoDigests, []string{reg.host + "/app@" + mustDigest(t, a)}) {
		t.Errorf("old image after tag move: tags %v digests %v", old.RepoTags, old.RepoDigests)
	}
	if n := len(s.List()); n != 2 {
		t.Errorf("List has %d images, want 2", n)
	}

	// Removing the old image's last name removes it and its content only.
	if err := s.Remove(old.RepoDigests[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(oldImg.ID); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("old image still there: %v", err)
	}
	bl, ls, _ := storeContent(t, root)
	if len(ls) != 2 || len(bl) != 2 {
		t.Errorf("after removing the old image: blobs %v layers %v, want the new image's 2 (config, manifest) and 2", bl, ls)
	}
	if _, err := s.LayerDirs(newImg.ID); err != nil {
		t.Error(err)
	}
}

// twoTags pulls one image under two tags into a fresh store.
type twoTags struct {
	s                 *Store
	root              string
	v1, v2, digestRef string
	img               *Image
}

func pullTwoTags(t *testing.T) twoTags {
	t.Helper()
	reg := newTestRegistry(t)
	img := testImage(t, 2)
	reg.push("app:v1", img)
	reg.push("app:v2", img)
	tt := twoTags{root: t.TempDir(), v1: reg.host + "/app:v1", v2: reg.host + "/app:v2", digestRef: reg.host + "/app@" + mustDigest(t, img)}
	tt.s = newTestStore(t, tt.root, nil)
	pull(t, tt.s, tt.v1)
	tt.img = pull(t, tt.s, tt.v2)
	return tt
}

func TestRemoveSemantics(t *testing.T) {
	tt := pullTwoTags(t)
	s, root, v1, v2, digestRef, got := tt.s, tt.root, tt.v1, tt.v2, tt.digestRef, tt.img
	if !slices.Equal(got.RepoTags, []string{v1, v2}) || !slices.Equal(got.RepoDigests, []string{digestRef}) {
		t.Fatalf("tags %v digests %v", got.RepoTags, got.RepoDigests)
	}

	// By tag, with other tags left: only that tag.
	if err := s.Remove(v1); err != nil {
		t.Fatal(err)
	}
	if got := get(t, s, got.ID); !slices.Equal(got.RepoTags, []string{v2}) || !slices.Equal(got.RepoDigests, []string{digestRef}) {
		t.Errorf("after removing %s: tags %v digests %v", v1, got.RepoTags, got.RepoDigests)
	}
	if _, err := s.Get(v1); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Get removed tag: %v", err)
	}
	if err := s.Remove(v1); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("second Remove of a tag = %v, want NotFound", err)
	}
	// By the last tag: the image with its digest, and its content.
	if err := s.Remove(v2); err != nil {
		t.Fatal(err)
	}
	noImage := func(when string) {
		t.Helper()
		if l := s.List(); len(l) != 0 {
			t.Errorf("%s: List = %v", when, l)
		}
		for _, ref := range []string{v1, v2, digestRef, got.ID} {
			if _, err := s.Get(ref); !errors.Is(err, errdefs.ErrNotFound) {
				t.Errorf("%s: Get(%s) = %v", when, ref, err)
			}
		}
		if bl, ls, tmp := storeContent(t, root); len(bl)+len(ls)+len(tmp) != 0 {
			t.Errorf("%s: content left: %v %v %v", when, bl, ls, tmp)
		}
		if u, _ := s.Usage(); u.UsedBytes != 0 || u.InodesUsed != 0 {
			t.Errorf("%s: Usage = %+v", when, u)
		}
	}
	noImage("after removing the last tag")

	// By digest: the whole image, all tags.
	pull(t, s, v1)
	pull(t, s, v2)
	if err := s.Remove(digestRef); err != nil {
		t.Fatal(err)
	}
	noImage("after removing by digest")

	// By ID (here a prefix): the whole image, all names.
	got = pull(t, s, v1)
	pull(t, s, v2)
	if err := s.Remove(got.ID[len("sha256:") : len("sha256:")+12]); err != nil {
		t.Fatal(err)
	}
	noImage("after removing by ID")
	if err := s.Remove(got.ID); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Remove of a removed ID = %v, want NotFound", err)
	}
	if err := s.Remove("Not/Valid"); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("Remove of an invalid ref = %v", err)
	}
}

func TestRestartKeepsImages(t *testing.T) {
	reg := newTestRegistry(t)
	reg.push("app:v1", testImage(t, 3))
	root := t.TempDir()
	pinned := reg.host + "/app:v1"
	s := newTestStore(t, root, func(o *Options) { o.PinnedImages = []string{pinned, "busybox"} })
	img := pull(t, s, pinned)
	if !img.Pinned {
		t.Error("pinned image not reported as pinned")
	}
	usage, _ := s.Usage()
	dirs, _ := s.LayerDirs(img.ID)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Pull(context.Background(), pinned, nil); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Errorf("Pull after Close = %v", err)
	}

	s2 := newTestStore(t, root, nil)
	got := get(t, s2, pinned)
	if got.ID != img.ID || !slices.Equal(got.RepoDigests, img.RepoDigests) || !slices.Equal(got.Config.Env, img.Config.Env) || got.Size != img.Size {
		t.Errorf("after restart %+v, want %+v", got, img)
	}
	if got.Pinned {
		t.Error("pinned without PinnedImages")
	}
	if u, _ := s2.Usage(); u != usage {
		t.Errorf("Usage after restart %+v, want %+v", u, usage)
	}
	if d, _ := s2.LayerDirs(img.ID); !slices.Equal(d, dirs) {
		t.Errorf("LayerDirs after restart %v, want %v", d, dirs)
	}
}

// New() must repair whatever a kill -9 can leave: work in tmp/, a layer
// directory without bookkeeping, bookkeeping without a layer, an image whose
// layer is gone, stray files, unreferenced content and a tag claimed twice.
func TestNewRepairsInterruptedWork(t *testing.T) {
	reg := newTestRegistry(t)
	a, b := testImage(t, 1), testImage(t, 2)
	reg.push("a:1", a)
	reg.push("b:1", b)
	root := t.TempDir()
	s := newTestStore(t, root, nil)
	imgA, imgB := pull(t, s, reg.host+"/a:1"), pull(t, s, reg.host+"/b:1")
	usageBefore, _ := s.Usage()
	s.Close()

	mk := func(p string, dir bool) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		var err error
		if dir {
			err = os.MkdirAll(filepath.Join(p, "usr", "bin"), 0o755)
		} else {
			err = os.WriteFile(p, []byte("junk"), 0o600)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	junkHex := hexOf(hexA)
	mk(filepath.Join(root, "tmp", "layer-123", "fs"), true)
	mk(filepath.Join(root, "tmp", "blob-456"), false)
	mk(filepath.Join(root, "layers", "sha256", junkHex), true)                   // no info: never completed
	mk(filepath.Join(root, "layers", "info", "bbbb"+junkHex[4:]+".json"), false) // info without layer
	mk(filepath.Join(root, "blobs", "sha256", "not-a-digest"), false)            // stray
	mk(filepath.Join(root, "blobs", "sha256", "cccc"+junkHex[4:]), false)        // unreferenced blob
	mk(filepath.Join(root, "images", "garbage.json"), false)                     // unreadable metadata
	// Image b loses a layer: it must be dropped, with its now unused content.
	_, diffB := layerDigests(t, b)
	os.RemoveAll(filepath.Join(root, "layers", "sha256", hexOf(diffB[0])))
	// A tag move interrupted after writing the new owner: a claims b's tag too
	// and is newer.
	var m imageMeta
	if err := readJSON(filepath.Join(root, "images", hexOf(imgA.ID)+".json"), &m); err != nil {
		t.Fatal(err)
	}
	m.RepoTags = append(m.RepoTags, reg.host+"/b:1")
	m.Updated++
	data, _ := json.Marshal(m)
	os.WriteFile(filepath.Join(root, "images", hexOf(imgA.ID)+".json"), data, 0o600)

	s2 := newTestStore(t, root, nil)
	if l := s2.List(); len(l) != 1 || l[0].ID != imgA.ID {
		t.Fatalf("List after repair = %v, want only %s", l, imgA.ID)
	}
	if got := get(t, s2, reg.host+"/b:1"); got.ID != imgA.ID {
		t.Errorf("tag claimed twice went to %s", got.ID)
	}
	if _, err := s2.Get(imgB.ID); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("image with a missing layer kept: %v", err)
	}
	bl, ls, tmp := storeContent(t, root)
	_, diffA := layerDigests(t, a)
	wantBlobs := []string{hexOf(imgA.ID), hexOf(mustDigest(t, a))}
	slices.Sort(wantBlobs)
	if !slices.Equal(bl, wantBlobs) || !slices.Equal(ls, []string{hexOf(diffA[0])}) || len(tmp) != 0 {
		t.Errorf("after repair blobs %v layers %v tmp %v; want blobs %v layers %v", bl, ls, tmp, wantBlobs, diffA)
	}
	if info := dirNames(t, filepath.Join(root, "layers", "info")); !slices.Equal(info, []string{hexOf(diffA[0]) + ".json"}) {
		t.Errorf("layer info left: %v", info)
	}
	if imgs := dirNames(t, filepath.Join(root, "images")); len(imgs) != 1 {
		t.Errorf("image metadata left: %v", imgs)
	}
	if u, _ := s2.Usage(); u.UsedBytes >= usageBefore.UsedBytes || u.UsedBytes == 0 {
		t.Errorf("Usage %+v not reduced from %+v", u, usageBefore)
	}
}

func TestLeaseKeepsLayers(t *testing.T) {
	reg := newTestRegistry(t)
	reg.push("app:v1", testImage(t, 2))
	root := t.TempDir()
	s := newTestStore(t, root, nil)
	img := pull(t, s, reg.host+"/app:v1")
	dirs, _ := s.LayerDirs(img.ID)

	// A deferred lease holds the layers before its sync, as a lease does.
	sync, err := s.LeaseDeferred("ctr-1", reg.host+"/app:v1")
	if err != nil {
		t.Fatal(err)
	}
	if err := sync(); err != nil {
		t.Fatal(err)
	}
	if err := s.Lease("../evil", img.ID); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("Lease with a path owner = %v", err)
	}
	if err := s.Lease("ctr-2", "nope:1"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Lease of an unknown image = %v", err)
	}
	if err := s.Remove(img.ID); err != nil {
		t.Fatal(err)
	}
	for _, d := range dirs {
		if _, err := os.Stat(d); err != nil {
			t.Errorf("leased layer removed: %v", err)
		}
	}
	// The lease survives a restart.
	s.Close()
	s = newTestStore(t, root, nil)
	if _, ls, _ := storeContent(t, root); len(ls) != 2 {
		t.Fatalf("leased layers after restart: %v", ls)
	}
	if u, _ := s.Usage(); u.UsedBytes == 0 {
		t.Error("leased layers not counted in Usage")
	}
	if err := s.Unlease("ctr-1"); err != nil {
		t.Fatal(err)
	}
	if err := s.Unlease("ctr-1"); err != nil {
		t.Errorf("second Unlease: %v", err)
	}
	if bl, ls, tmp := storeContent(t, root); len(bl)+len(ls)+len(tmp) != 0 {
		t.Errorf("content left after Unlease: %v %v %v", bl, ls, tmp)
	}
	if u, _ := s.Usage(); u.UsedBytes != 0 || u.InodesUsed != 0 {
		t.Errorf("Usage = %+v", u)
	}
}

func TestSharedLayerOutlivesOneImage(t *testing.T) {
	reg := newTestRegistry(t)
	a := testImage(t, 1)
	la, _ := a.Layers()
	b := testImage(t, 1, la[0])
	reg.push("a:1", a)
	reg.push("b:1", b)
	root := t.TempDir()
	s := newTestStore(t, root, nil)
	pull(t, s, reg.host+"/a:1")
	imgB := pull(t, s, reg.host+"/b:1")
	d, _ := la[0].Digest()
	if n := reg.gets(d.String()); n != 1 {
		t.Errorf("shared layer fetched %d times", n)
	}
	if err := s.Remove(reg.host + "/a:1"); err != nil {
		t.Fatal(err)
	}
	dirs, err := s.LayerDirs(imgB.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dirs {
		if _, err := os.Stat(d); err != nil {
			t.Errorf("layer of the remaining image removed: %v", err)
		}
	}
	if _, ls, _ := storeContent(t, root); len(ls) != 2 {
		t.Errorf("layers %v, want b's 2", ls)
	}
}

// Pulls and removals of images sharing a layer race with garbage collection;
// afterwards every image must have all its layers, in memory and on disk.
func TestPullRemoveRace(t *testing.T) {
	reg := newTestRegistry(t)
	a := testImage(t, 1)
	la, _ := a.Layers()
	b := testImage(t, 1, la[0])
	reg.push("a:1", a)
	reg.push("b:1", b)
	root := t.TempDir()
	s := newTestStore(t, root, nil)
	errs := make(chan error, 2)
	for _, r := range []string{"a:1", "b:1"} {
		go func() {
			for range 15 {
				img, err := s.Pull(context.Background(), reg.host+"/"+r, nil)
				if err == nil {
					err = s.Remove(img.ID)
				}
				if err != nil {
					errs <- err
					return
				}
			}
			_, err := s.Pull(context.Background(), reg.host+"/"+r, nil)
			errs <- err
		}()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	check := func(s *Store) {
		t.Helper()
		if n := len(s.List()); n != 2 {
			t.Fatalf("List has %d images", n)
		}
		for _, img := range s.List() {
			dirs, err := s.LayerDirs(img.ID)
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range dirs {
				if _, err := os.Stat(d); err != nil {
					t.Errorf("image %s: %v", img.ID, err)
				}
			}
		}
	}
	check(s)
	s.Close()
	check(newTestStore(t, root, nil))
}

func TestMountedLeaseBlocksRemoval(t *testing.T) {
	tt := pullTwoTags(t)
	s, root, v1, v2, got := tt.s, tt.root, tt.v1, tt.v2, tt.img
	if err := s.LeaseMounted("ctr-vol-0", got.ID); err != nil {
		t.Fatal(err)
	}
	refused := func(when, ref string) {
		t.Helper()
		err := s.Remove(ref)
		if !errors.Is(err, errdefs.ErrFailedPrecondition) || !strings.Contains(err.Error(), "ctr-vol-0") {
			t.Errorf("%s: Remove(%s) = %v, want FailedPrecondition naming the lease", when, ref, err)
		}
		if _, err := s.Get(got.ID); err != nil {
			t.Errorf("%s: image gone after a refused Remove: %v", when, err)
		}
	}
	refused("mounted", got.ID)
	refused("mounted", tt.digestRef)
	// One tag of two may go: the image stays.
	if err := s.Remove(v1); err != nil {
		t.Fatalf("untag of a mounted image: %v", err)
	}
	refused("mounted, last tag", v2)

	// The lease survives a restart, and so does the refusal.
	s.Close()
	s = newTestStore(t, root, nil)
	refused("after restart", got.ID)

	if err := s.Unlease("ctr-vol-0"); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove(v2); err != nil {
		t.Fatalf("Remove after Unlease: %v", err)
	}
	if bl, ls, _ := storeContent(t, root); len(bl)+len(ls) != 0 {
		t.Errorf("content left: %v %v", bl, ls)
	}
}

// A lease that cannot be read (damaged, or written by a newer crisp before a
// rollback) may protect layers a running container's overlay uses: start-up
// keeps every layer and reports the lease instead of collecting them.
func TestUnreadableLeaseIsQuarantined(t *testing.T) {
	reg := newTestRegistry(t)
	reg.push("app:v1", testImage(t, 2))
	root := t.TempDir()
	s := newTestStore(t, root, nil)
	img := pull(t, s, reg.host+"/app:v1")
	if err := s.Lease("ctr-1", img.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove(img.ID); err != nil {
		t.Fatal(err)
	}
	s.Close()
	lease := filepath.Join(root, "leases", "ctr-1")
	if err := os.WriteFile(lease, []byte(`{"image": "sha256:`), 0o600); err != nil {
		t.Fatal(err)
	}
	s = newTestStore(t, root, nil)
	if _, ls, _ := storeContent(t, root); len(ls) != 2 {
		t.Fatalf("layers after restart with an unreadable lease: %v", ls)
	}
	q := s.Quarantined()
	if len(q) != 1 || !strings.Contains(q[0], lease) {
		t.Fatalf("Quarantined() = %q, want the lease %s", q, lease)
	}
	if _, err := os.Stat(lease); err != nil {
		t.Errorf("the unreadable lease was not kept for inspection: %v", err)
	}
	// Once repaired, the next start-up sees the lease and Unlease frees all.
	s.Close()
	if err := os.WriteFile(lease, []byte(`{"image":"`+img.ID+`","layers":[]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	s = newTestStore(t, root, nil)
	if q := s.Quarantined(); len(q) != 0 {
		t.Fatalf("Quarantined() after repair = %q", q)
	}
	if err := s.Unlease("ctr-1"); err != nil {
		t.Fatal(err)
	}
	if _, ls, _ := storeContent(t, root); len(ls) != 0 {
		t.Errorf("layers left after Unlease: %v", ls)
	}
}

// A crash between writing a lease's temporary file and renaming it leaves
// leases/.<owner>.tmp*: start-up removes it.
func TestInterruptedLeaseWriteIsRemoved(t *testing.T) {
	root := t.TempDir()
	s := newTestStore(t, root, nil)
	s.Close()
	tmp := filepath.Join(root, "leases", ".ctr-1.tmp12345")
	if err := os.WriteFile(tmp, []byte(`{"ima`), 0o600); err != nil {
		t.Fatal(err)
	}
	s = newTestStore(t, root, nil)
	if _, err := os.Stat(tmp); !os.IsNotExist(err) {
		t.Errorf("%s still there after start-up: %v", tmp, err)
	}
	if q := s.Quarantined(); len(q) != 0 {
		t.Errorf("a temporary file was quarantined as a lease: %q", q)
	}
}
