# SPDX-License-Identifier: GPL-2.0
# shellcheck shell=bash
#
# The dm-fvd test bed: Debian's distro kernel booted in QEMU (TCG) with a
# small busybox initramfs that mounts the host's root read-only over 9p and
# chroots into it, so the host's dmsetup, fio, mkfs and python3 run against
# a real 6.1 kernel with device-mapper.
#
# Everything downloaded or generated lives in $FVD_CACHE so a second run
# starts in seconds.  Sourced by tests/dmtest/run and scripts/demo.

FVD_TOP=${FVD_TOP:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
# CI may run without HOME; root's home is the sensible default there.
FVD_CACHE=${FVD_CACHE:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/dm-fvd}

# Modules the initramfs loads, in dependency order, to reach the 9p root.
TESTBED_BOOT_MODULES="
kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio.ko
kernel/drivers/virtio/virtio_pci_modern_dev.ko
kernel/drivers/virtio/virtio_pci_legacy_dev.ko
kernel/drivers/virtio/virtio_pci.ko
kernel/drivers/block/virtio_blk.ko
kernel/fs/netfs/netfs.ko
kernel/fs/fscache/fscache.ko
kernel/net/9p/9pnet.ko
kernel/net/9p/9pnet_virtio.ko
kernel/fs/9p/9p.ko
"

testbed_log() {
	printf '[testbed] %s\n' "$*" >&2
}

testbed_die() {
	printf '[testbed] error: %s\n' "$*" >&2
	exit 1
}

# The distro kernel release whose headers are installed (e.g. 6.1.0-56-amd64).
testbed_kernel_release() {
	local dir
	dir=$(find /usr/src -maxdepth 1 -name 'linux-headers-*-amd64' -printf '%f\n' 2>/dev/null |
		sort -V | tail -n 1)
	[ -n "$dir" ] || testbed_die "no linux-headers-*-amd64 in /usr/src (run: make deps)"
	echo "${dir#linux-headers-}"
}

# Unpack linux-image-<release> into $FVD_CACHE/kroot-<release> (no initrd build).
testbed_fetch_kernel() {
	local rel=$1 kroot=$FVD_CACHE/kroot-$1 pkgdir=$FVD_CACHE/pkgs deb
	if [ -f "$kroot/.complete" ]; then
		echo "$kroot"
		return
	fi
	testbed_log "fetching linux-image-$rel"
	mkdir -p "$pkgdir"
	rm -rf "$kroot" "$kroot.tmp"
	(cd "$pkgdir" && apt-get download "linux-image-$rel" >/dev/null 2>&1) ||
		testbed_die "apt-get download linux-image-$rel failed"
	deb=$(ls "$pkgdir"/linux-image-"$rel"_*.deb | tail -n 1)
	mkdir -p "$kroot.tmp"
	dpkg -x "$deb" "$kroot.tmp"
	depmod -b "$kroot.tmp" "$rel"
	rm -f "$deb"
	mv "$kroot.tmp" "$kroot"
	touch "$kroot/.complete"
	echo "$kroot"
}

# Build the initramfs: static busybox, the boot modules and our /init.
testbed_initramfs() {
	local rel=$1 kroot=$2 out=$FVD_CACHE/initramfs-$1.cpio.gz dir m
	local init=$FVD_TOP/tests/lib/guest-init
	if [ -f "$out" ] && [ "$out" -nt "$init" ]; then
		echo "$out"
		return
	fi
	testbed_log "building initramfs"
	dir=$(mktemp -d)
	mkdir -p "$dir"/{bin,dev,proc,sys,newroot,modules}
	cp /bin/busybox "$dir/bin/busybox"
	file -L /bin/busybox 2>/dev/null | grep -q 'statically linked' ||
		testbed_die "/bin/busybox is not static (install busybox-static)"
	for m in $TESTBED_BOOT_MODULES; do
		cp "$kroot/lib/modules/$rel/$m" "$dir/modules/" ||
			testbed_die "module $m missing from linux-image-$rel"
		basename "$m" >>"$dir/modules/order"
	done
	cp "$init" "$dir/init"
	chmod 755 "$dir/init"
	(cd "$dir" && find . | cpio -o -H newc --quiet | gzip -1) >"$out.tmp"
	mv "$out.tmp" "$out"
	rm -rf "$dir"
	echo "$out"
}

# Build dm-fvd.ko against the release's headers and the tools.
testbed_build() {
	local rel=$1
	make -s -C "$FVD_TOP" KDIR="/usr/src/linux-headers-$rel" module tools >&2 ||
		testbed_die "build failed"
}

# testbed_boot RUN_DIR COMMAND DISK...
# Boots the guest with the disks as /dev/vda, /dev/vdb, ... and runs COMMAND
# (a shell command line) in the chroot.  Inside the guest:
#   /run/fvd/src    this checkout (read-only)
#   /run/fvd/kroot  the distro kernel tree, for modprobe -d (read-only)
#   /run/fvd/out    RUN_DIR/out (read-write)
# Console output goes to RUN_DIR/console.log and to stderr.  Returns the exit
# status of COMMAND, or 125 when the guest did not report one.  With
# FVD_QEMU_PIDFILE set, QEMU writes its pid there (the power-cut test kills it).
testbed_boot() {
	local run=$1 cmd=$2 rel kroot initrd disk timeout
	shift 2
	rel=$(testbed_kernel_release)
	kroot=$(testbed_fetch_kernel "$rel")
	initrd=$(testbed_initramfs "$rel" "$kroot")
	mkdir -p "$run/out"
	rm -f "$run/out/exit-status"
	printf '%s\n' "$cmd" >"$run/out/command"
	printf '%s\n' "$rel" >"$run/out/kernel-release"

	local drives=()
	for disk in "$@"; do
		drives+=(-drive "file=$disk,if=virtio,format=raw,cache=none,aio=native")
	done
	# A hang guard: the whole dmtest suite takes some 20 minutes in one boot.
	timeout=${FVD_GUEST_TIMEOUT:-2700}
	testbed_log "booting $rel ($# disks, timeout ${timeout}s)"
	timeout --foreground -k 10 "$timeout" \
		qemu-system-x86_64 -m 2048 -smp 2 -nographic -no-reboot \
		-kernel "$kroot/boot/vmlinuz-$rel" -initrd "$initrd" \
		-nic none -append "console=ttyS0 quiet loglevel=1 panic=-1 softlockup_panic=0" \
		${FVD_QEMU_PIDFILE:+-pidfile "$FVD_QEMU_PIDFILE"} \
		"${drives[@]}" \
		-virtfs "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap" \
		-virtfs "local,path=$FVD_TOP,mount_tag=fvdsrc,security_model=none,readonly=on,multidevs=remap" \
		-virtfs "local,path=$kroot,mount_tag=fvdkroot,security_model=none,readonly=on,multidevs=remap" \
		-virtfs "local,path=$run/out,mount_tag=fvdout,security_model=none,multidevs=remap" \
		</dev/null 2>&1 | tr -d '\r' | tee "$run/console.log" >&2
	if [ -f "$run/out/exit-status" ]; then
		return "$(cat "$run/out/exit-status")"
	fi
	testbed_log "the guest reported no exit status (crash or timeout)"
	return 125
}
