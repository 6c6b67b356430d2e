package network

import (
	"crypto/sha512"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"k8s.io/klog/v2"
)

// Workaround for a plugin bug: the bridge and ptp plugins (up to at least
// 1.1.1, Debian 12's; upstream containernetworking/plugins#810, fix #1078
// not merged) find the addresses whose ipMasq rules to remove by looking
// inside the pod's namespace. When DEL runs without a namespace (pod's netns
// already gone after a crash, or GC of a dead pod) they release the IP but
// leave a per-pod NAT chain and a POSTROUTING jump behind, one more on every
// such pod, and a reused IP then gets two masquerade rules.
//
// After such a DEL succeeds, crisp removes exactly those rules itself: their
// chain and comment are derived from the network name and container ID the
// same way the plugins do (ignite does the same). A plugin that already
// cleaned up leaves nothing to find, so this is harmless with fixed plugins.

// masqPluginTypes are the plugins using the shared ipMasq helpers.
var masqPluginTypes = map[string]bool{"bridge": true, "ptp": true}

// listUsesIPMasq reports whether a plugin of the list sets up ipMasq rules.
func listUsesIPMasq(list *libcni.NetworkConfigList) bool {
	for _, p := range list.Plugins {
		if p.Network == nil || !masqPluginTypes[p.Network.Type] {
			continue
		}
		var c struct {
			IPMasq bool `json:"ipMasq"`
		}
		if json.Unmarshal(p.Bytes, &c) == nil && c.IPMasq {
			return true
		}
	}
	return false
}

// masqChainName mirrors utils.FormatChainName of the plugins repository.
func masqChainName(network, containerID string) string {
	return fmt.Sprintf("CNI-%x", sha512.Sum512([]byte(network+containerID)))[:28]
}

// masqComment mirrors utils.FormatComment of the plugins repository.
func masqComment(network, containerID string) string {
	return fmt.Sprintf("name: %q id: %q", network, containerID)
}

// cleanupIPMasq removes the ipMasq rules of one attachment given its cached
// result. Best effort: failures are logged, not returned, since the DEL
// itself succeeded and the IP is already released.
func cleanupIPMasq(list *libcni.NetworkConfigList, containerID string, cached types.Result) {
	if cached == nil || !listUsesIPMasq(list) {
		return
	}
	r, err := types100.NewResultFromResult(cached)
	if err != nil {
		return
	}
	chain := masqChainName(list.Name, containerID)
	comment := masqComment(list.Name, containerID)
	for _, ipc := range r.IPs {
		tool := "iptables"
		if ipc.Address.IP.To4() == nil {
			tool = "ip6tables"
		}
		if _, err := exec.LookPath(tool); err != nil {
			continue
		}
		rule := []string{"POSTROUTING", "-s", ipc.Address.IP.String(), "-j", chain, "-m", "comment", "--comment", comment}
		if runIPTables(tool, append([]string{"-C"}, rule...)...) != nil {
			continue // nothing leaked for this address
		}
		if err := runIPTables(tool, append([]string{"-D"}, rule...)...); err != nil {
			klog.ErrorS(err, "Removing leaked ipMasq rule", "pod", containerID, "ip", ipc.Address.IP)
			continue
		}
		// The chain is per pod; it is empty of references now.
		_ = runIPTables(tool, "-F", chain)
		_ = runIPTables(tool, "-X", chain)
		klog.V(2).InfoS("Removed ipMasq rules the plugin left behind", "pod", containerID, "ip", ipc.Address.IP, "chain", chain)
	}
}

func runIPTables(tool string, args ...string) error {
	out, err := exec.Command(tool, append([]string{"-w", "-t", "nat"}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", tool, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
