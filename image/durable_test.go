package image

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/crisp-runtime/crisp/errdefs"
	"github.com/crisp-runtime/crisp/internal/bootid"
	"github.com/crisp-runtime/crisp/internal/topdir"
)

func readLayerInfo(t *testing.T, s *Store, diffID string) layerInfo {
	t.Helper()
	var li layerInfo
	if err := readJSON(s.layerInfoPath(hexOf(diffID)), &li); err != nil {
		t.Fatal(err)
	}
	return li
}

func writeLayerInfo(t *testing.T, s *Store, diffID string, li layerInfo) {
	t.Helper()
	data, _ := json.Marshal(li)
	if err := os.WriteFile(s.layerInfoPath(hexOf(diffID)), data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// A pulled layer is flushed in the background and then unmarked; one still
// marked from another boot is dropped at start-up with its image, one from
// this boot is kept and flushed again.
func TestLayersAreFlushedAndCheckedAfterReboot(t *testing.T) {
	if bootid.Current() == "" {
		t.Skip("the kernel names no boot (/proc/sys/kernel/random/boot_id): layers are flushed before commit")
	}
	reg := newTestRegistry(t)
	a, b := testImage(t, 1), testImage(t, 1)
	reg.push("a:1", a)
	reg.push("b:1", b)
	root := t.TempDir()
	s := newTestStore(t, root, nil)
	for _, ref := range []string{"a:1", "b:1"} {
		if _, err := s.Pull(context.Background(), reg.host+"/"+ref, nil); err != nil {
			t.Fatal(err)
		}
	}
	s.waitSynced()
	_, diffA := layerDigests(t, a)
	_, diffB := layerDigests(t, b)
	for _, d := range []string{diffA[0], diffB[0]} {
		if li := readLayerInfo(t, s, d); li.Unsynced != "" {
			t.Fatalf("layer %s still marked unflushed after the syncer ran: %+v", d, li)
		}
	}
	s.Close()

	// a's layer as if committed before a reboot, b's as if crisp was
	// killed before its flush in this boot.
	writeLayerInfo(t, s, diffA[0], layerInfo{Bytes: 1, Inodes: 1, Unsynced: "an-earlier-boot"})
	writeLayerInfo(t, s, diffB[0], layerInfo{Bytes: 1, Inodes: 1, Unsynced: bootid.Current()})
	s2 := newTestStore(t, root, nil)
	if _, err := s2.Get(imageID(t, a)); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("image on a layer not flushed before a reboot was kept: %v", err)
	}
	if s2.hasLayer(hexOf(diffA[0])) {
		t.Error("layer not flushed before a reboot was kept")
	}
	if _, err := s2.Get(imageID(t, b)); err != nil {
		t.Errorf("image on a layer of this boot dropped: %v", err)
	}
	s2.waitSynced()
	if li := readLayerInfo(t, s2, diffB[0]); li.Unsynced != "" {
		t.Errorf("layer of this boot not flushed again at start-up: %+v", li)
	}
}

// On ext2/3/4 (which share a magic number) the store's unpack directory
// carries chattr +T (see spreadNewTrees).
func TestUnpackDirIsATopDirectory(t *testing.T) {
	root := t.TempDir()
	var st unix.Statfs_t
	if err := unix.Statfs(root, &st); err != nil {
		t.Fatal(err)
	}
	if st.Type != unix.EXT4_SUPER_MAGIC {
		t.Skipf("%s is not on ext2/3/4 (magic %#x): the flag means nothing elsewhere", root, st.Type)
	}
	s := newTestStore(t, root, nil)
	if ok, err := topdir.Marked(s.tmpDir()); !ok {
		t.Fatalf("%s is not marked FS_TOPDIR_FL (%v)", s.tmpDir(), err)
	}
}
