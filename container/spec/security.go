package spec

import (
	"bufio"
	"fmt"
	"os"
	"path"
	"slices"
	"strings"
	"sync"

	"github.com/moby/sys/capability"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/crisp-runtime/crisp/errdefs"
)

// DefaultCapabilities is the set a container gets unless it adds or drops:
// Docker's historical set, which containerd's CRI plugin and Kubernetes
// users expect (ping needs NET_RAW, many images chown/mknod at start).
// containerd's main branch and CRI-O have since dropped MKNOD, NET_RAW,
// SETFCAP, SYS_CHROOT and AUDIT_WRITE; Options.DefaultCapabilities lets an
// operator do the same.
var DefaultCapabilities = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
	"CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
	"CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

// Default masked and read-only /proc and /sys paths: kubelet's defaults for
// procMount Default (which containerd applies when kubelet sends them),
// plus /proc/interrupts, which leaks host activity.
var (
	defaultMaskedPaths = []string{
		"/proc/acpi", "/proc/asound", "/proc/interrupts", "/proc/kcore", "/proc/keys",
		"/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
		"/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
	}
	defaultReadonlyPaths = []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}
)

// capNames maps "CAP_CHOWN" to its number, for validation and ordering.
var capNames = sync.OnceValue(func() map[string]capability.Cap {
	m := map[string]capability.Cap{}
	for _, c := range capability.ListKnown() {
		m["CAP_"+strings.ToUpper(c.String())] = c
	}
	return m
})

// allCaps is every capability the running kernel knows: "ALL" and
// privileged mean these, not ones a newer library knows but the kernel
// would reject.
var allCaps = sync.OnceValue(func() []string {
	caps, err := capability.ListSupported()
	if err != nil {
		caps = capability.ListKnown()
	}
	out := make([]string, 0, len(caps))
	for _, c := range caps {
		out = append(out, "CAP_"+strings.ToUpper(c.String()))
	}
	return out
})

// security sets capabilities, no_new_privs, masked paths, sysctls, AppArmor
// and seccomp. SELinux options are accepted and ignored: crisp runs on hosts
// without SELinux and sets no labels.
func security(in *Input, s *specs.Spec, notes *Notes) error {
	sc := &in.Config.Security
	privileged := sc.Privileged
	caps, err := capabilities(sc.AddCapabilities, sc.DropCapabilities, in.Options.DefaultCapabilities, privileged)
	if err != nil {
		return err
	}
	// Bounding, effective and permitted alike; inheritable and ambient stay
	// empty (inheritable caps leaked into execs of file-capability binaries:
	// CVE-2022-24769). For a non-root user the kernel clears effective and
	// permitted at execve anyway, so only the bounding set matters there.
	s.Process.Capabilities = &specs.LinuxCapabilities{
		Bounding:  caps,
		Effective: slices.Clone(caps),
		Permitted: slices.Clone(caps),
	}
	s.Process.NoNewPrivileges = sc.NoNewPrivs

	if !privileged {
		masked, readonly := defaultMaskedPaths, defaultReadonlyPaths
		if in.Pod.UserNS != "" {
			// kubelet sends its default lists for procMount Default and
			// empty ones (nil over gRPC) for Unmasked, which Kubernetes
			// allows only with a user namespace: honour it there, as
			// containerd does (it applies the lists as sent). Without a
			// user namespace nil means nothing was said: the defaults.
			masked, readonly = []string{}, []string{}
		}
		if s.Linux.MaskedPaths, err = procPaths("masked_paths", sc.MaskedPaths, masked); err != nil {
			return err
		}
		if s.Linux.ReadonlyPaths, err = procPaths("readonly_paths", sc.ReadonlyPaths, readonly); err != nil {
			return err
		}
	}
	if s.Linux.Sysctl, err = sysctls(&in.Pod); err != nil {
		return err
	}
	if s.Process.ApparmorProfile, err = apparmorProfile(sc, in.Options); err != nil {
		return err
	}
	if !privileged {
		if s.Linux.Seccomp, err = seccompProfile(sc, in.Options, s); err != nil {
			return err
		}
	}
	return nil
}

// capabilities applies the request to the default set like containerd:
// "ALL" in add or drop first (so add ALL + drop CHOWN works), then single
// additions, then single drops. Names may omit "CAP_" and any case works.
func capabilities(add, drop, defaults []string, privileged bool) ([]string, error) {
	if privileged {
		return slices.Clone(allCaps()), nil
	}
	if defaults == nil {
		defaults = DefaultCapabilities
	}
	set := map[string]bool{}
	for _, n := range defaults {
		name, err := capName(n)
		if err != nil {
			return nil, fmt.Errorf("default capabilities: %w", err)
		}
		set[name] = true
	}
	isAll := func(s string) bool { return strings.EqualFold(s, "ALL") }
	if slices.ContainsFunc(add, isAll) {
		for _, n := range allCaps() {
			set[n] = true
		}
	}
	if slices.ContainsFunc(drop, isAll) {
		clear(set)
	}
	for _, n := range add {
		if isAll(n) {
			continue
		}
		name, err := capName(n)
		if err != nil {
			return nil, errdefs.InvalidArgument("linux.security_context.capabilities.add_capabilities: %v", err)
		}
		set[name] = true
	}
	for _, n := range drop {
		if isAll(n) {
			continue
		}
		name, err := capName(n)
		if err != nil {
			return nil, errdefs.InvalidArgument("linux.security_context.capabilities.drop_capabilities: %v", err)
		}
		delete(set, name)
	}
	out := make([]string, 0, len(set))
	for n := range set {
		out = append(out, n)
	}
	// Kernel order, so that the spec is deterministic.
	known := capNames()
	slices.SortFunc(out, func(a, b string) int { return int(known[a]) - int(known[b]) })
	return out, nil
}

func capName(n string) (string, error) {
	name := strings.ToUpper(strings.TrimSpace(n))
	if !strings.HasPrefix(name, "CAP_") {
		name = "CAP_" + name
	}
	if _, ok := capNames()[name]; !ok {
		return "", fmt.Errorf("unknown capability %q", n)
	}
	return name, nil
}

// procPaths is the request's list when it has one, else the default (see
// security for procMount Unmasked). A Go caller can pass a non-nil empty
// slice to mean none.
func procPaths(field string, req, def []string) ([]string, error) {
	if req == nil {
		return slices.Clone(def), nil
	}
	out := make([]string, 0, len(req))
	for i, p := range req {
		if !path.IsAbs(p) || path.Clean(p) != p {
			return nil, errdefs.InvalidArgument("linux.security_context.%s[%d] %q must be an absolute, clean path", field, i, p)
		}
		out = append(out, p)
	}
	return out, nil
}

// sysctls are the pod's, which must belong to a namespace the pod owns;
// anything else would change the node. (The sandbox already applied them to
// its pinned namespaces; setting them again per container is idempotent.)
func sysctls(p *Pod) (map[string]string, error) {
	if len(p.Sysctls) == 0 {
		return nil, nil
	}
	out := make(map[string]string, len(p.Sysctls))
	for k, v := range p.Sysctls {
		key := strings.ReplaceAll(k, "/", ".")
		if key == "" || strings.Contains(key, "..") || strings.HasPrefix(key, ".") || strings.ContainsAny(v, "\x00\n") {
			return nil, errdefs.InvalidArgument("linux.sysctls: invalid sysctl %q", k)
		}
		switch {
		case strings.HasPrefix(key, "net."):
			if p.NetNS == "" {
				return nil, errdefs.InvalidArgument("linux.sysctls: %q needs a pod network namespace, the pod uses the host's", k)
			}
		case ipcSysctl(key):
			if p.IPCNS == "" {
				return nil, errdefs.InvalidArgument("linux.sysctls: %q needs a pod IPC namespace, the pod uses the host's", k)
			}
		case key == "kernel.domainname":
			if p.UTSNS == "" {
				return nil, errdefs.InvalidArgument("linux.sysctls: %q needs a pod UTS namespace, the pod uses the host's", k)
			}
			if p.UserNS != "" {
				// The pod's init set it with setdomainname(2); runc
				// would write the node root's /proc file, which the
				// pod's root may not open.
				continue
			}
		default:
			return nil, errdefs.InvalidArgument("linux.sysctls: %q is not namespaced and would change the node", k)
		}
		out[k] = v
	}
	return out, nil
}

func ipcSysctl(key string) bool {
	switch key {
	case "kernel.sem", "kernel.shmall", "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced",
		"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni":
		return true
	}
	return strings.HasPrefix(key, "fs.mqueue.")
}

// apparmorProfile follows containerd: on a host without AppArmor any request
// other than Unconfined fails (silently running unconfined would defeat the
// request). With AppArmor, crisp applies only profiles that are already
// loaded: Localhost ones, and for RuntimeDefault (or no request) the
// configured default profile.
func apparmorProfile(sc *SecurityContext, o Options) (string, error) {
	sp := sc.AppArmor
	if sp == nil && sc.AppArmorProfile != "" {
		var err error
		if sp, err = legacyProfile("apparmor_profile", sc.AppArmorProfile); err != nil {
			return "", err
		}
	}
	if sp != nil && sp.Type != ProfileLocalhost && sp.LocalhostRef != "" {
		return "", errdefs.InvalidArgument("linux.security_context.apparmor: localhost_ref is only valid with profile_type Localhost")
	}
	if !o.AppArmorEnabled {
		if sp != nil && sp.Type != ProfileUnconfined {
			return "", errdefs.FailedPrecondition("linux.security_context.apparmor: AppArmor is not supported on this host (profile type %s requested)", sp.typeName())
		}
		return "", nil
	}
	switch {
	case sp == nil, sp.Type == ProfileRuntimeDefault, sp.Type == "":
		if sc.Privileged {
			return "", nil // containerd runs privileged containers unconfined
		}
		if o.AppArmorDefaultProfile == "" && sp != nil {
			return "", errdefs.FailedPrecondition("linux.security_context.apparmor: RuntimeDefault requested but crisp has no default AppArmor profile configured")
		}
		return o.AppArmorDefaultProfile, nil
	case sp.Type == ProfileUnconfined:
		return "", nil
	case sp.Type == ProfileLocalhost:
		name := strings.TrimPrefix(sp.LocalhostRef, "localhost/")
		if name == "" {
			return "", errdefs.InvalidArgument("linux.security_context.apparmor.localhost_ref is empty")
		}
		if !apparmorLoaded(name) {
			return "", errdefs.FailedPrecondition("linux.security_context.apparmor: profile %q is not loaded", name)
		}
		return name, nil
	}
	return "", errdefs.InvalidArgument("linux.security_context.apparmor.profile_type %s is unknown", sp.Type)
}

// apparmorLoaded scans the kernel's list ("name (mode)" per line).
func apparmorLoaded(name string) bool {
	f, err := os.Open("/sys/kernel/security/apparmor/profiles")
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), name+" (") {
			return true
		}
	}
	return false
}

// legacyProfile parses the deprecated string fields shared by seccomp and
// AppArmor: "runtime/default", "docker/default" (seccomp), "unconfined",
// "localhost/<ref>".
func legacyProfile(field, v string) (*SecurityProfile, error) {
	switch {
	case v == "runtime/default" || v == "docker/default":
		return &SecurityProfile{Type: ProfileRuntimeDefault}, nil
	case v == "unconfined":
		return &SecurityProfile{Type: ProfileUnconfined}, nil
	case strings.HasPrefix(v, "localhost/"):
		return &SecurityProfile{Type: ProfileLocalhost, LocalhostRef: strings.TrimPrefix(v, "localhost/")}, nil
	}
	return nil, errdefs.InvalidArgument("linux.security_context.%s %q is not runtime/default, unconfined or localhost/<profile>", field, v)
}

// typeName is the profile type as messages name it; "" is RuntimeDefault.
func (p *SecurityProfile) typeName() ProfileType {
	if p.Type == "" {
		return ProfileRuntimeDefault
	}
	return p.Type
}
