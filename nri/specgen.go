package nri

import (
	"fmt"
	"slices"
	"strings"

	"github.com/containerd/nri/pkg/api"
	"github.com/containerd/nri/pkg/runtime-tools/generate"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/crisp-runtime/crisp/container/cdi"
)

// adjust applies the plugins' combined adjustment to a container's spec.
// The library's generator holds the semantics (removal markers, mount
// order, swap following the memory limit) shared with containerd and
// CRI-O; specEditor below is the spec it works on. CDI devices plugins add
// are injected by devices, the daemon's registry (nil when CDI is disabled,
// which refuses them). What crisp has nothing to resolve with (block I/O
// and RDT classes) is refused rather than silently dropped.
func adjust(s *specs.Spec, a *api.ContainerAdjustment, devices *cdi.Registry) error {
	if a == nil {
		return nil
	}
	g := generate.SpecGenerator(&specEditor{s: s},
		generate.WithCDIDeviceInjector(devices.Inject),
		generate.WithBlockIOResolver(func(class string) (*specs.LinuxBlockIO, error) {
			return nil, fmt.Errorf("crisp has no block I/O class %q", class)
		}),
		generate.WithRdtResolver(func(class string) (*specs.LinuxIntelRdt, error) {
			return nil, fmt.Errorf("crisp has no RDT class %q", class)
		}),
	)
	return g.Adjust(a)
}

// specEditor is the editing interface the library's generator expects
// (generate.UnderlyingGenerator), directly on a spec.
type specEditor struct{ s *specs.Spec }

func (e *specEditor) Spec() *specs.Spec { return e.s }

func (e *specEditor) process() *specs.Process {
	if e.s.Process == nil {
		e.s.Process = &specs.Process{}
	}
	return e.s.Process
}

func (e *specEditor) linux() *specs.Linux {
	if e.s.Linux == nil {
		e.s.Linux = &specs.Linux{}
	}
	return e.s.Linux
}

func (e *specEditor) resources() *specs.LinuxResources {
	l := e.linux()
	if l.Resources == nil {
		l.Resources = &specs.LinuxResources{}
	}
	return l.Resources
}

func (e *specEditor) cpu() *specs.LinuxCPU {
	r := e.resources()
	if r.CPU == nil {
		r.CPU = &specs.LinuxCPU{}
	}
	return r.CPU
}

func (e *specEditor) memory() *specs.LinuxMemory {
	r := e.resources()
	if r.Memory == nil {
		r.Memory = &specs.LinuxMemory{}
	}
	return r.Memory
}

func (e *specEditor) hooks() *specs.Hooks {
	if e.s.Hooks == nil {
		e.s.Hooks = &specs.Hooks{}
	}
	return e.s.Hooks
}

func (e *specEditor) AddAnnotation(key, value string) {
	if e.s.Annotations == nil {
		e.s.Annotations = map[string]string{}
	}
	e.s.Annotations[key] = value
}

func (e *specEditor) RemoveAnnotation(key string) { delete(e.s.Annotations, key) }

func (e *specEditor) AddProcessEnv(name, value string) {
	if name == "" {
		return
	}
	p := e.process()
	kv := name + "=" + value
	for i, cur := range p.Env {
		if strings.HasPrefix(cur, name+"=") {
			p.Env[i] = kv
			return
		}
	}
	p.Env = append(p.Env, kv)
}

func (e *specEditor) ClearProcessEnv() {
	if e.s.Process != nil {
		e.s.Process.Env = []string{}
	}
}

func (e *specEditor) SetProcessArgs(args []string) { e.process().Args = args }

func (e *specEditor) SetProcessOOMScoreAdj(adj int) { e.process().OOMScoreAdj = &adj }

func (e *specEditor) AddPreStartHook(h specs.Hook) {
	e.hooks().Prestart = append(e.hooks().Prestart, h) //nolint:staticcheck // plugins may still ask for it
}

func (e *specEditor) AddPostStartHook(h specs.Hook) {
	e.hooks().Poststart = append(e.hooks().Poststart, h)
}

func (e *specEditor) AddPostStopHook(h specs.Hook) {
	e.hooks().Poststop = append(e.hooks().Poststop, h)
}

func (e *specEditor) Mounts() []specs.Mount { return e.s.Mounts }

func (e *specEditor) AddMount(m specs.Mount) { e.s.Mounts = append(e.s.Mounts, m) }

func (e *specEditor) ClearMounts() { e.s.Mounts = []specs.Mount{} }

func (e *specEditor) RemoveMount(dest string) {
	e.s.Mounts = slices.DeleteFunc(e.s.Mounts, func(m specs.Mount) bool { return m.Destination == dest })
}

func (e *specEditor) AddDevice(d specs.LinuxDevice) {
	l := e.linux()
	for i := range l.Devices {
		if l.Devices[i].Path == d.Path {
			l.Devices[i] = d
			return
		}
	}
	l.Devices = append(l.Devices, d)
}

func (e *specEditor) RemoveDevice(path string) {
	if e.s.Linux != nil {
		e.s.Linux.Devices = slices.DeleteFunc(e.s.Linux.Devices, func(d specs.LinuxDevice) bool { return d.Path == path })
	}
}

// namespaceTypes are the names plugins use, which are the OCI types.
var namespaceTypes = []specs.LinuxNamespaceType{
	specs.PIDNamespace, specs.NetworkNamespace, specs.MountNamespace, specs.IPCNamespace,
	specs.UTSNamespace, specs.UserNamespace, specs.CgroupNamespace, specs.TimeNamespace,
}

func namespaceType(name string) (specs.LinuxNamespaceType, error) {
	t := specs.LinuxNamespaceType(name)
	if !slices.Contains(namespaceTypes, t) {
		return "", fmt.Errorf("unknown namespace type %q", name)
	}
	return t, nil
}

func (e *specEditor) AddOrReplaceLinuxNamespace(name, path string) error {
	t, err := namespaceType(name)
	if err != nil {
		return err
	}
	l := e.linux()
	for i := range l.Namespaces {
		if l.Namespaces[i].Type == t {
			l.Namespaces[i].Path = path
			return nil
		}
	}
	l.Namespaces = append(l.Namespaces, specs.LinuxNamespace{Type: t, Path: path})
	return nil
}

func (e *specEditor) RemoveLinuxNamespace(name string) error {
	t, err := namespaceType(name)
	if err != nil {
		return err
	}
	if e.s.Linux != nil {
		e.s.Linux.Namespaces = slices.DeleteFunc(e.s.Linux.Namespaces, func(n specs.LinuxNamespace) bool { return n.Type == t })
	}
	return nil
}

func (e *specEditor) AddLinuxSysctl(key, value string) {
	l := e.linux()
	if l.Sysctl == nil {
		l.Sysctl = map[string]string{}
	}
	l.Sysctl[key] = value
}

func (e *specEditor) RemoveLinuxSysctl(key string) {
	if e.s.Linux != nil {
		delete(e.s.Linux.Sysctl, key)
	}
}

func (e *specEditor) SetLinuxCgroupsPath(path string) { e.linux().CgroupsPath = path }

func (e *specEditor) SetLinuxRootPropagation(p string) error {
	switch p {
	case "", "private", "rprivate", "slave", "rslave", "shared", "rshared", "unbindable", "runbindable":
		e.linux().RootfsPropagation = p
		return nil
	}
	return fmt.Errorf("rootfs propagation %q is not one of (r)private, (r)slave, (r)shared, (r)unbindable", p)
}

func (e *specEditor) AddLinuxResourcesDevice(allow bool, typ string, major, minor *int64, access string) {
	r := e.resources()
	r.Devices = append(r.Devices, specs.LinuxDeviceCgroup{Allow: allow, Type: typ, Major: major, Minor: minor, Access: access})
}

func (e *specEditor) AddLinuxResourcesHugepageLimit(size string, limit uint64) {
	r := e.resources()
	for i := range r.HugepageLimits {
		if r.HugepageLimits[i].Pagesize == size {
			r.HugepageLimits[i].Limit = limit
			return
		}
	}
	r.HugepageLimits = append(r.HugepageLimits, specs.LinuxHugepageLimit{Pagesize: size, Limit: limit})
}

func (e *specEditor) AddLinuxResourcesUnified(key, value string) {
	r := e.resources()
	if r.Unified == nil {
		r.Unified = map[string]string{}
	}
	r.Unified[key] = value
}

func (e *specEditor) SetLinuxResourcesCPUShares(v uint64)         { e.cpu().Shares = &v }
func (e *specEditor) SetLinuxResourcesCPUQuota(v int64)           { e.cpu().Quota = &v }
func (e *specEditor) SetLinuxResourcesCPUPeriod(v uint64)         { e.cpu().Period = &v }
func (e *specEditor) SetLinuxResourcesCPURealtimeRuntime(v int64) { e.cpu().RealtimeRuntime = &v }
func (e *specEditor) SetLinuxResourcesCPURealtimePeriod(v uint64) { e.cpu().RealtimePeriod = &v }
func (e *specEditor) SetLinuxResourcesCPUCpus(v string)           { e.cpu().Cpus = v }
func (e *specEditor) SetLinuxResourcesCPUMems(v string)           { e.cpu().Mems = v }
func (e *specEditor) SetLinuxResourcesMemoryLimit(v int64)        { e.memory().Limit = &v }
func (e *specEditor) SetLinuxResourcesMemorySwap(v int64)         { e.memory().Swap = &v }
