package nodecheck

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/crisp-runtime/crisp/internal/idmap"
	"github.com/crisp-runtime/crisp/sandbox/podinit"
)

// scratch is a directory on the filesystem of crisp's root, where the mount
// probes run; the caller removes it.
func (n *Node) scratch() (string, error) {
	return os.MkdirTemp(existingDir(n.Config.Root), ".crisp-check-")
}

// overlay mounts an overlay where image layers will live: the module may be
// missing, or the root's filesystem may not take an upper layer (overlay on
// overlay, NFS).
func (n *Node) overlay() Result {
	fail := func(err error) Result {
		return Result{Name: "overlayfs", Status: Fail, Detail: err.Error(),
			Fix: "modprobe overlay (kernel CONFIG_OVERLAY_FS); the root (" + n.Config.Root + ") must be on ext4, xfs (ftype=1) or btrfs, not overlay or NFS: set root = elsewhere"}
	}
	dir, err := n.scratch()
	if err != nil {
		return fail(err)
	}
	defer os.RemoveAll(dir)
	var lower, upper, work, merged = filepath.Join(dir, "lower"), filepath.Join(dir, "upper"), filepath.Join(dir, "work"), filepath.Join(dir, "merged")
	for _, d := range []string{lower, upper, work, merged} {
		if err := os.Mkdir(d, 0o700); err != nil {
			return fail(err)
		}
	}
	if err := unix.Mount("overlay", merged, "overlay", 0, "lowerdir="+lower+",upperdir="+upper+",workdir="+work); err != nil {
		return fail(fmt.Errorf("mount overlay in %s: %w", filepath.Dir(dir), err))
	}
	if err := unix.Unmount(merged, unix.MNT_DETACH); err != nil {
		return fail(err)
	}
	return ok("overlayfs", "mounts in "+filepath.Dir(dir))
}

// probeHostID is where the probe's user namespace maps its root, as crisp's
// own probe does.
const probeHostID = 65536

// idmapped runs crisp's own user-namespace probe: an overlay over an
// idmapped layer on the root's filesystem. Optional: without it pods with
// hostUsers: false are refused, the others run.
func (n *Node) idmapped() Result {
	warn := func(err error) Result {
		return Result{Name: "idmapped mounts", Status: Warn, Detail: "pods with hostUsers: false are refused: " + err.Error(),
			Fix: "Linux 5.19 or later (6.3+ for overlayfs on most filesystems), root on ext4, xfs or btrfs"}
	}
	userns, stop, err := startUserns(probeHostID)
	if err != nil {
		return warn(err)
	}
	defer stop()
	dir, err := n.scratch()
	if err != nil {
		return warn(err)
	}
	defer os.RemoveAll(dir)
	if err := idmap.ProbeOverlay(filepath.Join(dir, "probe"), userns, probeHostID); err != nil {
		return warn(err)
	}
	return ok("idmapped mounts", "overlay over an idmapped layer works: user namespaces (hostUsers: false) available")
}

// startUserns starts the binary running the check (crisp) as its pod-init
// helper in a new user namespace mapping 0 to hostID, and returns that
// namespace. stop ends the helper.
func startUserns(hostID uint32) (ns *os.File, stop func(), err error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, nil, err
	}
	statusR, statusW, err := os.Pipe()
	if err != nil {
		return nil, nil, err
	}
	defer statusR.Close()
	releaseR, releaseW, err := os.Pipe()
	if err != nil {
		statusW.Close()
		return nil, nil, err
	}
	cmd := exec.Command(exe, podinit.Command)
	cmd.Env = append(os.Environ(), podinit.Env+"={}")
	cmd.ExtraFiles = []*os.File{statusW, releaseR}
	m := []syscall.SysProcIDMap{{ContainerID: 0, HostID: int(hostID), Size: 65536}}
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWUSER, UidMappings: m, GidMappings: m, Pdeathsig: syscall.SIGKILL}
	err = cmd.Start()
	statusW.Close()
	releaseR.Close()
	if err != nil {
		releaseW.Close()
		return nil, nil, fmt.Errorf("start a process in a new user namespace: %w", err)
	}
	end := func() { releaseW.Close(); _ = cmd.Wait() }
	_ = statusR.SetReadDeadline(time.Now().Add(30 * time.Second))
	line, _ := bufio.NewReader(statusR).ReadString('\n')
	if line != "ok\n" {
		end()
		return nil, nil, fmt.Errorf("user namespace helper: %q", strings.TrimSpace(line))
	}
	ns, err = os.Open(fmt.Sprintf("/proc/%d/ns/user", cmd.Process.Pid))
	if err != nil {
		end()
		return nil, nil, err
	}
	return ns, func() { ns.Close(); end() }, nil
}

// sunPathMax is the longest path a unix socket address holds (108 bytes
// with the terminating NUL).
const sunPathMax = 107

// socketDir checks where the CRI socket goes: a path a unix socket can have,
// in a directory crisp can create or write.
func (n *Node) socketDir() Result {
	const name = "socket directory"
	sock := n.Config.Listen
	if len(sock) > sunPathMax {
		return Result{Name: name, Status: Fail, Detail: fmt.Sprintf("%s is %d bytes; a unix socket path holds %d", sock, len(sock), sunPathMax),
			Fix: "choose a shorter listen path (key listen, flag --listen)"}
	}
	dir := filepath.Dir(sock)
	have := existingDir(dir)
	if fi, err := os.Stat(dir); err == nil && !fi.IsDir() {
		return Result{Name: name, Status: Fail, Detail: dir + " is not a directory", Fix: "remove it or choose another listen path"}
	}
	if err := unix.Access(have, unix.W_OK|unix.X_OK); err != nil {
		return Result{Name: name, Status: Fail, Detail: fmt.Sprintf("%s is not writable: %v", have, err),
			Fix: "make it writable by root (a read-only /run?) or choose another listen path"}
	}
	detail := dir + " exists"
	if have != dir {
		detail = dir + " will be created in " + have
	}
	if c, err := net.DialTimeout("unix", sock, time.Second); err == nil {
		c.Close()
		detail += "; a runtime already serves " + sock
	} else if !errors.Is(err, os.ErrNotExist) && !errors.Is(err, syscall.ECONNREFUSED) {
		detail += fmt.Sprintf("; %s: %v", sock, err)
	}
	return ok(name, detail)
}

// Free-space bounds for the root: below minFree crisp cannot pull a typical
// image; below warnFreePercent kubelet's default eviction (imagefs.available
// 15%) starts removing images and pods.
const (
	minFree         = 1 << 30
	warnFreePercent = 15
)

func (n *Node) freeSpace() Result {
	dir := existingDir(n.Config.Root)
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return Result{Name: "free space", Status: Fail, Detail: err.Error()}
	}
	return spaceVerdict(dir, st.Bavail*uint64(st.Bsize), st.Blocks*uint64(st.Bsize))
}

func spaceVerdict(dir string, avail, total uint64) Result {
	pct := 0.0
	if total > 0 {
		pct = 100 * float64(avail) / float64(total)
	}
	r := ok("free space", fmt.Sprintf("%s: %.1f GiB free of %.1f GiB (%.0f%%)", dir, gib(avail), gib(total), pct))
	switch {
	case avail < minFree:
		r.Status, r.Fix = Fail, fmt.Sprintf("free at least %.0f GiB there, or set root on a larger filesystem", gib(minFree))
	case pct < warnFreePercent:
		r.Status, r.Fix = Warn, fmt.Sprintf("below %d%% free kubelet evicts pods and removes images (imagefs.available): free space", warnFreePercent)
	}
	return r
}

func gib(b uint64) float64 { return float64(b) / (1 << 30) }
