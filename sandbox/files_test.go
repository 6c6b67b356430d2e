package sandbox

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRenderResolvConf(t *testing.T) {
	got := string(renderResolvConf(&DNSConfig{
		Servers:  []string{"10.96.0.10", "8.8.8.8"},
		Searches: []string{"ns.svc.cluster.local", "svc.cluster.local"},
		Options:  []string{"ndots:5", "timeout:1"},
	}))
	want := "search ns.svc.cluster.local svc.cluster.local\nnameserver 10.96.0.10\nnameserver 8.8.8.8\noptions ndots:5 timeout:1\n"
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	if got := string(renderResolvConf(&DNSConfig{Servers: []string{"1.1.1.1"}})); got != "nameserver 1.1.1.1\n" {
		t.Fatalf("servers only: %q", got)
	}
}

func TestRenderHosts(t *testing.T) {
	got := string(renderHosts("web", []string{"10.0.0.2", "fd00::2"}))
	for _, line := range []string{"127.0.0.1\tlocalhost\n", "::1\tlocalhost ip6-localhost ip6-loopback\n", "10.0.0.2\tweb\n", "fd00::2\tweb\n"} {
		if !strings.Contains(got, line) {
			t.Errorf("hosts lacks %q:\n%s", line, got)
		}
	}
	if strings.Contains(string(renderHosts("web", nil)), "web") {
		t.Error("hosts names the pod without an IP")
	}
}

func TestWritePodFiles(t *testing.T) {
	dir := t.TempDir()
	hostResolv := filepath.Join(dir, "host-resolv.conf")
	hostHostsFile := filepath.Join(dir, "host-hosts")
	os.WriteFile(hostResolv, []byte("nameserver 192.0.2.53\n"), 0o644)
	os.WriteFile(hostHostsFile, []byte("127.0.0.1 localhost node1\n"), 0o644)
	oldR, oldH := hostResolvConf, hostHosts
	hostResolvConf, hostHosts = hostResolv, hostHostsFile
	t.Cleanup(func() { hostResolvConf, hostHosts = oldR, oldH })

	read := func(p string) string { b, _ := os.ReadFile(p); return string(b) }

	t.Run("pod network without DNS config uses the host's resolv.conf", func(t *testing.T) {
		sb := &Sandbox{Hostname: "web", Config: Config{Namespaces: NamespaceOptions{Network: ModePod}}}
		sb.Network.IPs = []string{"10.0.0.2"}
		podFilePaths(sb, t.TempDir())
		if err := writePodFiles(sb); err != nil {
			t.Fatal(err)
		}
		if got := read(sb.ResolvPath); got != "nameserver 192.0.2.53\n" {
			t.Errorf("resolv.conf = %q", got)
		}
		if got := read(sb.HostnamePath); got != "web\n" {
			t.Errorf("hostname = %q", got)
		}
		if got := read(sb.HostsPath); !strings.Contains(got, "10.0.0.2\tweb") {
			t.Errorf("hosts = %q", got)
		}
	})
	t.Run("host network gets the host's hosts file and its DNS config", func(t *testing.T) {
		sb := &Sandbox{Hostname: "node1", Config: Config{
			Namespaces: NamespaceOptions{Network: ModeNode},
			DNS:        &DNSConfig{Servers: []string{"10.96.0.10"}},
		}}
		podFilePaths(sb, t.TempDir())
		if err := writePodFiles(sb); err != nil {
			t.Fatal(err)
		}
		if got := read(sb.HostsPath); got != "127.0.0.1 localhost node1\n" {
			t.Errorf("hosts = %q", got)
		}
		if got := read(sb.ResolvPath); got != "nameserver 10.96.0.10\n" {
			t.Errorf("resolv.conf = %q", got)
		}
	})
}
