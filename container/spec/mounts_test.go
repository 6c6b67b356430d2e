package spec

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/moby/sys/mountinfo"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/crisp-runtime/crisp/errdefs"
	"github.com/crisp-runtime/crisp/sandbox"
)

// fakeMounts makes lookupMount answer with the given optional fields.
func fakeMounts(t *testing.T, optional string) {
	old := lookupMount
	lookupMount = func(p string) (*mountinfo.Info, error) {
		return &mountinfo.Info{Mountpoint: "/mnt", Optional: optional}, nil
	}
	t.Cleanup(func() { lookupMount = old })
}

func findMount(ms []specs.Mount, dst string) *specs.Mount {
	for i := range ms {
		if ms[i].Destination == dst {
			return &ms[i]
		}
	}
	return nil
}

func TestDefaultMounts(t *testing.T) {
	for _, tc := range []struct {
		name       string
		privileged bool
		readonly   bool
		sysMode    string
		fileMode   string
	}{
		{name: "default", sysMode: "ro", fileMode: "rw"},
		{name: "privileged", privileged: true, sysMode: "rw", fileMode: "rw"},
		{name: "readonly rootfs", readonly: true, sysMode: "ro", fileMode: "ro"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := baseInput(t)
			sc(&in).Privileged, sc(&in).ReadonlyRootfs = tc.privileged, tc.readonly
			in.Pod.Privileged = tc.privileged
			s, _ := mustGenerate(t, in)
			var dsts []string
			for _, m := range s.Mounts {
				dsts = append(dsts, m.Destination)
			}
			want := []string{"/proc", "/dev", "/dev/pts", "/dev/mqueue", "/sys", "/sys/fs/cgroup", "/etc/hostname", "/etc/hosts", "/etc/resolv.conf", "/dev/shm"}
			if !slices.Equal(dsts, want) {
				t.Fatalf("mounts = %q\nwant %q", dsts, want)
			}
			for _, d := range []string{"/sys", "/sys/fs/cgroup"} {
				if m := findMount(s.Mounts, d); !slices.Contains(m.Options, tc.sysMode) {
					t.Errorf("%s options %q lack %s", d, m.Options, tc.sysMode)
				}
			}
			for _, d := range []string{"/etc/hosts", "/etc/hostname", "/etc/resolv.conf"} {
				m := findMount(s.Mounts, d)
				if m.Type != "bind" || !slices.Contains(m.Options, tc.fileMode) {
					t.Errorf("%s = %+v, want a %s bind", d, m, tc.fileMode)
				}
			}
			if m := findMount(s.Mounts, "/dev/shm"); m.Source != in.Pod.ShmPath || !slices.Equal(m.Options, []string{"rbind", "rprivate", "rw"}) {
				t.Errorf("/dev/shm = %+v", m)
			}
			if s.Root.Readonly != tc.readonly {
				t.Errorf("root readonly = %v", s.Root.Readonly)
			}
		})
	}
}

func TestSandboxFilesSkipped(t *testing.T) {
	in := baseInput(t)
	in.Pod.ShmPath = ""                                   // private tmpfs stays
	in.Pod.HostnamePath = filepath.Join(t.TempDir(), "x") // missing file
	etcHosts := filepath.Join(t.TempDir(), "kubelet-hosts")
	writeFile(t, etcHosts, "1.2.3.4 x\n")
	in.Config.Mounts = []Mount{{ContainerPath: "/etc/hosts", HostPath: etcHosts}}
	s, _ := mustGenerate(t, in)
	if m := findMount(s.Mounts, "/dev/shm"); m.Type != "tmpfs" {
		t.Errorf("/dev/shm = %+v, want the default tmpfs", m)
	}
	if m := findMount(s.Mounts, "/etc/hostname"); m != nil {
		t.Errorf("/etc/hostname mounted from a missing file: %+v", m)
	}
	if m := findMount(s.Mounts, "/etc/hosts"); m.Source != etcHosts {
		t.Errorf("/etc/hosts = %+v, want kubelet's", m)
	}
}

func TestCRIMounts(t *testing.T) {
	host := t.TempDir()
	if err := os.Symlink(host, filepath.Join(t.TempDir(), "l")); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(host, link); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		m        *Mount
		optional string
		wantOpts []string
		wantSrc  string
		wantProp string
		wantErr  string
		errKind  error
		noRRO    bool              // kernel without mount_setattr
		volumes  map[string]string // Input.ImageVolumes
	}{
		{name: "private rw", m: &Mount{ContainerPath: "/data", HostPath: host}, wantOpts: []string{"rbind", "rprivate", "rw"}},
		{name: "readonly", m: &Mount{ContainerPath: "/data", HostPath: host, Readonly: true}, wantOpts: []string{"rbind", "rprivate", "ro"}},
		{name: "recursive readonly", m: &Mount{ContainerPath: "/data", HostPath: host, Readonly: true, RecursiveReadOnly: true}, wantOpts: []string{"rbind", "rprivate", "rro"}},
		{name: "rro needs ro", m: &Mount{ContainerPath: "/data", HostPath: host, RecursiveReadOnly: true}, wantErr: "recursive_read_only needs readonly", errKind: errInvalid},
		{name: "rro needs private", m: &Mount{ContainerPath: "/data", HostPath: host, Readonly: true, RecursiveReadOnly: true, Propagation: PropagationHostToContainer},
			wantErr: "needs private propagation", errKind: errInvalid},
		{name: "host to container on shared", m: &Mount{ContainerPath: "/data", HostPath: host, Propagation: PropagationHostToContainer},
			optional: "shared:5", wantOpts: []string{"rbind", "rslave", "rw"}, wantProp: "rslave"},
		{name: "host to container on slave", m: &Mount{ContainerPath: "/data", HostPath: host, Propagation: PropagationHostToContainer},
			optional: "master:5", wantOpts: []string{"rbind", "rslave", "rw"}, wantProp: "rslave"},
		{name: "host to container on private", m: &Mount{ContainerPath: "/data", HostPath: host, Propagation: PropagationHostToContainer},
			wantErr: "not a shared or slave mount", errKind: errdefs.ErrFailedPrecondition},
		{name: "bidirectional on shared", m: &Mount{ContainerPath: "/data", HostPath: host, Propagation: PropagationBidirectional},
			optional: "shared:5", wantOpts: []string{"rbind", "rshared", "rw"}, wantProp: "rshared"},
		{name: "bidirectional on slave", m: &Mount{ContainerPath: "/data", HostPath: host, Propagation: PropagationBidirectional},
			optional: "master:5", wantErr: "BIDIRECTIONAL propagation", errKind: errdefs.ErrFailedPrecondition},
		{name: "symlinked source resolved", m: &Mount{ContainerPath: "/data", HostPath: link}, wantOpts: []string{"rbind", "rprivate", "rw"}, wantSrc: host},
		{name: "destination cleaned", m: &Mount{ContainerPath: "/data//x/", HostPath: host}, wantOpts: []string{"rbind", "rprivate", "rw"}},
		{name: "relative destination", m: &Mount{ContainerPath: "data", HostPath: host}, wantErr: "not absolute", errKind: errInvalid},
		{name: "dotdot destination", m: &Mount{ContainerPath: "/data/../../etc", HostPath: host}, wantErr: `contains ".."`, errKind: errInvalid},
		{name: "root destination", m: &Mount{ContainerPath: "/", HostPath: host}, wantErr: "root", errKind: errInvalid},
		{name: "relative source", m: &Mount{ContainerPath: "/data", HostPath: "tmp"}, wantErr: "not absolute", errKind: errInvalid},
		{name: "rro without kernel support", m: &Mount{ContainerPath: "/data", HostPath: host, Readonly: true, RecursiveReadOnly: true},
			noRRO: true, wantErr: "mount_setattr", errKind: errdefs.ErrFailedPrecondition},
		{name: "image volume", m: &Mount{ContainerPath: "/data/", Readonly: true, Image: &ImageSpec{Image: "busybox"}},
			volumes: map[string]string{"/data": host}, wantSrc: host, wantOpts: []string{"rbind", "rprivate", "ro"}},
		{name: "image volume ignores propagation", m: &Mount{ContainerPath: "/data", Readonly: true, Image: &ImageSpec{Image: "busybox"}, Propagation: PropagationBidirectional},
			volumes: map[string]string{"/data": host}, wantSrc: host, wantOpts: []string{"rbind", "rprivate", "ro"}},
		{name: "image volume writable", m: &Mount{ContainerPath: "/data", Image: &ImageSpec{Image: "busybox"}},
			volumes: map[string]string{"/data": host}, wantErr: "readonly must be true", errKind: errInvalid},
		{name: "image volume with host path", m: &Mount{ContainerPath: "/data", HostPath: host, Readonly: true, Image: &ImageSpec{Image: "busybox"}},
			volumes: map[string]string{"/data": host}, wantErr: "host_path must be empty", errKind: errInvalid},
		{name: "image volume escaping sub-path", m: &Mount{ContainerPath: "/data", Readonly: true, Image: &ImageSpec{Image: "busybox"}, ImageSubPath: "../etc"},
			volumes: map[string]string{"/data": host}, wantErr: "image_sub_path", errKind: errInvalid},
		{name: "image volume not mounted", m: &Mount{ContainerPath: "/data", Readonly: true, Image: &ImageSpec{Image: "busybox"}}, wantErr: "not mounted"},
		{name: "image volume without image", m: &Mount{ContainerPath: "/data", Readonly: true, Image: &ImageSpec{}}, wantErr: "image.image is required", errKind: errInvalid},
		{name: "idmapped", m: &Mount{ContainerPath: "/data", HostPath: host, UIDMappings: []sandbox.IDMap{{Size: 1}}}, wantErr: "given together", errKind: errInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fakeMounts(t, tc.optional)
			in := baseInput(t)
			in.Config.Mounts = []Mount{*tc.m}
			in.Options.RecursiveReadOnlyMounts = !tc.noRRO
			in.ImageVolumes = tc.volumes
			s, _, err := Generate(in)
			wantErr(t, err, tc.wantErr, tc.errKind)
			if err != nil {
				return
			}
			checkLibcontainer(t, s, in.Options)
			dst := filepath.Clean(tc.m.ContainerPath)
			m := findMount(s.Mounts, dst)
			if m == nil {
				t.Fatalf("no mount at %s in %+v", dst, s.Mounts)
			}
			wantSrc := tc.wantSrc
			if wantSrc == "" {
				wantSrc = tc.m.HostPath
			}
			if m.Type != "bind" || m.Source != wantSrc || !slices.Equal(m.Options, tc.wantOpts) {
				t.Fatalf("mount = %+v, want source %s options %q", m, wantSrc, tc.wantOpts)
			}
			if s.Linux.RootfsPropagation != tc.wantProp {
				t.Fatalf("rootfs propagation = %q, want %q", s.Linux.RootfsPropagation, tc.wantProp)
			}
		})
	}
}

func TestMountsOrderAndOverride(t *testing.T) {
	host := t.TempDir()
	missing := filepath.Join(t.TempDir(), "a", "b")
	in := baseInput(t)
	in.Config.Mounts = []Mount{
		{ContainerPath: "/var/lib/x/y", HostPath: host},
		{ContainerPath: "/var", HostPath: host},
		{ContainerPath: "/dev/termination-log", HostPath: filepath.Join(in.RootfsPath, "etc/passwd")},
		{ContainerPath: "/sys", HostPath: host},      // replaces the default sysfs
		{ContainerPath: "/cache", HostPath: missing}, // created like containerd does
	}
	s, _ := mustGenerate(t, in)
	var binds []string
	for _, m := range s.Mounts {
		if m.Destination == "/sys" && m.Type != "bind" {
			t.Fatalf("default /sys kept next to a CRI /sys mount")
		}
		if m.Type == "bind" {
			binds = append(binds, m.Destination)
		}
	}
	want := []string{"/var", "/sys", "/cache", "/dev/termination-log", "/etc/hostname", "/etc/hosts", "/etc/resolv.conf", "/dev/shm", "/var/lib/x/y"}
	if !slices.Equal(binds, want) {
		t.Fatalf("binds = %q\nwant %q", binds, want)
	}
	if st, err := os.Stat(missing); err != nil || !st.IsDir() {
		t.Fatalf("missing host path not created as a directory: %v", err)
	}

	// A CRI /dev mount drops every default mount under /dev.
	in = baseInput(t)
	in.Config.Mounts = []Mount{{ContainerPath: "/dev", HostPath: host}}
	s, _ = mustGenerate(t, in)
	for _, m := range s.Mounts {
		if strings.HasPrefix(m.Destination, "/dev/") && m.Destination != "/dev/shm" {
			t.Errorf("default %s kept under a CRI /dev mount", m.Destination)
		}
	}

	// Duplicate destinations are rejected.
	in = baseInput(t)
	in.Config.Mounts = []Mount{{ContainerPath: "/a", HostPath: host}, {ContainerPath: "/a/", HostPath: host}}
	_, _, err := Generate(in)
	if !errors.Is(err, errInvalid) || !strings.Contains(err.Error(), "mounted twice") {
		t.Fatalf("err = %v", err)
	}
}

// The real mount table: the propagation check finds the mount a path is on.
func TestLookupMountReal(t *testing.T) {
	mi, err := lookupMount(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if mi.Mountpoint == "" {
		t.Fatalf("no mount point: %+v", mi)
	}
}
