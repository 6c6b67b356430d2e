package network

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// The integration test runs the real plugins (bridge, host-local, portmap;
// from /usr/lib/cni, Debian's containernetworking-plugins) against network
// namespaces it creates. It uses its own bridge, subnet, network name,
// host-local dataDir and cache dir, so it does not disturb a real crisp
// network on the same host. Traffic only goes to 127.0.0.1 and to addresses
// inside the test's own namespaces, and a FORWARD DROP rule keeps the test
// subnet from reaching anything else while it runs.

const systemPluginDir = "/usr/lib/cni"

type itEnv struct {
	suffix   string
	bridge   string
	network  string
	subnet   string
	dataDir  string
	confDir  string
	cacheDir string
}

func randHex(t *testing.T, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func randInt(t *testing.T, lo, hi int64) int64 {
	v, err := rand.Int(rand.Reader, big.NewInt(hi-lo))
	if err != nil {
		t.Fatal(err)
	}
	return lo + v.Int64()
}

func newITEnv(t *testing.T) *itEnv {
	t.Helper()
	requireRoot(t)
	for _, p := range []string{"bridge", "host-local", "portmap", "tuning"} {
		if _, err := os.Stat(filepath.Join(systemPluginDir, p)); err != nil {
			t.Skipf("CNI plugin %s not installed in %s (apt-get install containernetworking-plugins)", p, systemPluginDir)
		}
	}
	for _, tool := range []string{"ip", "iptables"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	s := randHex(t, 2)
	e := &itEnv{
		suffix:   s,
		bridge:   "crtest" + s,
		network:  "crtest-" + s,
		subnet:   fmt.Sprintf("10.210.%d.0/24", randInt(t, 1, 255)),
		dataDir:  filepath.Join(t.TempDir(), "ipam"),
		confDir:  t.TempDir(),
		cacheDir: filepath.Join(t.TempDir(), "cni-cache"),
	}

	// The safety rule, twice to check the script is idempotent.
	runScript(t, "firewall-on", e.subnet)
	runScript(t, "firewall-on", e.subnet)
	if n := countForwardDrop(t, e.subnet); n != 1 {
		t.Fatalf("FORWARD DROP rule for %s present %d times, want 1", e.subnet, n)
	}
	t.Cleanup(func() {
		runScript(t, "firewall-off", e.subnet)
		runScript(t, "firewall-off", e.subnet)
		if n := countForwardDrop(t, e.subnet); n != 0 {
			t.Errorf("FORWARD DROP rule for %s left %d times", e.subnet, n)
		}
	})
	t.Cleanup(func() {
		if l, err := netlink.LinkByName(e.bridge); err == nil {
			if err := netlink.LinkDel(l); err != nil {
				t.Errorf("delete bridge %s: %v", e.bridge, err)
			}
		}
	})
	writeFile(t, filepath.Join(e.confDir, "10-test.conflist"), string(conflist(e.network, e.bridge, e.subnet, e.dataDir)), 0o644)
	return e
}

func (e *itEnv) manager(t *testing.T) *Manager {
	t.Helper()
	m, err := New(Options{ConfDir: e.confDir, BinDirs: []string{systemPluginDir}, CacheDir: e.cacheDir})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// ipReserved reports whether host-local still holds ip for the test network.
func (e *itEnv) ipReserved(ip string) bool {
	_, err := os.Stat(filepath.Join(e.dataDir, e.network, ip))
	return err == nil
}

// newNetNS creates a named network namespace pinned at /run/netns/<name>.
func newNetNS(t *testing.T, name string) string {
	t.Helper()
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v\n%s", name, err, out)
	}
	t.Cleanup(func() { deleteNetNS(name) })
	return "/run/netns/" + name
}

func deleteNetNS(name string) {
	_ = exec.Command("ip", "netns", "delete", name).Run()
}

// inNetNS runs fn on a dedicated, locked OS thread switched into the
// namespace at path. Sockets created by fn stay in that namespace after the
// thread switches back. If switching back fails the thread stays locked, so
// the runtime discards it when the goroutine ends instead of reusing a thread
// in the wrong namespace.
func inNetNS(path string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		target, err := netns.GetFromPath(path)
		if err != nil {
			errc <- err
			return
		}
		defer target.Close()
		if err := netns.Set(target); err != nil {
			errc <- err
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			errc <- fmt.Errorf("restore netns: %w", err)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// echoServer listens on port inside the namespace and echoes one line per
// connection, prefixed with tag.
func echoServer(t *testing.T, nsPath string, port int, tag string) {
	t.Helper()
	var ln net.Listener
	if err := inNetNS(nsPath, func() (err error) {
		ln, err = net.Listen("tcp4", fmt.Sprintf(":%d", port))
		return err
	}); err != nil {
		t.Fatalf("listen in %s: %v", nsPath, err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				line, _ := bufio.NewReader(c).ReadString('\n')
				fmt.Fprintf(c, "%s:%s", tag, line)
			}()
		}
	}()
}

// exchange dials addr (from the namespace nsPath, or the host when "") and
// returns the echoed line.
func exchange(nsPath, addr string) (string, error) {
	var c net.Conn
	dial := func() (err error) {
		c, err = net.DialTimeout("tcp4", addr, 2*time.Second)
		return err
	}
	var err error
	if nsPath == "" {
		err = dial()
	} else {
		err = inNetNS(nsPath, dial)
	}
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := fmt.Fprintf(c, "hello\n"); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), err
}

// hostVeth returns the host-side interface of the pod from the CNI result.
func hostVeth(t *testing.T, res *Result, bridge string) string {
	t.Helper()
	var r types100.Result
	if err := json.Unmarshal(res.Raw, &r); err != nil {
		t.Fatal(err)
	}
	for _, i := range r.Interfaces {
		if i.Sandbox == "" && i.Name != bridge {
			return i.Name
		}
	}
	t.Fatalf("no host veth in result %s", res.Raw)
	return ""
}

func linkExists(name string) bool {
	_, err := netlink.LinkByName(name)
	return err == nil
}

func countForwardDrop(t *testing.T, subnet string) int {
	out, err := exec.Command("iptables", "-w", "-S", "FORWARD").Output()
	if err != nil {
		t.Fatalf("iptables -S FORWARD: %v", err)
	}
	return strings.Count(string(out), fmt.Sprintf("-A FORWARD -s %s ! -d %s -j DROP", subnet, subnet))
}

// natRulesMention returns the iptables nat rules that mention s.
func natRulesMention(t *testing.T, s string) []string {
	out, err := exec.Command("iptables-save", "-t", "nat").Output()
	if err != nil {
		t.Logf("iptables-save: %v", err)
		return nil
	}
	var rules []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, s) {
			rules = append(rules, l)
		}
	}
	return rules
}

func TestIntegrationBridgePodNetwork(t *testing.T) {
	e := newITEnv(t)
	m := e.manager(t)
	ctx := context.Background()
	if err := m.Ready(); err != nil {
		t.Fatalf("Ready() = %v", err)
	}

	const containerPort = 8080
	hostPort := int32(randInt(t, 30000, 40000))
	pods := []Pod{
		{ID: "crtest-a-" + e.suffix, Name: "a", Namespace: "it", UID: "uid-a", NetNS: newNetNS(t, "crtest-"+e.suffix+"-a"),
			PortMappings: []PortMapping{{Protocol: "tcp", ContainerPort: containerPort, HostPort: hostPort}}},
		{ID: "crtest-b-" + e.suffix, Name: "b", Namespace: "it", UID: "uid-b", NetNS: newNetNS(t, "crtest-"+e.suffix+"-b")},
	}
	// Safety net: whatever happens below, DEL everything at the end.
	t.Cleanup(func() {
		for _, p := range pods {
			_ = m.Teardown(ctx, p)
		}
	})

	// Two different pods at once: per-pod locking must let them run in
	// parallel, and host-local must hand out distinct addresses.
	results := make([]*Result, len(pods))
	var wg sync.WaitGroup
	for i := range pods {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := m.Setup(ctx, pods[i])
			if err != nil {
				t.Errorf("Setup(%s): %v", pods[i].ID, err)
			}
			results[i] = r
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	ipA, ipB := results[0].IPs[0], results[1].IPs[0]
	t.Logf("pod a %s, pod b %s, subnet %s, bridge %s, hostPort %d", ipA, ipB, e.subnet, e.bridge, hostPort)
	_, subnet, _ := net.ParseCIDR(e.subnet)
	if ipA == ipB || !subnet.Contains(net.ParseIP(ipA)) || !subnet.Contains(net.ParseIP(ipB)) {
		t.Fatalf("pod IPs %s, %s: want distinct addresses in %s", ipA, ipB, e.subnet)
	}
	for i, r := range results {
		if r.Network != e.network || !slices.Equal(r.Interfaces, []string{"eth0"}) {
			t.Errorf("result %d = %+v", i, r)
		}
		if got, err := PodIPsFromNetNS(pods[i].NetNS, "eth0"); err != nil || !slices.Equal(got, r.IPs) {
			t.Errorf("PodIPsFromNetNS = %v, %v; want %v", got, err, r.IPs)
		}
		if !e.ipReserved(r.IPs[0]) {
			t.Errorf("host-local has no reservation for %s", r.IPs[0])
		}
	}

	// lo is up in the pod (Setup does that itself, not a plugin).
	h, err := handleAt(pods[0].NetNS)
	if err != nil {
		t.Fatal(err)
	}
	lo, err := h.LinkByName("lo")
	h.Delete()
	if err != nil || lo.Attrs().Flags&net.FlagUp == 0 {
		t.Fatalf("lo in pod a: %v, up=%v", err, err == nil && lo.Attrs().Flags&net.FlagUp != 0)
	}

	// Pod b reaches pod a over the bridge.
	echoServer(t, pods[0].NetNS, containerPort, "a")
	if got, err := exchange(pods[1].NetNS, net.JoinHostPort(ipA, fmt.Sprint(containerPort))); err != nil || got != "a:hello" {
		t.Fatalf("b -> a: %q, %v", got, err)
	}
	// And pod a reaches itself via localhost, which needs lo up.
	if got, err := exchange(pods[0].NetNS, fmt.Sprintf("127.0.0.1:%d", containerPort)); err != nil || got != "a:hello" {
		t.Fatalf("a -> 127.0.0.1: %q, %v", got, err)
	}
	// The host reaches pod a through its hostPort on 127.0.0.1: portmap
	// DNATs locally-originated traffic in OUTPUT and, with snat, sets
	// route_localnet on the bridge and masquerades the 127.0.0.1 source.
	hostAddr := fmt.Sprintf("127.0.0.1:%d", hostPort)
	if got, err := exchange("", hostAddr); err != nil || got != "a:hello" {
		t.Fatalf("host -> 127.0.0.1:%d: %q, %v", hostPort, got, err)
	}

	// DEL releases the IP, removes the veth and the hostPort rules.
	vethA := hostVeth(t, results[0], e.bridge)
	if !linkExists(vethA) {
		t.Fatalf("host veth %s of pod a missing before DEL", vethA)
	}
	if err := m.Teardown(ctx, pods[0]); err != nil {
		t.Fatalf("Teardown(a): %v", err)
	}
	if e.ipReserved(ipA) {
		t.Errorf("IP %s still reserved after DEL", ipA)
	}
	if linkExists(vethA) {
		t.Errorf("veth %s still exists after DEL", vethA)
	}
	if _, err := exchange("", hostAddr); err == nil {
		t.Errorf("hostPort %d still answers after DEL", hostPort)
	}
	if err := m.Teardown(ctx, pods[0]); err != nil {
		t.Fatalf("second Teardown(a): %v", err)
	}

	// Pod b's namespace disappears before its DEL (node reboot, crash):
	// Teardown with the stale path must still release the IP.
	vethB := hostVeth(t, results[1], e.bridge)
	deleteNetNS("crtest-" + e.suffix + "-b")
	if err := m.Teardown(ctx, pods[1]); err != nil {
		t.Fatalf("Teardown(b) with its netns gone: %v", err)
	}
	if e.ipReserved(ipB) {
		t.Errorf("IP %s still reserved after DEL without netns", ipB)
	}
	if linkExists(vethB) {
		t.Errorf("veth %s outlived its namespace", vethB)
	}
	if err := m.Teardown(ctx, Pod{ID: pods[1].ID}); err != nil {
		t.Fatalf("second Teardown(b): %v", err)
	}
	// bridge <= 1.1.x cannot remove its ipMasq rules without the namespace;
	// Teardown does it for it (masq.go).
	if rules := natRulesMention(t, pods[1].ID); len(rules) > 0 {
		t.Errorf("nat rules left for pod b after DEL without netns: %v", rules)
	}
	if rules := natRulesMention(t, pods[0].ID); len(rules) > 0 {
		t.Errorf("nat rules for %s left after a normal DEL: %v", ipA, rules)
	}
}

func TestIntegrationGC(t *testing.T) {
	e := newITEnv(t)
	m := e.manager(t)
	ctx := context.Background()

	var pods []Pod
	var ips []string
	for _, n := range []string{"c", "d"} {
		p := Pod{ID: "crtest-" + n + "-" + e.suffix, Name: n, Namespace: "it", NetNS: newNetNS(t, "crtest-"+e.suffix+"-"+n)}
		pods = append(pods, p)
		r, err := m.Setup(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		ips = append(ips, r.IPs[0])
	}
	t.Cleanup(func() {
		for _, p := range pods {
			_ = m.Teardown(ctx, p)
		}
	})

	// Restart: a new manager over the same cache; pod c no longer exists.
	m2 := e.manager(t)
	deleteNetNS("crtest-" + e.suffix + "-c")
	if err := m2.GC(ctx, []Pod{pods[1]}); err != nil {
		t.Fatalf("GC(keep d): %v", err)
	}
	if e.ipReserved(ips[0]) {
		t.Errorf("GC did not release %s of the stale pod", ips[0])
	}
	if rules := natRulesMention(t, pods[0].ID); len(rules) > 0 {
		t.Errorf("nat rules left for the stale pod: %v", rules)
	}
	if !e.ipReserved(ips[1]) {
		t.Fatalf("GC released %s of a pod it was told to keep", ips[1])
	}
	if _, err := PodIPsFromNetNS(pods[1].NetNS, "eth0"); err != nil {
		t.Fatalf("kept pod lost its interface: %v", err)
	}

	// GC with nothing to keep releases the rest.
	if err := m2.GC(ctx, nil); err != nil {
		t.Fatalf("GC(nil): %v", err)
	}
	if e.ipReserved(ips[1]) {
		t.Errorf("GC(nil) did not release %s", ips[1])
	}
	if _, err := PodIPsFromNetNS(pods[1].NetNS, "eth0"); err == nil {
		t.Errorf("GC(nil) left eth0 in pod d's live namespace")
	}
	if rules := natRulesMention(t, pods[1].ID); len(rules) > 0 {
		t.Errorf("nat rules left for pod d: %v", rules)
	}
}

// TestIntegrationRollback makes the last plugin of the list fail after
// bridge and host-local did their work; Setup must undo them.
func TestIntegrationRollback(t *testing.T) {
	e := newITEnv(t)
	var doc map[string]any
	if err := json.Unmarshal(conflist(e.network, e.bridge, e.subnet, e.dataDir), &doc); err != nil {
		t.Fatal(err)
	}
	doc["plugins"] = append(doc["plugins"].([]any), map[string]any{
		"type":    "tuning",
		"sysctl":  map[string]string{"net.ipv4.conf.eth0.crisp_no_such_sysctl": "1"},
		"comment": "fails on purpose",
	})
	data, _ := json.Marshal(doc)
	writeFile(t, filepath.Join(e.confDir, "10-test.conflist"), string(data), 0o644)
	m := e.manager(t)

	pod := Pod{ID: "crtest-r-" + e.suffix, NetNS: newNetNS(t, "crtest-"+e.suffix+"-r"),
		PortMappings: []PortMapping{{ContainerPort: 80, HostPort: int32(randInt(t, 30000, 40000))}}}
	_, err := m.Setup(context.Background(), pod)
	if err == nil {
		_ = m.Teardown(context.Background(), pod)
		t.Fatal("Setup succeeded with a failing plugin")
	}
	t.Logf("Setup error (expected): %v", err)

	entries, rerr := os.ReadDir(filepath.Join(e.dataDir, e.network))
	if rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
		t.Fatal(rerr)
	}
	for _, en := range entries {
		if net.ParseIP(en.Name()) != nil {
			t.Errorf("IP %s still reserved after rolled-back Setup", en.Name())
		}
	}
	if _, err := PodIPsFromNetNS(pod.NetNS, "eth0"); err == nil {
		t.Error("eth0 left in the pod after rolled-back Setup")
	}
	if atts, _ := m.cni.GetCachedAttachments(pod.ID); len(atts) != 0 {
		t.Errorf("cache entries after failed Setup: %v", atts)
	}
	if rules := natRulesMention(t, pod.ID); len(rules) > 0 {
		t.Errorf("nat rules left for %s: %v", pod.ID, rules)
	}
}
