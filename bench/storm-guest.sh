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
# Then, on the STORM_STORM_PROFILES links (wan), STORM_HOSTS hosts (8) boot
# at once, each in a network namespace of its own with its own connection,
# device and slices of the disks, twice (BOOT storm-first, storm-second):
# the longest boot, the wall time, the hosts' median p50 and largest p99,
# the origin bytes of all hosts.
#
# Environment: STORM_PROFILES (wan datacenter), STORM_PEERS (all),
# STORM_HOSTS, STORM_STORM_PROFILES, STORM_STORM_PEERS (fvd thin).

set -u
. /run/fvd/src/tests/lib/guest-lib.sh
. /run/fvd/src/tests/lib/netorigin.sh
. /run/fvd/src/bench/guest-common.sh
SRC=$FVD_SRC
OUT=$FVD_OUT
FVD_CREATE=$SRC/tools/fvd-create
FVDSETUP=$SRC/tools/fvdsetup
PROFILE=/tmp/boot.profile	# fvd-profile: what a first host's boot recorded
ORIGIN=/dev/vda
DATA=/dev/vdb
META=/dev/vdc
NET=/dev/nbd0		# the origin over the link
QNBD=/dev/nbd31	# qcow2's disk, by qemu-nbd (the storm's hosts use 1-30)
TRACE=$OUT/boot.trace
DEV=storm

PROFILES=${STORM_PROFILES:-"wan datacenter"}
PEERS=${STORM_PEERS:-"local fvd fvd-nocor fvd-profile thin clone qcow2"}
HOSTS=${STORM_HOSTS:-8}
STORM_ON=${STORM_STORM_PROFILES:-wan}	# the links the storm runs on
STORM_PEERS_ALL=${STORM_STORM_PEERS:-"fvd thin"}

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
	fvd-profile)
		# a first host boots and records its profile; this host's image,
		# made afresh, is the second host's
		$FVD_CREATE --force --origin $NET $DATA >/dev/null || fail "fvd-create" ;
		dm_up $DEV "0 $(sectors $ORIGIN) fvd $DATA $DATA $NET 3 no_prefetch profile_seconds 3600"
		replay /dev/mapper/$DEV
		rm -f $PROFILE
		$FVDSETUP profile $DEV save $PROFILE || fail "fvdsetup profile save"
		dmsetup remove $DEV || fail "dmsetup remove $DEV"
		echo "setup profile $(grep -vc '^[#o]' $PROFILE) runs recorded by a first boot of $((WALL_MS / 1000)) s" >>"$OUT/raw"
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
	fvd-profile)
		# the prefetch on, seeded: it copies the profile first, at once
		$FVDSETUP open $DATA $DEV --origin $NET \
			--profile-from $PROFILE >/dev/null || fail "fvdsetup open --profile-from" ;;
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

nbd_read_bytes() {	# nbd_read_bytes NBD...: bytes the NBD devices read
	local nbd total=0
	for nbd in "$@"; do
		total=$((total + $(awk '{ print $3 * 512 }' /sys/block/"${nbd#/dev/}"/stat)))
	done
	echo $total
}

# replay DISK...: the trace on every DISK at once, one fio job each in one
# fio, so that they start together (report in /tmp/boot.json); sets WALL_MS.
# The server's page cache is dropped first: every boot finds it cold.
replay() {
	local jobs=() i=0 disk t0
	for disk in "$@"; do
		i=$((i + 1))
		jobs+=(--name=boot$i --read_iolog=$TRACE --replay_redirect="$disk")
	done
	sync && echo 3 >/proc/sys/vm/drop_caches || fail "drop caches"
	t0=$(date +%s%N)
	(cd /tmp && fio --ioengine=psync --direct=1 --output-format=json \
		--output=/tmp/boot.json "${jobs[@]}") >/dev/null || fail "fio boot"
	WALL_MS=$((($(date +%s%N) - t0) / 1000000))
}

# fio_figures: of /tmp/boot.json, the longest runtime (ms), the median of
# the jobs' p50 and the largest p99 (us)
fio_figures() {
	python3 - <<'PY'
import json, statistics
jobs = [j["read"] for j in json.load(open("/tmp/boot.json"))["jobs"]]
p = [j["clat_ns"]["percentile"] for j in jobs]
print(max(j["runtime"] for j in jobs),
      int(statistics.median(x["50.000000"] for x in p)) // 1000,
      max(x["99.000000"] for x in p) // 1000)
PY
}

# boot PROFILE PEER BOOT: activate PEER, replay the trace on it, record what
# the activation (dm-fvd reads the origin's fingerprint) and the boot took
boot() {
	local before mid after
	before=$(nbd_read_bytes $NET)
	peer_up "$2"
	mid=$(nbd_read_bytes $NET)
	replay "$DISK"
	after=$(nbd_read_bytes $NET)
	# shellcheck disable=SC2046
	set -- "$@" $(fio_figures)
	[ $# -eq 6 ] || fail "no figures from fio"
	record "$1" "$2" "$3" ms "$4"
	record "$1" "$2" "$3" p50_us "$5"
	record "$1" "$2" "$3" p99_us "$6"
	record "$1" "$2" "$3" origin_bytes $((after - mid))
	record "$1" "$2" "$3" activation_origin_bytes $((mid - before))
	peer_down "$2"
}

# ---- the storm: STORM_HOSTS hosts at once, each in a namespace of its own
# with its own connection to the server, its own slice of the data and
# metadata disks and its own device

host_vars() {	# host_vars I: the globals the peer functions use, for host I
	NET=/dev/nbd$1
	DATA=/dev/mapper/stormdata$1
	META=/dev/mapper/stormmeta$1
	DEV=storm$1
}

storm_up() {	# storm_up N: the hosts, their connections and slices
	local n=$1 i dslice mslice
	dslice=$(($(sectors /dev/vdb) / n / 2048 * 2048))
	mslice=$(($(sectors /dev/vdc) / n / 2048 * 2048))
	for ((i = 1; i <= n; i++)); do
		netorigin_host_add "$i" || fail "host $i"
		netorigin_host_connect "$i" nbd"$i" || fail "nbd-client on host $i"
		until_sized /dev/nbd"$i"
		dm_up stormdata"$i" "0 $dslice linear /dev/vdb $(((i - 1) * dslice))"
		dm_up stormmeta"$i" "0 $mslice linear /dev/vdc $(((i - 1) * mslice))"
	done
}

storm_down() {	# storm_down N
	local i
	for ((i = 1; i <= $1; i++)); do
		dmsetup remove stormdata"$i" && dmsetup remove stormmeta"$i" ||
			fail "remove the slices of host $i"
	done
}

# storm PROFILE PEER BOOT N: every host activates PEER and boots at once
storm() {
	local profile=$1 peer=$2 boot=$3 n=$4 i disks=() nbds=() before mid after
	for ((i = 1; i <= n; i++)); do
		nbds+=(/dev/nbd"$i")
	done
	before=$(nbd_read_bytes "${nbds[@]}")
	for ((i = 1; i <= n; i++)); do
		host_vars "$i"
		[ "$boot" = first ] && peer_make "$peer"
		peer_up "$peer"
		disks+=("$DISK")
	done
	mid=$(nbd_read_bytes "${nbds[@]}")
	replay "${disks[@]}"
	after=$(nbd_read_bytes "${nbds[@]}")
	# shellcheck disable=SC2046
	set -- "$@" $(fio_figures)
	[ $# -eq 7 ] || fail "no figures from fio"
	record "$profile" "$peer" "storm-$boot" hosts "$n"
	record "$profile" "$peer" "storm-$boot" ms "$5"
	record "$profile" "$peer" "storm-$boot" wall_ms "$WALL_MS"
	record "$profile" "$peer" "storm-$boot" p50_us "$6"
	record "$profile" "$peer" "storm-$boot" p99_us "$7"
	record "$profile" "$peer" "storm-$boot" origin_bytes $((after - mid))
	record "$profile" "$peer" "storm-$boot" activation_origin_bytes $((mid - before))
	for ((i = 1; i <= n; i++)); do
		host_vars "$i"
		peer_down "$peer"
	done
}

modprobe dm-mod && modprobe dm-thin-pool && modprobe dm-persistent-data ||
	fail "modprobe"
load_dm_fvd || fail "insmod dm-fvd.ko"
insmod "$OUT/dm-clone.ko" || fail "insmod dm-clone.ko"
[ -f $TRACE ] || fail "no trace at $TRACE"
# qemu-nbd --connect keeps a socket in /var/lock (/run/lock, a fresh tmpfs)
mkdir -p /run/lock
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
		boot "$profile" "$peer" first
		boot "$profile" "$peer" second
	done
	if [[ " $STORM_ON " == *" $profile "* ]] && [ "$HOSTS" -gt 1 ]; then
		storm_up "$HOSTS"
		for peer in $STORM_PEERS_ALL; do
			storm "$profile" "$peer" first "$HOSTS"
			storm "$profile" "$peer" second "$HOSTS"
		done
		storm_down "$HOSTS"
		NET=/dev/nbd0 DATA=/dev/vdb META=/dev/vdc DEV=storm
	fi
	netorigin_down
done
log "done"
