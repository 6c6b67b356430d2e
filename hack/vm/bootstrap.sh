#!/bin/bash
# Baked into the guest image (hack/vm/image.sh), run by vmtest.service once
# systemd is up: mount the host's checkout over 9p at the same path as on
# the host (kernel command line crispvm.root=), Go's tree if the host shared
# it, run the checkout's hack/vm/guest.sh and report its exit status on the
# console as VMTEST_EXIT=N, then power off. Kept minimal on purpose: the
# suites live in the checkout, so changing them needs no image rebuild.
exec </dev/null >/dev/ttyS0 2>&1
root= out=
for a in $(</proc/cmdline); do
	case $a in
	crispvm.root=*) root=${a#crispvm.root=} ;;
	crispvm.out=*) out=${a#crispvm.out=} ;;
	esac
done
finish() {
	echo "VMTEST_EXIT=$1"
	sync
	systemctl poweroff --no-block
	exit 0
}
echo "vm: systemd: $(timeout 120 systemctl is-system-running --wait) at uptime $(cut -d' ' -f1 /proc/uptime)s"
modprobe -a 9p 9pnet_virtio
opts=trans=virtio,version=9p2000.L,msize=512000
mkdir -p "$root" && mount -t 9p -o "$opts" repo "$root" || { echo "vm: cannot mount the checkout at $root"; finish 97; }
# The host shares Go's tree when it has one (tag "go"): scripts ask `go env`.
mkdir -p /usr/local/go && mount -t 9p -o "$opts,ro" go /usr/local/go 2>/dev/null
[[ -x $root/hack/vm/guest.sh ]] || { echo "vm: $root/hack/vm/guest.sh missing"; finish 97; }
cd "$root" && CRISP_VM_OUT=$out "$root/hack/vm/guest.sh"
finish $?
