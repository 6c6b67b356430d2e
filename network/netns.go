package network

import (
	"fmt"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// setLoopbackUp brings "lo" up inside the pod's network namespace.
//
// This is done here rather than by putting the loopback plugin into the
// configuration list because the list is usually not ours (Calico, Cilium,
// flannel... ship their own without it), and a pod whose localhost is down
// breaks in confusing ways. A netlink handle bound to the namespace does it
// without moving any goroutine's OS thread into the pod namespace (the
// netlink library switches a locked thread just long enough to open the
// socket and switches it back), so there is no risk of leaving a Go thread
// in the wrong namespace.
func setLoopbackUp(netnsPath string) error {
	h, err := handleAt(netnsPath)
	if err != nil {
		return err
	}
	defer h.Delete()
	lo, err := h.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("find lo in %s: %w", netnsPath, err)
	}
	if err := h.LinkSetUp(lo); err != nil {
		return fmt.Errorf("bring lo up in %s: %w", netnsPath, err)
	}
	return nil
}

// PodIPsFromNetNS returns the global unicast addresses of ifName (usually
// "eth0") inside the network namespace at netnsPath, IPv4 first. It helps a
// restarted runtime that lost the CNI result recover a pod's IPs.
func PodIPsFromNetNS(netnsPath, ifName string) ([]string, error) {
	h, err := handleAt(netnsPath)
	if err != nil {
		return nil, err
	}
	defer h.Delete()
	link, err := h.LinkByName(ifName)
	if err != nil {
		return nil, fmt.Errorf("find %s in %s: %w", ifName, netnsPath, err)
	}
	addrs, err := h.AddrList(link, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("list addresses of %s in %s: %w", ifName, netnsPath, err)
	}
	var v4, v6 []string
	for _, a := range addrs {
		if a.IP == nil || !a.IP.IsGlobalUnicast() {
			continue
		}
		if a.IP.To4() != nil {
			v4 = append(v4, a.IP.String())
		} else {
			v6 = append(v6, a.IP.String())
		}
	}
	return append(v4, v6...), nil
}

func handleAt(netnsPath string) (*netlink.Handle, error) {
	ns, err := netns.GetFromPath(netnsPath)
	if err != nil {
		return nil, fmt.Errorf("open network namespace %s: %w", netnsPath, err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return nil, fmt.Errorf("netlink handle in %s: %w", netnsPath, err)
	}
	return h, nil
}

// usableNetNS returns path if it names a live network namespace, else "".
// The CNI spec lets DEL run with an empty CNI_NETNS when the namespace is
// gone; passing a stale path instead makes plugins fail (a leftover mount
// point file after a reboot is a plain file, not nsfs), which would wedge
// StopPodSandbox forever.
func usableNetNS(path string) string {
	if path == "" {
		return ""
	}
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return ""
	}
	// Bind-mounted (pinned) namespaces and /proc/<pid>/ns/net are nsfs.
	if st.Type != unix.NSFS_MAGIC {
		return ""
	}
	return path
}
