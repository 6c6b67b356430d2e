package podinit

import "testing"

func TestSysctlPath(t *testing.T) {
	if got := sysctlPath("net.ipv4.ip_forward"); got != "/proc/sys/net/ipv4/ip_forward" {
		t.Error(got)
	}
	if got := sysctlPath("net/ipv4/conf/eth0.100/forwarding"); got != "/proc/sys/net/ipv4/conf/eth0.100/forwarding" {
		t.Error(got)
	}
}
