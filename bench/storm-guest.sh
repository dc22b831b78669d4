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
# second boot; STORM_REPEATS times, each from a fresh image.  The
# STORM_ISCSI_PEERS boot again with the origin over iSCSI (as profile
# PROFILE-iscsi).  Appends lines
#   boot PROFILE PEER BOOT METRIC VALUE
# (BOOT first or second; METRIC ms, p50_us, p99_us, origin_bytes) to
# /run/fvd/out/raw.
#
# On the STORM_PREFETCH_PROFILES links (wan datacenter), one host's prefetch
# against fio and dd through the link (prefetch PROFILE METRIC VALUE lines).
#
# Then, on the STORM_STORM_PROFILES links (wan datacenter), STORM_HOSTS hosts (8) boot
# at once, each in a network namespace of its own with its own connection,
# device and slices of the disks, twice (BOOT storm-first, storm-second):
# the longest boot, the wall time, the hosts' median p50 and largest p99,
# the origin bytes of all hosts.  The storm and the settle run once.
#
# On the STORM_SETTLE_PROFILES links (datacenter), dm-fvd's storm images
# then settle: every host's prefetch at once, a light load on each host,
# until all are all-local (settle, settle_host and settle_sample lines).
#
# Environment: STORM_PROFILES (wan datacenter), STORM_PEERS (local fvd
# fvd-profile fvd-stored thin clone qcow2; also fvd-16k fvd-nocor; empty
# for none),
# STORM_HOSTS, STORM_REPEATS (1), STORM_STORM_PROFILES (wan datacenter),
# STORM_STORM_PEERS (fvd on the WAN, fvd thin on other links),
# STORM_SETTLE_PROFILES, STORM_LOAD_IOPS (20 per host), STORM_ISCSI_PEERS (fvd; empty for none),
# STORM_PREFETCH_PROFILES (wan datacenter; empty for none),
# STORM_PREFETCH_MIB (64 on the WAN, the whole origin on other links).

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
# fvd-16k and fvd-nocor (dm-fvd at 16 KiB blocks, without copy-on-read) are
# left out by default: the whole run is to fit in 40 minutes
PEERS=${STORM_PEERS-"local fvd fvd-profile fvd-stored thin clone qcow2"}
HOSTS=${STORM_HOSTS:-8}
REPEATS=${STORM_REPEATS:-1}	# of each peer's two boots, each from a fresh image
STORM_ON=${STORM_STORM_PROFILES:-"wan datacenter"}	# the links the storm runs on
# dm-thin's storm reads the whole boot set from the origin twice: on the WAN
# some 7 minutes, which the 40 minutes of the default run cannot hold; its
# origin bytes do not depend on the link, so by default it storms on the
# datacenter link only
storm_peers() {	# storm_peers PROFILE
	if [ -n "${STORM_STORM_PEERS:-}" ]; then
		echo "$STORM_STORM_PEERS"
	elif [[ $1 == wan* ]]; then
		echo fvd
	else
		echo fvd thin
	fi
}
SETTLE_ON=${STORM_SETTLE_PROFILES:-datacenter}	# the links the settle runs on
ISCSI_PEERS=${STORM_ISCSI_PEERS-fvd}	# the peers booted over iSCSI too
PREFETCH_ON=${STORM_PREFETCH_PROFILES-"wan datacenter"}	# the prefetch against the link

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

# record_profile: a first host boots and records its profile in $PROFILE;
# the image it booted is made afresh by the caller for the second host
record_profile() {
	$FVD_CREATE --force --origin $NET $DATA >/dev/null || fail "fvd-create"
	dm_up $DEV "0 $(sectors $ORIGIN) fvd $DATA $DATA $NET 3 no_prefetch profile_seconds 3600"
	replay /dev/mapper/$DEV
	rm -f $PROFILE
	$FVDSETUP profile $DEV save $PROFILE || fail "fvdsetup profile save"
	dmsetup remove $DEV || fail "dmsetup remove $DEV"
	echo "setup profile $(grep -vc '^[#o]' $PROFILE) runs recorded by a first boot of $((WALL_MS / 1000)) s" >>"$OUT/raw"
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
	fvd-16k)
		$FVD_CREATE --force --origin $NET --block-size 16K $DATA >/dev/null ||
			fail "fvd-create --block-size 16K" ;;
	fvd-profile)
		record_profile
		$FVD_CREATE --force --origin $NET $DATA >/dev/null || fail "fvd-create" ;;
	fvd-stored)
		# the first host's profile (fvd-profile's, when it ran before),
		# kept in this host's image by fvd-create
		[ -s $PROFILE ] || record_profile
		$FVD_CREATE --force --origin $NET --profile-from $PROFILE $DATA >/dev/null ||
			fail "fvd-create --profile-from" ;;
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
	fvd|fvd-16k)
		# the prefetch stays off: the boot alone is measured
		dm_up $DEV "0 $s fvd $DATA $DATA $NET 1 no_prefetch" ;;
	fvd-nocor)
		dm_up $DEV "0 $s fvd $DATA $DATA $NET 2 no_prefetch no_copy_on_read" ;;
	fvd-profile)
		# Seeded, the prefetch copies the profile first; boot() starts
		# it with the first boot's replay, so that it gets no head start
		# while fvdsetup sends the profile (seconds under TCG).
		$FVDSETUP open $DATA $DEV --origin $NET --no-prefetch \
			--profile-from $PROFILE >/dev/null || fail "fvdsetup open --profile-from" ;;
	fvd-stored)
		# The table queues the stored profile itself and copies it at
		# once; the rest of the disk waits for prefetch_delay (an hour,
		# as the other peers' prefetch is off).
		dm_up $DEV "0 $s fvd $DATA $DATA $NET 2 prefetch_delay 3600" ;;
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

# the server runs in this kernel: dropping the page cache makes it cold
drop_server_cache() {
	sync && echo 3 >/proc/sys/vm/drop_caches || fail "drop caches"
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
	drop_server_cache
	if [ -n "${START_PREFETCH:-}" ]; then
		dmsetup message "$START_PREFETCH" 0 prefetch start || fail "prefetch start"
	fi
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

# until_profile_copied DEV: on dm events, until the prefetch, started at
# the activation by the profile stored in the image, copied something and
# waits for prefetch_delay again: the profile is local
until_profile_copied() {
	local nr f
	while :; do
		nr=$(dmsetup info -c --noheadings -o events "$1" | tr -d ' ')
		read -r -a f <<<"$(dmsetup status "$1")"
		case ${f[17]-} in
		waiting) [ "${f[18]}" -eq 0 ] || return 0 ;;
		running|paused) ;;
		*) fail "the prefetch is ${f[17]-not in the status}" ;;
		esac
		timeout 600 dmsetup wait "$1" "$nr" >/dev/null ||
			fail "no event from the prefetch in 10 minutes"
	done
}

# boot PROFILE PEER BOOT: activate PEER, replay the trace on it, record what
# the activation (dm-fvd reads the origin's fingerprint) and the boot took.
# fvd-stored's first boot starts once the stored profile is copied, as on
# a host that made the device ahead of the guest: that time is ahead_ms,
# and what it read counts as the activation's.
boot() {
	local before mid after t0
	before=$(nbd_read_bytes $NET) || fail "no byte count of the origin"
	t0=${EPOCHREALTIME/./}
	peer_up "$2"
	if [ "$2/$3" = fvd-stored/first ]; then
		until_profile_copied $DEV
		record "$1" "$2" "$3" ahead_ms $(((${EPOCHREALTIME/./} - t0) / 1000))
	fi
	mid=$(nbd_read_bytes $NET) || fail "no byte count of the origin"
	START_PREFETCH=
	[ "$2/$3" != fvd-profile/first ] || START_PREFETCH=$DEV
	replay "$DISK"
	START_PREFETCH=
	after=$(nbd_read_bytes $NET) || fail "no byte count of the origin"
	# shellcheck disable=SC2046
	set -- "$@" $(fio_figures)
	[ $# -eq 6 ] || fail "no figures from fio"
	record "$1" "$2" "$3" ms "$4"
	record "$1" "$2" "$3" p50_us "$5"
	record "$1" "$2" "$3" p99_us "$6"
	record "$1" "$2" "$3" origin_bytes $((after - mid))
	record "$1" "$2" "$3" activation_origin_bytes $((mid - before))
	# dm-fvd: what copy-on-read and the prefetch copied by the boot's end
	if [[ $2 == fvd* ]]; then
		record "$1" "$2" "$3" cor_bytes "$(fvd_field $DEV 13)"
		record "$1" "$2" "$3" prefetch_bytes "$(fvd_field $DEV 16)"
	fi
	peer_down "$2"
}

# boots LINK PEER...: each peer's first and second boot, STORM_REPEATS
# times from a fresh image, recorded under LINK
boots() {
	local link=$1 peer r
	shift
	for peer in "$@"; do
		for ((r = 1; r <= REPEATS; r++)); do
			peer_make "$peer"
			boot "$link" "$peer" first
			boot "$link" "$peer" second
		done
	done
}

# ---- the prefetch against the link (one host): dm-fvd's prefetch with the
# default tunables (two batches of 1 MiB in flight, each one origin read)
# copies the first PREFETCH_MIB of the origin (an image of that size, over a
# dm-linear slice of the link's device), against fio reading the same bytes
# the same way (1 MiB reads, two in flight) and dd (1 MiB, one at a time),
# each with the server's cache cold

record_prefetch() {	# record_prefetch PROFILE METRIC VALUE
	echo "prefetch $*" >>"$OUT/raw"
	log "prefetch $*"
}

# the server's cache dropped; the tools timed here read again at once (over
# 9p under TCG, a reload costs a good part of a second)
cold_server() {
	drop_server_cache
	dd --version >/dev/null && dmsetup version >/dev/null && tr --version >/dev/null ||
		fail "the tools"
}

prefetch_mib() {	# prefetch_mib PROFILE: about 20 s of the WAN, all the origin else
	local mib
	case $1 in
	wan*) mib=64 ;;
	*) mib=$(($(sectors $ORIGIN) >> 11)) ;;
	esac
	echo "${STORM_PREFETCH_MIB:-$mib}"
}

# until_prefetch_done DEV: on dm events.  The prefetch ended before the
# status that says done returned and after the one before it: the time
# taken then is the upper bound (a wake-up and two dmsetup calls late, some
# half a second under TCG, against the prefetch).  The moment of the last
# wake-up is no lower bound: the prefetch may end after it, before the
# status is read (a 64 MiB copy then measured 2.7x the link's rate).
until_prefetch_done() {
	local nr f
	while :; do
		nr=$(dmsetup info -c --noheadings -o events "$1" | tr -d ' ')
		read -r -a f <<<"$(dmsetup status "$1")"
		case ${f[17]-} in
		done) return 0 ;;
		running|paused) ;;
		*) fail "the prefetch is ${f[17]-not in the status}" ;;
		esac
		timeout 600 dmsetup wait "$1" "$nr" >/dev/null ||
			fail "no event from the prefetch in 10 minutes"
	done
}

# prefetch_rate PROFILE: one measurement of the three
prefetch_rate() {
	local profile=$1 mib t0 t1 o0 o1 us
	mib=$(prefetch_mib "$profile")
	record_prefetch "$profile" bytes $((mib << 20))
	cold_server
	(cd /tmp && fio --name=plink --filename=$NET --ioengine=libaio --direct=1 --rw=read \
		--bs=1M --iodepth=2 --size=${mib}M --output-format=json \
		--output=/tmp/plink.json) >/dev/null || fail "fio through the link"
	us=$(python3 -c 'import json; print(json.load(open("/tmp/plink.json"))["jobs"][0]["read"]["runtime"] * 1000)') ||
		fail "no figures from fio"
	record_prefetch "$profile" fio_us "$us"
	cold_server
	t0=${EPOCHREALTIME/./}
	dd if=$NET of=/dev/null bs=1M count="$mib" iflag=direct status=none || fail "dd through the link"
	t1=${EPOCHREALTIME/./}
	record_prefetch "$profile" dd_us $((t1 - t0))
	dm_up pslice "0 $((mib << 11)) linear $NET 0"
	$FVD_CREATE --force --origin /dev/mapper/pslice $DATA >/dev/null || fail "fvd-create"
	dm_up $DEV "0 $((mib << 11)) fvd $DATA $DATA /dev/mapper/pslice 1 no_prefetch"
	cold_server
	o0=$(nbd_read_bytes "$NET") || fail "no byte count of the origin"
	t0=${EPOCHREALTIME/./}
	dmsetup message $DEV 0 prefetch start || fail "prefetch start"
	until_prefetch_done $DEV
	t1=${EPOCHREALTIME/./}
	o1=$(nbd_read_bytes "$NET") || fail "no byte count of the origin"
	record_prefetch "$profile" prefetch_us $((t1 - t0))
	record_prefetch "$profile" prefetch_bytes "$(fvd_field $DEV 16)"
	record_prefetch "$profile" origin_bytes $((o1 - o0))
	record_prefetch "$profile" pauses "$(fvd_field $DEV 19)"
	cmp /dev/mapper/$DEV /dev/mapper/pslice || fail "the prefetched image differs from the origin"
	dmsetup remove $DEV && dmsetup remove pslice || fail "remove the prefetch's devices"
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
	before=$(nbd_read_bytes "${nbds[@]}") || fail "no byte count of the origin"
	for ((i = 1; i <= n; i++)); do
		host_vars "$i"
		[ "$boot" = first ] && peer_make "$peer"
		peer_up "$peer"
		disks+=("$DISK")
	done
	mid=$(nbd_read_bytes "${nbds[@]}") || fail "no byte count of the origin"
	replay "${disks[@]}"
	after=$(nbd_read_bytes "${nbds[@]}") || fail "no byte count of the origin"
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

# ---- the settle: after the storm, every host's prefetch copies the rest of
# the origin while each host keeps a light guest load on a region of its
# disk that is local already (so that the load itself reads no origin)

LOAD_MIB=16	# the load's region, at the end of each host's disk
LOAD_IOPS=${STORM_LOAD_IOPS:-20}	# per host: half 4 KiB random reads, half writes
IDLE_S=20	# the load alone, prefetch stopped: its idle latency

fvd_field() {	# fvd_field DEV N: field N of dm-fvd's status line
	dmsetup status "$1" | awk -v n="$2" '{ print $(3 + n) }'
}

# prefetch_states: PREFETCH_STATE[I] of every host I's device (status
# field 15), from one dmsetup status of all devices
prefetch_states() {
	local words
	PREFETCH_STATE=()
	while read -ra words; do
		[[ "${words[0]}" =~ ^storm([0-9]+):$ ]] && [ "${words[3]}" = fvd ] &&
			PREFETCH_STATE[BASH_REMATCH[1]]=${words[18]}
	done < <(dmsetup status)
}

# link_rate N: bytes per second the server's link gives N hosts reading at
# once, the server's cache cold: one fio with a job per host, started
# together, each reading 1 MiB at a time with two in flight (as the
# prefetch's default two batches of 1 MiB) from its own part of the origin,
# for 15 s; fio's aggregate rate.  The settle is measured against it.
link_rate() {
	local n=$1 i jobs=()
	for ((i = 1; i <= n; i++)); do
		jobs+=(--name=link"$i" --filename=/dev/nbd"$i" --offset=$(((i - 1) * 32))M)
	done
	drop_server_cache
	(cd /tmp && fio --ioengine=libaio --direct=1 --rw=read --bs=1M --iodepth=2 \
		--size=32M --time_based --runtime=15 --group_reporting --output-format=json \
		--output=/tmp/link.json "${jobs[@]}") >/dev/null || fail "fio through the link"
	python3 -c 'import json; print(json.load(open("/tmp/link.json"))["jobs"][0]["read"]["bw_bytes"])' ||
		fail "no rate from fio"
}

# load_start NAME N: the light load on every host's disk, in the background
# until load_stop; each I/O's completion latency is logged
load_start() {
	local name=$1 n=$2 i s
	LOAD_PIDS=()
	for ((i = 1; i <= n; i++)); do
		s=$(sectors /dev/mapper/storm"$i")
		(cd /tmp && exec fio --name="$name$i" --filename=/dev/mapper/storm"$i" \
			--ioengine=psync --direct=1 --rw=randrw --bs=4k \
			--offset=$(((s << 9) - (LOAD_MIB << 20))) --size=${LOAD_MIB}M \
			--rate_iops=$((LOAD_IOPS / 2)),$((LOAD_IOPS / 2)) --time_based \
			--runtime=86400 --randseed="$i" --write_lat_log=/tmp/"$name$i" \
			--log_unix_epoch=1 >/dev/null 2>&1) &
		LOAD_PIDS+=($!)
	done
}

load_stop() {	# fio writes its logs when interrupted
	local pid
	for pid in "${LOAD_PIDS[@]}"; do
		kill -INT "$pid" 2>/dev/null || :
	done
	for pid in "${LOAD_PIDS[@]}"; do
		wait "$pid" || :
	done
}

# load_latency NAME [CUTOFF-FILE]: "p50 p99" (us) of every host's load;
# with CUTOFF-FILE ("HOST EPOCH-MS" lines), of each host's I/Os before its
# moment only (the load goes on until the last host is all-local)
load_latency() {
	python3 - "$@" <<'PY'
import glob, re, sys
name = sys.argv[1]
cutoff = {}
if len(sys.argv) > 2:
    for line in open(sys.argv[2]):
        host, ms = line.split()
        cutoff[int(host)] = int(ms)
lat, hosts = [], 0
for f in glob.glob("/tmp/%s*_clat.*.log" % name):
    host = int(re.match(r"/tmp/%s(\d+)_clat" % name, f).group(1))
    hosts += 1
    for line in open(f):
        t, ns = line.split(",")[:2]
        if host not in cutoff or int(t) <= cutoff[host]:
            lat.append(int(ns))
lat.sort()
if len(lat) < 100:
    sys.exit("too few I/Os logged: %d from %d hosts" % (len(lat), hosts))
print(hosts, lat[len(lat) // 2] // 1000, lat[len(lat) * 99 // 100] // 1000)
PY
}

# settle PROFILE N: the hosts' images (of the storm, or fresh) load with the
# prefetch stopped; the load alone first, then every prefetch at once
settle() {
	local profile=$1 n=$2 i s t0 now all_done sect rate absent=0 tick next wait_us wait_s
	local samples host_bytes
	local idle_p50 idle_p99 busy_p50 busy_p99 out logs
	local done_ms=() start_bytes=()
	s=$(sectors $ORIGIN)
	rate=$(link_rate "$n")
	record_settle "$profile" hosts "$n"
	record_settle "$profile" link_bytes_per_s "$rate"
	record_settle "$profile" origin_bytes_each $((s << 9))
	for ((i = 1; i <= n; i++)); do
		host_vars "$i"
		[ -n "$SETTLE_IMAGES" ] || peer_make fvd
		dm_up $DEV "0 $s fvd $DATA $DATA $NET 1 no_prefetch"
		# the load's region made local by whole-block writes (no copies)
		dd if=/dev/zero of=/dev/mapper/$DEV bs=1M seek=$(((s >> 11) - LOAD_MIB)) \
			count=$LOAD_MIB oflag=direct status=none || fail "the load's region"
		absent=$((absent + $(fvd_field $DEV 3 | awk -F/ '{ print $2 - $1 }')))
	done
	record_settle "$profile" absent_bytes $((absent * $(fvd_field storm1 2) * 512))
	rm -f /tmp/idle*_clat.* /tmp/busy*_clat.*
	load_start idle "$n"
	sleep $IDLE_S	# a span of load to measure, not a wait for an event
	load_stop
	out=$(load_latency idle) || fail "the idle load's latency"
	read -r logs idle_p50 idle_p99 <<<"$out"
	[ "$logs" = "$n" ] || fail "$logs of $n hosts logged their idle load"
	record_settle "$profile" idle_p50_us "$idle_p50"
	record_settle "$profile" idle_p99_us "$idle_p99"
	load_start busy "$n"
	for ((i = 1; i <= n; i++)); do
		start_bytes[i]=$(nbd_read_bytes /dev/nbd"$i") || fail "no byte count of the origin"
	done
	# the time counts from the first host's start
	t0=${EPOCHREALTIME/./}
	for ((i = 1; i <= n; i++)); do
		dmsetup message storm"$i" 0 prefetch start || fail "prefetch start on host $i"
	done
	# A sample a second (the plot's resolution) until every host is
	# all-local.  Processes cost a lot under TCG with eight prefetches
	# running (a loop with sleep, date and a write to the shared raw file per
	# line took 8 s a round): one dmsetup for all hosts, the clock and the
	# wait are bash's own (read -t on a pipe nobody writes), the samples
	# are written at the end.
	exec {tick}<> <(:)
	samples=()
	all_done=0
	next=$t0
	until [ "$all_done" = 1 ]; do
		next=$((next + 1000000))
		wait_us=$((next - ${EPOCHREALTIME/./}))
		if [ "$wait_us" -gt 0 ]; then
			printf -v wait_s '%d.%06d' $((wait_us / 1000000)) $((wait_us % 1000000))
			read -r -t "$wait_s" -u "$tick" || :
		fi
		prefetch_states
		now=$(((${EPOCHREALTIME/./} - t0) / 1000))
		[ "$now" -lt 7200000 ] || fail "the hosts are not all-local after 2 hours"
		all_done=1
		for ((i = 1; i <= n; i++)); do
			read -r _ _ sect _ </sys/block/nbd"$i"/stat
			samples+=("settle_sample $profile $i $now $((sect * 512 - start_bytes[i]))")
			[ -z "${done_ms[i]:-}" ] || continue
			case ${PREFETCH_STATE[i]:-} in
			done) done_ms[i]=$now ;;
			running|paused) all_done=0 ;;
			*) fail "host $i: prefetch ${PREFETCH_STATE[i]:-not seen}" ;;
			esac
		done
	done
	exec {tick}<&-
	printf '%s\n' "${samples[@]}" >>"$OUT/raw"
	load_stop
	for ((i = 1; i <= n; i++)); do
		echo "$i $((t0 / 1000 + done_ms[i]))"
	done >/tmp/busy-cutoff
	out=$(load_latency busy /tmp/busy-cutoff) || fail "the load's latency while settling"
	read -r logs busy_p50 busy_p99 <<<"$out"
	[ "$logs" = "$n" ] || fail "$logs of $n hosts logged their load"
	record_settle "$profile" ms "$now"
	record_settle "$profile" busy_p50_us "$busy_p50"
	record_settle "$profile" busy_p99_us "$busy_p99"
	for ((i = 1; i <= n; i++)); do
		echo "settle_host $profile $i done_ms ${done_ms[i]}" >>"$OUT/raw"
		echo "settle_host $profile $i pauses $(fvd_field storm"$i" 19)" >>"$OUT/raw"
		host_bytes=$(nbd_read_bytes /dev/nbd"$i") || fail "no byte count of the origin"
		echo "settle_host $profile $i origin_bytes $((host_bytes - start_bytes[i]))" >>"$OUT/raw"
	done
	# all-local and right: host 1's disk, but for the load's region, is the origin
	cmp -n $(((s << 9) - (LOAD_MIB << 20))) /dev/mapper/storm1 $ORIGIN ||
		fail "host 1 does not read the origin's data after the settle"
	for ((i = 1; i <= n; i++)); do
		dmsetup remove storm"$i" || fail "dmsetup remove storm$i"
	done
}

record_settle() {	# record_settle PROFILE METRIC VALUE
	echo "settle $*" >>"$OUT/raw"
	log "settle $*"
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
	# shellcheck disable=SC2086
	boots "$profile" $PEERS
	if [[ " $PREFETCH_ON " == *" $profile "* ]]; then
		for ((r = 1; r <= REPEATS; r++)); do
			prefetch_rate "$profile"
		done
	fi
	# the same boots over iSCSI (one host: see tests/lib/netorigin.sh)
	if [ -n "$ISCSI_PEERS" ]; then
		netorigin_iscsi_serve $ORIGIN || fail "the iSCSI export"
		NET=$(netorigin_iscsi_connect) || fail "the iSCSI login"
		# shellcheck disable=SC2086
		boots "$profile-iscsi" $ISCSI_PEERS
		netorigin_iscsi_down
		NET=/dev/nbd0
	fi
	if [[ " $STORM_ON " == *" $profile "* ]] && [ "$HOSTS" -gt 1 ]; then
		storm_up "$HOSTS"
		STORM_PEERS_ALL=$(storm_peers "$profile")
		for peer in $STORM_PEERS_ALL; do
			storm "$profile" "$peer" first "$HOSTS"
			storm "$profile" "$peer" second "$HOSTS"
			# the settle goes on from the storm's images, before another
			# peer takes the hosts' disks
			if [ "$peer" = fvd ] && [[ " $SETTLE_ON " == *" $profile "* ]]; then
				SETTLE_IMAGES=storm settle "$profile" "$HOSTS"
			fi
		done
		if [[ " $STORM_PEERS_ALL " != *" fvd "* ]] && [[ " $SETTLE_ON " == *" $profile "* ]]; then
			SETTLE_IMAGES="" settle "$profile" "$HOSTS"
		fi
		storm_down "$HOSTS"
		NET=/dev/nbd0 DATA=/dev/vdb META=/dev/vdc DEV=storm
	fi
	netorigin_down
done
log "done"
