// Package rlimit parses the ulimit lists of crisp's configuration and pod
// annotation (CRI-O's default_ulimits format, "name=soft:hard") and builds
// the explicit set every container gets.
//
// runc applies only the rlimits listed in the OCI spec; the others are
// inherited from whoever started the container (the monitor, and so the
// daemon). containerd's CRI and CRI-O list none unless configured, so their
// containers get the daemon's limits, e.g. the 8 MiB RLIMIT_MEMLOCK of a
// systemd service. crisp lists all sixteen, so a container's limits never
// depend on how the daemon was started.
package rlimit

import (
	"errors"
	"fmt"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/moby/sys/capability"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Unlimited is RLIM_INFINITY, written -1 in a list.
const Unlimited = math.MaxUint64

// kinds maps the short names (ulimit's, CRI-O's) to the OCI type and
// resource number.
var kinds = map[string]struct {
	oci string
	res int
}{
	"as": {"RLIMIT_AS", unix.RLIMIT_AS}, "core": {"RLIMIT_CORE", unix.RLIMIT_CORE},
	"cpu": {"RLIMIT_CPU", unix.RLIMIT_CPU}, "data": {"RLIMIT_DATA", unix.RLIMIT_DATA},
	"fsize": {"RLIMIT_FSIZE", unix.RLIMIT_FSIZE}, "locks": {"RLIMIT_LOCKS", unix.RLIMIT_LOCKS},
	"memlock": {"RLIMIT_MEMLOCK", unix.RLIMIT_MEMLOCK}, "msgqueue": {"RLIMIT_MSGQUEUE", unix.RLIMIT_MSGQUEUE},
	"nice": {"RLIMIT_NICE", unix.RLIMIT_NICE}, "nofile": {"RLIMIT_NOFILE", unix.RLIMIT_NOFILE},
	"nproc": {"RLIMIT_NPROC", unix.RLIMIT_NPROC}, "rss": {"RLIMIT_RSS", unix.RLIMIT_RSS},
	"rtprio": {"RLIMIT_RTPRIO", unix.RLIMIT_RTPRIO}, "rttime": {"RLIMIT_RTTIME", unix.RLIMIT_RTTIME},
	"sigpending": {"RLIMIT_SIGPENDING", unix.RLIMIT_SIGPENDING}, "stack": {"RLIMIT_STACK", unix.RLIMIT_STACK},
}

// Parse reads entries "name=soft:hard" or "name=value" (soft = hard); -1
// is unlimited, names are ulimit's (nofile, memlock, ...) or the OCI ones
// (RLIMIT_NOFILE). A name given twice is an error.
func Parse(entries []string) ([]specs.POSIXRlimit, error) {
	var out []specs.POSIXRlimit
	seen := map[string]bool{}
	for _, e := range entries {
		l, err := parseOne(strings.TrimSpace(e))
		if err != nil {
			return nil, err
		}
		if seen[l.Type] {
			return nil, fmt.Errorf("%q: %s is given twice", e, l.Type)
		}
		seen[l.Type] = true
		out = append(out, l)
	}
	return out, nil
}

func parseOne(e string) (specs.POSIXRlimit, error) {
	name, val, ok := strings.Cut(e, "=")
	k, known := kinds[strings.TrimPrefix(strings.ToLower(strings.TrimSpace(name)), "rlimit_")]
	if !ok || !known {
		return specs.POSIXRlimit{}, fmt.Errorf("%q: want name=soft:hard with name one of %s", e, strings.Join(names(), ", "))
	}
	softS, hardS, pair := strings.Cut(val, ":")
	if !pair {
		hardS = softS
	}
	soft, err1 := parseValue(softS)
	hard, err2 := parseValue(hardS)
	if err := errors.Join(err1, err2); err != nil {
		return specs.POSIXRlimit{}, fmt.Errorf("%q: %w", e, err)
	}
	if soft > hard {
		return specs.POSIXRlimit{}, fmt.Errorf("%q: the soft limit is above the hard limit", e)
	}
	return specs.POSIXRlimit{Type: k.oci, Soft: soft, Hard: hard}, nil
}

func parseValue(s string) (uint64, error) {
	s = strings.TrimSpace(s)
	if s == "-1" || s == "unlimited" {
		return Unlimited, nil
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a number, -1 or unlimited", s)
	}
	return v, nil
}

func names() []string {
	var out []string
	for n := range kinds {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Merge returns base with each limit of over replacing the one of its type.
func Merge(base, over []specs.POSIXRlimit) []specs.POSIXRlimit {
	out := append([]specs.POSIXRlimit(nil), base...)
	for _, o := range over {
		i := 0
		for ; i < len(out) && out[i].Type != o.Type; i++ {
		}
		if i == len(out) {
			out = append(out, o)
		} else {
			out[i] = o
		}
	}
	return out
}

// Host is what this daemon may give a container: a hard limit above the
// daemon's own needs CAP_SYS_RESOURCE, and no nofile limit may exceed
// fs.nr_open.
type Host struct {
	// Own are the daemon's limits, by OCI type.
	Own map[string]unix.Rlimit
	// SysResource is whether the daemon has CAP_SYS_RESOURCE.
	SysResource bool
	NrOpen      uint64
	// ThreadsMax is kernel.threads-max, of which the kernel gives init half
	// as its nproc and sigpending limits.
	ThreadsMax uint64
}

// DetectHost reads the daemon's limits and capabilities.
func DetectHost() (Host, error) {
	h := Host{Own: map[string]unix.Rlimit{}, NrOpen: 1 << 20, ThreadsMax: 1 << 16}
	for _, k := range kinds {
		var r unix.Rlimit
		if err := unix.Getrlimit(k.res, &r); err != nil {
			return h, fmt.Errorf("getrlimit %s: %w", k.oci, err)
		}
		h.Own[k.oci] = r
	}
	if c, err := capability.NewPid2(0); err == nil && c.Load() == nil {
		h.SysResource = c.Get(capability.EFFECTIVE, capability.CAP_SYS_RESOURCE)
	}
	if v, err := readUint("/proc/sys/fs/nr_open"); err == nil {
		h.NrOpen = v
	}
	if v, err := readUint("/proc/sys/kernel/threads-max"); err == nil {
		h.ThreadsMax = v
	}
	return h, nil
}

func readUint(p string) (uint64, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return 0, err
	}
	return strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
}

// Check says why l cannot be given to a container, or nil.
func (h Host) Check(l specs.POSIXRlimit) error {
	if l.Type == "RLIMIT_NOFILE" && h.NrOpen > 0 && l.Hard > h.NrOpen {
		return fmt.Errorf("%s hard limit %s is above fs.nr_open (%d)", l.Type, show(l.Hard), h.NrOpen)
	}
	if own, ok := h.Own[l.Type]; ok && !h.SysResource && l.Hard > own.Max {
		return fmt.Errorf("%s hard limit %s is above crisp's own (%s) and crisp lacks CAP_SYS_RESOURCE to raise it", l.Type, show(l.Hard), show(own.Max))
	}
	return nil
}

func show(v uint64) string {
	if v == Unlimited {
		return "unlimited"
	}
	return strconv.FormatUint(v, 10)
}

// Baseline is what a container gets for what nobody configured: the limits
// the kernel gives init (so what a freshly booted node's processes start
// from), except nofile 1048576 and nproc unlimited, which are what the
// systemd units of containerd and CRI-O give their containers (the pod's
// pids cgroup is the real bound on processes). Values this daemon cannot
// grant are lowered to its own hard limit; Baseline reports them.
func (h Host) Baseline() (out []specs.POSIXRlimit, lowered []string) {
	const inf = Unlimited
	half := h.ThreadsMax / 2
	init := []specs.POSIXRlimit{
		{Type: "RLIMIT_AS", Soft: inf, Hard: inf},
		{Type: "RLIMIT_CORE", Soft: 0, Hard: inf},
		{Type: "RLIMIT_CPU", Soft: inf, Hard: inf},
		{Type: "RLIMIT_DATA", Soft: inf, Hard: inf},
		{Type: "RLIMIT_FSIZE", Soft: inf, Hard: inf},
		{Type: "RLIMIT_LOCKS", Soft: inf, Hard: inf},
		{Type: "RLIMIT_MEMLOCK", Soft: 8 << 20, Hard: 8 << 20},
		{Type: "RLIMIT_MSGQUEUE", Soft: 819200, Hard: 819200},
		{Type: "RLIMIT_NICE", Soft: 0, Hard: 0},
		{Type: "RLIMIT_NOFILE", Soft: 1 << 20, Hard: 1 << 20},
		{Type: "RLIMIT_NPROC", Soft: inf, Hard: inf},
		{Type: "RLIMIT_RSS", Soft: inf, Hard: inf},
		{Type: "RLIMIT_RTPRIO", Soft: 0, Hard: 0},
		{Type: "RLIMIT_RTTIME", Soft: inf, Hard: inf},
		{Type: "RLIMIT_SIGPENDING", Soft: half, Hard: half},
		{Type: "RLIMIT_STACK", Soft: 8 << 20, Hard: inf},
	}
	for _, l := range init {
		if h.Check(l) != nil {
			max := h.Own[l.Type].Max
			if l.Type == "RLIMIT_NOFILE" {
				max = min(max, h.NrOpen)
			}
			l.Hard, l.Soft = max, min(l.Soft, max)
			lowered = append(lowered, fmt.Sprintf("%s=%s:%s", l.Type, show(l.Soft), show(l.Hard)))
		}
		out = append(out, l)
	}
	return out, lowered
}

// Defaults is the baseline with the configured entries over it. A
// configured limit this daemon cannot grant is an error: silently
// lowering what an administrator asked for is how containers end up with
// limits nobody chose.
func (h Host) Defaults(entries []string) (limits []specs.POSIXRlimit, lowered []string, err error) {
	conf, err := Parse(entries)
	if err != nil {
		return nil, nil, err
	}
	if err := h.checkAll(conf); err != nil {
		return nil, nil, err
	}
	base, lowered := h.Baseline()
	return Merge(base, conf), lowered, nil
}

// Override parses a pod's comma-separated list and checks it.
func (h Host) Override(list string) ([]specs.POSIXRlimit, error) {
	l, err := Parse(strings.Split(list, ","))
	if err != nil {
		return nil, err
	}
	return l, h.checkAll(l)
}

func (h Host) checkAll(ls []specs.POSIXRlimit) error {
	for _, l := range ls {
		if err := h.Check(l); err != nil {
			return err
		}
	}
	return nil
}
