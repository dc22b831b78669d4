#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The dm-fvd benchmark, run inside the test bed guest by bench/run:
#   /dev/vda  origin, pseudo-random data (read-only for every peer)
#   /dev/vdb  data disk (each peer's own data, copy-on-write store, qcow2 file)
#   /dev/vdc  metadata disk of dm-thin and dm-clone
#   /dev/vdd  a sparse disk of just over 1 TiB, for the memory figures
#
# Each measurement sets a peer up afresh on these disks, runs one fio job
# (direct I/O, fixed seed) or one full copy, and appends a line
#   WORKLOAD PEER REPEAT METRIC VALUE
# to /run/fvd/out/raw, where a fio job's line names its report in
# /run/fvd/out/fio instead of a value: bench/run expands those lines on the
# host (bench/fio-summary.py) and bench/report.py makes the tables.
#
# Environment: BENCH_REPEATS (3), BENCH_RUNTIME (seconds per timed fio job,
# 2), BENCH_WORKLOADS (all), BENCH_PEERS (all).

set -u
. /run/fvd/src/tests/lib/guest-lib.sh
. /run/fvd/src/bench/guest-common.sh
SRC=$FVD_SRC
OUT=$FVD_OUT
FVD_CREATE=$SRC/tools/fvd-create
SBEDIT=$SRC/tests/dmtest/fvd-sbedit
FIO=$OUT/fio
ORIGIN=/dev/vda
DATA=/dev/vdb
META=/dev/vdc
BIG=/dev/vdd
DEV=bench
NBD=/dev/nbd0
MB=$((1024 * 1024))

REPEATS=${BENCH_REPEATS:-3}
RUNTIME=${BENCH_RUNTIME:-2}
WORKLOADS=${BENCH_WORKLOADS:-"seqread randread randwrite_absent randwrite_local write_fsync reread_after_cor copy_idle copy_under_load memory"}
ALL_PEERS=${BENCH_PEERS:-"linear fvd fvd-nocor fvd-compact thin snapshot clone clone-1M qcow2 dd"}
READ_PEERS="linear fvd fvd-nocor fvd-compact thin snapshot clone qcow2"
# after copy-on-read: without it, a re-read is an untouched read
REREAD_PEERS="linear fvd fvd-compact thin snapshot clone qcow2"
WRITE_PEERS="linear fvd fvd-compact thin snapshot clone qcow2"
COPY_PEERS="dd fvd fvd-compact clone clone-1M"
LOAD_PEERS="dd fvd fvd-compact clone"
# dm-clone hydrates only while the guest is idle: under load a copy is cut
# off after this many seconds and its rate taken from what it copied.
COPY_DEADLINE=15

# Every measurement uses the same region sizes and fio seed.
SEED=20261126
LOCAL_REGION=$((32 * MB))	# blocks made local before "local" workloads
FSYNC_REGION=$((64 * MB))
LOAD_REGION=$((64 * MB))	# the guest's region during a full copy

log() {
	echo "[bench] $*" >&2
}

fail() {
	echo "[bench] FAIL: $*" >&2
	exit 1
}

ORIGIN_BYTES=$(blockdev --getsize64 $ORIGIN)
S=$(sectors $ORIGIN)

record() {	# record WORKLOAD PEER REPEAT METRIC VALUE
	echo "$*" >>"$OUT/raw"
	# the serial console is slow: request counts go to the file only
	[[ $4 == io_* ]] || log "$*"
}

rate() {	# rate BYTES MS: MiB/s
	awk -v b="$1" -v ms="$2" 'BEGIN { printf "%.2f\n", b / 1048576 / (ms / 1000) }'
}

now_ms() {
	echo $(($(date +%s%N) / 1000000))
}

# ---- peers ----
#
# peer_up PEER [copy]: set PEER up over the origin, $DISK is the virtual
# disk.  With "copy" the peer is ready to copy the whole origin but does not
# start before copy_start.



fvd_up() {	# fvd_up COPY [FVD-CREATE ARGS...] -- [FEATURES...]
	local copy=$1 args=() features=()
	shift
	while [ $# -gt 0 ] && [ "$1" != -- ]; do
		args+=("$1")
		shift
	done
	shift
	features=("$@")
	if [ "$copy" = copy ]; then
		features+=(no_prefetch prefetch_delay 0)
	else
		features+=(no_prefetch)
	fi
	$FVD_CREATE --force --origin $ORIGIN "${args[@]}" $DATA >/dev/null ||
		fail "fvd-create ${args[*]}"
	dm_up $DEV "0 $S fvd $DATA $DATA $ORIGIN ${#features[@]} ${features[*]}"
}

clone_up() {	# clone_up COPY [CORE ARGS...]
	local copy=$1
	shift
	zero $META 4
	# Hydration is started by copy_start; an idle clone never hydrates.
	dm_up $DEV "0 $S clone $META $DATA $ORIGIN 128 1 no_hydration $# $*"
}

peer_up() {
	local peer=$1 copy=${2:-}
	DISK=/dev/mapper/$DEV
	case $peer in
	linear | dd)
		dm_up $DEV "0 $S linear $DATA 0" ;;
	fvd)
		fvd_up "$copy" -- ;;
	fvd-nocor)
		fvd_up "$copy" -- no_copy_on_read ;;
	fvd-compact)
		fvd_up "$copy" --compact -- ;;
	thin)
		zero $META 4
		dm_up ${DEV}pool "0 $(sectors $DATA) thin-pool $META $DATA 128 0"
		dmsetup message ${DEV}pool 0 "create_thin 0" || fail "create_thin"
		dm_up $DEV "0 $S thin /dev/mapper/${DEV}pool 0 $ORIGIN" ;;
	snapshot)
		zero $DATA 64
		dm_up $DEV "0 $S snapshot $ORIGIN $DATA P 128" ;;
	clone)
		clone_up "$copy" ;;
	clone-1M)
		# the same batch as the dm-fvd prefetch: 16 regions of 64K
		clone_up "$copy" hydration_batch_size 16 ;;
	qcow2)
		qemu-img create -q -f qcow2 -o cluster_size=65536 -b $ORIGIN -F raw \
			$DATA "$ORIGIN_BYTES" || fail "qemu-img create"
		qemu-nbd --connect=$NBD --format=qcow2 --cache=none --aio=native \
			$DATA || fail "qemu-nbd"
		DISK=$NBD
		# qemu-nbd returns before the kernel has the disk's size
		until_sized $NBD ;;
	*)
		fail "unknown peer $peer" ;;
	esac
}

peer_down() {
	local peer=$1
	case $peer in
	qcow2)
		qemu-nbd --disconnect $NBD >/dev/null || fail "qemu-nbd --disconnect" ;;
	thin)
		dmsetup remove $DEV && dmsetup remove ${DEV}pool || fail "remove thin" ;;
	*)
		dmsetup remove $DEV || fail "dmsetup remove $DEV" ;;
	esac
}

# ---- full copies ----

event_nr() {
	dmsetup info -c --noheadings -o events $DEV | tr -d ' '
}

# wait_event_until CHECK [DEADLINE_MS]: run CHECK after every dm event
# until it succeeds; fails once the deadline (of now_ms) has passed.
wait_event_until() {
	local nr left
	while :; do
		nr=$(event_nr)
		"$1" && return 0
		left=$((${2:-$(($(now_ms) + 900000))} - $(now_ms)))
		[ $left -gt 0 ] || return 1
		timeout $(((left + 999) / 1000)) dmsetup wait $DEV "$nr" >/dev/null ||
			[ $? -eq 124 ] || fail "dmsetup wait"
	done
}

fvd_copied() {
	local state
	state=$(dmsetup status $DEV | awk '{ print $18 }')
	[ "$state" = error ] && fail "prefetch error"
	[ "$state" = done ]
}

clone_hydrated() {
	dmsetup status $DEV | awk '{ split($7, r, "/"); exit !(r[1] == r[2]) }'
}

copy_start() {
	case $1 in
	dd)
		dd if=$ORIGIN of=$DISK bs=1M iflag=direct oflag=direct status=none &
		COPY_PID=$! ;;
	fvd*)
		dmsetup message $DEV 0 prefetch start || fail "prefetch start" ;;
	clone*)
		dmsetup message $DEV 0 enable_hydration || fail "enable_hydration" ;;
	esac
}

# copy_wait PEER [DEADLINE_MS]: until the copy is done; fails when cut off
copy_wait() {
	case $1 in
	dd)
		wait $COPY_PID || fail "dd"
		# what the others' final commit costs: the data made durable
		blockdev --flushbufs $DISK ;;
	fvd*)
		wait_event_until fvd_copied "${2:-}" ;;
	clone*)
		wait_event_until clone_hydrated "${2:-}" ;;
	esac
}

copied_bytes() {	# of a copy cut off
	local f
	read -r -a f <<<"$(dmsetup status $DEV)"
	case $1 in
	fvd*)
		echo "${f[18]}" ;;
	clone*)
		# hydrated regions × region sectors × 512, in bash's 64 bits
		# (awk prints 2.56e+09 above 2 GiB)
		echo $((${f[6]%/*} * f[5] * 512)) ;;
	esac
}

# ---- fio ----

# The requests the disks themselves saw: reads, sectors read, writes,
# sectors written, flushes (Documentation/block/stat.rst)
disk_stat() {
	awk '{ print $1, $3, $5, $7, $16 }' "/sys/block/$1/stat"
}

io_snapshot() {	# origin, data and metadata disk
	echo "$(disk_stat vda) $(disk_stat vdb) $(disk_stat vdc)"
}

# fio_run NAME [FIO ARGS...]: fio's JSON report goes to $FIO/$JOB-NAME.json
# and the requests each disk saw meanwhile to $FIO/$JOB-NAME.io; bench/run
# reads them on the host (python takes two seconds to start in the guest).
fio_run() {
	local name=$JOB-$1 before after
	shift
	before=$(io_snapshot)
	# in /tmp: fio may leave files in its working directory
	(cd /tmp && fio --name="$name" --filename="$DISK" --direct=1 \
		--randseed=$SEED --unified_rw_reporting=mixed \
		--output-format=json --output="$FIO/$name.json" "$@") >/dev/null ||
		fail "fio $name on $DISK"
	after=$(io_snapshot)
	echo "$before $after" |
		awk '{ for (i = 1; i <= 15; i++) printf "%d ", $(i + 15) - $i; print "" }' \
		>"$FIO/$name.io"
}

# record_fio NAME [KIND]: the measurement is fio job NAME of this $JOB
# (KIND fio: its throughput and the disks' requests; fio_idle, fio_busy:
# its latency without and during a copy)
record_fio() {
	local wl peer rep
	# peer names have dashes: the repeat is last, the workload first
	rep=${JOB##*-}
	wl=${JOB%%-*}
	peer=${JOB#"$wl"-}
	peer=${peer%-"$rep"}
	record "$wl" "$peer" "$rep" "${2:-fio}" "$JOB-$1"
}

timed() {	# fio arguments of a timed job over SIZE bytes
	echo "--size=$1 --time_based --runtime=$RUNTIME"
}

prewrite() {	# prewrite BYTES: make the first BYTES of the disk local
	fio_run prewrite --rw=write --bs=1M --ioengine=libaio --iodepth=4 \
		--size="$1"
}

# ---- workloads: wl_NAME PEER REPEAT ----

# fresh_job PEER NAME [FIO ARGS...]: fio job NAME on a fresh PEER, recorded
fresh_job() {
	local peer=$1 name=$2
	shift 2
	peer_up "$peer"
	fio_run "$name" "$@"
	peer_down "$peer"
	record_fio "$name"
}

wl_seqread() {
	fresh_job "$1" seqread --rw=read --bs=1M --ioengine=libaio --iodepth=4 \
		--size="$ORIGIN_BYTES"
}

wl_randread() {
	# shellcheck disable=SC2046
	fresh_job "$1" randread --rw=randread --bs=4k --ioengine=libaio --iodepth=16 \
		$(timed "$ORIGIN_BYTES")
}

# absent_log DEV: a fio replay log of one 4K write to every 64K block of the
# disk, at a random 4K slot of it, the blocks in random order (fixed seed):
# every write is the first to its block, on every peer.
absent_log() {
	python3 - "$1" "$ORIGIN_BYTES" $SEED <<'PY'
import random
import sys
dev, size, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(seed)
blocks = list(range(size // 65536))
rng.shuffle(blocks)
print("fio version 2 iolog")
print(dev, "add")
print(dev, "open")
for b in blocks:
    print(dev, "write", b * 65536 + rng.randrange(16) * 4096, 4096)
print(dev, "close")
PY
}

wl_randwrite_absent() {
	local log=/tmp/absent-$DEV.log

	[ "$1" != qcow2 ] || log=/tmp/absent-$(basename $NBD).log
	fresh_job "$1" randwrite_absent --read_iolog="$log" \
		--replay_no_stall=1 --ioengine=libaio --iodepth=16
}

wl_randwrite_local() {
	peer_up "$1"
	prewrite $LOCAL_REGION
	# shellcheck disable=SC2046
	fio_run randwrite_local --rw=randwrite --bs=4k --ioengine=libaio \
		--iodepth=16 $(timed $LOCAL_REGION)
	peer_down "$1"
	record_fio randwrite_local
}

# A fresh disk, one writer: every 4K write is followed by fsync (a flush).
wl_write_fsync() {
	# shellcheck disable=SC2046
	fresh_job "$1" write_fsync --rw=randwrite --bs=4k --ioengine=psync \
		--fsync=1 $(timed $FSYNC_REGION)
}

# Read a region once (dm-fvd copies it on read), then random reads in it.
wl_reread_after_cor() {
	peer_up "$1"
	fio_run firstread --rw=read --bs=1M --ioengine=libaio --iodepth=4 \
		--size=$LOCAL_REGION
	# shellcheck disable=SC2046
	fio_run reread --rw=randread --bs=4k --ioengine=libaio --iodepth=16 \
		$(timed $LOCAL_REGION)
	peer_down "$1"
	record_fio reread
}

wl_copy_idle() {
	local t0 t1
	peer_up "$1" copy
	t0=$(now_ms)
	copy_start "$1"
	copy_wait "$1"
	t1=$(now_ms)
	# the prefetch's own account: did it pause although idle?
	[ "${1%%-*}" != fvd ] ||
		record copy_idle "$1" "$2" prefetch_pauses "$(dmsetup status $DEV | awk '{ print $22 }')"
	peer_down "$1"
	record copy_idle "$1" "$2" MiB/s "$(rate $ORIGIN_BYTES $((t1 - t0)))"
}

# The guest's own I/O during a copy: 4K random reads and writes at queue
# depth 1, 200 per second, on a region already local.  First without a
# copy, then while the peer copies the whole origin.
LOAD_ARGS="--rw=randrw --bs=4k --ioengine=psync --rate_iops=200 --size=$LOAD_REGION"

wl_copy_under_load() {
	local t0 t1 load copied
	peer_up "$1" copy
	prewrite $LOAD_REGION
	# shellcheck disable=SC2086
	fio_run idle $LOAD_ARGS --time_based --runtime=$RUNTIME
	# The load runs until the copy ends; the copy starts once fio is about
	# to issue I/O.
	rm -f /tmp/busy.started
	# shellcheck disable=SC2086
	(cd /tmp && exec fio --name=busy --filename="$DISK" --direct=1 \
		--randseed=$SEED --unified_rw_reporting=mixed --output-format=json \
		--output="$FIO/$JOB-busy.json" $LOAD_ARGS --time_based --runtime=900 \
		--exec_prerun="touch /tmp/busy.started") >/dev/null &
	load=$!
	wait_file /tmp/busy.started
	t0=$(now_ms)
	copy_start "$1"
	# the guest's region is local already: only dd copies it
	copied=$((ORIGIN_BYTES - LOAD_REGION))
	[ "$1" != dd ] || copied=$ORIGIN_BYTES
	if ! copy_wait "$1" $((t0 + COPY_DEADLINE * 1000)); then
		copied=$(copied_bytes "$1")
		# dm-clone counts the regions the guest's writes hydrated
		[ "${1%%-*}" != clone ] || copied=$((copied - LOAD_REGION))
		record copy_under_load "$1" "$2" cut_off_after_s $COPY_DEADLINE
	fi
	t1=$(now_ms)
	# fio reports on SIGINT (and exits non-zero); the host reads the report
	kill -INT $load
	wait $load
	peer_down "$1"
	record copy_under_load "$1" "$2" MiB/s "$(rate $copied $((t1 - t0)))"
	record_fio idle fio_idle
	record_fio busy fio_busy
}

wait_file() {	# wait_file PATH: until PATH exists (fio is starting)
	local i
	for ((i = 0; i < 6000; i++)); do
		[ -e "$1" ] && return 0
		read -r -t 0.01 <> <(:) || true
	done
	fail "$1 did not appear"
}

# Kernel memory of a 1 TiB virtual disk: what the data structures take
# (from the image's geometry) and what the kernel's counters say.
meminfo() {	# meminfo FIELD: KiB
	awk -v f="$1:" '$1 == f { print $2 }' /proc/meminfo
}

mem_snapshot() {
	sync
	echo 3 >/proc/sys/vm/drop_caches
	echo "$(meminfo MemFree) $(meminfo Slab) $(meminfo VmallocUsed)"
}

wl_memory() {
	local peer=$1 rep=$2 before after expected args=()
	local bitmap table
	case $peer in
	fvd) ;;
	fvd-compact) args=(--compact --data-dev $DATA) ;;
	*) return 0 ;;
	esac
	$FVD_CREATE --force --size 1T --origin $ORIGIN "${args[@]}" $BIG >/dev/null ||
		fail "fvd-create 1T"
	bitmap=$(($($SBEDIT $BIG | sed -n 's/^bitmap_sectors=//p') * 512))
	table=$(($($SBEDIT $BIG | sed -n 's/^table_sectors=//p') * 512))
	# live, staged and fresh bitmaps; live and staged chunk table; one bit
	# per metadata block in three maps each (dirty, committing, stale)
	expected=$((3 * bitmap + 2 * table + 3 * (bitmap + table) / 4096 / 8))
	before=$(mem_snapshot)
	if [ $peer = fvd ]; then
		dm_up $DEV "0 $((1 << 31)) fvd $BIG $BIG $ORIGIN 1 no_prefetch"
	else
		dm_up $DEV "0 $((1 << 31)) fvd $BIG $DATA $ORIGIN 1 no_prefetch"
	fi
	after=$(mem_snapshot)
	dmsetup remove $DEV || fail "remove"
	set -- $before $after
	record memory "$peer" "$rep" expected_KiB $((expected / 1024))
	record memory "$peer" "$rep" memfree_KiB $(($1 - $4))
	record memory "$peer" "$rep" slab_KiB $(($5 - $2))
	record memory "$peer" "$rep" vmalloc_KiB $(($6 - $3))
}

# ---- main ----

modprobe dm-mod && modprobe dm-thin-pool && modprobe dm-snapshot &&
	modprobe dm-persistent-data && modprobe nbd || fail "modprobe"
load_dm_fvd || fail "insmod dm-fvd.ko"
# qemu-nbd keeps its socket in /var/lock, i.e. /run/lock: a tmpfs here
mkdir -p /run/lock
insmod "$OUT/dm-clone.ko" || fail "insmod dm-clone.ko"
: >"$OUT/raw"
mkdir -p "$FIO"
absent_log /dev/mapper/$DEV >/tmp/absent-$DEV.log
absent_log $NBD >"/tmp/absent-$(basename $NBD).log"
{
	echo "kernel $(uname -r)"
	echo "cpus $(nproc)"
	echo "memory_MiB $(($(meminfo MemTotal) / 1024))"
	echo "origin_MiB $((ORIGIN_BYTES / MB))"
	echo "runtime_s $RUNTIME"
	echo "repeats $REPEATS"
	echo "fio $(fio --version)"
	echo "qemu_nbd $(qemu-nbd --version | head -n 1)"
} >"$OUT/setup"

peers_of() {
	case $1 in
	seqread | randread) echo "$READ_PEERS" ;;
	reread_after_cor) echo "$REREAD_PEERS" ;;
	copy_idle) echo "$COPY_PEERS" ;;
	copy_under_load) echo "$LOAD_PEERS" ;;
	memory) echo "fvd fvd-compact" ;;
	*) echo "$WRITE_PEERS" ;;
	esac
}

start=$(now_ms)
for wl in $WORKLOADS; do
	wl_start=$(now_ms)
	for ((rep = 1; rep <= REPEATS; rep++)); do
		# the peers take turns, so a slow phase of the host hits all
		for peer in $(peers_of "$wl"); do
			[[ " $ALL_PEERS " == *" $peer "* ]] || continue
			JOB=$wl-$peer-$rep
			"wl_$wl" "$peer" "$rep"
		done
	done
	echo "$wl $((($(now_ms) - wl_start) / 1000))" >>"$OUT/durations"
done
echo "total $((($(now_ms) - start) / 1000))" >>"$OUT/durations"
