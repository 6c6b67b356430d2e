//go:build integration

package test

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crisp-runtime/crisp/internal/testutil"
	"github.com/crisp-runtime/crisp/test/harness"
)

const (
	hugepagesImage = "crisp-test/hugepages:1" // busybox + hugemap, see hack/images
	nrHugepages    = "/proc/sys/vm/nr_hugepages"
	hugePage       = 2 << 20
)

// reserveHugepages adds n 2 MiB pages to the node's pool and gives them
// back when the test ends (after its containers are gone).
func reserveHugepages(t *testing.T, n int) {
	t.Helper()
	old := strings.TrimSpace(readFile(t, nrHugepages))
	before, _ := strconv.Atoi(old)
	t.Cleanup(func() {
		if err := os.WriteFile(nrHugepages, []byte(old), 0o644); err != nil {
			t.Errorf("restore %s to %s: %v", nrHugepages, old, err)
		}
	})
	if err := os.WriteFile(nrHugepages, []byte(strconv.Itoa(before+n)), 0o644); err != nil {
		t.Fatalf("reserve huge pages: %v", err)
	}
	if got, _ := strconv.Atoi(strings.TrimSpace(readFile(t, nrHugepages))); got < before+n {
		t.Fatalf("the kernel gave %d huge pages of the %d asked for (memory too fragmented)", got, before+n)
	}
}

// hugetlbAvailable says where the hugetlb controller is: a v1 hierarchy, the
// v2 tree, or (this development host) only the unified hierarchy of a
// hybrid host.
func hugetlbAvailable() bool {
	for _, f := range []string{"/sys/fs/cgroup/cgroup.controllers", "/sys/fs/cgroup/unified/cgroup.controllers"} {
		if b, err := os.ReadFile(f); err == nil && strings.Contains(" "+strings.TrimSpace(string(b))+" ", " hugetlb ") {
			return true
		}
	}
	_, err := os.Stat("/sys/fs/cgroup/hugetlb")
	return err == nil
}

// TestHugepageLimit: a container limited to N huge pages maps N and fails
// on N+1; its status reports the limit, an update raises it, and the
// metrics report the pages a process holds.
func TestHugepageLimit(t *testing.T) {
	harness.RequireRegistry(t)
	if !hugetlbAvailable() {
		t.Skip("the kernel has no hugetlb cgroup controller")
	}
	const n = 3
	reserveHugepages(t, 2*n+2)
	d := harness.Start(t)
	pull(t, d, hugepagesImage)
	pod, podCfg := ctrPod(t, d, "hugepages")
	cfg := ctrConfig("huge", "sleep 3600")
	cfg.Image = &runtimeapi.ImageSpec{Image: hugepagesImage, UserSpecifiedImage: hugepagesImage}
	cfg.Linux.Resources = &runtimeapi.LinuxContainerResources{HugepageLimits: []*runtimeapi.HugepageLimit{{PageSize: "2MB", Limit: n * hugePage}}}
	id := runCtr(t, d, pod, podCfg, cfg)

	hugemap := func(pages int) *runtimeapi.ExecSyncResponse {
		r := execSync(t, d, id, 60, "hugemap", strconv.Itoa(pages))
		t.Logf("hugemap %d: exit %d, last line %q", pages, r.ExitCode, lastLine(string(r.Stdout)))
		return r
	}
	if r := hugemap(n); r.ExitCode != 0 || !strings.Contains(string(r.Stdout), "mapped 3") {
		t.Errorf("%d pages within the limit: exit %d %q %q", n, r.ExitCode, r.Stdout, r.Stderr)
	}
	if r := hugemap(n + 1); r.ExitCode == 0 {
		t.Errorf("%d pages over a %d-page limit were mapped: %q", n+1, n, r.Stdout)
	}

	st := ctrStatus(t, d, id)
	if h := st.GetResources().GetLinux().GetHugepageLimits(); len(h) != 1 || h[0].PageSize != "2MB" || h[0].Limit != n*hugePage {
		t.Errorf("status hugepage limits %v, want 2MB: %d", h, n*hugePage)
	}

	_, err := d.Runtime.UpdateContainerResources(harness.Ctx(t), &runtimeapi.UpdateContainerResourcesRequest{ContainerId: id,
		Linux: &runtimeapi.LinuxContainerResources{HugepageLimits: []*runtimeapi.HugepageLimit{{PageSize: "2MB", Limit: (n + 2) * hugePage}}}})
	if err != nil {
		t.Fatalf("UpdateContainerResources: %v", err)
	}
	if r := hugemap(n + 1); r.ExitCode != 0 {
		t.Errorf("%d pages after raising the limit to %d: exit %d %q", n+1, n+2, r.ExitCode, r.Stdout)
	}
	if h := ctrStatus(t, d, id).GetResources().GetLinux().GetHugepageLimits(); len(h) != 1 || h[0].Limit != (n+2)*hugePage {
		t.Errorf("status after update: %v", h)
	}

	// A second container holds two pages; the metrics report them.
	holder := ctrConfig("holder", "exec hugemap 2 hold")
	holder.Image = cfg.Image
	holder.Linux.Resources = &runtimeapi.LinuxContainerResources{HugepageLimits: []*runtimeapi.HugepageLimit{{PageSize: "2MB", Limit: 2 * hugePage}}}
	hid := runCtr(t, d, pod, podCfg, holder)
	waitLogContains(t, logPathOf(podCfg, holder), "mapped 2")
	descs := descriptors(t, d)
	usage := metricValue(t, descs, containerMetricsOf(t, podMetricsOf(t, d, descs, pod), hid), "container_hugetlb_usage_bytes", "pagesize", "2MB")
	t.Logf("holder of 2 pages: container_hugetlb_usage_bytes{pagesize=2MB} = %d", usage)
	if usage != 2*hugePage {
		t.Errorf("hugetlb usage %d, want %d", usage, 2*hugePage)
	}
}

// waitLogContains waits until the CRI log at path contains s.
func waitLogContains(t *testing.T, path, s string) {
	t.Helper()
	testutil.WaitFor(t, "log line "+s, time.Minute, func() bool {
		b, _ := os.ReadFile(path)
		return strings.Contains(string(b), s)
	})
}
