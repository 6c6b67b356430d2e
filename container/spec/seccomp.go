package spec

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/crisp-runtime/crisp/errdefs"
)

// maxSeccompProfileBytes bounds a Localhost profile; moby's default profile
// is about 20 KiB as JSON.
const maxSeccompProfileBytes = 4 << 20

// seccompProfile selects the filter: the seccomp field, else the legacy
// seccomp_profile_path string, else none. Kubelet sends Unconfined unless
// its SeccompDefault feature (or the pod) asks for RuntimeDefault.
// Privileged containers never get here: they run unconfined.
func seccompProfile(sc *SecurityContext, o Options, s *specs.Spec) (*specs.LinuxSeccomp, error) {
	sp := sc.Seccomp
	if sp == nil && sc.SeccompProfilePath != "" {
		var err error
		if sp, err = legacyProfile("seccomp_profile_path", sc.SeccompProfilePath); err != nil {
			return nil, err
		}
	}
	if sp == nil {
		return nil, nil
	}
	if sp.Type != ProfileLocalhost && sp.LocalhostRef != "" {
		return nil, errdefs.InvalidArgument("linux.security_context.seccomp: localhost_ref is only valid with profile_type Localhost")
	}
	switch sp.Type {
	case ProfileUnconfined:
		return nil, nil
	case ProfileRuntimeDefault, "":
		return runtimeDefaultSeccomp(s, o.SeccompCompatArches)
	case ProfileLocalhost:
		return localhostSeccomp(sp.LocalhostRef, o.SeccompProfileRoot, s)
	}
	return nil, errdefs.InvalidArgument("linux.security_context.seccomp.profile_type %s is unknown", sp.Type)
}

// runtimeDefaultSeccomp is moby's default profile, with the syscalls that
// depend on a capability (e.g. ptrace-like ones for CAP_SYS_PTRACE) chosen
// by the container's bounding set and the kernel version.
//
// It is restricted to the native architecture unless compat is set. Moby
// and containerd also list the compat ABIs (x86 and x32 on amd64), and
// libseccomp then compiles the whole rule set once per ABI: measured on
// this package's benchmark (BenchmarkSeccompLoad) that roughly triples the
// filter build at every container start, and the bigger BPF program runs on
// every syscall. The cost of native-only: 32-bit binaries in a container
// (int 0x80 / ia32 syscalls) are killed by the filter's bad-arch action.
// Kubernetes images are practically all 64-bit; Options.SeccompCompatArches
// restores the moby behaviour for nodes that need it.
func runtimeDefaultSeccomp(s *specs.Spec, compat bool) (*specs.LinuxSeccomp, error) {
	p, err := seccomp.GetDefaultProfile(s)
	if err != nil {
		return nil, fmt.Errorf("build the RuntimeDefault seccomp profile: %w", err)
	}
	// GetDefaultProfile lists the native architecture first, then its
	// compat ABIs.
	if !compat && len(p.Architectures) > 1 {
		p.Architectures = p.Architectures[:1]
	}
	return p, nil
}

// localhostSeccomp reads a profile in Docker's JSON format (moby's loader
// also understands archMap and per-capability includes). Kubelet sends an
// absolute path; a relative one is resolved under root and must stay there.
func localhostSeccomp(ref, root string, s *specs.Spec) (*specs.LinuxSeccomp, error) {
	p := strings.TrimPrefix(ref, "localhost/")
	if p == "" {
		return nil, errdefs.InvalidArgument("linux.security_context.seccomp.localhost_ref is empty")
	}
	if !filepath.IsAbs(p) {
		if root == "" {
			return nil, errdefs.InvalidArgument("seccomp profile %q is relative and no seccomp profile root is configured", p)
		}
		rel := filepath.Clean(p)
		if rel == ".." || strings.HasPrefix(rel, "../") {
			return nil, errdefs.InvalidArgument("seccomp profile %q escapes the profile root %q", p, root)
		}
		p = filepath.Join(root, rel)
	}
	f, err := os.Open(p)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, errdefs.InvalidArgument("seccomp profile %q does not exist", p)
		}
		return nil, fmt.Errorf("open seccomp profile %q: %w", p, err)
	}
	defer f.Close()
	body, err := io.ReadAll(io.LimitReader(f, maxSeccompProfileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read seccomp profile %q: %w", p, err)
	}
	if len(body) > maxSeccompProfileBytes {
		return nil, errdefs.InvalidArgument("seccomp profile %q is larger than %d bytes", p, maxSeccompProfileBytes)
	}
	profile, err := seccomp.LoadProfile(string(body), s)
	if err != nil {
		return nil, errdefs.InvalidArgument("seccomp profile %q is invalid: %v", p, err)
	}
	if profile == nil || profile.DefaultAction == "" {
		// moby treats a profile without a default action as "no seccomp";
		// a file someone pointed the pod at must not silently disable it.
		return nil, errdefs.InvalidArgument("seccomp profile %q has no defaultAction", p)
	}
	return profile, nil
}
