package image

import (
	"path/filepath"
	"testing"
	"time"
)

func TestFilesystems(t *testing.T) {
	root := t.TempDir()
	s := newTestStore(t, filepath.Join(root, "images"), nil)
	s.mu.Lock()
	s.used.UsedBytes, s.used.InodesUsed = 1000, 10
	s.mu.Unlock()
	sampled := time.Unix(1700000000, 0)

	for _, tc := range []struct {
		name       string
		writable   *FilesystemUsage
		wantImage  [2]uint64 // bytes, inodes
		wantSplit  bool
		wantLayers FilesystemUsage
	}{
		{name: "no containers", wantImage: [2]uint64{1000, 10}},
		{
			name:      "layers on the image filesystem",
			writable:  &FilesystemUsage{Timestamp: sampled, Mountpoint: root, UsedBytes: 500, InodesUsed: 5},
			wantImage: [2]uint64{1500, 15},
		},
		{
			// An unreadable root cannot prove a split: kubelet then sees
			// everything on one filesystem, as by default.
			name:      "layers root missing",
			writable:  &FilesystemUsage{Timestamp: sampled, Mountpoint: filepath.Join(root, "gone"), UsedBytes: 500, InodesUsed: 5},
			wantImage: [2]uint64{1500, 15},
		},
		{
			name:       "layers on a filesystem of their own",
			writable:   &FilesystemUsage{Timestamp: sampled, Mountpoint: "/proc", UsedBytes: 500, InodesUsed: 5},
			wantImage:  [2]uint64{1000, 10},
			wantSplit:  true,
			wantLayers: FilesystemUsage{Timestamp: sampled, Mountpoint: "/proc", UsedBytes: 500, InodesUsed: 5},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := time.Now()
			fs, err := s.Filesystems(tc.writable)
			if err != nil {
				t.Fatal(err)
			}
			img := fs.Image
			if img.Mountpoint != s.root || img.UsedBytes != tc.wantImage[0] || img.InodesUsed != tc.wantImage[1] {
				t.Errorf("image filesystem %+v, want %s with %v", img, s.root, tc.wantImage)
			}
			if img.Timestamp.Before(before) {
				t.Errorf("image filesystem measured at %v, before the call", img.Timestamp)
			}
			if (fs.Containers != nil) != tc.wantSplit {
				t.Fatalf("container filesystem %+v, want split %v", fs.Containers, tc.wantSplit)
			}
			if tc.wantSplit && *fs.Containers != tc.wantLayers {
				t.Errorf("container filesystem %+v, want %+v", *fs.Containers, tc.wantLayers)
			}
		})
	}
	if u, _ := s.Usage(); u.UsedBytes != 1000 || u.InodesUsed != 10 {
		t.Errorf("Filesystems changed the store's usage: %+v", u)
	}
}
