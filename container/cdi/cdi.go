// Package cdi injects Container Device Interface devices into a container's
// OCI spec: device nodes with their cgroup device rules, environment
// variables, mounts and hooks, as the vendors' spec files describe them.
//
// Devices are requested by the CRI field ContainerConfig.CDI_devices and by
// cdi.k8s.io/* annotations on the container config (kubelet's device
// plugins and DRA drivers set either; containerd and CRI-O read both, the
// field first).
package cdi

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"k8s.io/klog/v2"
	lib "tags.cncf.io/container-device-interface/pkg/cdi"
	"tags.cncf.io/container-device-interface/pkg/parser"

	"github.com/crisp-runtime/crisp/errdefs"
)

// Registry resolves device names against the spec files of its
// directories.
//
// It re-reads the directories each time a container asks for devices
// (the library's manual refresh mode) instead of watching them with
// inotify (its auto-refresh mode): a DRA driver or device plugin writes a
// spec file just before kubelet creates the container, and a watch that
// has not delivered its event yet would make that container fail with an
// unknown device. Reading a few small files costs far less than creating
// the container; containers without CDI devices never read them.
type Registry struct {
	cache *lib.Cache
	dirs  []string

	mu sync.Mutex
	// logged is the last set of spec file errors logged, so that a broken
	// file is logged when it breaks, not at every container.
	logged string
}

// New reads the spec directories once, logging files that do not load.
// A directory that does not exist is not an error: it may appear later.
func New(dirs []string) (*Registry, error) {
	c, err := lib.NewCache(lib.WithSpecDirs(dirs...), lib.WithAutoRefresh(false))
	if err != nil {
		return nil, fmt.Errorf("cdi: %w", err)
	}
	r := &Registry{cache: c, dirs: slices.Clone(dirs)}
	r.refresh()
	klog.InfoS("CDI devices are resolved from spec files", "specDirs", dirs, "devices", len(c.ListDevices()))
	return r, nil
}

// refresh re-reads the spec files and logs those that failed to load
// when the set of failures changed. It returns the failures by file.
func (r *Registry) refresh() map[string][]error {
	_ = r.cache.Refresh() // the same errors, by file, from GetErrors
	errs := r.cache.GetErrors()
	text := describeErrors(errs)
	r.mu.Lock()
	changed := text != r.logged
	r.logged = text
	r.mu.Unlock()
	if changed {
		if text == "" {
			klog.InfoS("Every CDI spec file loads again", "specDirs", r.dirs)
		} else {
			for _, p := range sortedKeys(errs) {
				klog.ErrorS(errors.Join(errs[p]...), "CDI spec file failed to load; its devices are unavailable", "file", p)
			}
		}
	}
	return errs
}

// Requested is the devices a container asks for: the CRI field's, then the
// annotations' (sorted by key, so that the order is stable), each once.
// A name that is not a qualified CDI name (vendor/class=name) is the
// request's fault.
func Requested(field []string, annotations map[string]string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	add := func(d string) {
		if !seen[d] {
			seen[d] = true
			out = append(out, d)
		}
	}
	for i, d := range field {
		if !parser.IsQualifiedName(d) {
			return nil, errdefs.InvalidArgument("config.CDI_devices[%d].name %q is not a CDI device name (vendor.example/class=name)", i, d)
		}
		add(d)
	}
	for _, k := range sortedKeys(annotations) {
		if !strings.HasPrefix(k, lib.AnnotationPrefix) {
			continue
		}
		for d := range strings.SplitSeq(annotations[k], ",") {
			if !parser.IsQualifiedName(d) {
				return nil, errdefs.InvalidArgument("config.annotations[%q]: %q is not a CDI device name (vendor.example/class=name, comma-separated)", k, d)
			}
			add(d)
		}
	}
	return out, nil
}

// Inject adds devices to s. A failure names the device and the spec files
// involved: InvalidArgument for the request's or a spec file's fault,
// FailedPrecondition for a host path a spec file mounts that is missing;
// s may be partly edited then, and must be discarded.
func (r *Registry) Inject(s *specs.Spec, devices []string) error {
	if len(devices) == 0 {
		return nil
	}
	if err := r.Allow(devices); err != nil {
		return err
	}
	loadErrs := r.refresh()
	unresolved, err := r.cache.InjectDevices(s, devices...)
	if len(unresolved) > 0 {
		msgs := make([]string, len(unresolved))
		for i, d := range unresolved {
			msgs[i] = r.whyUnknown(d)
		}
		msg := strings.Join(msgs, "; ")
		if len(loadErrs) > 0 {
			msg += "; spec files that failed to load: " + describeErrors(loadErrs)
		}
		return errdefs.InvalidArgument("%s", msg)
	}
	if err != nil {
		return errdefs.InvalidArgument("%s", r.whyNotApplied(s, devices, err))
	}
	return r.checkMountSources(devices)
}

// checkMountSources refuses a device whose spec file bind-mounts a host path
// that is missing (a driver not installed, a library path that moved):
// runc would only fail at start, with a message that names neither the
// device nor its spec file. The node, not the request, is wrong, hence
// FailedPrecondition.
func (r *Registry) checkMountSources(devices []string) error {
	for _, d := range devices {
		dev := r.cache.GetDevice(d)
		if dev == nil {
			continue
		}
		spec := dev.GetSpec()
		mounts := slices.Concat(spec.ContainerEdits.Mounts, dev.ContainerEdits.Mounts)
		for _, m := range mounts {
			if m == nil || !isBind(m.Type, m.Options) {
				continue
			}
			if _, err := os.Stat(m.HostPath); err != nil {
				return errdefs.FailedPrecondition("CDI device %q: spec file %s mounts %s at %s, but the host path is unusable: %v",
					d, spec.GetPath(), m.HostPath, m.ContainerPath, err)
			}
		}
	}
	return nil
}

func isBind(typ string, options []string) bool {
	return typ == "" || typ == "bind" || slices.Contains(options, "bind") || slices.Contains(options, "rbind")
}

// Allow refuses devices when CDI is disabled (r is nil): a container must
// not start without the devices it asked for.
func (r *Registry) Allow(devices []string) error {
	if r == nil && len(devices) > 0 {
		return errdefs.FailedPrecondition("CDI devices %s requested, but CDI is disabled on this node (cdi.enable = false)", strings.Join(devices, ", "))
	}
	return nil
}

// whyUnknown says which spec files could have defined device d.
func (r *Registry) whyUnknown(d string) string {
	vendor, class, _, err := parser.ParseQualifiedName(d)
	if err != nil {
		return fmt.Sprintf("CDI device %q: %v", d, err)
	}
	var files []string
	for _, s := range r.cache.GetVendorSpecs(vendor) {
		if s.GetClass() == class {
			files = append(files, s.GetPath())
		}
	}
	if len(files) == 0 {
		return fmt.Sprintf("CDI device %q is unknown: no spec file in %s defines kind %s/%s", d, strings.Join(r.dirs, ", "), vendor, class)
	}
	sort.Strings(files)
	return fmt.Sprintf("CDI device %q is unknown: kind %s/%s is defined by %s, which has no such device (or defines it twice)", d, vendor, class, strings.Join(files, ", "))
}

// whyNotApplied finds the device whose edits failed (InjectDevices applies
// them all at once) by applying each to a scratch spec, so that the message
// names it and its spec file.
func (r *Registry) whyNotApplied(s *specs.Spec, devices []string, err error) string {
	for _, d := range devices {
		dev := r.cache.GetDevice(d)
		if dev == nil {
			continue
		}
		scratch := &specs.Spec{Process: &specs.Process{}, Linux: &specs.Linux{}}
		if s.Process != nil {
			scratch.Process.User = s.Process.User
		}
		if e := dev.GetSpec().ApplyEdits(scratch); e != nil {
			return fmt.Sprintf("CDI device %q: spec file %s: %v", d, dev.GetSpec().GetPath(), e)
		}
		if e := dev.ApplyEdits(scratch); e != nil {
			return fmt.Sprintf("CDI device %q: spec file %s: %v", d, dev.GetSpec().GetPath(), e)
		}
	}
	return fmt.Sprintf("CDI devices %s: %v", strings.Join(devices, ", "), err)
}

func describeErrors(errs map[string][]error) string {
	parts := make([]string, 0, len(errs))
	for _, p := range sortedKeys(errs) {
		parts = append(parts, p+": "+errors.Join(errs[p]...).Error())
	}
	return strings.Join(parts, "; ")
}

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}
