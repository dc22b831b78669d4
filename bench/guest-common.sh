# SPDX-License-Identifier: GPL-2.0
# shellcheck shell=bash
# Helpers of the benchmarks' guest scripts (bench/guest.sh,
# bench/storm-guest.sh), which define fail().

sectors() {
	blockdev --getsz "$1"
}

zero() {	# zero DEV KIB: zero the first KIB KiB (a new store or pool)
	dd if=/dev/zero of="$1" bs=1K count="$2" oflag=direct status=none ||
		fail "zeroing $1"
}

dm_up() {	# dm_up NAME TABLE
	dmsetup create "$1" --table "$2" || fail "dmsetup create $1: $2"
}

until_sized() {	# until the block device reports a size (no sleeps)
	local i
	for ((i = 0; i < 1000; i++)); do
		[ "$(blockdev --getsize64 "$1" 2>/dev/null || echo 0)" -gt 0 ] && return 0
		read -r -t 0.01 <> <(:) || true
	done
	fail "$1 has no size"
}

# nbd_read_bytes NBD...: bytes the devices read since the guest booted
# (sysfs's stat, sectors read: bash's 64-bit arithmetic, as awk prints
# 2.56e+09 for a device that read more than 2 GiB).  SYSFS: for the tests.
nbd_read_bytes() {
	local dev sect total=0
	for dev in "$@"; do
		read -r _ _ sect _ <"${SYSFS:-/sys}/block/${dev#/dev/}/stat" ||
			fail "no statistics of $dev"
		total=$((total + sect * 512))
	done
	echo $total
}
