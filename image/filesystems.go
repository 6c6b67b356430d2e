package image

import (
	"time"

	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"
)

// FilesystemUsage is what crisp keeps on one filesystem.
type FilesystemUsage struct {
	Timestamp  time.Time
	Mountpoint string // the directory measured
	UsedBytes  uint64
	InodesUsed uint64
}

// Filesystems is the usage that kubelet's image garbage collection and
// eviction go by.
type Filesystems struct {
	Image FilesystemUsage
	// Containers is set only when the containers' writable layers are on a
	// filesystem of their own.
	Containers *FilesystemUsage
}

// Filesystems reports the image filesystem and, given the usage of the
// containers' writable layers (nil: none), where those are counted.
//
// containerd reports one image filesystem, its snapshotter, whose usage
// includes the containers' writable layers, and no container filesystem;
// kubelet then uses the image filesystem for both. crisp does the same while
// the writable layers are on the image root's filesystem (the default: both
// are below root). Only when they are on different devices are they reported
// as a container filesystem of their own, which kubelet treats as a split
// image filesystem, as with CRI-O's split storage.
func (s *Store) Filesystems(writable *FilesystemUsage) (Filesystems, error) {
	u, err := s.Usage()
	if err != nil {
		return Filesystems{}, err
	}
	images := FilesystemUsage{Timestamp: time.Now(), Mountpoint: u.Mountpoint, UsedBytes: u.UsedBytes, InodesUsed: u.InodesUsed}
	if writable == nil {
		return Filesystems{Image: images}, nil
	}
	same, err := sameDevice(images.Mountpoint, writable.Mountpoint)
	if err != nil {
		klog.V(2).InfoS("ImageFsInfo: reporting container layers with the images", "err", err)
		same = true
	}
	if same {
		images.UsedBytes += writable.UsedBytes
		images.InodesUsed += writable.InodesUsed
		return Filesystems{Image: images}, nil
	}
	w := *writable
	return Filesystems{Image: images, Containers: &w}, nil
}

func sameDevice(a, b string) (bool, error) {
	var sa, sb unix.Stat_t
	if err := unix.Stat(a, &sa); err != nil {
		return false, err
	}
	if err := unix.Stat(b, &sb); err != nil {
		return false, err
	}
	return sa.Dev == sb.Dev, nil
}
