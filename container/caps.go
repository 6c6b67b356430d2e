package container

import (
	"slices"
	"strings"
	"sync"

	"github.com/moby/sys/capability"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"k8s.io/klog/v2"
)

// daemonCaps is the daemon's own bounding set: no child can be given a
// capability outside it (runc fails with EPERM when asked to).
var daemonCaps = sync.OnceValue(func() map[string]bool {
	c, err := capability.NewPid2(0)
	if err == nil {
		err = c.Load()
	}
	if err != nil {
		klog.InfoS("Cannot read the daemon's capabilities", "err", err)
		return nil
	}
	out := map[string]bool{}
	for _, cp := range capability.ListKnown() {
		if c.Get(capability.BOUNDING, cp) {
			out["CAP_"+strings.ToUpper(cp.String())] = true
		}
	}
	return out
})

// clampCaps limits "all capabilities" (privileged, or add: ALL) to those the
// daemon has, as containerd does (privileged means the runtime's current
// set): a daemon run without, say, CAP_SYS_RESOURCE could otherwise start no
// privileged container at all. A single capability added by name is left
// alone, so asking for one the node cannot give fails loudly.
func clampCaps(cfg *Config, p *specs.Process) {
	sc := &cfg.Security
	all := sc.Privileged
	for _, c := range sc.AddCapabilities {
		if strings.EqualFold(c, "ALL") {
			all = true
		}
	}
	have := daemonCaps()
	if !all || have == nil || p == nil || p.Capabilities == nil {
		return
	}
	keep := func(s []string) []string {
		return slices.DeleteFunc(s, func(c string) bool { return !have[c] })
	}
	pc := p.Capabilities
	pc.Bounding, pc.Effective, pc.Permitted = keep(pc.Bounding), keep(pc.Effective), keep(pc.Permitted)
	pc.Inheritable, pc.Ambient = keep(pc.Inheritable), keep(pc.Ambient)
}
