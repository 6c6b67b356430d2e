package sandbox

import (
	"os"
	"path/filepath"
	"strings"

	"github.com/crisp-runtime/crisp/internal/atomicfile"
)

// Host files a pod falls back on; variables so tests can point elsewhere.
var (
	hostResolvConf = "/etc/resolv.conf"
	hostHosts      = "/etc/hosts"
)

// renderResolvConf formats the pod's DNS settings the way kubelet and
// containerd do: one search line, a nameserver line each, one options line.
func renderResolvConf(d *DNSConfig) []byte {
	var b strings.Builder
	if len(d.Searches) > 0 {
		b.WriteString("search " + strings.Join(d.Searches, " ") + "\n")
	}
	for _, s := range d.Servers {
		b.WriteString("nameserver " + s + "\n")
	}
	if len(d.Options) > 0 {
		b.WriteString("options " + strings.Join(d.Options, " ") + "\n")
	}
	return []byte(b.String())
}

// renderHosts is the pod's /etc/hosts when kubelet does not manage one (e.g.
// pods made with crictl): loopback names, then the pod's name on its IPs so
// that `hostname -i` style lookups work, like kubelet's managed file.
func renderHosts(hostname string, ips []string) []byte {
	var b strings.Builder
	b.WriteString("# Kubernetes-managed hosts file (crisp).\n")
	b.WriteString("127.0.0.1\tlocalhost\n")
	b.WriteString("::1\tlocalhost ip6-localhost ip6-loopback\n")
	b.WriteString("fe00::0\tip6-localnet\n")
	b.WriteString("fe00::0\tip6-mcastprefix\n")
	b.WriteString("fe00::1\tip6-allnodes\n")
	b.WriteString("fe00::2\tip6-allrouters\n")
	for _, ip := range ips {
		if hostname != "" {
			b.WriteString(ip + "\t" + hostname + "\n")
		}
	}
	return []byte(b.String())
}

// podFiles writes hostname, resolv.conf and hosts into sb.Dir. Containers
// bind-mount them, so they are replaced atomically, never truncated in place.
func writePodFiles(sb *Sandbox) error {
	if err := writePodFile(sb, sb.HostnamePath, []byte(sb.Hostname+"\n")); err != nil {
		return err
	}
	resolv := []byte(nil)
	if sb.Config.DNS.empty() {
		data, err := os.ReadFile(hostResolvConf)
		if err != nil && !os.IsNotExist(err) {
			return err
		}
		resolv = data
	} else {
		resolv = renderResolvConf(sb.Config.DNS)
	}
	if err := writePodFile(sb, sb.ResolvPath, resolv); err != nil {
		return err
	}
	return writeHosts(sb)
}

// writeHosts is separate because the pod's IPs are only known after CNI ADD.
func writeHosts(sb *Sandbox) error {
	var hosts []byte
	if sb.Config.Namespaces.Network == ModeNode {
		data, err := os.ReadFile(hostHosts)
		if err != nil && !os.IsNotExist(err) {
			return err
		}
		hosts = data
	} else {
		hosts = renderHosts(sb.Hostname, sb.Network.IPs)
	}
	return writePodFile(sb, sb.HostsPath, hosts)
}

// writePodFile writes one of the pod's files. In a pod with its own user
// namespace the file belongs to the pod's root, as it would to root in any
// other pod: owned by the node's root it would show up as nobody:nogroup.
//
// Not synced (atomicfile.Replace): the files are made from the pod's
// record, and only its containers read them, which a crash of the node
// ends along with the pod's namespaces: eight fsyncs fewer per pod.
func writePodFile(sb *Sandbox, path string, data []byte) error {
	if err := atomicfile.Replace(path, data, 0o644); err != nil {
		return err
	}
	if uid, gid, ok := sb.Config.Namespaces.RootIDs(); ok {
		return os.Lchown(path, int(uid), int(gid))
	}
	return nil
}

func podFilePaths(sb *Sandbox, dir string) {
	sb.Dir = dir
	sb.HostnamePath = filepath.Join(dir, "hostname")
	sb.ResolvPath = filepath.Join(dir, "resolv.conf")
	sb.HostsPath = filepath.Join(dir, "hosts")
}
