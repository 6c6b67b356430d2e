package network

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/crisp-runtime/crisp/errdefs"
)

// fakeVersionPlugin answers VERSION only; enough for configuration
// validation, which execs each plugin once.
const fakeVersionPlugin = `#!/bin/sh
cat >/dev/null
echo '{"cniVersion":"1.0.0","supportedVersions":["0.3.1","0.4.0","1.0.0"]}'
`

func writeFile(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}

// installFakePlugins puts executable fake plugins named names into dir.
func installFakePlugins(t *testing.T, dir, script string, names ...string) {
	t.Helper()
	for _, n := range names {
		writeFile(t, filepath.Join(dir, n), script, 0o755)
	}
}

func listConf(name, pluginType string) string {
	return `{"cniVersion":"1.0.0","name":"` + name + `","plugins":[{"type":"` + pluginType + `"}]}`
}

func newTestManager(t *testing.T, confDir, binDir string) *Manager {
	t.Helper()
	m, err := New(Options{ConfDir: confDir, BinDirs: []string{binDir}, CacheDir: filepath.Join(t.TempDir(), "cache")})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestNewValidatesOptions(t *testing.T) {
	for _, o := range []Options{
		{BinDirs: []string{"/x"}, CacheDir: "/tmp/x"},
		{ConfDir: "/x", CacheDir: "/tmp/x"},
		{ConfDir: "/x", BinDirs: []string{"/x"}},
	} {
		if _, err := New(o); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("New(%+v) = %v, want invalid argument", o, err)
		}
	}
}

func TestReadyNoConfig(t *testing.T) {
	bin := t.TempDir()
	installFakePlugins(t, bin, fakeVersionPlugin, "fake")

	missing := filepath.Join(t.TempDir(), "does-not-exist")
	m := newTestManager(t, missing, bin)
	err := m.Ready()
	if err == nil || err.Error() != "no network config found in "+missing {
		t.Fatalf("Ready() = %v, want 'no network config found in %s'", err, missing)
	}
	if !errors.Is(err, errdefs.ErrUnavailable) {
		t.Errorf("Ready() error should match ErrUnavailable")
	}

	empty := t.TempDir()
	writeFile(t, filepath.Join(empty, "README"), "not a config", 0o644)
	if err := newTestManager(t, empty, bin).Ready(); err == nil || !strings.Contains(err.Error(), "no network config found") {
		t.Fatalf("Ready() = %v, want no network config", err)
	}
}

func TestConfigSelection(t *testing.T) {
	bin := t.TempDir()
	installFakePlugins(t, bin, fakeVersionPlugin, "fake")
	dir := t.TempDir()

	// Invalid files sort first and must be skipped; the first valid one
	// (lexicographically) wins over later valid ones.
	writeFile(t, filepath.Join(dir, "00-broken.conflist"), "{not json", 0o644)
	writeFile(t, filepath.Join(dir, "05-noplugins.conflist"), `{"cniVersion":"1.0.0","name":"x","plugins":[]}`, 0o644)
	writeFile(t, filepath.Join(dir, "07-missingbin.conflist"), listConf("missing", "nosuchplugin"), 0o644)
	writeFile(t, filepath.Join(dir, "20-second.conflist"), listConf("second", "fake"), 0o644)
	writeFile(t, filepath.Join(dir, "10-first.conflist"), listConf("first", "fake"), 0o644)

	m := newTestManager(t, dir, bin)
	if err := m.Ready(); err != nil {
		t.Fatalf("Ready() = %v", err)
	}
	if got := m.NetworkName(); got != "first" {
		t.Fatalf("network = %q, want first", got)
	}
}

func TestConfigSingleConfAndJSON(t *testing.T) {
	bin := t.TempDir()
	installFakePlugins(t, bin, fakeVersionPlugin, "fake")

	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "10-single.conf"), `{"cniVersion":"1.0.0","name":"single","type":"fake"}`, 0o644)
	m := newTestManager(t, dir, bin)
	if err := m.Ready(); err != nil {
		t.Fatal(err)
	}
	n, _ := m.current()
	if n.list.Name != "single" || len(n.list.Plugins) != 1 || n.list.Plugins[0].Network.Type != "fake" {
		t.Fatalf("single .conf not wrapped into a list: %+v", n.list)
	}

	// .json holding a list.
	dir2 := t.TempDir()
	writeFile(t, filepath.Join(dir2, "10-list.json"), listConf("jsonlist", "fake"), 0o644)
	m2 := newTestManager(t, dir2, bin)
	if err := m2.Ready(); err != nil || m2.NetworkName() != "jsonlist" {
		t.Fatalf("Ready() = %v, network %q", err, m2.NetworkName())
	}
}

func TestReadyReportsWhyAllInvalid(t *testing.T) {
	bin := t.TempDir()
	installFakePlugins(t, bin, fakeVersionPlugin, "fake")
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "10-bad.conflist"), "{", 0o644)
	writeFile(t, filepath.Join(dir, "20-newer.conflist"),
		`{"cniVersion":"1.1.0","name":"newer","plugins":[{"type":"fake"}]}`, 0o644)
	err := newTestManager(t, dir, bin).Ready()
	if err == nil {
		t.Fatal("Ready() = nil with only invalid configs")
	}
	for _, want := range []string{"no valid network config found in " + dir, "10-bad.conflist", "20-newer.conflist", `does not support config version "1.1.0"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Ready() = %q, want it to mention %q", err, want)
		}
	}
}

func TestReadyPicksUpChangesWithoutRestart(t *testing.T) {
	bin := t.TempDir()
	dir := t.TempDir()
	m := newTestManager(t, dir, bin)
	if m.Ready() == nil {
		t.Fatal("Ready() = nil on an empty dir")
	}

	// A config appears, but its plugin binary is not installed yet.
	writeFile(t, filepath.Join(dir, "10-net.conflist"), listConf("net", "fake"), 0o644)
	if err := m.Ready(); err == nil || !strings.Contains(err.Error(), "fake") {
		t.Fatalf("Ready() = %v, want a complaint about the missing plugin", err)
	}
	// The binary shows up later: the plugin dir's mtime changes.
	installFakePlugins(t, bin, fakeVersionPlugin, "fake")
	if err := m.Ready(); err != nil {
		t.Fatalf("Ready() after installing plugin = %v", err)
	}

	// An earlier file appears: it wins.
	writeFile(t, filepath.Join(dir, "05-early.conflist"), listConf("early", "fake"), 0o644)
	if err := m.Ready(); err != nil || m.NetworkName() != "early" {
		t.Fatalf("Ready() = %v, network %q, want early", err, m.NetworkName())
	}

	// In-place edit of the selected file (same name, new content).
	time.Sleep(10 * time.Millisecond) // make sure the mtime moves on coarse clocks
	writeFile(t, filepath.Join(dir, "05-early.conflist"), listConf("edited", "fake"), 0o644)
	if m.NetworkName() != "edited" {
		t.Fatalf("network = %q after edit, want edited", m.NetworkName())
	}

	// Everything removed: not ready again.
	os.Remove(filepath.Join(dir, "05-early.conflist"))
	os.Remove(filepath.Join(dir, "10-net.conflist"))
	if err := m.Ready(); err == nil || !strings.Contains(err.Error(), "no network config found") {
		t.Fatalf("Ready() = %v after removing configs", err)
	}
}

// TestReadyIsCheap checks that an unchanged directory is not re-validated
// (validation execs every plugin).
func TestReadyIsCheap(t *testing.T) {
	bin := t.TempDir()
	counter := filepath.Join(t.TempDir(), "count")
	installFakePlugins(t, bin, "#!/bin/sh\necho x >>"+counter+"\n"+strings.TrimPrefix(fakeVersionPlugin, "#!/bin/sh\n"), "fake")
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "10-net.conflist"), listConf("net", "fake"), 0o644)
	m := newTestManager(t, dir, bin)
	for i := 0; i < 20; i++ {
		if err := m.Ready(); err != nil {
			t.Fatal(err)
		}
	}
	data, _ := os.ReadFile(counter)
	if n := strings.Count(string(data), "x"); n != 1 {
		t.Fatalf("plugin executed %d times for 20 Ready calls, want 1", n)
	}
}

func TestDefaultConflistMatchesScript(t *testing.T) {
	if _, err := os.Stat("../hack/cni-config.sh"); err != nil {
		t.Skip("hack/cni-config.sh not found")
	}
	dir := t.TempDir()
	runScript(t, dir, "br9", "10.211.0.0/16")
	got := readJSON(t, filepath.Join(dir, "10-crisp.conflist"))
	want := decodeJSON(t, DefaultConflist("br9", "10.211.0.0/16"))
	if !jsonEqual(got, want) {
		t.Fatalf("script wrote\n%v\nDefaultConflist is\n%v", got, want)
	}
	// The default must itself load as a valid list.
	list, err := loadConfFile(filepath.Join(dir, "10-crisp.conflist"))
	if err != nil || list.Name != DefaultNetworkName || len(list.Plugins) != 2 {
		t.Fatalf("load default: %v %+v", err, list)
	}

	// Idempotent, and never overrides an existing configuration.
	runScript(t, dir, "other0", "10.212.0.0/16")
	if !jsonEqual(readJSON(t, filepath.Join(dir, "10-crisp.conflist")), want) {
		t.Fatal("second run changed the config")
	}
	dir2 := t.TempDir()
	writeFile(t, filepath.Join(dir2, "99-theirs.json"), "{}", 0o644)
	runScript(t, dir2)
	if _, err := os.Stat(filepath.Join(dir2, "10-crisp.conflist")); !os.IsNotExist(err) {
		t.Fatal("script wrote a config next to an existing one")
	}
}
