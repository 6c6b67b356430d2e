package sandbox

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/crisp-runtime/crisp/config"
	"github.com/crisp-runtime/crisp/errdefs"
)

// ShmSizeAnnotation is CRI-O's pod annotation for the size of /dev/shm, a
// Kubernetes quantity ("2Gi"); Kubernetes has no field for it.
const ShmSizeAnnotation = "io.kubernetes.cri-o.ShmSize"

// ShmOptions size a pod's /dev/shm when it has no annotation.
type ShmOptions struct {
	// Size in bytes; 0 is 64 MiB, Docker's and kubelet's default.
	Size int64
	// PodMemoryLimit sizes it to the pod's memory limit instead.
	PodMemoryLimit bool
}

const defaultShmSize = 64 << 20

// shmSize decides a pod's /dev/shm size. The size only bounds the tmpfs:
// its pages are charged to the memory cgroup of the process that writes
// them, a container in the pod, so a bigger /dev/shm never lets a pod use
// memory beyond its limit (writing past it gets the writer OOM-killed).
func (o ShmOptions) shmSize(cfg Config) (int64, error) {
	if v, ok := cfg.Annotations[ShmSizeAnnotation]; ok {
		n, err := config.ParseSize(v)
		if err != nil {
			return 0, errdefs.InvalidArgument("annotation %s: %v", ShmSizeAnnotation, err)
		}
		return n, nil
	}
	if o.PodMemoryLimit {
		return podMemoryLimit(cfg), nil
	}
	if o.Size > 0 {
		return o.Size, nil
	}
	return defaultShmSize, nil
}

// podMemoryLimit is the pod's memory limit as kubelet sends it: the sum of
// its containers' limits (linux.resources) plus the runtime class's
// overhead, which is what kubelet sets on the pod cgroup. A pod without a
// limit gets the node's memory, as kubelet sizes a memory-backed emptyDir.
func podMemoryLimit(cfg Config) int64 {
	if r := cfg.Resources; r != nil && r.MemoryLimit > 0 {
		n := r.MemoryLimit
		if o := cfg.Overhead; o != nil && o.MemoryLimit > 0 {
			n += o.MemoryLimit
		}
		return n
	}
	return nodeMemory()
}

// nodeMemory is MemTotal, or the 64 MiB default if /proc cannot say.
func nodeMemory() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return defaultShmSize
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err == nil && kb > 0 {
				return kb << 10
			}
		}
	}
	return defaultShmSize
}

// hostShm is what host IPC pods share.
const hostShm = "/dev/shm"

// mountShm gives the pod the /dev/shm its containers share. POSIX shared
// memory belongs with the IPC namespace, so a pod with its own IPC
// namespace gets its own tmpfs, owned by the pod's root when the pod has
// its own user namespace.
func mountShm(path string, size int64, ns NamespaceOptions) error {
	if err := os.MkdirAll(path, 0o700); err != nil {
		return err
	}
	opts := fmt.Sprintf("mode=1777,size=%d", size)
	if uid, gid, ok := ns.RootIDs(); ok {
		opts += fmt.Sprintf(",uid=%d,gid=%d", uid, gid)
	}
	if err := unix.Mount("shm", path, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, opts); err != nil {
		return fmt.Errorf("mount pod shm at %s: %w", path, err)
	}
	return nil
}

func unmountShm(path string) error {
	if err := unmount(path); err != nil {
		return err
	}
	if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		return err
	}
	return nil
}
