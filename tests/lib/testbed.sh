# SPDX-License-Identifier: GPL-2.0
# shellcheck shell=bash
#
# The dm-fvd test bed: Debian's distro kernel booted in QEMU (TCG) with a
# small busybox initramfs that mounts the host's root read-only over 9p and
# chroots into it, so the host's dmsetup, fio, mkfs and python3 run against
# a real Debian kernel with device-mapper.
#
# Everything downloaded or generated lives in $FVD_CACHE so a second run
# starts in seconds.  Sourced by tests/dmtest/run and scripts/demo.

FVD_TOP=${FVD_TOP:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
# CI may run without HOME; root's home is the sensible default there.
FVD_CACHE=${FVD_CACHE:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/dm-fvd}

# The kernels the test bed boots, named by the Debian release that ships
# them: bookworm (6.1, built on this host), trixie (6.12) and sid (the
# newest), each built in an mmdebstrap root of its own release.  The
# default is trixie, Debian's stable release (see the README).
TESTBED_KERNELS="bookworm trixie sid"
FVD_KERNEL=${FVD_KERNEL:-trixie}

testbed_log() {
	printf '[testbed] %s\n' "$*" >&2
}

testbed_die() {
	printf '[testbed] error: %s\n' "$*" >&2
	exit 1
}

testbed_check_kernel_name() {
	case " $TESTBED_KERNELS " in
	*" $1 "*) ;;
	*) testbed_die "unknown kernel '$1' (one of: $TESTBED_KERNELS)" ;;
	esac
}

# testbed_mmdebstrap NAME: the mmdebstrap root of Debian release NAME, made
# once and kept in $FVD_CACHE/root-NAME: that release's compiler, kbuild and
# kernel headers; its apt reaches its own release, the host's apt sources
# stay untouched.
testbed_mmdebstrap() {
	local name=$1 root=$FVD_CACHE/root-$1
	if [ -f "$root/.complete" ]; then
		echo "$root"
		return
	fi
	command -v mmdebstrap >/dev/null || testbed_die "mmdebstrap missing (run: make deps)"
	testbed_log "making the $name build root (a few minutes, once)"
	rm -rf "$root" "$root.tmp"
	mkdir -p "$FVD_CACHE"
	# A stable release's kernel is the one its security suite carries.
	# sid's Release file may have expired between two archive pushes.
	local mirrors=("deb http://deb.debian.org/debian $name main") aptopts=()
	if [ "$name" = sid ]; then
		aptopts=(--aptopt='Acquire::Check-Valid-Until "false"')
	else
		mirrors+=("deb http://deb.debian.org/debian $name-updates main"
			"deb http://deb.debian.org/debian-security $name-security main")
	fi
	mmdebstrap --quiet --variant=buildd \
		--include=linux-headers-amd64,sparse,kmod,xz-utils "${aptopts[@]}" \
		"$name" "$root.tmp" "${mirrors[@]}" >&2 ||
		testbed_die "mmdebstrap $name failed"
	mv "$root.tmp" "$root"
	touch "$root/.complete"
	echo "$root"
}

# testbed_root NAME: the build root of kernel NAME: "/" for bookworm (this
# host), the release's mmdebstrap root for trixie and sid.
testbed_root() {
	testbed_check_kernel_name "$1"
	if [ "$1" = bookworm ]; then
		echo /
	else
		testbed_mmdebstrap "$1"
	fi
}

# testbed_in_root ROOT COMMAND...: run COMMAND in build root ROOT, with /proc
# (objtool needs it) and this checkout at /run/fvd/src, in a mount namespace
# of its own so that nothing stays mounted.
testbed_in_root() {
	local root=$1 proxies="" v
	shift
	if [ "$root" = / ]; then
		"$@"
		return
	fi
	# apt in the root goes through the same proxy as the host's, if any.
	for v in http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY; do
		[ -z "${!v:-}" ] || proxies="$proxies $v=${!v}"
	done
	unshare --mount --propagation private -- /bin/sh -ec '
		root=$1; top=$2; proxies=$3; shift 3
		mount -t proc proc "$root/proc"
		mkdir -p "$root/run/fvd/src"
		mount --bind "$top" "$root/run/fvd/src"
		# shellcheck disable=SC2086 # one word per variable
		exec chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
			HOME=/root LANG=C.UTF-8 $proxies "$@"' sh "$root" "$FVD_TOP" "$proxies" "$@"
}

# The distro kernel release of kernel NAME (default $FVD_KERNEL): the newest
# linux-headers-*-amd64 in its build root (e.g. 6.1.0-56-amd64).
testbed_kernel_release() {
	local name=${1:-$FVD_KERNEL} root dir
	root=$(testbed_root "$name") || return 1
	dir=$(find "$root/usr/src" -maxdepth 1 -name 'linux-headers-*-amd64' -printf '%f\n' 2>/dev/null |
		sort -V | tail -n 1)
	[ -n "$dir" ] || testbed_die "no linux-headers-*-amd64 in $root/usr/src (run: make deps)"
	echo "${dir#linux-headers-}"
}

# testbed_fetch_kernel REL: unpack the kernel of release REL (of kernel
# $FVD_KERNEL) into $FVD_CACHE/kroot-REL, laid out as /lib/modules/REL and
# /boot/vmlinuz-REL whichever way the release packs it: bookworm and
# trixie ship one linux-image package, sid a linux-image metapackage over
# linux-binary, linux-modules and linux-base (modules under /usr/lib).
testbed_fetch_kernel() {
	local rel=$1 kroot=$FVD_CACHE/kroot-$1 root pkgdir deb pkgs
	if [ -f "$kroot/.complete" ]; then
		echo "$kroot"
		return
	fi
	testbed_log "fetching the kernel packages of $rel"
	root=${TESTBED_APT_ROOT:-$(testbed_root "$FVD_KERNEL")} || return 1
	pkgdir=$root/var/tmp/fvd-pkgs
	rm -rf "$kroot" "$kroot.tmp" "$pkgdir"
	mkdir -p "$pkgdir" "$kroot.tmp"
	# The image package, and what it depends on that is of this release.
	pkgs=$(testbed_in_root "$root" /bin/sh -c '
		[ -n "$(ls /var/lib/apt/lists/*Packages* 2>/dev/null)" ] || apt-get update -qq
		cd /var/tmp/fvd-pkgs && apt-get download -qq -o APT::Sandbox::User=root "linux-image-$1" &&
		apt-cache depends "linux-image-$1" | sed -n "s/^ *Depends: \(linux-[a-z]*-$1\)\$/\1/p"
	' sh "$rel") || {
		[ "$root" = / ] || testbed_log "the archive may have moved on: remove $root to make it anew"
		testbed_die "apt-get download linux-image-$rel failed"
	}
	if [ -n "$pkgs" ]; then
		# shellcheck disable=SC2086 # one word per package
		testbed_in_root "$root" /bin/sh -c \
			'cd /var/tmp/fvd-pkgs && apt-get download -qq -o APT::Sandbox::User=root "$@"' \
			sh $pkgs || testbed_die "apt-get download $pkgs failed"
	fi
	for deb in "$pkgdir"/*.deb; do
		dpkg -x "$deb" "$kroot.tmp" || testbed_die "dpkg -x $deb failed"
	done
	rm -rf "$pkgdir"
	if [ ! -d "$kroot.tmp/lib/modules/$rel" ] && [ -d "$kroot.tmp/usr/lib/modules/$rel" ]; then
		rm -rf "$kroot.tmp/lib"
		ln -s usr/lib "$kroot.tmp/lib"
	fi
	mkdir -p "$kroot.tmp/boot"
	[ -f "$kroot.tmp/boot/vmlinuz-$rel" ] ||
		ln -s "../lib/modules/$rel/vmlinuz" "$kroot.tmp/boot/vmlinuz-$rel"
	[ -f "$kroot.tmp/boot/vmlinuz-$rel" ] || testbed_die "no vmlinuz in the packages of $rel"
	depmod -b "$kroot.tmp" "$rel" || testbed_die "depmod for $rel failed"
	mv "$kroot.tmp" "$kroot"
	touch "$kroot/.complete"
	echo "$kroot"
}

# The modules the initramfs loads to reach the 9p root, in dependency
# order: those of virtio-pci, virtio-blk and 9p over virtio that the kernel
# does not have built in (6.12 builds virtio in; fscache is part of netfs
# since 6.8), decompressed for busybox's insmod.
testbed_boot_modules() {
	local rel=$1 kroot=$2 dir=$3 m
	local mods
	mods=$(modprobe -a -d "$kroot" -S "$rel" --show-depends virtio_pci virtio_blk 9pnet_virtio 9p |
		awk '$1 == "insmod" && !seen[$2]++ {print $2}') ||
		testbed_die "modprobe --show-depends failed for $rel"
	for m in $mods; do
		case $m in
		*.ko.xz) xz -dc "$m" >"$dir/modules/$(basename "$m" .xz)" ;;
		*.ko.zst) zstd -qdc "$m" >"$dir/modules/$(basename "$m" .zst)" ;;
		*) cp "$m" "$dir/modules/" ;;
		esac || testbed_die "cannot copy $m"
		basename "${m%.xz}" | sed 's/\.zst$//' >>"$dir/modules/order"
	done
	grep -q '^9p\.ko$' "$dir/modules/order" || testbed_die "no 9p module in linux-image-$rel"
}

# Build the initramfs: static busybox, the boot modules and our /init.
testbed_initramfs() {
	local rel=$1 kroot=$2 out=$FVD_CACHE/initramfs-$1.cpio.gz dir
	local init=$FVD_TOP/tests/lib/guest-init
	if [ -f "$out" ] && [ "$out" -nt "$init" ] && [ "$out" -nt "${BASH_SOURCE[0]}" ]; then
		echo "$out"
		return
	fi
	testbed_log "building initramfs"
	dir=$(mktemp -d)
	mkdir -p "$dir"/{bin,dev,proc,sys,newroot,modules}
	cp /bin/busybox "$dir/bin/busybox"
	file -L /bin/busybox 2>/dev/null | grep -q 'statically linked' ||
		testbed_die "/bin/busybox is not static (install busybox-static)"
	: >"$dir/modules/order"
	testbed_boot_modules "$rel" "$kroot" "$dir"
	cp "$init" "$dir/init"
	chmod 755 "$dir/init"
	(cd "$dir" && find . | cpio -o -H newc --quiet | gzip -1) >"$out.tmp"
	mv "$out.tmp" "$out"
	rm -rf "$dir"
	echo "$out"
}

# testbed_module_dir [NAME]: where dm-fvd.ko for kernel NAME is built: the
# checkout's dm-fvd/ for bookworm (what "make" builds), a copy of the
# sources in the build root for the others, one per checkout (a clone
# beside this one shares the cache, not its sources).
testbed_module_dir() {
	local name=${1:-$FVD_KERNEL} root
	if [ "$name" = bookworm ]; then
		echo "$FVD_TOP/dm-fvd"
	else
		root=$(testbed_root "$name") || return 1
		echo "$root/var/tmp/fvd-build-$(printf '%s' "$FVD_TOP" | md5sum | cut -c1-12)/dm-fvd"
	fi
}

# testbed_make_module NAME DIR [MAKE ARGS...]: make the module whose
# sources (a copy of dm-fvd/) are in DIR for kernel NAME, with that
# release's compiler and headers.  DIR is a host path; for trixie and sid
# it must be inside the build root.
testbed_make_module() {
	local name=$1 dir=$2 root rel
	shift 2
	root=$(testbed_root "$name") || return 1
	rel=$(testbed_kernel_release "$name") || return 1
	testbed_in_root "$root" make -C "/usr/src/linux-headers-$rel" \
		M="${dir#"${root%/}"}" CONFIG_DM_FVD=m "$@" modules
}

# testbed_copy_sources DIR: dm-fvd's sources into DIR; only what changed is
# copied, so that make sees the old timestamps.  Not the *.mod.c of a build
# in the checkout: it holds the symbol versions of another kernel.
testbed_copy_sources() {
	local dir=$1 f
	mkdir -p "$dir"
	for f in "$FVD_TOP"/dm-fvd/*.[ch] "$FVD_TOP"/dm-fvd/Kbuild; do
		case $f in *.mod.c) continue ;; esac
		cmp -s "$f" "$dir/${f##*/}" || cp "$f" "$dir/"
	done
}

# testbed_build_module NAME [MAKE ARGS...]: build dm-fvd.ko for kernel NAME
# in testbed_module_dir.
testbed_build_module() {
	local name=$1 rel dir
	shift
	if [ "$name" = bookworm ]; then
		rel=$(testbed_kernel_release "$name") || return 1
		make -s -C "$FVD_TOP" KDIR="/usr/src/linux-headers-$rel" module "$@"
		return
	fi
	dir=$(testbed_module_dir "$name") || return 1
	testbed_copy_sources "$dir"
	testbed_make_module "$name" "$dir" -s "$@"
}

# Build dm-fvd.ko for $FVD_KERNEL and the tools (these run on the host's
# userspace, which the guest shares).
testbed_build() {
	testbed_build_module "$FVD_KERNEL" >&2 || testbed_die "module build for $FVD_KERNEL failed"
	make -s -C "$FVD_TOP" tools >&2 || testbed_die "tools build failed"
}

# testbed_boot RUN_DIR COMMAND DISK...
# Boots the guest with the disks as /dev/vda, /dev/vdb, ... and runs COMMAND
# (a shell command line) in the chroot.  Inside the guest:
#   /run/fvd/src    this checkout (read-only)
#   /run/fvd/kroot  the distro kernel tree, for modprobe -d (read-only)
#   /run/fvd/module dm-fvd.ko built for this kernel (read-only)
#   /run/fvd/out    RUN_DIR/out (read-write)
# Console output goes to RUN_DIR/console.log and to stderr.  Returns the exit
# status of COMMAND, or 125 when the guest did not report one.  With
# FVD_QEMU_PIDFILE set, QEMU writes its pid there (the power-cut test kills it).
# With TESTBED_SHARED_DIR set, that directory is /run/fvd/shared in the guest
# (read-write), for guests that run at the same time to share a queue.
# TESTBED_SMP: the guest's vCPUs (default 2).
testbed_boot() {
	local run=$1 cmd=$2 rel kroot initrd timeout module try qemu_rc
	shift 2
	# TESTBED_RELEASE, TESTBED_KROOT, TESTBED_MODULE_DIR: another kernel
	# tree than $FVD_KERNEL's (tests/package/run boots what DKMS installed).
	rel=${TESTBED_RELEASE:-$(testbed_kernel_release)} || return 125
	kroot=${TESTBED_KROOT:-$(testbed_fetch_kernel "$rel")} || return 125
	module=${TESTBED_MODULE_DIR:-$(testbed_module_dir)} || return 125
	initrd=$(testbed_initramfs "$rel" "$kroot") || return 125
	mkdir -p "$run/out"
	printf '%s\n' "$cmd" >"$run/out/command"
	printf '%s\n' "$rel" >"$run/out/kernel-release"

	# A hang guard: the whole dmtest suite takes some 20 minutes in one boot.
	timeout=${FVD_GUEST_TIMEOUT:-2700}
	# Under TCG the distro kernel now and then oopses while it boots, before
	# any of our code is loaded (seen: an int3 left by a static key's text
	# patch, executed on the other vCPU at the late initcalls, on 2 boots
	# of 6 on one machine).  Such a boot ran nothing: boot again, at most
	# twice.  A crash once the command has started is the command's.
	# A boot that timed out (124, or 137 once killed) is not tried again.
	for try in 1 2 3; do
		rm -f "$run/out/exit-status" "$run/out/started"
		testbed_log "booting $rel ($# disks, timeout ${timeout}s)"
		qemu_rc=0
		testbed_qemu "$run" "$rel" "$kroot" "$initrd" "$module" "$timeout" "$@" || qemu_rc=$?
		if [ -f "$run/out/started" ] || [ "$qemu_rc" -eq 124 ] || [ "$qemu_rc" -eq 137 ]; then
			break
		fi
		testbed_log "the guest died while booting (QEMU exit $qemu_rc), before the command ran; its console ended with:"
		tail -n 12 "$run/console.log" | sed 's/^/    /' >&2
		if [ "$try" -lt 3 ]; then
			testbed_log "booting it again (try $((try + 1)) of 3)"
		fi
	done
	if [ -f "$run/out/exit-status" ]; then
		return "$(cat "$run/out/exit-status")"
	fi
	# Say why where the summary is read, not only in the console stream.
	testbed_log "the guest reported no exit status (crash or timeout); its console ended with:"
	tail -n 40 "$run/console.log" | sed 's/^/    /' >&2
	return 125
}

# testbed_qemu RUN_DIR RELEASE KROOT INITRD MODULE_DIR TIMEOUT DISK...: one
# boot of the guest; returns QEMU's exit status (124 when it timed out).
testbed_qemu() {
	local run=$1 rel=$2 kroot=$3 initrd=$4 module=$5 timeout=$6 disk
	shift 6
	# The guest sees a volatile write cache either way (flushes reach the
	# host file as fdatasync).  Tests use the host's page cache: with
	# cache=none,aio=native QEMU 7.2 failed some 1 MiB writes of 254
	# segments to the guest with no failing host call behind them.  The
	# benchmark sets TESTBED_DISK_CACHE to keep the page cache out.
	local drives=() cache=${TESTBED_DISK_CACHE:-cache=writeback}
	for disk in "$@"; do
		drives+=(-drive "file=$disk,if=virtio,format=raw,$cache")
	done
	# a boot again must not leave the last QEMU's pid to be killed
	[ -z "${FVD_QEMU_PIDFILE:-}" ] || rm -f "$FVD_QEMU_PIDFILE"
	timeout --foreground -k 10 "$timeout" \
		qemu-system-x86_64 -m 2048 -smp "${TESTBED_SMP:-2}" -nographic -no-reboot \
		-kernel "$kroot/boot/vmlinuz-$rel" -initrd "$initrd" \
		-nic none -append "console=ttyS0 quiet loglevel=1 panic=-1 softlockup_panic=0" \
		${FVD_QEMU_PIDFILE:+-pidfile "$FVD_QEMU_PIDFILE"} \
		"${drives[@]}" \
		-virtfs "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap" \
		-virtfs "local,path=$FVD_TOP,mount_tag=fvdsrc,security_model=none,readonly=on,multidevs=remap" \
		-virtfs "local,path=$kroot,mount_tag=fvdkroot,security_model=none,readonly=on,multidevs=remap" \
		-virtfs "local,path=$module,mount_tag=fvdmodule,security_model=none,readonly=on,multidevs=remap" \
		-virtfs "local,path=$run/out,mount_tag=fvdout,security_model=none,multidevs=remap" \
		${TESTBED_SHARED_DIR:+-virtfs "local,path=$TESTBED_SHARED_DIR,mount_tag=fvdshared,security_model=none,multidevs=remap"} \
		</dev/null 2>&1 | tr -d '\r' | tee "$run/console.log" >&2
	return "${PIPESTATUS[0]}"
}
