//go:build integration

package test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/crisp-runtime/crisp/network"
	"github.com/crisp-runtime/crisp/test/harness"
)

// crisp check on this node, with crisp's default network configured: every
// required prerequisite is there, the cgroup version is the node's, and the
// idmapped-mount probe (which runs crisp's pod-init helper in a user
// namespace) passes. Then a broken network configuration makes it exit 1.
func TestCheckThisNode(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "net.d")
	if err := os.MkdirAll(conf, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(conf, "10-crisp.conflist"), network.DefaultConflist("crisp0", "10.209.0.0/16"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(dir, "crisp.toml")
	if err := os.WriteFile(cfgFile, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	run := func() (string, error) {
		out, err := exec.Command(harness.Binary(t), "check", "--config", cfgFile, "--root", filepath.Join(dir, "root"),
			"--listen", filepath.Join(dir, "run", "crisp.sock"), "--cni-conf-dir", conf).CombinedOutput()
		return string(out), err
	}
	out, err := run()
	t.Logf("crisp check:\n%s", out)
	if err != nil || strings.Contains(out, "FAIL") {
		t.Fatalf("crisp check on this node: %v", err)
	}
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/cgroup", &st); err != nil {
		t.Fatal(err)
	}
	version := "v1"
	if st.Type == unix.CGROUP2_SUPER_MAGIC {
		version = "v2"
	}
	for _, want := range []string{
		"ok    cgroup version       " + version,
		"ok    cgroup controllers",
		"ok    overlayfs",
		"ok    idmapped mounts",
		`ok    CNI network          network "crisp"`,
		"ok    seccomp",
		inflaterLine(),
		"ok    iptables",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("crisp check output lacks %q", want)
		}
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".crisp-check-*")); len(left) > 0 {
		t.Errorf("crisp check left %v", left)
	}

	broken := `{"cniVersion": "1.0.0", "name": "x", "plugins": [{"type": "no-such-plugin"}]}`
	if err := os.WriteFile(filepath.Join(conf, "10-crisp.conflist"), []byte(broken), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err = run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(out, "FAIL  CNI network") || !strings.Contains(out, "no-such-plugin") {
		t.Fatalf("a network naming a missing plugin must fail the check with exit 1: err=%v\n%s", err, out)
	}
}

// inflaterLine is what crisp check must say about the gzip inflater here:
// ISA-L where libisal2 is installed (this host: hack/deps.sh), Go's
// inflater with a warning where it is not (the VM lane's guest).
func inflaterLine() string {
	for _, pattern := range []string{"/usr/lib/*/libisal.so.2", "/lib/*/libisal.so.2", "/usr/lib/libisal.so.2", "/usr/local/lib/libisal.so.2"} {
		if m, _ := filepath.Glob(pattern); len(m) > 0 {
			return "ok    gzip inflater        ISA-L"
		}
	}
	return "WARN  gzip inflater        Go"
}
