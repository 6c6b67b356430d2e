package spec

import (
	"errors"
	"slices"
	"testing"

	"github.com/crisp-runtime/crisp/errdefs"
	"github.com/crisp-runtime/crisp/sandbox"
)

func TestCapabilities(t *testing.T) {
	sorted := func(c []string) []string {
		c = slices.Clone(c)
		slices.SortFunc(c, func(a, b string) int { return int(capNames()[a]) - int(capNames()[b]) })
		return c
	}
	without := func(drop ...string) []string {
		return slices.DeleteFunc(sorted(DefaultCapabilities), func(c string) bool { return slices.Contains(drop, c) })
	}
	for _, tc := range []struct {
		name       string
		add, drop  []string
		defaults   []string
		privileged bool
		want       []string
		wantErr    string
	}{
		{name: "defaults", want: sorted(DefaultCapabilities)},
		{name: "add without prefix, any case", add: []string{"sys_admin", "CAP_NET_ADMIN"}, want: sorted(append(slices.Clone(DefaultCapabilities), "CAP_SYS_ADMIN", "CAP_NET_ADMIN"))},
		{name: "drop", drop: []string{"NET_RAW", "cap_mknod"}, want: without("CAP_NET_RAW", "CAP_MKNOD")},
		{name: "drop all", drop: []string{"ALL"}, want: []string{}},
		{name: "drop all add one", drop: []string{"all"}, add: []string{"NET_BIND_SERVICE"}, want: []string{"CAP_NET_BIND_SERVICE"}},
		{name: "add all drop one", add: []string{"ALL"}, drop: []string{"CHOWN"}, want: slices.DeleteFunc(slices.Clone(allCaps()), func(c string) bool { return c == "CAP_CHOWN" })},
		{name: "privileged is all", privileged: true, drop: []string{"ALL"}, want: allCaps()},
		{name: "operator defaults", defaults: []string{"CAP_KILL", "CHOWN"}, want: []string{"CAP_CHOWN", "CAP_KILL"}},
		{name: "unknown add", add: []string{"FLY"}, wantErr: `unknown capability "FLY"`},
		{name: "unknown drop", drop: []string{"CAP_NOPE"}, wantErr: "drop_capabilities"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := baseInput(t)
			sc(&in).AddCapabilities, sc(&in).DropCapabilities = tc.add, tc.drop
			sc(&in).Privileged = tc.privileged
			in.Pod.Privileged = tc.privileged
			in.Options.DefaultCapabilities = tc.defaults
			s, _, err := Generate(in)
			wantErr(t, err, tc.wantErr, errInvalid)
			if err != nil {
				return
			}
			checkLibcontainer(t, s, in.Options)
			c := s.Process.Capabilities
			if !slices.Equal(c.Bounding, tc.want) || !slices.Equal(c.Effective, tc.want) || !slices.Equal(c.Permitted, tc.want) {
				t.Fatalf("caps = %+v\nwant %q", c, tc.want)
			}
			if len(c.Inheritable) != 0 || len(c.Ambient) != 0 {
				t.Fatalf("inheritable/ambient must be empty: %+v", c)
			}
		})
	}
}

func TestPrivilegedNeedsPrivilegedPod(t *testing.T) {
	in := baseInput(t)
	sc(&in).Privileged = true
	_, _, err := Generate(in)
	wantErr(t, err, "no privileged container allowed", errInvalid)
}

func TestMaskedPaths(t *testing.T) {
	for _, tc := range []struct {
		name             string
		masked, readonly []string
		privileged       bool
		userns           bool
		wantMasked       []string
		wantRO           []string
		wantErr          string
	}{
		{name: "defaults", wantMasked: defaultMaskedPaths, wantRO: defaultReadonlyPaths},
		{name: "explicit lists win", masked: []string{"/proc/kcore"}, readonly: []string{"/proc/sys"}, wantMasked: []string{"/proc/kcore"}, wantRO: []string{"/proc/sys"}},
		{name: "explicitly empty means none", masked: []string{}, readonly: []string{}, wantMasked: []string{}, wantRO: []string{}},
		{name: "privileged has none", privileged: true, masked: []string{"/proc/kcore"}},
		// kubelet sends its default lists for procMount Default and empty
		// ones (nil over gRPC) for Unmasked, which needs a user namespace.
		{name: "user namespace without lists is procMount Unmasked", userns: true, wantMasked: []string{}, wantRO: []string{}},
		{name: "user namespace with lists keeps them", userns: true, masked: []string{"/proc/kcore"}, readonly: []string{"/proc/sys"}, wantMasked: []string{"/proc/kcore"}, wantRO: []string{"/proc/sys"}},
		{name: "relative path", masked: []string{"proc/kcore"}, wantErr: "masked_paths[0]"},
		{name: "unclean path", readonly: []string{"/proc/../sys"}, wantErr: "readonly_paths[0]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := baseInput(t)
			if tc.userns {
				var maps []sandbox.IDMap
				in, maps = usernsInput(t)
				sc(&in).Namespaces.User = &UserNamespace{Mode: sandbox.ModePod, UIDs: maps, GIDs: maps}
			}
			sc(&in).MaskedPaths, sc(&in).ReadonlyPaths = tc.masked, tc.readonly
			sc(&in).Privileged, in.Pod.Privileged = tc.privileged, tc.privileged
			s, _, err := Generate(in)
			wantErr(t, err, tc.wantErr, errInvalid)
			if err != nil {
				return
			}
			checkLibcontainer(t, s, in.Options)
			if !slices.Equal(s.Linux.MaskedPaths, tc.wantMasked) || !slices.Equal(s.Linux.ReadonlyPaths, tc.wantRO) {
				t.Fatalf("masked %q readonly %q", s.Linux.MaskedPaths, s.Linux.ReadonlyPaths)
			}
		})
	}
}

func TestNoNewPrivsReadonlyRootfs(t *testing.T) {
	in := baseInput(t)
	sc(&in).NoNewPrivs, sc(&in).ReadonlyRootfs = true, true
	s, _ := mustGenerate(t, in)
	if !s.Process.NoNewPrivileges || !s.Root.Readonly {
		t.Fatalf("nnp %v readonly %v", s.Process.NoNewPrivileges, s.Root.Readonly)
	}
	in = baseInput(t)
	s, _ = mustGenerate(t, in)
	if s.Process.NoNewPrivileges || s.Root.Readonly {
		t.Fatalf("defaults: nnp %v readonly %v", s.Process.NoNewPrivileges, s.Root.Readonly)
	}
}

func TestSysctls(t *testing.T) {
	for _, tc := range []struct {
		name             string
		sysctls          map[string]string
		hostNet, hostIPC bool
		wantErr          string
	}{
		{name: "namespaced", sysctls: map[string]string{"net.ipv4.ip_unprivileged_port_start": "0", "kernel.shm_rmid_forced": "1", "fs.mqueue.msg_max": "20", "kernel.domainname": "x"}},
		{name: "slash form", sysctls: map[string]string{"net/core/somaxconn": "1024"}},
		{name: "net on host network", sysctls: map[string]string{"net.core.somaxconn": "1"}, hostNet: true, wantErr: `"net.core.somaxconn" needs a pod network namespace`},
		{name: "ipc on host ipc", sysctls: map[string]string{"kernel.msgmax": "1"}, hostIPC: true, wantErr: `"kernel.msgmax" needs a pod IPC namespace`},
		{name: "node-wide", sysctls: map[string]string{"vm.swappiness": "1"}, wantErr: `"vm.swappiness" is not namespaced`},
		{name: "hostname", sysctls: map[string]string{"kernel.hostname": "x"}, wantErr: "is not namespaced"},
		{name: "newline value", sysctls: map[string]string{"net.core.somaxconn": "1\nvm.x=1"}, wantErr: "invalid sysctl"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := baseInput(t)
			in.Pod.Sysctls = tc.sysctls
			if tc.hostNet {
				in.Pod.NetNS = ""
			}
			if tc.hostIPC {
				in.Pod.IPCNS = ""
			}
			s, _, err := Generate(in)
			wantErr(t, err, tc.wantErr, errInvalid)
			if err != nil {
				return
			}
			checkLibcontainer(t, s, in.Options)
			if len(s.Linux.Sysctl) != len(tc.sysctls) {
				t.Fatalf("sysctls = %v", s.Linux.Sysctl)
			}
		})
	}
}

func TestAppArmor(t *testing.T) {
	prof := func(typ ProfileType, ref string) *SecurityProfile {
		return &SecurityProfile{Type: typ, LocalhostRef: ref}
	}
	for _, tc := range []struct {
		name    string
		sp      *SecurityProfile
		legacy  string
		o       Options
		want    string
		wantErr string
		kind    error
	}{
		{name: "nothing, no apparmor", want: ""},
		{name: "unconfined, no apparmor", sp: prof(ProfileUnconfined, "")},
		{name: "legacy unconfined", legacy: "unconfined"},
		{name: "runtime default, no apparmor", sp: prof(ProfileRuntimeDefault, ""), wantErr: "AppArmor is not supported on this host", kind: errdefs.ErrFailedPrecondition},
		{name: "legacy runtime/default, no apparmor", legacy: "runtime/default", wantErr: "AppArmor is not supported on this host", kind: errdefs.ErrFailedPrecondition},
		{name: "localhost, no apparmor", sp: prof(ProfileLocalhost, "p"), wantErr: "AppArmor is not supported on this host", kind: errdefs.ErrFailedPrecondition},
		{name: "ref without localhost", sp: prof(ProfileRuntimeDefault, "p"), wantErr: "localhost_ref is only valid", kind: errInvalid},
		{name: "bad legacy", legacy: "foo", wantErr: "apparmor_profile", kind: errInvalid},
		{name: "apparmor host, nothing requested", o: Options{AppArmorEnabled: true, AppArmorDefaultProfile: "crisp-default"}, want: "crisp-default"},
		{name: "apparmor host, runtime default", sp: prof(ProfileRuntimeDefault, ""), o: Options{AppArmorEnabled: true, AppArmorDefaultProfile: "crisp-default"}, want: "crisp-default"},
		{name: "apparmor host, runtime default without profile", sp: prof(ProfileRuntimeDefault, ""), o: Options{AppArmorEnabled: true}, wantErr: "no default AppArmor profile", kind: errdefs.ErrFailedPrecondition},
		{name: "apparmor host, unloaded localhost", sp: prof(ProfileLocalhost, "localhost/nope"), o: Options{AppArmorEnabled: true}, wantErr: `profile "nope" is not loaded`, kind: errdefs.ErrFailedPrecondition},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := baseInput(t)
			sc(&in).AppArmor, sc(&in).AppArmorProfile = tc.sp, tc.legacy
			in.Options = tc.o
			s, _, err := Generate(in)
			wantErr(t, err, tc.wantErr, tc.kind)
			if err != nil {
				return
			}
			if s.Process.ApparmorProfile != tc.want {
				t.Fatalf("apparmor = %q, want %q", s.Process.ApparmorProfile, tc.want)
			}
		})
	}
}

func TestSELinuxIgnored(t *testing.T) {
	in := baseInput(t)
	in.Config.Mounts = []Mount{{ContainerPath: "/d", HostPath: t.TempDir(), SELinuxRelabel: true}}
	s, _ := mustGenerate(t, in)
	if s.Process.SelinuxLabel != "" || s.Linux.MountLabel != "" {
		t.Fatalf("labels set: %q %q", s.Process.SelinuxLabel, s.Linux.MountLabel)
	}
}

func TestErrorKinds(t *testing.T) {
	in := baseInput(t)
	in.Config.Name = ""
	if _, _, err := Generate(in); !errors.Is(err, errInvalid) {
		t.Fatalf("err = %v", err)
	}
}
