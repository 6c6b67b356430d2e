package nodecheck

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/crisp-runtime/crisp/config"
)

// Controllers crisp (through libcontainer) sets for every pod and container;
// v1 also needs freezer to stop a container's processes at once, and
// devices for its device rules (v2 does both without a controller).
// The optional ones are used when present.
var (
	requiredV1 = []string{"cpu", "cpuacct", "cpuset", "memory", "pids", "devices", "freezer"}
	requiredV2 = []string{"cpu", "memory", "pids"}
	optionalV1 = []string{"blkio", "hugetlb"}
	optionalV2 = []string{"cpuset", "hugetlb", "io"}
)

// withoutController is what pods lose without an optional controller.
var withoutController = map[string]string{
	"hugetlb": "hugepages-* limits are not enforced",
	"blkio":   "no block I/O limits or stats",
	"io":      "no block I/O limits or stats",
	"cpuset":  "cpuset pinning (CPU manager static policy) is not applied",
}

func (n *Node) cgroups() []Result {
	var st unix.Statfs_t
	if err := unix.Statfs(n.CgroupRoot, &st); err != nil {
		return []Result{{Name: "cgroups", Status: Fail, Detail: fmt.Sprintf("%s: %v", n.CgroupRoot, err),
			Fix: "mount cgroup2 at /sys/fs/cgroup (or the v1 controllers under it)"}}
	}
	var version int
	var avail []string
	detail := ""
	if st.Type == unix.CGROUP2_SUPER_MAGIC {
		version = 2
		b, err := os.ReadFile(filepath.Join(n.CgroupRoot, "cgroup.controllers"))
		if err != nil {
			return []Result{{Name: "cgroups", Status: Fail, Detail: err.Error(), Fix: "a cgroup2 root without cgroup.controllers is broken: remount cgroup2"}}
		}
		avail = strings.Fields(string(b))
	} else {
		version = 1
		b, err := os.ReadFile(filepath.Join(n.Proc, "cgroups"))
		if err != nil {
			return []Result{{Name: "cgroups", Status: Fail, Detail: err.Error(), Fix: "the kernel needs CONFIG_CGROUPS"}}
		}
		avail = mountedV1(string(b))
		var u unix.Statfs_t
		if unix.Statfs(filepath.Join(n.CgroupRoot, "unified"), &u) == nil && u.Type == unix.CGROUP2_SUPER_MAGIC {
			detail = " (hybrid: cgroup2 also at " + filepath.Join(n.CgroupRoot, "unified") + ", unused)"
		}
	}
	rs := []Result{ok("cgroup version", fmt.Sprintf("v%d%s", version, detail))}
	rs = append(rs, controllerVerdict(version, avail)...)
	if n.Config.CgroupDriver == "systemd" {
		rs = append(rs, systemdRunning())
	}
	return rs
}

// mountedV1 lists the v1 controllers that are enabled and on a hierarchy,
// from /proc/cgroups ("name hierarchy num_cgroups enabled"). Hierarchy 0 is
// a controller left to cgroup2 or not mounted: useless to a v1 runtime.
func mountedV1(procCgroups string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(procCgroups))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 4 || strings.HasPrefix(f[0], "#") {
			continue
		}
		h, err1 := strconv.Atoi(f[1])
		en, err2 := strconv.Atoi(f[3])
		if err1 == nil && err2 == nil && h != 0 && en == 1 {
			out = append(out, f[0])
		}
	}
	return out
}

// controllerVerdict: a missing required controller fails, a missing
// optional one warns with what it costs.
func controllerVerdict(version int, avail []string) []Result {
	required, optional := requiredV1, optionalV1
	if version == 2 {
		required, optional = requiredV2, optionalV2
	}
	var missing []string
	for _, c := range required {
		if !slices.Contains(avail, c) {
			missing = append(missing, c)
		}
	}
	rs := []Result{ok("cgroup controllers", strings.Join(required, " "))}
	if len(missing) > 0 {
		rs[0] = Result{Name: "cgroup controllers", Status: Fail,
			Detail: fmt.Sprintf("v%d lacks %s", version, strings.Join(missing, " ")),
			Fix:    "enable them: remove cgroup_disable=... from the kernel command line, or mount them under /sys/fs/cgroup"}
	}
	for _, c := range optional {
		name := "cgroup " + c
		if slices.Contains(avail, c) {
			rs = append(rs, ok(name, "available"))
			continue
		}
		rs = append(rs, Result{Name: name, Status: Warn, Detail: fmt.Sprintf("not on the v%d hierarchy: %s", version, withoutController[c]),
			Fix: fmt.Sprintf("enable the %s controller (on v1, mount it under /sys/fs/cgroup; on a hybrid node it may be bound to cgroup2 only)", c)})
	}
	return rs
}

func systemdRunning() Result {
	if fi, err := os.Stat("/run/systemd/system"); err == nil && fi.IsDir() {
		return ok("systemd", "running (cgroup_driver = \"systemd\")")
	}
	return Result{Name: "systemd", Status: Fail, Detail: "cgroup_driver = \"systemd\" but systemd is not PID 1",
		Fix: "set cgroup_driver = \"cgroupfs\" in " + config.DefaultPath + ", or boot with systemd"}
}
