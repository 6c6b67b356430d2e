package network

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/crisp-runtime/crisp/errdefs"
)

// These tests drive Manager against fake plugins (shell scripts) that record
// each invocation, to check what crisp hands to plugins without touching the
// host network. Setup still brings "lo" up in the given namespace, so they use
// the test's own namespace and need root for setns.

const recordingPlugin = `#!/bin/sh
name=$(basename "$0")
stdin=$(cat)
if [ "$CNI_COMMAND" = VERSION ]; then
	echo '{"cniVersion":"1.0.0","supportedVersions":["0.3.1","0.4.0","1.0.0"]}'
	exit 0
fi
echo "$CNI_COMMAND $name id=$CNI_CONTAINERID if=$CNI_IFNAME netns=$CNI_NETNS args=$CNI_ARGS" >>"$FAKE_LOG_DIR/calls.log"
printf '%s' "$stdin" >"$FAKE_LOG_DIR/$CNI_COMMAND-$name-$CNI_CONTAINERID.json"
if [ "$CNI_COMMAND" = ADD ]; then
	if [ "$name" = fakefail ]; then
		echo '{"cniVersion":"1.0.0","code":100,"msg":"fakefail says no"}'
		exit 1
	fi
	echo '{"cniVersion":"1.0.0","interfaces":[{"name":"fakebr0"},{"name":"eth0","sandbox":"'"$CNI_NETNS"'"}],"ips":[{"address":"10.99.0.1/24","interface":0},{"address":"fd00::5/64","interface":1},{"address":"10.99.0.5/24","interface":1}]}'
fi
`

const hostNetNS = "/proc/self/ns/net"

type fakeEnv struct {
	confDir, binDir, logDir, cacheDir string
}

func newFakeEnv(t *testing.T) *fakeEnv {
	t.Helper()
	requireRoot(t)
	e := &fakeEnv{confDir: t.TempDir(), logDir: t.TempDir(), cacheDir: filepath.Join(t.TempDir(), "cache")}
	e.binDir = t.TempDir()
	script := strings.Replace(recordingPlugin, "#!/bin/sh\n", "#!/bin/sh\nFAKE_LOG_DIR="+e.logDir+"\n", 1)
	installFakePlugins(t, e.binDir, script, "fake", "fake2", "fakeportmap", "fakefail")
	return e
}

func (e *fakeEnv) writeConf(t *testing.T, file, content string) {
	t.Helper()
	writeFile(t, filepath.Join(e.confDir, file), content, 0o644)
}

func (e *fakeEnv) manager(t *testing.T) *Manager {
	t.Helper()
	m, err := New(Options{ConfDir: e.confDir, BinDirs: []string{e.binDir}, CacheDir: e.cacheDir})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func (e *fakeEnv) calls(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(e.logDir, "calls.log"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(e.logDir, "calls.log"))
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if l != "" {
			out = append(out, l)
		}
	}
	return out
}

// stdin returns what a plugin got on stdin, decoded.
func (e *fakeEnv) stdin(t *testing.T, cmd, plugin, id string) map[string]any {
	t.Helper()
	v, _ := readJSON(t, filepath.Join(e.logDir, cmd+"-"+plugin+"-"+id+".json")).(map[string]any)
	return v
}

// callPrefixes reduces log lines to "CMD plugin" for order checks.
func callPrefixes(lines []string) []string {
	var out []string
	for _, l := range lines {
		f := strings.Fields(l)
		out = append(out, f[0]+" "+f[1])
	}
	return out
}

const fakeList = `{"cniVersion":"1.0.0","name":"fakenet","plugins":[
	{"type":"fake"},
	{"type":"fakeportmap","capabilities":{"portMappings":true,"cgroupPath":true}}]}`

func TestSetupTeardownPassesArgs(t *testing.T) {
	e := newFakeEnv(t)
	e.writeConf(t, "10-fake.conflist", fakeList)
	m := e.manager(t)
	ctx := context.Background()

	pod := Pod{
		ID: "pod1", Name: "web", Namespace: "default", UID: "uid-1", NetNS: hostNetNS,
		PortMappings: []PortMapping{
			{Protocol: "TCP", ContainerPort: 80, HostPort: 8080},
			{Protocol: "udp", ContainerPort: 53, HostPort: 5353, HostIP: "127.0.0.1"},
			{ContainerPort: 9090}, // no host port: must not reach portmap
		},
		CgroupParent: "/kubepods/pod-uid-1",
	}
	res, err := m.Setup(ctx, pod)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"10.99.0.5", "fd00::5"}; !reflect.DeepEqual(res.IPs, want) {
		t.Errorf("IPs = %v, want %v (IPv4 first, host-side address excluded)", res.IPs, want)
	}
	if !reflect.DeepEqual(res.Interfaces, []string{"eth0"}) || res.Network != "fakenet" || len(res.Raw) == 0 {
		t.Errorf("result = %+v", res)
	}

	calls := e.calls(t)
	if got := callPrefixes(calls); !reflect.DeepEqual(got, []string{"ADD fake", "ADD fakeportmap"}) {
		t.Fatalf("calls = %v", calls)
	}
	wantArgs := "id=pod1 if=eth0 netns=" + hostNetNS +
		" args=IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web;K8S_POD_INFRA_CONTAINER_ID=pod1;K8S_POD_UID=uid-1"
	if !strings.HasSuffix(calls[0], wantArgs) {
		t.Errorf("call %q, want suffix %q", calls[0], wantArgs)
	}

	// Capability args go only to the plugin that declares them.
	if rc, ok := e.stdin(t, "ADD", "fake", "pod1")["runtimeConfig"]; ok {
		t.Errorf("plugin without capabilities got runtimeConfig %v", rc)
	}
	rc, _ := e.stdin(t, "ADD", "fakeportmap", "pod1")["runtimeConfig"].(map[string]any)
	wantPM := decodeJSON(t, []byte(`[{"hostPort":8080,"containerPort":80,"protocol":"tcp"},
		{"hostPort":5353,"containerPort":53,"protocol":"udp","hostIP":"127.0.0.1"}]`))
	if !jsonEqual(rc["portMappings"], wantPM) || rc["cgroupPath"] != "/kubepods/pod-uid-1" {
		t.Errorf("runtimeConfig = %v", rc)
	}

	if err := m.Teardown(ctx, pod); err != nil {
		t.Fatal(err)
	}
	if got := callPrefixes(e.calls(t)); !reflect.DeepEqual(got, []string{"DEL fakeportmap", "DEL fake"}) {
		t.Fatalf("DEL calls = %v, want reverse order", got)
	}
	del := e.stdin(t, "DEL", "fakeportmap", "pod1")
	if _, ok := del["prevResult"]; !ok {
		t.Errorf("DEL got no prevResult: %v", del)
	}
	if rc, _ := del["runtimeConfig"].(map[string]any); !jsonEqual(rc["portMappings"], wantPM) {
		t.Errorf("DEL runtimeConfig = %v, want the port mappings of ADD", rc)
	}
	if atts, _ := m.cni.GetCachedAttachments("pod1"); len(atts) != 0 {
		t.Errorf("cache not cleared: %v", atts)
	}

	// A second DEL still succeeds (runs against the current config).
	if err := m.Teardown(ctx, pod); err != nil {
		t.Fatal(err)
	}
}

func TestSetupRollsBackOnFailure(t *testing.T) {
	e := newFakeEnv(t)
	e.writeConf(t, "10-fail.conflist", `{"cniVersion":"1.0.0","name":"failnet","plugins":[{"type":"fake"},{"type":"fakefail"}]}`)
	m := e.manager(t)

	_, err := m.Setup(context.Background(), Pod{ID: "pod1", NetNS: hostNetNS})
	if err == nil || !strings.Contains(err.Error(), "fakefail says no") {
		t.Fatalf("Setup() = %v, want the plugin's error", err)
	}
	if got := callPrefixes(e.calls(t)); !reflect.DeepEqual(got, []string{"ADD fake", "ADD fakefail", "DEL fakefail", "DEL fake"}) {
		t.Fatalf("calls = %v, want ADD then rollback DEL", got)
	}
	if atts, _ := m.cni.GetCachedAttachments(""); len(atts) != 0 {
		t.Errorf("failed ADD left cache entries: %v", atts)
	}
}

func TestTeardownUsesCachedConfig(t *testing.T) {
	e := newFakeEnv(t)
	e.writeConf(t, "10-one.conflist", listConf("one", "fake"))
	m := e.manager(t)
	pod := Pod{ID: "pod1", NetNS: hostNetNS}
	if _, err := m.Setup(context.Background(), pod); err != nil {
		t.Fatal(err)
	}
	e.calls(t)

	// The admin switches networks while the pod runs.
	os.Remove(filepath.Join(e.confDir, "10-one.conflist"))
	e.writeConf(t, "10-two.conflist", listConf("two", "fake2"))
	if m.NetworkName() != "two" {
		t.Fatalf("network = %q", m.NetworkName())
	}
	if err := m.Teardown(context.Background(), pod); err != nil {
		t.Fatal(err)
	}
	calls := e.calls(t)
	if got := callPrefixes(calls); !reflect.DeepEqual(got, []string{"DEL fake"}) {
		t.Fatalf("calls = %v, want DEL through the network the pod was added to", calls)
	}
	if name := e.stdin(t, "DEL", "fake", "pod1")["name"]; name != "one" {
		t.Errorf("DEL config name = %v, want one", name)
	}
}

func TestTeardownNetNSGone(t *testing.T) {
	e := newFakeEnv(t)
	e.writeConf(t, "10-fake.conflist", listConf("fakenet", "fake"))
	m := e.manager(t)
	ctx := context.Background()

	// A leftover mount point after a reboot is a plain file, not nsfs.
	plain := filepath.Join(t.TempDir(), "netns-file")
	writeFile(t, plain, "", 0o644)
	for _, gone := range []string{filepath.Join(t.TempDir(), "missing"), plain} {
		if _, err := m.Setup(ctx, Pod{ID: "pod1", NetNS: hostNetNS}); err != nil {
			t.Fatal(err)
		}
		e.calls(t)
		if err := m.Teardown(ctx, Pod{ID: "pod1", NetNS: gone}); err != nil {
			t.Fatal(err)
		}
		calls := e.calls(t)
		if len(calls) != 1 || !strings.Contains(calls[0], "netns= ") {
			t.Fatalf("netns %s: calls = %v, want DEL with empty CNI_NETNS", gone, calls)
		}
	}
}

func TestTeardownNothingToDo(t *testing.T) {
	e := newFakeEnv(t) // empty conf dir, empty cache
	m := e.manager(t)
	if err := m.Teardown(context.Background(), Pod{ID: "never", NetNS: ""}); err != nil {
		t.Fatalf("Teardown of unknown pod without config = %v", err)
	}
	if err := m.Teardown(context.Background(), Pod{}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("Teardown without ID = %v", err)
	}
	if calls := e.calls(t); len(calls) != 0 {
		t.Fatalf("calls = %v", calls)
	}
}

func TestTeardownIgnoresCancelledContext(t *testing.T) {
	e := newFakeEnv(t)
	e.writeConf(t, "10-fake.conflist", listConf("fakenet", "fake"))
	m := e.manager(t)
	pod := Pod{ID: "pod1", NetNS: hostNetNS}
	if _, err := m.Setup(context.Background(), pod); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := m.Teardown(ctx, pod); err != nil {
		t.Fatalf("Teardown with cancelled ctx = %v", err)
	}
	if atts, _ := m.cni.GetCachedAttachments("pod1"); len(atts) != 0 {
		t.Fatal("DEL did not run")
	}
}

func TestSetupErrors(t *testing.T) {
	e := newFakeEnv(t)
	m := e.manager(t)
	ctx := context.Background()
	if _, err := m.Setup(ctx, Pod{ID: "p", NetNS: hostNetNS}); !errors.Is(err, errdefs.ErrUnavailable) ||
		!strings.Contains(err.Error(), "no network config found") {
		t.Fatalf("Setup without config = %v", err)
	}
	e.writeConf(t, "10-fake.conflist", listConf("fakenet", "fake"))
	for _, p := range []Pod{
		{NetNS: hostNetNS},
		{ID: "p"},
		{ID: "bad/id", NetNS: hostNetNS},
		{ID: "p", NetNS: hostNetNS, PortMappings: []PortMapping{{Protocol: "icmp", ContainerPort: 1, HostPort: 1}}},
	} {
		if _, err := m.Setup(ctx, p); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("Setup(%+v) = %v, want invalid argument", p, err)
		}
	}
	if _, err := m.Setup(ctx, Pod{ID: "p", NetNS: filepath.Join(t.TempDir(), "nope")}); err == nil {
		t.Error("Setup with a missing netns succeeded")
	}
}

func TestGCReleasesStaleAttachments(t *testing.T) {
	e := newFakeEnv(t)
	e.writeConf(t, "10-fake.conflist", listConf("fakenet", "fake"))
	m := e.manager(t)
	ctx := context.Background()

	// Different pods set up concurrently.
	var wg sync.WaitGroup
	for _, id := range []string{"p1", "p2", "p3"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := m.Setup(ctx, Pod{ID: id, NetNS: hostNetNS}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	e.calls(t)

	// As after a restart: a new manager over the same cache.
	m2 := e.manager(t)
	if err := m2.GC(ctx, []Pod{{ID: "p2"}}); err != nil {
		t.Fatal(err)
	}
	calls := e.calls(t)
	var deleted []string
	for _, c := range calls {
		f := strings.Fields(c)
		deleted = append(deleted, f[0]+" "+strings.TrimPrefix(f[2], "id="))
	}
	if !reflect.DeepEqual(deleted, []string{"DEL p1", "DEL p3"}) {
		t.Fatalf("GC calls = %v", calls)
	}
	atts, _ := m2.cni.GetCachedAttachments("")
	if len(atts) != 1 || atts[0].ContainerID != "p2" {
		t.Fatalf("cache after GC = %v", atts)
	}
	if err := m2.GC(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if atts, _ := m2.cni.GetCachedAttachments(""); len(atts) != 0 {
		t.Fatalf("cache after GC(nil) = %v", atts)
	}
}

// A CNI 1.1 configuration gets the STATUS and GC verbs; plugins are fakes
// that claim 1.1.0 support (Debian 12's real ones stop at 1.0.0).
func TestStatusAndGCVerbs(t *testing.T) {
	e := newFakeEnv(t)
	script := strings.Replace(recordingPlugin, `"1.0.0"]}`, `"1.0.0","1.1.0"]}`, 1)
	script = strings.Replace(script, "#!/bin/sh\n", "#!/bin/sh\nFAKE_LOG_DIR="+e.logDir+"\n", 1)
	script = strings.Replace(script, `if [ "$CNI_COMMAND" = ADD ]; then`,
		`if [ "$CNI_COMMAND" = STATUS ] && [ -e "$FAKE_LOG_DIR/down" ]; then
	echo '{"cniVersion":"1.1.0","code":50,"msg":"plugin not available"}'
	exit 1
fi
if [ "$CNI_COMMAND" = ADD ]; then`, 1)
	installFakePlugins(t, e.binDir, script, "fake11")
	e.writeConf(t, "10-new.conflist", `{"cniVersion":"1.1.0","name":"new","plugins":[{"type":"fake11"}]}`)
	m := e.manager(t)
	ctx := context.Background()

	if err := m.Status(ctx); err != nil {
		t.Fatalf("Status() = %v", err)
	}
	writeFile(t, filepath.Join(e.logDir, "down"), "", 0o644)
	if err := m.Status(ctx); err == nil || !strings.Contains(err.Error(), "plugin not available") || !errors.Is(err, errdefs.ErrUnavailable) {
		t.Fatalf("Status() = %v, want the plugin's reason", err)
	}
	e.calls(t)

	if err := m.GC(ctx, []Pod{{ID: "keep1"}}); err != nil {
		t.Fatal(err)
	}
	if got := callPrefixes(e.calls(t)); !reflect.DeepEqual(got, []string{"GC fake11"}) {
		t.Fatalf("calls = %v", got)
	}
	in := e.stdin(t, "GC", "fake11", "")
	want := decodeJSON(t, []byte(`[{"containerID":"keep1","ifname":"eth0"}]`))
	if !jsonEqual(in["cni.dev/valid-attachments"], want) {
		t.Fatalf("GC stdin = %v", in)
	}
}

func TestStatusOldVersionIsReady(t *testing.T) {
	e := newFakeEnv(t)
	m := e.manager(t)
	if err := m.Status(context.Background()); err == nil {
		t.Fatal("Status() = nil without config")
	}
	e.writeConf(t, "10-fake.conflist", listConf("fakenet", "fake"))
	if err := m.Status(context.Background()); err != nil {
		t.Fatalf("Status() = %v", err)
	}
	if calls := e.calls(t); len(calls) != 0 {
		t.Fatalf("STATUS sent to a 1.0.0 config: %v", calls)
	}
}

// The names must match what bridge/ptp compute (seen on a real run).
func TestMasqNames(t *testing.T) {
	if got := masqChainName("crtest-eddc", "crtest-b-eddc"); got != "CNI-69ead3ea906774650e7cb860" {
		t.Errorf("chain = %s", got)
	}
	if got := masqComment("crtest-eddc", "crtest-b-eddc"); got != `name: "crtest-eddc" id: "crtest-b-eddc"` {
		t.Errorf("comment = %s", got)
	}
}
