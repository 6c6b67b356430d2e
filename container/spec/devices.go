package spec

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/crisp-runtime/crisp/errdefs"
)

var errNotDevice = errors.New("not a device node")

// hostDevRoot is where privileged containers' devices come from; a variable
// for tests.
var hostDevRoot = "/dev"

// devices fills Linux.Devices and the device cgroup rules. The rules start by
// denying everything; libcontainer appends its own defaults (/dev/null, zero,
// full, random, urandom, tty, pts, ptmx and mknod of anything) after them. A
// privileged container gets every host device and an allow-all rule, as with
// containerd's WithHostDevices + WithAllDevicesAllowed.
func devices(in *Input, s *specs.Spec) error {
	res := s.Linux.Resources
	res.Devices = []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}}
	var devs []specs.LinuxDevice
	if in.Config.Security.Privileged {
		host, err := devicesUnder(hostDevRoot, "/dev")
		if err != nil {
			return fmt.Errorf("list host devices: %w", err)
		}
		devs = host
		res.Devices = []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}}
	}
	for i, d := range in.Config.Devices {
		perms := d.Permissions
		if perms == "" {
			perms = "rwm"
		}
		if strings.Trim(perms, "rwm") != "" || len(perms) > 3 {
			return errdefs.InvalidArgument("devices[%d].permissions %q: only r, w and m are allowed", i, d.Permissions)
		}
		dst, err := cleanDestination(d.ContainerPath)
		if err != nil {
			return errdefs.InvalidArgument("devices[%d].container_path: %v", i, err)
		}
		src := d.HostPath
		if !filepath.IsAbs(src) {
			return errdefs.InvalidArgument("devices[%d].host_path %q is not absolute", i, src)
		}
		// A symlink (e.g. /dev/disk/by-id/...) names the node it points to.
		if src, err = filepath.EvalSymlinks(src); err != nil {
			return errdefs.InvalidArgument("devices[%d].host_path %q: %v", i, d.HostPath, err)
		}
		found, err := devicesUnder(src, dst)
		if err != nil {
			return errdefs.InvalidArgument("devices[%d].host_path %q: %v", i, d.HostPath, err)
		}
		for _, dev := range found {
			devs = addDevice(devs, dev)
			major, minor := dev.Major, dev.Minor
			res.Devices = append(res.Devices, specs.LinuxDeviceCgroup{
				Allow: true, Type: dev.Type, Major: &major, Minor: &minor, Access: perms,
			})
		}
	}
	s.Linux.Devices = devs
	return nil
}

// addDevice replaces a device with the same container path (a requested device
// overriding a privileged container's host device) or appends.
func addDevice(devs []specs.LinuxDevice, d specs.LinuxDevice) []specs.LinuxDevice {
	for i := range devs {
		if devs[i].Path == d.Path {
			devs[i] = d
			return devs
		}
	}
	return append(devs, d)
}

// devicesUnder returns the device at src, or, for a directory, every device
// below it (as containerd does for a CRI device that names a directory, e.g.
// /dev/snd), placed under dst. Like containerd it skips the pseudo-terminal,
// shm and mqueue directories, /dev/console, FIFOs and symlinks.
func devicesUnder(src, dst string) ([]specs.LinuxDevice, error) {
	st, err := os.Stat(src)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		d, err := deviceFromPath(src, dst)
		if err != nil {
			return nil, err
		}
		return []specs.LinuxDevice{d}, nil
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		return nil, err
	}
	var out []specs.LinuxDevice
	for _, e := range entries {
		name := e.Name()
		switch {
		case e.IsDir():
			switch name {
			case "pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev":
				continue
			}
			sub, err := devicesUnder(filepath.Join(src, name), filepath.Join(dst, name))
			if err != nil {
				return nil, err
			}
			out = append(out, sub...)
		case name == "console":
			continue
		default:
			d, err := deviceFromPath(filepath.Join(src, name), filepath.Join(dst, name))
			if errors.Is(err, errNotDevice) || errors.Is(err, os.ErrNotExist) {
				continue // symlinks, sockets, regular files; or gone meanwhile
			}
			if err != nil {
				return nil, err
			}
			out = append(out, d)
		}
	}
	return out, nil
}

// deviceFromPath describes the character or block device at p (not
// following a symlink) as it should appear at dst.
func deviceFromPath(p, dst string) (specs.LinuxDevice, error) {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return specs.LinuxDevice{}, &os.PathError{Op: "lstat", Path: p, Err: err}
	}
	var typ string
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFCHR:
		typ = "c"
	case unix.S_IFBLK:
		typ = "b"
	default:
		return specs.LinuxDevice{}, fmt.Errorf("%s: %w", p, errNotDevice)
	}
	mode := os.FileMode(st.Mode & 0o777)
	uid, gid := st.Uid, st.Gid
	return specs.LinuxDevice{
		Path:     dst,
		Type:     typ,
		Major:    int64(unix.Major(uint64(st.Rdev))),
		Minor:    int64(unix.Minor(uint64(st.Rdev))),
		FileMode: &mode,
		UID:      &uid,
		GID:      &gid,
	}, nil
}
