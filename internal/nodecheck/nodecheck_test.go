package nodecheck

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/crisp-runtime/crisp/config"
	"github.com/crisp-runtime/crisp/network"
)

// This machine's /proc/cgroups: hugetlb and the net controllers are left to
// the unified hierarchy (hierarchy 0).
const hybridProcCgroups = `#subsys_name	hierarchy	num_cgroups	enabled
cpuset	3	1	1
cpu	1	1	1
cpuacct	2	1	1
blkio	7	1	1
memory	4	173	1
devices	5	1	1
freezer	6	1	1
net_cls	0	1	1
perf_event	0	1	1
net_prio	0	1	1
hugetlb	0	1	1
pids	8	1	1
`

func byName(rs []Result) map[string]Result {
	m := map[string]Result{}
	for _, r := range rs {
		m[r.Name] = r
	}
	return m
}

func TestControllers(t *testing.T) {
	v1 := mountedV1(hybridProcCgroups)
	if strings.Join(v1, " ") != "cpuset cpu cpuacct blkio memory devices freezer pids" {
		t.Fatalf("mounted v1 controllers: %v", v1)
	}
	rs := byName(controllerVerdict(1, v1))
	if rs["cgroup controllers"].Status != OK || rs["cgroup blkio"].Status != OK {
		t.Errorf("all required v1 controllers are there: %+v", rs)
	}
	if r := rs["cgroup hugetlb"]; r.Status != Warn || !strings.Contains(r.Detail, "hugepages") {
		t.Errorf("hugetlb off v1 must warn with its cost: %+v", r)
	}

	// pids disabled (cgroup_disable=pids) fails and names it.
	noPids := strings.Replace(hybridProcCgroups, "pids	8	1	1", "pids	8	1	0", 1)
	r := byName(controllerVerdict(1, mountedV1(noPids)))["cgroup controllers"]
	if r.Status != Fail || !strings.Contains(r.Detail, "pids") || r.Fix == "" {
		t.Errorf("v1 without pids: %+v", r)
	}

	rs = byName(controllerVerdict(2, strings.Fields("cpuset cpu io memory pids")))
	if rs["cgroup controllers"].Status != OK || rs["cgroup io"].Status != OK || rs["cgroup cpuset"].Status != OK || rs["cgroup hugetlb"].Status != Warn {
		t.Errorf("v2 with cpuset cpu io memory pids: %+v", rs)
	}
	if _, ok := rs["cgroup blkio"]; ok {
		t.Errorf("v2 has no blkio controller to ask for: %+v", rs)
	}
	if r := byName(controllerVerdict(2, strings.Fields("cpu io pids")))["cgroup controllers"]; r.Status != Fail || !strings.Contains(r.Detail, "memory") {
		t.Errorf("v2 without memory: %+v", r)
	}
}

func TestSpaceVerdict(t *testing.T) {
	for _, tc := range []struct {
		avail, total uint64
		want         Status
	}{
		{512 << 20, 100 << 30, Fail},
		{10 << 30, 100 << 30, Warn},
		{50 << 30, 100 << 30, OK},
	} {
		if r := spaceVerdict("/x", tc.avail, tc.total); r.Status != tc.want || (r.Status != OK && r.Fix == "") {
			t.Errorf("%d of %d bytes free: %+v, want %v with a fix", tc.avail, tc.total, r, tc.want)
		}
	}
}

func TestKernelSeccomp(t *testing.T) {
	status := "Name:\tcat\nSeccomp:\t0\nSeccomp_filters:\t0\n"
	actions := "kill_process kill_thread trap errno user_notif trace log allow\n"
	if err := kernelSeccomp(status, actions); err != nil {
		t.Errorf("a seccomp kernel: %v", err)
	}
	if err := kernelSeccomp("Name:\tcat\n", actions); err == nil {
		t.Error("no Seccomp: line is a kernel without seccomp")
	}
	if err := kernelSeccomp(status, "kill_process allow"); err == nil || !strings.Contains(err.Error(), "errno") {
		t.Errorf("no errno action: %v", err)
	}
}

func TestSocketDir(t *testing.T) {
	dir := t.TempDir()
	node := func(listen string) Result {
		cfg := config.Default()
		cfg.Listen = listen
		return New(cfg).socketDir()
	}
	if r := node(filepath.Join(dir, "sub", "crisp.sock")); r.Status != OK || !strings.Contains(r.Detail, "will be created in "+dir) {
		t.Errorf("missing directory under a writable one: %+v", r)
	}
	if r := node("/" + strings.Repeat("x", 120) + "/crisp.sock"); r.Status != Fail || !strings.Contains(r.Detail, "107") {
		t.Errorf("a path too long for sun_path: %+v", r)
	}
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if r := node(filepath.Join(file, "crisp.sock")); r.Status != Fail || !strings.Contains(r.Detail, "not a directory") {
		t.Errorf("a file where the directory goes: %+v", r)
	}
	sock := filepath.Join(dir, "live.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if r := node(sock); r.Status != OK || !strings.Contains(r.Detail, "already serves") {
		t.Errorf("a socket something serves on: %+v", r)
	}
}

func TestCNI(t *testing.T) {
	if _, err := os.Stat("/usr/lib/cni/bridge"); err != nil {
		t.Fatalf("the CNI plugins are missing (hack/deps.sh installs containernetworking-plugins): %v", err)
	}
	dir := t.TempDir()
	cfg := config.Default()
	cfg.CNI.ConfDir = dir
	n := New(cfg)
	if r := n.cni(t.Context()); r.Status != Warn || r.Fix == "" {
		t.Errorf("no configuration yet: %+v", r)
	}
	broken := `{"cniVersion": "1.0.0", "name": "x", "plugins": [{"type": "no-such-plugin"}]}`
	if err := os.WriteFile(filepath.Join(dir, "10-x.conflist"), []byte(broken), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := n.cni(t.Context()); r.Status != Fail || !strings.Contains(r.Detail, "no-such-plugin") {
		t.Errorf("a configuration naming a missing plugin: %+v", r)
	}
	if err := os.WriteFile(filepath.Join(dir, "05-crisp.conflist"), network.DefaultConflist("crisp0", "10.209.0.0/16"), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := n.cni(t.Context()); r.Status != OK || !strings.Contains(r.Detail, "05-crisp.conflist") {
		t.Errorf("crisp's default network: %+v", r)
	}
}

func TestOverlayProbe(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting an overlay needs root")
	}
	cfg := config.Default()
	cfg.Root = filepath.Join(t.TempDir(), "not", "yet")
	if r := New(cfg).overlay(); r.Status != OK {
		t.Fatalf("overlay in a temporary directory: %+v", r)
	}
	left, _ := filepath.Glob(filepath.Join(filepath.Dir(filepath.Dir(cfg.Root)), ".crisp-check-*"))
	if len(left) > 0 {
		t.Errorf("the probe left %v", left)
	}
}

func TestPrint(t *testing.T) {
	var b bytes.Buffer
	failed := Print(&b, []Result{
		ok("a", "fine"),
		{Name: "b", Status: Warn, Detail: "meh", Fix: "fix b"},
		{Name: "c", Status: Fail, Detail: "broken", Fix: "fix c"},
		{Name: "d", Status: Fail, Detail: "broken too", Fix: "fix d"},
	})
	out := b.String()
	if failed != 2 {
		t.Errorf("failed = %d, want 2", failed)
	}
	for _, want := range []string{"ok    a", "WARN  b", "fix: fix b", "FAIL  c", "fix: fix c"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
