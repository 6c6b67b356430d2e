package spec

import (
	"os"
	"path/filepath"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// mknod makes a character device node; the tests run as root, like crisp.
func mknod(t *testing.T, p string, major, minor uint32) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mknod(p, unix.S_IFCHR|0o660, int(unix.Mkdev(major, minor))); err != nil {
		t.Skipf("mknod needs root: %v", err)
	}
}

func TestDevices(t *testing.T) {
	dir := t.TempDir()
	mknod(t, filepath.Join(dir, "snd/pcm0"), 116, 2)
	mknod(t, filepath.Join(dir, "snd/sub/ctl"), 116, 3)
	mknod(t, filepath.Join(dir, "snd/pts/0"), 136, 0) // skipped like containerd
	writeFile(t, filepath.Join(dir, "snd/readme"), "not a device")
	if err := os.Symlink("pcm0", filepath.Join(dir, "snd/link")); err != nil {
		t.Fatal(err)
	}
	type dev struct {
		path         string
		major, minor int64
	}
	for _, tc := range []struct {
		name    string
		devs    []Device
		want    []dev
		access  string
		wantErr string
	}{
		{name: "single", devs: []Device{{HostPath: "/dev/null", ContainerPath: "/dev/xnull", Permissions: "rw"}},
			want: []dev{{"/dev/xnull", 1, 3}}, access: "rw"},
		{name: "default permissions", devs: []Device{{HostPath: "/dev/zero", ContainerPath: "/dev/zero"}},
			want: []dev{{"/dev/zero", 1, 5}}, access: "rwm"},
		{name: "directory", devs: []Device{{HostPath: filepath.Join(dir, "snd"), ContainerPath: "/dev/snd", Permissions: "mrw"}},
			want: []dev{{"/dev/snd/pcm0", 116, 2}, {"/dev/snd/sub/ctl", 116, 3}}, access: "mrw"},
		{name: "symlinked device", devs: []Device{{HostPath: filepath.Join(dir, "snd/link"), ContainerPath: "/dev/pcm", Permissions: "r"}},
			want: []dev{{"/dev/pcm", 116, 2}}, access: "r"},
		{name: "bad permissions", devs: []Device{{HostPath: "/dev/null", ContainerPath: "/dev/null", Permissions: "rwx"}}, wantErr: "only r, w and m"},
		{name: "not a device", devs: []Device{{HostPath: filepath.Join(dir, "snd/readme"), ContainerPath: "/dev/x"}}, wantErr: "not a device node"},
		{name: "missing", devs: []Device{{HostPath: "/dev/nonexistent-crisp", ContainerPath: "/dev/x"}}, wantErr: "devices[0].host_path"},
		{name: "relative container path", devs: []Device{{HostPath: "/dev/null", ContainerPath: "dev/x"}}, wantErr: "not absolute"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := baseInput(t)
			in.Config.Devices = tc.devs
			s, _, err := Generate(in)
			wantErr(t, err, tc.wantErr, errInvalid)
			if err != nil {
				return
			}
			checkLibcontainer(t, s, in.Options)
			if len(s.Linux.Devices) != len(tc.want) {
				t.Fatalf("devices = %+v, want %+v", s.Linux.Devices, tc.want)
			}
			rules := s.Linux.Resources.Devices
			if len(rules) != 1+len(tc.want) || rules[0].Allow || rules[0].Access != "rwm" {
				t.Fatalf("rules = %+v: want deny-all then one allow per device", rules)
			}
			for i, w := range tc.want {
				d := s.Linux.Devices[i]
				if d.Path != w.path || d.Major != w.major || d.Minor != w.minor || d.Type != "c" || d.FileMode == nil || d.UID == nil {
					t.Errorf("device %d = %+v, want %+v", i, d, w)
				}
				r := rules[i+1]
				if !r.Allow || r.Type != "c" || *r.Major != w.major || *r.Minor != w.minor || r.Access != tc.access {
					t.Errorf("rule %d = %+v", i+1, r)
				}
			}
		})
	}
}

func TestPrivilegedDevices(t *testing.T) {
	dir := t.TempDir()
	mknod(t, filepath.Join(dir, "null"), 1, 3)
	mknod(t, filepath.Join(dir, "console"), 5, 1) // skipped
	mknod(t, filepath.Join(dir, "dri/card0"), 226, 0)
	old := hostDevRoot
	hostDevRoot = dir
	t.Cleanup(func() { hostDevRoot = old })

	in := baseInput(t)
	sc(&in).Privileged = true
	in.Pod.Privileged = true
	// A CRI device with the same path replaces the host one.
	in.Config.Devices = []Device{{HostPath: "/dev/zero", ContainerPath: "/dev/null", Permissions: "r"}}
	s, _ := mustGenerate(t, in)
	got := map[string]specs.LinuxDevice{}
	for _, d := range s.Linux.Devices {
		got[d.Path] = d
	}
	if len(got) != 2 || got["/dev/dri/card0"].Major != 226 || got["/dev/null"].Minor != 5 {
		t.Fatalf("devices = %+v", s.Linux.Devices)
	}
	if r := s.Linux.Resources.Devices[0]; !r.Allow || r.Type != "" || r.Major != nil || r.Access != "rwm" {
		t.Fatalf("first rule = %+v, want allow all", r)
	}

	// And the real /dev is walkable (no error on sockets, symlinks, ...).
	if _, err := devicesUnder("/dev", "/dev"); err != nil {
		t.Fatalf("walk /dev: %v", err)
	}
}
