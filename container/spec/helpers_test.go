package spec

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	lcvalidate "github.com/opencontainers/runc/libcontainer/configs/validate"
	"github.com/opencontainers/runc/libcontainer/specconv"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/crisp-runtime/crisp/errdefs"
	"github.com/crisp-runtime/crisp/sandbox"
)

const (
	testPasswd = `root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
app:x:1000:1000:app:/home/app:/bin/sh
# a comment
web:x:33:33:www:/var/www:/usr/sbin/nologin
`
	testGroup = `root:x:0:
daemon:x:1:
wheel:x:10:app,web
audio:x:29:app
app:x:1000:
web:x:33:
`
)

// newRootfs makes a rootfs with crafted /etc/passwd and /etc/group.
func newRootfs(t testing.TB) string {
	t.Helper()
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "etc/passwd"), testPasswd)
	writeFile(t, filepath.Join(root, "etc/group"), testGroup)
	return root
}

func writeFile(t testing.TB, p, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// baseInput is an ordinary pod container: own net/ipc/uts/pid (CONTAINER)
// namespaces, no resources, no security options.
func baseInput(t testing.TB) Input {
	t.Helper()
	dir := t.TempDir()
	for _, f := range []string{"hosts", "resolv.conf", "hostname"} {
		writeFile(t, filepath.Join(dir, f), f+"\n")
	}
	if err := os.Mkdir(filepath.Join(dir, "shm"), 0o755); err != nil {
		t.Fatal(err)
	}
	return Input{
		ID: "c0ffee",
		Pod: Pod{
			ID: "pod1", Name: "web", Namespace: "default", UID: "uid-1",
			NetNS: "/run/crisp/ns/pod1/net", IPCNS: "/run/crisp/ns/pod1/ipc", UTSNS: "/run/crisp/ns/pod1/uts",
			CgroupParent: "/kubepods/besteffort/poduid-1",
			HostsPath:    filepath.Join(dir, "hosts"), ResolvConfPath: filepath.Join(dir, "resolv.conf"),
			HostnamePath: filepath.Join(dir, "hostname"), ShmPath: filepath.Join(dir, "shm"),
			Hostname: "web-0",
			PIDMode:  sandbox.ModeContainer,
		},
		Config: &Config{
			Name:     "app",
			Security: SecurityContext{Namespaces: NamespaceOptions{PID: sandbox.ModeContainer}},
		},
		Image:      imageConfig("", []string{"/bin/sh"}, []string{"-c", "sleep 1"}),
		ImageName:  "registry.local/app:1",
		RootfsPath: newRootfs(t),
		Options:    Options{CgroupDriver: "cgroupfs"},
	}
}

func sc(in *Input) *SecurityContext {
	return &in.Config.Security
}

func mustGenerate(t testing.TB, in Input) (*specs.Spec, Notes) {
	t.Helper()
	s, n, err := Generate(in)
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	checkLibcontainer(t, s, in.Options)
	return s, n
}

// checkLibcontainer is the acceptance test: the monitor converts the spec
// with specconv, and libcontainer validates the result before starting.
// Validation is skipped where it depends on host state the test cannot
// have (a v2 spec on a v1 host, net sysctls with a fake netns path).
func checkLibcontainer(t testing.TB, s *specs.Spec, o Options) {
	t.Helper()
	cfg, err := specconv.CreateLibcontainerConfig(&specconv.CreateOpts{
		CgroupName:       "c0ffee",
		UseSystemdCgroup: o.CgroupDriver == "systemd",
		Spec:             s,
	})
	if err != nil {
		t.Fatalf("specconv rejected the spec: %v", err)
	}
	if o.CgroupV2 != hostCgroupV2() {
		return
	}
	for k := range s.Linux.Sysctl {
		if strings.HasPrefix(strings.ReplaceAll(k, "/", "."), "net.") {
			return
		}
	}
	if err := lcvalidate.Validate(cfg); err != nil {
		t.Fatalf("libcontainer validation rejected the config: %v", err)
	}
}

func hostCgroupV2() bool {
	o, err := DetectOptions()
	return err == nil && o.CgroupV2
}

// wantErr checks err against a wanted substring ("" = no error) and kind.
func wantErr(t testing.TB, err error, substr string, kind error) {
	t.Helper()
	if substr == "" {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("want error containing %q, got none", substr)
	}
	if !strings.Contains(err.Error(), substr) {
		t.Fatalf("error %q does not contain %q", err, substr)
	}
	if kind != nil && !errors.Is(err, kind) {
		t.Fatalf("error %q is not %v", err, kind)
	}
}

var errInvalid = errdefs.ErrInvalidArgument
