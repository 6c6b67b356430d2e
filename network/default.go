package network

import (
	"encoding/json"
	"strings"
)

// DefaultNetworkName is the name of the configuration list DefaultConflist
// produces (and hack/cni-config.sh installs).
const DefaultNetworkName = "crisp"

// DefaultConflist returns a CNI 1.0.0 configuration list named "crisp" for a
// single-node pod network: a Linux bridge with the host as gateway and
// masquerading, host-local IPAM over subnet, and portmap for hostPorts.
//
// Choices:
//   - cniVersion 1.0.0, not 1.1.0: Debian 12's plugins (1.1.1) support
//     0.1.0 to 1.0.0 only and reject a newer list.
//   - hairpinMode lets a pod reach itself through its own hostPort or a
//     service IP; promiscMode is left off, as bridge >= 1.10 rejects the
//     two together.
//   - No loopback plugin: Manager.Setup brings "lo" up itself for every
//     configuration, ours or not.
//   - host-local keeps its state in its default dataDir
//     (/var/lib/cni/networks/crisp), which survives restarts.
//   - portmap with snat so that hostPorts are reachable from the node itself,
//     including via 127.0.0.1 (portmap then sets route_localnet on the bridge
//     and masquerades 127.0.0.0/8 sources).
//
// hack/cni-config.sh writes the same document; a test keeps them in step.
func DefaultConflist(bridge, subnet string) []byte {
	return conflist(DefaultNetworkName, bridge, subnet, "")
}

// conflist builds the default list with a custom name and host-local
// dataDir, which tests use to stay out of the real network's way.
func conflist(name, bridge, subnet, dataDir string) []byte {
	defaultRoute := "0.0.0.0/0"
	if strings.Contains(subnet, ":") {
		defaultRoute = "::/0"
	}
	ipam := map[string]any{
		"type":   "host-local",
		"ranges": [][]map[string]string{{{"subnet": subnet}}},
		"routes": []map[string]string{{"dst": defaultRoute}},
	}
	if dataDir != "" {
		ipam["dataDir"] = dataDir
	}
	doc := map[string]any{
		"cniVersion": "1.0.0",
		"name":       name,
		"plugins": []any{
			map[string]any{
				"type":        "bridge",
				"bridge":      bridge,
				"isGateway":   true,
				"ipMasq":      true,
				"hairpinMode": true,
				"ipam":        ipam,
			},
			map[string]any{
				"type":         "portmap",
				"capabilities": map[string]bool{"portMappings": true},
				"snat":         true,
			},
		},
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		panic(err) // only static types above; cannot happen
	}
	return append(b, '\n')
}
