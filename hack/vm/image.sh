#!/usr/bin/env bash
# hack/vm/image.sh: build (or reuse) the guest of the VM test lane.
#
#   hack/vm/image.sh            prints the cache directory holding
#                                 vmlinuz, initrd.cpio.gz, rootfs.img, stamp
#
# The guest is Debian 12 with systemd as PID 1 on cgroup v2, booted by QEMU
# under TCG (hack/vm/run.sh). Its kernel is the package the metapackage
# linux-image-amd64 depends on today (resolved here, the ABI number moves with
# security updates), fetched with `apt-get download` and unpacked with
# `dpkg-deb -x`: nothing is installed into the host's /boot. The rootfs is a
# debootstrap minbase with what crisp and its tests need at run time, turned
# into an ext4 image with `mkfs.ext4 -d` (no loop mount). The guest boots it
# read-only with writes to a throw-away QEMU snapshot, so every run starts
# from the same image.
#
# The result is cached in $VM_CACHE (default <repo>/_output/vm) and rebuilt
# only when the stamp changes: kernel package version, package list, and the
# hash of this script and of the files baked into the image (init.sh,
# bootstrap.sh, vmtest.service). The suites themselves are not baked in:
# the guest runs them from the repository shared over 9p, so editing them
# needs no rebuild. VM_CACHE may be shared by several checkouts
# (e.g. /var/cache/crisp-vm): nothing in the image depends on the checkout.
#
# Environment: VM_CACHE, VM_REBUILD=1 (ignore the stamp), VM_DISK_SIZE (4G).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(pwd)
CACHE=${VM_CACHE:-$ROOT/_output/vm}
DISK_SIZE=${VM_DISK_SIZE:-4G}

log() { echo "vm-image: $*" >&2; }
die() { echo "vm-image: error: $*" >&2; exit 1; }

# Host tools: QEMU (no recommends: no GUI), kmod (depmod, modprobe -d),
# cpio, busybox (the initramfs), debootstrap, mkfs.ext4.
HOST_PACKAGES=(qemu-system-x86 kmod cpio busybox-static debootstrap e2fsprogs)
# What the guest needs: systemd and D-Bus (the systemd cgroup driver), the
# network tools crisp's CNI plugins and fences use, libseccomp (crisp is
# linked against it), and the tools the test scripts call (curl, jq, socat
# forwards the host's registry to the guest's 127.0.0.1:5000).
GUEST_PACKAGES=(systemd systemd-sysv dbus udev kmod iproute2 iptables
	containernetworking-plugins libseccomp2 ca-certificates procps util-linux
	curl jq socat psmisc less
	# critest's AppArmor specs load their profiles with `sudo apparmor_parser`
	# (the guest kernel has AppArmor, this host's has not).
	sudo apparmor)
# No libisal2: the guest's crisp inflates layers with Go's inflater, so CI
# runs that fallback end to end while this host runs ISA-L.

APT_OPTS=(-o DPkg::Lock::Timeout=600 -o Acquire::Retries=3 -o Dpkg::Use-Pty=0)

host_packages() {
	local missing=() pkg status
	declare -A have=()
	while read -r pkg status; do
		[[ $status == installed ]] && have[$pkg]=1
	done < <(dpkg-query -W -f='${Package} ${db:Status-Status}\n' "${HOST_PACKAGES[@]}" 2>/dev/null || true)
	for pkg in "${HOST_PACKAGES[@]}"; do
		[[ -n ${have[$pkg]:-} ]] || missing+=("$pkg")
	done
	((${#missing[@]})) || return 0
	log "installing host packages: ${missing[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get "${APT_OPTS[@]}" update -q >/dev/null
	DEBIAN_FRONTEND=noninteractive apt-get "${APT_OPTS[@]}" install -y -q --no-install-recommends "${missing[@]}" >/dev/null
}

# kernel_package: linux-image-<abi>-amd64, what linux-image-amd64 depends on.
kernel_package() {
	local p
	p=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
	if [[ -z $p ]]; then
		DEBIAN_FRONTEND=noninteractive apt-get "${APT_OPTS[@]}" update -q >/dev/null
		p=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
	fi
	[[ -n $p ]] || die "cannot resolve the kernel package of linux-image-amd64"
	echo "$p"
}

host_packages
KPKG=$(kernel_package)
KVER=${KPKG#linux-image-}
KDEB_VERSION=$(apt-cache policy "$KPKG" | awk '/Candidate:/ { print $2 }')
SCRIPTS_SUM=$(cat "$HERE/image.sh" "$HERE/init.sh" "$HERE/bootstrap.sh" "$HERE/vmtest.service" | sha256sum | cut -c1-16)
STAMP="kernel:$KPKG=$KDEB_VERSION packages:${GUEST_PACKAGES[*]} disk:$DISK_SIZE scripts:$SCRIPTS_SUM"

if [[ -z ${VM_REBUILD:-} && -f $CACHE/stamp && "$(<"$CACHE/stamp")" == "$STAMP" &&
	-f $CACHE/rootfs.img && -f $CACHE/vmlinuz && -f $CACHE/initrd.cpio.gz ]]; then
	log "cached guest in $CACHE ($KPKG)"
	echo "$CACHE"
	exit 0
fi

mkdir -p "$CACHE"
# One build per cache at a time: two checkouts may share VM_CACHE.
exec 9>"$CACHE/.build.lock"
flock 9
if [[ -z ${VM_REBUILD:-} && -f $CACHE/stamp && "$(<"$CACHE/stamp")" == "$STAMP" ]]; then
	echo "$CACHE"
	exit 0
fi
rm -f "$CACHE/stamp"
start=$SECONDS
BUILD=$(mktemp -d "$CACHE/build.XXXXXX")
trap 'rm -rf "$BUILD"' EXIT

# 1. Kernel and its modules, unpacked, never installed.
log "kernel: $KPKG $KDEB_VERSION"
(cd "$BUILD" && apt-get -o APT::Sandbox::User=root download "$KPKG" >/dev/null)
dpkg-deb -x "$BUILD"/"$KPKG"_*.deb "$BUILD/kernel"
depmod -b "$BUILD/kernel" "$KVER"

# 2. Initramfs: busybox and the modules to reach the root disk; init.sh
# mounts it and hands over to systemd.
log "initramfs"
IRD=$BUILD/initrd
mkdir -p "$IRD"/{bin,dev,proc,sys,newroot,lib/modules/"$KVER"}
cp /bin/busybox "$IRD/bin/busybox"
for a in $(/bin/busybox --list); do
	[[ $a == busybox ]] || ln -sf busybox "$IRD/bin/$a"
done
for m in virtio_pci virtio_blk crc32c_generic ext4; do
	modprobe -d "$BUILD/kernel" -S "$KVER" --show-depends "$m" 2>/dev/null | awk '/^insmod/ { print $2 }'
done | sort -u | while read -r f; do
	rel=${f#"$BUILD/kernel/lib/modules/$KVER/"}
	mkdir -p "$IRD/lib/modules/$KVER/$(dirname "$rel")"
	cp "$f" "$IRD/lib/modules/$KVER/$rel"
done
cp "$BUILD/kernel/lib/modules/$KVER"/modules.{order,builtin,builtin.modinfo} "$IRD/lib/modules/$KVER/"
depmod -b "$IRD" "$KVER"
install -m 0755 "$HERE/init.sh" "$IRD/init"
(cd "$IRD" && find . | cpio -o -H newc --quiet | gzip -1) >"$BUILD/initrd.cpio.gz"

# 3. Root filesystem.
log "rootfs: debootstrap bookworm minbase (about 2 minutes)"
RFS=$BUILD/rootfs
MIRROR=${VM_DEBIAN_MIRROR:-http://deb.debian.org/debian}
inc=$(
	IFS=,
	echo "${GUEST_PACKAGES[*]}"
)
debootstrap --variant=minbase --include="$inc" bookworm "$RFS" "$MIRROR" >"$BUILD/debootstrap.log" 2>&1 ||
	{ tail -30 "$BUILD/debootstrap.log" >&2; die "debootstrap failed"; }
rm -rf "$RFS"/var/cache/apt/archives/*.deb "$RFS"/var/lib/apt/lists/*
mkdir -p "$RFS/lib/modules"
cp -a "$BUILD/kernel/lib/modules/$KVER" "$RFS/lib/modules/"
echo crisp-vm >"$RFS/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 crisp-vm\n' >"$RFS/etc/hosts"
printf '/dev/vda / ext4 rw,relatime 0 1\n' >"$RFS/etc/fstab"
# The console belongs to the test: serial-getty's vhangup would cut its output.
ln -sf /dev/null "$RFS/etc/systemd/system/serial-getty@ttyS0.service"
ln -sf /dev/null "$RFS/etc/systemd/system/getty@tty1.service"
# Nothing waits for a network manager; bootstrap.sh configures QEMU's
# user-mode network itself.
ln -sf /dev/null "$RFS/etc/systemd/system/systemd-networkd-wait-online.service"
install -m 0755 "$HERE/bootstrap.sh" "$RFS/usr/local/sbin/crisp-vm-bootstrap"
install -m 0644 "$HERE/vmtest.service" "$RFS/etc/systemd/system/vmtest.service"
ln -sf /etc/systemd/system/vmtest.service "$RFS/etc/systemd/system/multi-user.target.wants/vmtest.service"
mkfs.ext4 -q -F -L root -d "$RFS" "$BUILD/rootfs.img" "$DISK_SIZE" >&2

cp "$BUILD/kernel/boot/vmlinuz-$KVER" "$BUILD/vmlinuz"
mv -f "$BUILD/vmlinuz" "$BUILD/initrd.cpio.gz" "$BUILD/rootfs.img" "$CACHE/"
echo "$STAMP" >"$CACHE/stamp"
log "built in $((SECONDS - start))s: $CACHE"
echo "$CACHE"
