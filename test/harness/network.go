package harness

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// PodNet is a private pod network for one test: its own bridge, subnet, IPAM
// directory and CNI configuration, with pod traffic fenced to the subnet.
type PodNet struct {
	ConfDir  string
	Subnet   string // e.g. 10.211.37.0/24
	Gateway  string // the bridge's address, reachable from the pods
	Bridge   string
	IPAMDir  string // host-local's records: one file per allocated IP
	ConfName string
}

// PodNetwork writes a bridge + host-local + portmap + loopback conflist for a
// unique bridge and subnet, adds the FORWARD DROP rule that keeps pod traffic
// inside the subnet, and removes bridge and rule when the test ends.
func PodNetwork(t testing.TB) *PodNet {
	t.Helper()
	var b [2]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	suffix := hex.EncodeToString(b[:])
	dir, err := os.MkdirTemp("", "crisp-cni-")
	if err != nil {
		t.Fatal(err)
	}
	n := &PodNet{
		ConfDir:  filepath.Join(dir, "net.d"),
		Subnet:   fmt.Sprintf("10.211.%d.0/24", b[0]),
		Gateway:  fmt.Sprintf("10.211.%d.1", b[0]),
		Bridge:   "crt" + suffix,
		IPAMDir:  filepath.Join(dir, "ipam"),
		ConfName: "crisp-test-" + suffix,
	}
	if err := os.MkdirAll(n.ConfDir, 0o755); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf(`{
  "cniVersion": "1.0.0",
  "name": %q,
  "plugins": [
    {"type": "loopback"},
    {
      "type": "bridge",
      "bridge": %q,
      "isGateway": true,
      "ipMasq": true,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": %q,
        "ranges": [[{"subnet": %q, "gateway": %q}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}, "snat": true}
  ]
}
`, n.ConfName, n.Bridge, n.IPAMDir, n.Subnet, n.Gateway)
	if err := os.WriteFile(filepath.Join(n.ConfDir, "10-test.conflist"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	rule := []string{"FORWARD", "-s", n.Subnet, "!", "-d", n.Subnet, "-j", "DROP"}
	if out, err := exec.Command("iptables", append([]string{"-I"}, rule...)...).CombinedOutput(); err != nil {
		t.Fatalf("adding the pod traffic fence: %v: %s", err, out)
	}
	t.Cleanup(func() {
		_ = exec.Command("iptables", append([]string{"-D"}, rule...)...).Run()
		_ = exec.Command("ip", "link", "del", n.Bridge).Run()
		os.RemoveAll(dir)
	})
	return n
}

// AllocatedIPs lists the addresses host-local still holds in this network.
func (n *PodNet) AllocatedIPs() []string {
	var ips []string
	entries, _ := os.ReadDir(filepath.Join(n.IPAMDir, n.ConfName))
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, "last_reserved_ip") || name == "lock" {
			continue
		}
		ips = append(ips, name)
	}
	return ips
}

// Veths lists the host-side interfaces attached to this network's bridge.
func (n *PodNet) Veths() []string {
	out, err := exec.Command("ip", "-o", "link", "show", "master", n.Bridge).Output()
	if err != nil {
		return nil
	}
	var names []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) > 1 {
			names = append(names, strings.TrimSuffix(strings.SplitN(f[1], "@", 2)[0], ":"))
		}
	}
	return names
}
