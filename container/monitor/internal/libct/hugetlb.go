package libct

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/opencontainers/cgroups"
	"github.com/opencontainers/cgroups/fscommon"
)

// hybridRoot is where a hybrid host mounts its cgroup v2 hierarchy.
const hybridRoot = "/sys/fs/cgroup/unified"

// HybridHugetlb says whether hugetlb is a controller of the unified
// hierarchy of a hybrid host (cgroup v1 for everything else, as on a host
// where hugetlb is not mounted as a v1 hierarchy). libcontainer's v1
// manager knows hugetlb only as a v1 hierarchy: it fails to set limits
// there ("cannot set hugetlb limit"), and reports no usage. crisp sets and
// reads them in the container's unified cgroup, which libcontainer makes
// and joins in hybrid mode. Probed once: stats ask on every call.
var HybridHugetlb = sync.OnceValue(hybridHugetlb)

func hybridHugetlb() bool {
	if cgroups.IsCgroup2UnifiedMode() || !cgroups.IsCgroup2HybridMode() {
		return false
	}
	if _, err := os.Stat("/sys/fs/cgroup/hugetlb"); err == nil {
		return false
	}
	b, err := os.ReadFile(filepath.Join(hybridRoot, "cgroup.controllers"))
	return err == nil && strings.Contains(" "+strings.TrimSpace(string(b))+" ", " hugetlb ")
}

// TakeHybridHugetlb removes the hugetlb limits from r on a hybrid host
// (for SetHybridHugetlb) and returns them; elsewhere it returns nil and
// leaves r to libcontainer.
func TakeHybridHugetlb(r *cgroups.Resources) []*cgroups.HugepageLimit {
	if r == nil || len(r.HugetlbLimit) == 0 || !HybridHugetlb() {
		return nil
	}
	l := r.HugetlbLimit
	r.HugetlbLimit = nil
	return l
}

// SetHybridHugetlb writes limits in dir, the container's unified cgroup,
// after enabling the controller from the hierarchy's root down to it.
func SetHybridHugetlb(dir string, limits []*cgroups.HugepageLimit) error {
	rel, err := filepath.Rel(hybridRoot, dir)
	if err != nil || rel == "." || strings.HasPrefix(rel, "..") {
		return fmt.Errorf("hugetlb: %q is not a cgroup below %s", dir, hybridRoot)
	}
	parent := hybridRoot
	for _, name := range strings.Split(rel, "/") {
		if err := enableHugetlb(parent); err != nil {
			return err
		}
		parent = filepath.Join(parent, name)
	}
	for _, l := range limits {
		v := strconv.FormatUint(l.Limit, 10)
		if err := cgroups.WriteFile(dir, "hugetlb."+l.Pagesize+".max", v); err != nil {
			return fmt.Errorf("hugetlb: %w", err)
		}
		// Reservations (mmap'ed but not yet faulted pages) count too where
		// the kernel accounts them, as libcontainer does.
		if err := cgroups.WriteFile(dir, "hugetlb."+l.Pagesize+".rsvd.max", v); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("hugetlb: %w", err)
		}
	}
	return nil
}

func enableHugetlb(dir string) error {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.subtree_control"))
	if err != nil {
		return fmt.Errorf("hugetlb: %w", err)
	}
	if strings.Contains(" "+strings.TrimSpace(string(b))+" ", " hugetlb ") {
		return nil
	}
	if err := cgroups.WriteFile(dir, "cgroup.subtree_control", "+hugetlb"); err != nil {
		return fmt.Errorf("hugetlb: enable the controller below %s: %w", dir, err)
	}
	return nil
}

// HybridHugetlbStats reads each page size's usage in dir, the container's
// unified cgroup; v2 keeps no peak, so MaxUsage stays 0.
func HybridHugetlbStats(dir string) map[string]cgroups.HugetlbStats {
	out := map[string]cgroups.HugetlbStats{}
	for _, size := range cgroups.HugePageSizes() {
		v, err := fscommon.GetCgroupParamUint(dir, "hugetlb."+size+".current")
		if err != nil {
			continue
		}
		fail, _ := fscommon.GetValueByKey(dir, "hugetlb."+size+".events", "max")
		out[size] = cgroups.HugetlbStats{Usage: v, Failcnt: fail}
	}
	return out
}
