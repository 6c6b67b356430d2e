package unpack

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"testing"

	"golang.org/x/sys/unix"
)

// TestOverlayMerge is the end-to-end check that the whiteout encoding is
// what the kernel actually honours.
func TestOverlayMerge(t *testing.T) {
	requireRoot(t)
	lower := mustApply(t,
		file("keep", "k"),
		file("gone", "g"),
		dir("d"),
		file("d/old", "o"),
		dir("sub"),
		file("sub/x", "x"),
	)
	upper := mustApply(t,
		file(".wh.gone", ""),
		dir("d"),
		file("d/.wh..wh..opq", ""),
		file("d/new", "n"),
		file("sub/.wh.x", ""),
	)
	merged := t.TempDir()
	opts := "lowerdir=" + upper + ":" + lower
	if err := unix.Mount("overlay", merged, "overlay", unix.MS_RDONLY, opts); err != nil {
		if errors.Is(err, unix.ENODEV) {
			t.Skip("overlayfs not available")
		}
		t.Fatalf("mount overlay %s: %v", opts, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(merged, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount: %v", err)
		}
	})

	ls := func(p string) []string {
		ents, err := os.ReadDir(filepath.Join(merged, p))
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		sort.Strings(names)
		return names
	}
	for _, tt := range []struct {
		dir  string
		want []string
	}{
		{".", []string{"d", "keep", "sub"}},
		{"d", []string{"new"}},
		{"sub", nil},
	} {
		got := ls(tt.dir)
		if len(got) != len(tt.want) || (len(got) > 0 && !slices.Equal(got, tt.want)) {
			t.Errorf("merged %s = %v, want %v", tt.dir, got, tt.want)
		}
	}
	if _, err := os.Stat(filepath.Join(merged, "gone")); !os.IsNotExist(err) {
		t.Errorf("whited-out file visible: %v", err)
	}
	if got := readFile(t, filepath.Join(merged, "keep")); got != "k" {
		t.Errorf("keep = %q", got)
	}
}
