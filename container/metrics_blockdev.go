package container

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// blockDevices names the block devices of the host's /sys.
var blockDevices = &blockDeviceNames{sysfs: "/sys"}

// blockDeviceNames caches /sys lookups; device numbers of disks do not
// change while crisp runs, and the few that come and go (loop) only add
// entries.
type blockDeviceNames struct {
	sysfs string
	names sync.Map // "major:minor" -> name
}

// name is the device's /dev name, as cAdvisor labels it, or "major:minor"
// when sysfs does not know it.
func (b *blockDeviceNames) name(major, minor uint64) string {
	key := strconv.FormatUint(major, 10) + ":" + strconv.FormatUint(minor, 10)
	if v, ok := b.names.Load(key); ok {
		return v.(string)
	}
	name := key
	if data, err := os.ReadFile(filepath.Join(b.sysfs, "dev", "block", key, "uevent")); err == nil {
		if dev := ueventDevName(string(data)); dev != "" {
			name = "/dev/" + dev
		}
	}
	b.names.Store(key, name)
	return name
}

// ueventDevName returns the DEVNAME of a sysfs uevent file (the last one if
// repeated), or "".
func ueventDevName(uevent string) string {
	var name string
	for _, l := range strings.Split(uevent, "\n") {
		if v, ok := strings.CutPrefix(l, "DEVNAME="); ok {
			name = v
		}
	}
	return name
}
