#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The boot benchmark over a network origin, run inside the test bed guest by
# bench/storm:
#   /dev/vda  the origin, pseudo-random data, served by nbd-server from a
#             network namespace over a shaped link (tests/lib/netorigin.sh)
#   /dev/vdb  the host's data disk (each peer's data, qcow2 file, full copy)
#   /dev/vdc  metadata disk of dm-thin and dm-clone
#   /run/fvd/out/boot.trace  the boot read trace (bench/boot-trace.py)
#
# For every link profile and peer: set the peer up over /dev/nbd0 afresh,
# replay the trace (fio, direct I/O, queue depth 1) as the first boot, take
# the peer down and up again on the same data and replay it again as the
# second boot.  Appends lines
#   boot PROFILE PEER BOOT METRIC VALUE
# (BOOT first or second; METRIC ms, p50_us, p99_us, origin_bytes) to
# /run/fvd/out/raw.
#
# Environment: STORM_PROFILES (wan datacenter), STORM_PEERS (all).

set -u
. /run/fvd/src/tests/lib/guest-lib.sh
. /run/fvd/src/tests/lib/netorigin.sh
. /run/fvd/src/bench/guest-common.sh
SRC=$FVD_SRC
OUT=$FVD_OUT
FVD_CREATE=$SRC/tools/fvd-create
ORIGIN=/dev/vda
DATA=/dev/vdb
META=/dev/vdc
NET=/dev/nbd0		# the origin over the link
QNBD=/dev/nbd8		# qcow2's disk, by qemu-nbd
TRACE=$OUT/boot.trace
DEV=storm

PROFILES=${STORM_PROFILES:-"wan datacenter"}
PEERS=${STORM_PEERS:-"local fvd fvd-nocor thin clone qcow2"}

log() {
	echo "[storm] $*" >&2
}

fail() {
	echo "[storm] FAIL: $*" >&2
	exit 1
}

record() {	# record PROFILE PEER BOOT METRIC VALUE
	echo "boot $*" >>"$OUT/raw"
	log "boot $*"
}

# peer_make PEER: the peer's data, made once before its first boot
peer_make() {
	case $1 in
	local)
		dd if=$ORIGIN of=$DATA bs=1M iflag=direct oflag=direct status=none ||
			fail "full copy" ;;
	fvd)
		$FVD_CREATE --force --origin $NET $DATA >/dev/null || fail "fvd-create" ;;
	fvd-nocor)
		$FVD_CREATE --force --origin $NET $DATA >/dev/null || fail "fvd-create" ;;
	thin)
		zero $META 4
		dm_up ${DEV}pool "0 $(sectors $DATA) thin-pool $META $DATA 128 0"
		dmsetup message ${DEV}pool 0 "create_thin 0" || fail "create_thin"
		dmsetup remove ${DEV}pool || fail "remove the pool" ;;
	clone)
		zero $META 4 ;;
	qcow2)
		qemu-img create -q -f qcow2 -o cluster_size=65536 -b $NET -F raw $DATA \
			"$(blockdev --getsize64 $ORIGIN)" || fail "qemu-img create" ;;
	*)
		fail "unknown peer $1" ;;
	esac
}

# peer_up PEER: activate it over what peer_make made; $DISK is its disk
peer_up() {
	local s
	s=$(sectors $ORIGIN)
	DISK=/dev/mapper/$DEV
	case $1 in
	local)
		dm_up $DEV "0 $s linear $DATA 0" ;;
	fvd)
		# the prefetch stays off: the boot alone is measured
		dm_up $DEV "0 $s fvd $DATA $DATA $NET 1 no_prefetch" ;;
	fvd-nocor)
		dm_up $DEV "0 $s fvd $DATA $DATA $NET 2 no_prefetch no_copy_on_read" ;;
	thin)
		dm_up ${DEV}pool "0 $(sectors $DATA) thin-pool $META $DATA 128 0"
		dm_up $DEV "0 $s thin /dev/mapper/${DEV}pool 0 $NET" ;;
	clone)
		# dm-clone copies in the background only (hydration off here, as
		# the prefetch is): a read of a region not hydrated goes to the source
		dm_up $DEV "0 $s clone $META $DATA $NET 128 1 no_hydration" ;;
	qcow2)
		qemu-nbd --connect=$QNBD --format=qcow2 --cache=none --aio=native $DATA ||
			fail "qemu-nbd"
		DISK=$QNBD
		until_sized $QNBD ;;
	esac
}

peer_down() {
	case $1 in
	qcow2)
		qemu-nbd --disconnect $QNBD >/dev/null || fail "qemu-nbd --disconnect" ;;
	thin)
		dmsetup remove $DEV && dmsetup remove ${DEV}pool || fail "remove thin" ;;
	*)
		dmsetup remove $DEV || fail "dmsetup remove $DEV" ;;
	esac
}

nbd_read_bytes() {
	awk '{ print $3 * 512 }' /sys/block/${NET#/dev/}/stat
}

# boot PROFILE PEER BOOT: replay the trace on $DISK, record what it took
boot() {
	local before after
	before=$(nbd_read_bytes)
	(cd /tmp && fio --name=boot --read_iolog=$TRACE --replay_redirect="$DISK" \
		--ioengine=psync --direct=1 --output-format=json --output=/tmp/boot.json) \
		>/dev/null || fail "fio boot on $DISK"
	after=$(nbd_read_bytes)
	# shellcheck disable=SC2046
	set -- "$@" $(python3 - <<'PY'
import json
job = json.load(open("/tmp/boot.json"))["jobs"][0]["read"]
p = job["clat_ns"]["percentile"]
print(job["runtime"], p["50.000000"] // 1000, p["99.000000"] // 1000)
PY
)
	record "$1" "$2" "$3" ms "$4"
	record "$1" "$2" "$3" p50_us "$5"
	record "$1" "$2" "$3" p99_us "$6"
	record "$1" "$2" "$3" origin_bytes $((after - before))
}

modprobe dm-mod && modprobe dm-thin-pool && modprobe dm-persistent-data ||
	fail "modprobe"
load_dm_fvd || fail "insmod dm-fvd.ko"
insmod "$OUT/dm-clone.ko" || fail "insmod dm-clone.ko"
[ -f $TRACE ] || fail "no trace at $TRACE"
: >"$OUT/raw"
echo "setup fio $(fio --version)" >>"$OUT/raw"
echo "setup qemu_nbd $(qemu-nbd --version | head -n1)" >>"$OUT/raw"
echo "setup kernel $(uname -r)" >>"$OUT/raw"

for profile in $PROFILES; do
	netorigin_up "$profile" $ORIGIN || fail "network origin ($profile)"
	netorigin_connect ${NET#/dev/} || fail "nbd-client"
	until_sized $NET
	for peer in $PEERS; do
		peer_make "$peer"
		peer_up "$peer"
		boot "$profile" "$peer" first
		peer_down "$peer"
		peer_up "$peer"
		boot "$profile" "$peer" second
		peer_down "$peer"
	done
	netorigin_down
done
log "done"
