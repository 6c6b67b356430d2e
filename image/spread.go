package image

import (
	"k8s.io/klog/v2"

	"github.com/crisp-runtime/crisp/internal/topdir"
)

// spreadNewTrees marks dir, where layers are unpacked, as the top of
// directory hierarchies (package topdir): a pull must not allocate its
// inodes where the layers removed just before were. Best effort.
func spreadNewTrees(dir string) {
	if err := topdir.Mark(dir); err != nil {
		klog.V(2).InfoS("Image store: cannot mark the unpack directory as a top directory (chattr +T); fine outside ext4", "dir", dir, "err", err)
	}
}
