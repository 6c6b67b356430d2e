#!/bin/sh
# Initramfs /init of the VM test lane (hack/vm/image.sh): load the modules of
# the root disk, mount it and hand over to systemd. Any failure prints
# VMTEST_EXIT so the host does not wait for its timeout.
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in virtio_pci virtio_blk crc32c_generic ext4; do modprobe "$m" 2>/dev/null; done
fail() {
	echo "vm-init: $*"
	echo "VMTEST_EXIT=98"
	echo o >/proc/sysrq-trigger
	sleep 10
}
i=0
while [ ! -b /dev/vda ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
mount -t ext4 -o rw /dev/vda /newroot || fail "cannot mount /dev/vda"
mount --move /dev /newroot/dev
umount /proc /sys
exec switch_root /newroot /lib/systemd/systemd
