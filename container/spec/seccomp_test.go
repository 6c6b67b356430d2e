package spec

import (
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

const testProfile = `{
  "defaultAction": "SCMP_ACT_ERRNO",
  "architectures": ["SCMP_ARCH_X86_64"],
  "syscalls": [{"names": ["read", "write", "exit_group"], "action": "SCMP_ACT_ALLOW"}]
}`

func nativeArch() specs.Arch {
	switch runtime.GOARCH {
	case "amd64":
		return specs.ArchX86_64
	case "arm64":
		return specs.ArchAARCH64
	}
	return ""
}

func allowed(p *specs.LinuxSeccomp, name string) bool {
	for _, s := range p.Syscalls {
		if s.Action == specs.ActAllow && len(s.Args) == 0 && slices.Contains(s.Names, name) {
			return true
		}
	}
	return false
}

func TestSeccomp(t *testing.T) {
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "profiles/ok.json"), testProfile)
	writeFile(t, filepath.Join(root, "profiles/bad.json"), `{"defaultAction": `)
	writeFile(t, filepath.Join(root, "profiles/empty.json"), `{}`)
	abs := filepath.Join(root, "profiles/ok.json")
	prof := func(typ ProfileType, ref string) *SecurityProfile {
		return &SecurityProfile{Type: typ, LocalhostRef: ref}
	}
	for _, tc := range []struct {
		name       string
		sp         *SecurityProfile
		legacy     string
		compat     bool
		addCaps    []string
		privileged bool
		want       string // "none", "default", "file"
		wantErr    string
	}{
		{name: "nothing is unconfined", want: "none"},
		{name: "unconfined", sp: prof(ProfileUnconfined, ""), want: "none"},
		{name: "legacy unconfined", legacy: "unconfined", want: "none"},
		{name: "runtime default", sp: prof(ProfileRuntimeDefault, ""), want: "default"},
		{name: "runtime default with compat arches", sp: prof(ProfileRuntimeDefault, ""), compat: true, want: "default"},
		{name: "runtime default with SYS_ADMIN", sp: prof(ProfileRuntimeDefault, ""), addCaps: []string{"SYS_ADMIN"}, want: "default"},
		{name: "legacy runtime/default", legacy: "runtime/default", want: "default"},
		{name: "legacy docker/default", legacy: "docker/default", want: "default"},
		{name: "privileged is unconfined", sp: prof(ProfileRuntimeDefault, ""), privileged: true, want: "none"},
		{name: "localhost absolute", sp: prof(ProfileLocalhost, abs), want: "file"},
		{name: "localhost with prefix", sp: prof(ProfileLocalhost, "localhost/"+abs), want: "file"},
		{name: "legacy localhost", legacy: "localhost/" + abs, want: "file"},
		{name: "localhost relative to root", sp: prof(ProfileLocalhost, "profiles/ok.json"), want: "file"},
		{name: "localhost escaping root", sp: prof(ProfileLocalhost, "../../etc/x.json"), wantErr: "escapes the profile root"},
		{name: "localhost missing", sp: prof(ProfileLocalhost, "/nonexistent/p.json"), wantErr: `seccomp profile "/nonexistent/p.json" does not exist`},
		{name: "localhost invalid", sp: prof(ProfileLocalhost, "profiles/bad.json"), wantErr: "bad.json\" is invalid"},
		{name: "localhost empty", sp: prof(ProfileLocalhost, "profiles/empty.json"), wantErr: "has no defaultAction"},
		{name: "ref without localhost", sp: prof(ProfileUnconfined, abs), wantErr: "localhost_ref is only valid"},
		{name: "bad legacy", legacy: "default", wantErr: "seccomp_profile_path"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := baseInput(t)
			sc(&in).Seccomp, sc(&in).SeccompProfilePath = tc.sp, tc.legacy
			sc(&in).AddCapabilities = tc.addCaps
			sc(&in).Privileged, in.Pod.Privileged = tc.privileged, tc.privileged
			in.Options.SeccompProfileRoot = root
			in.Options.SeccompCompatArches = tc.compat
			s, _, err := Generate(in)
			wantErr(t, err, tc.wantErr, errInvalid)
			if err != nil {
				return
			}
			checkLibcontainer(t, s, in.Options)
			p := s.Linux.Seccomp
			switch tc.want {
			case "none":
				if p != nil {
					t.Fatalf("seccomp = %+v, want none", p)
				}
			case "file":
				if p == nil || p.DefaultAction != specs.ActErrno || len(p.Syscalls) != 1 || !allowed(p, "read") {
					t.Fatalf("seccomp = %+v, want the file's", p)
				}
			case "default":
				if p == nil || p.DefaultAction != specs.ActErrno || !allowed(p, "read") {
					t.Fatalf("seccomp = %+v, want moby's default", p)
				}
				if nativeArch() != "" {
					if p.Architectures[0] != nativeArch() {
						t.Fatalf("architectures %v: native first", p.Architectures)
					}
					if !tc.compat && len(p.Architectures) != 1 {
						t.Fatalf("architectures %v: want the native one only", p.Architectures)
					}
					if tc.compat && runtime.GOARCH == "amd64" && !slices.Contains(p.Architectures, specs.ArchX86) {
						t.Fatalf("architectures %v: want x86 compat", p.Architectures)
					}
				}
				// Capability-gated syscalls follow the bounding set.
				if hasSysAdmin := slices.Contains(tc.addCaps, "SYS_ADMIN"); allowed(p, "mount") != hasSysAdmin {
					t.Fatalf("mount allowed = %v with CAP_SYS_ADMIN = %v", !hasSysAdmin, hasSysAdmin)
				}
			}
		})
	}
}

func TestSeccompProfileErrorsNameTheFile(t *testing.T) {
	in := baseInput(t)
	sc(&in).Seccomp = &SecurityProfile{Type: ProfileLocalhost, LocalhostRef: "rel.json"}
	_, _, err := Generate(in)
	if err == nil || !strings.Contains(err.Error(), "rel.json") {
		t.Fatalf("err = %v", err)
	}
}
