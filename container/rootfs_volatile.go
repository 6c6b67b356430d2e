package container

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"

	"github.com/crisp-runtime/crisp/internal/bootid"
)

// A container's writable layer is mounted "volatile" (Linux 5.10+): the
// overlay skips every sync to the upper directory, the fsync that follows
// each copy-up of an image file included. Copying up the 4,337 files of
// /usr/share/doc (122 MB) took 15.1 s with it and 1.1 s without on this
// project's test machine (README "Root filesystem speed"). The writable
// layer is disposable (kubelet never starts a container again, and crisp
// never remounts one after a reboot: it is dead then), so the one thing
// lost is a container's fsync surviving a crash of the node, which
// data that must survive gets from a volume, not from the root.

// volatileBootFile records, next to the upper directory, the boot that last
// mounted it.
const volatileBootFile = "volatile-boot"

// volatileMarker is the directory the kernel leaves in a volatile overlay's
// work directory; while it is there the upper directory cannot be mounted
// again (overlayfs.rst, "Volatile mount").
func volatileMarker(work string) string { return filepath.Join(work, "work", "incompat", "volatile") }

var volatileUnsupported sync.Once

// mountVolatile mounts the writable overlay with data plus "volatile".
func (m *Manager) mountVolatile(id, target, data string) error {
	work := m.workDir(id)
	if err := clearVolatileMarker(work, filepath.Join(filepath.Dir(work), volatileBootFile)); err != nil {
		return fmt.Errorf("mount rootfs overlay at %s: %w", target, err)
	}
	err := unix.Mount("overlay", target, "overlay", 0, data+",volatile")
	if errors.Is(err, unix.EINVAL) {
		// A kernel before 5.10 does not know the option; any other
		// invalid option fails again without it.
		if err = unix.Mount("overlay", target, "overlay", 0, data); err == nil {
			volatileUnsupported.Do(func() {
				klog.InfoS("Overlayfs refused the volatile option (Linux 5.10+): container writable layers sync every copy-up")
			})
		}
	}
	if err != nil {
		return fmt.Errorf("mount rootfs overlay at %s: %w", target, err)
	}
	return nil
}

// clearVolatileMarker makes a writable layer that was mounted volatile
// before mountable again. The kernel docs allow removing the marker when
// the node has not crashed since: the upper directory then holds every
// write. crisp knows that only when the same boot mounted it (a crash is a
// reboot); a layer of an earlier boot may have lost writes, so it is
// refused, not mounted with holes. It records this boot for the mount that
// follows.
func clearVolatileMarker(work, bootFile string) error {
	if _, err := os.Stat(volatileMarker(work)); err == nil {
		rec, err := os.ReadFile(bootFile)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		if !bootid.Same(strings.TrimSpace(string(rec)), false) {
			return fmt.Errorf("the writable layer was mounted volatile before a reboot and may have lost writes in a crash; remove the container")
		}
		if err := os.RemoveAll(filepath.Dir(volatileMarker(work))); err != nil {
			return err
		}
	}
	return os.WriteFile(bootFile, []byte(bootid.Current()+"\n"), 0o644)
}
