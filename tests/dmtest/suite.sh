#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# dm-fvd dmsetup-level tests.  Runs inside the test bed guest (see
# tests/lib/testbed.sh), started by tests/dmtest/run:
#   /dev/vda  origin, 64 MiB of pseudo-random data
#   /dev/vdb  image disk (metadata, and data unless a test uses vdc)
#   /dev/vdc  separate data disk
#   /dev/vdd  small origin, 20 MiB + 12 KiB (not a multiple of the block size)
#   /dev/vde  scratch disk (metadata-only images, small devices)
#   /dev/vdf  crash tests: the image as replayed from the write log
#   /dev/vdg  crash tests: copy-on-write store of the throw-away snapshots
#
# Usage: suite.sh [TEST...]   (default: every test_* function)
#        suite.sh --queue       (the tests named in /run/fvd/shared/queue,
#                                each taken by whichever guest claims it first)
# Writes "ok - NAME" / "not ok - NAME" lines to /run/fvd/out/results.

set -u
. /run/fvd/src/tests/lib/guest-lib.sh
. /run/fvd/src/tests/lib/netorigin.sh
SRC=$FVD_SRC
OUT=$FVD_OUT
FVDIO="python3 $SRC/tests/dmtest/fvdio.py"
FVD_CREATE=$SRC/tools/fvd-create
FVD_CHECK=$SRC/tools/fvd-check
FVDSETUP=$SRC/tools/fvdsetup
SBEDIT=$SRC/tests/dmtest/fvd-sbedit
ORIGIN=/dev/vda
IMG=/dev/vdb
DATA=/dev/vdc
SMALL=/dev/vdd
SCRATCH=/dev/vde
REPLAY=/dev/vdf
COW=/dev/vdg
CRASH="python3 $SRC/tests/dmtest/crash.py"
DEV=fvd0
MAPPER=/dev/mapper/$DEV
KB=1024
MB=$((1024 * 1024))

# ---- helpers ----

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

say() {
	echo "# $*"
}

sectors() {
	blockdev --getsz "$1"
}

bytes() {
	blockdev --getsize64 "$1"
}

# fvd_table META DATA ORIGIN [FEATURES...]: the table line for an image.
# Tests that do not name a prefetch feature get no_prefetch, so that a
# background copy never changes what they count.
fvd_table() {
	local meta=$1 data=$2 origin=$3 size
	shift 3
	size=$($SBEDIT "$meta" | sed -n 's/^virtual_sectors=//p')
	[[ " $* " == *prefetch* ]] || set -- "$@" no_prefetch
	if [ $# -gt 0 ]; then
		echo "0 $size fvd $meta $data $origin $# $*"
	else
		echo "0 $size fvd $meta $data $origin"
	fi
}

# fvd_up META DATA ORIGIN [FEATURES...]: create $DEV over an image
fvd_up() {
	dmsetup create "$DEV" --table "$(fvd_table "$@")" ||
		fail "dmsetup create $DEV failed"
	[ -b "$MAPPER" ] || fail "$MAPPER missing"
}

fvd_down() {
	dmsetup remove "$DEV" || fail "dmsetup remove $DEV failed"
}

# status_field N: the Nth word of the INFO status (after "start len fvd")
status_field() {
	dmsetup status "$DEV" | awk -v n="$1" '{ print $(n + 3) }'
}

local_blocks() {
	status_field 3 | cut -d/ -f1
}

event_nr() {
	dmsetup info -c --noheadings -o events "$DEV" | tr -d ' '
}

sb_field() {
	$SBEDIT "$1" | sed -n "s/^$2=//p"
}

# metadata_end IMAGE: the sector after its last region (journal or profile)
metadata_end() {
	local journal=$(($(sb_field "$1" journal_offset) + $(sb_field "$1" journal_sectors)))
	local profile=$(($(sb_field "$1" profile_offset) + $(sb_field "$1" profile_sectors)))
	echo $((journal > profile ? journal : profile))
}

# Metadata on $SCRATCH behind a dm-linear "fvdmeta", so a test can swap it
# for a failing device under the live target with meta_replace.
# Non-zero bytes in the home bitmap region of image $1.
home_bitmap_bytes() {
	dd if="$1" bs=512 iflag=direct skip="$(sb_field "$1" bitmap_offset)" \
		count="$(sb_field "$1" bitmap_sectors)" status=none | tr -d '\0' | wc -c
}

meta_linear_up() {
	dmsetup create fvdmeta --table "0 $(sectors $SCRATCH) linear $SCRATCH 0" ||
		fail "cannot create fvdmeta"
}

meta_replace() {	# meta_replace TARGET [ARGS...]  (mapping all of $SCRATCH)
	dmsetup suspend --nolockfs --noflush fvdmeta &&
		dmsetup reload fvdmeta --table "0 $(sectors $SCRATCH) $*" &&
		dmsetup resume fvdmeta || fail "cannot switch fvdmeta to $1"
}

expect_eq() {
	[ "$1" = "$2" ] || fail "$3: expected '$2', got '$1'"
}

# ---- tests ----

test_untouched_reads_equal_origin() {
	$FVD_CREATE --force --origin $ORIGIN $IMG >/dev/null
	fvd_up $IMG $IMG $ORIGIN
	expect_eq "$(sectors $MAPPER)" "$(sectors $ORIGIN)" "virtual size"
	$FVDIO compare $MAPPER $ORIGIN || fail "device differs from the origin"
	expect_eq "$(status_field 1)" rw "metadata mode"
	expect_eq "$(status_field 3)" "0/1024" "local blocks"
	fvd_down
}

# Random unaligned writes of 512 B to 3 blocks, compared with a reference.
random_writes_case() {
	local block=$1 extra=$2
	$FVD_CREATE --force --origin $ORIGIN --block-size "$block" $extra $IMG >/dev/null
	fvd_up $IMG "$3" $ORIGIN
	cp $ORIGIN /tmp/ref
	$FVDIO randwrite $MAPPER /tmp/ref --seed "$block" --count 200 \
		--block "$block" --max-bytes $((3 * block)) ||
		fail "writes failed"
	$FVDIO compare $MAPPER /tmp/ref || fail "device differs from the reference"
	say "status: $(dmsetup status $DEV)"
	[ "$(local_blocks)" -gt 0 ] || fail "no block became local"
	[ "$(status_field 4)" -gt 0 ] || fail "no partial-block copy counted"
	fvd_down
	rm -f /tmp/ref
}

test_random_writes_64k_blocks() {
	random_writes_case 65536 "" $IMG
}

test_random_writes_4k_blocks() {
	random_writes_case 4096 "" $IMG
}

test_random_writes_2m_blocks() {
	random_writes_case $((2 * MB)) "" $IMG
}

test_random_writes_separate_data_device() {
	random_writes_case 65536 "--data-dev $DATA" $DATA
}

test_persistence_across_remove_create() {
	local before
	$FVD_CREATE --force --origin $ORIGIN $IMG >/dev/null
	fvd_up $IMG $IMG $ORIGIN
	expect_eq "$(sb_field $IMG flags)" 0 "flags while active (clean bit clear)"
	cp $ORIGIN /tmp/ref
	$FVDIO randwrite $MAPPER /tmp/ref --seed 7 --count 150 || fail "writes failed"
	before=$(local_blocks)
	fvd_down
	expect_eq "$(sb_field $IMG flags)" 1 "flags after remove (clean bit set)"
	fvd_up $IMG $IMG $ORIGIN
	expect_eq "$(local_blocks)" "$before" "local blocks after reload"
	$FVDIO compare $MAPPER /tmp/ref || fail "data lost across remove/create"
	# and once more after a suspend/resume cycle of the same table
	dmsetup suspend $DEV && dmsetup resume $DEV || fail "suspend/resume failed"
	$FVDIO compare $MAPPER /tmp/ref || fail "data differs after suspend/resume"
	fvd_down
	rm -f /tmp/ref
}

test_table_reload_keeps_data() {
	$FVD_CREATE --force --origin $ORIGIN $IMG >/dev/null
	fvd_up $IMG $IMG $ORIGIN
	cp $ORIGIN /tmp/ref
	$FVDIO randwrite $MAPPER /tmp/ref --seed 11 --count 100 || fail "writes failed"
	# The new table is loaded while the old one still holds unflushed bits.
	dmsetup reload $DEV --table "$(fvd_table $IMG $IMG $ORIGIN)" || fail "reload"
	dmsetup resume $DEV || fail "resume after reload"
	$FVDIO compare $MAPPER /tmp/ref || fail "data differs after a table reload"
	fvd_down
	rm -f /tmp/ref
}

# Suspend/resume cycles while fio writes and verifies: deferred writes and
# block copies in flight must drain, and nothing may be lost.
test_suspend_resume_under_io() {
	local pid cycles=0 status
	$FVD_CREATE --force --origin $ORIGIN $IMG >/dev/null
	fvd_up $IMG $IMG $ORIGIN
	fio --name=io --filename=$MAPPER --direct=1 --ioengine=libaio --iodepth=16 \
		--rw=randwrite --bsrange=4k-96k --size=48M --io_size=24M \
		--verify=crc32c --verify_fatal=1 --randseed=5 --minimal \
		>/tmp/fio.out 2>&1 &
	pid=$!
	while kill -0 $pid 2>/dev/null && [ $cycles -lt 30 ]; do
		dmsetup suspend $DEV || fail "suspend failed"
		dmsetup resume $DEV || fail "resume failed"
		cycles=$((cycles + 1))
	done
	wait $pid
	status=$?
	[ $status -eq 0 ] || { cat /tmp/fio.out; fail "fio failed ($status)"; }
	say "$cycles suspend/resume cycles under I/O"
	[ $cycles -gt 0 ] || fail "fio ended before the first suspend"
	expect_eq "$(sb_field $IMG flags)" 0 "clean flag while resumed"
	fvd_down
}

test_ext4_mkfs_mount_fsck() {
	local mnt=/tmp/mnt
	modprobe ext4 || fail "modprobe ext4"
	$FVD_CREATE --force --origin $ORIGIN $IMG >/dev/null
	fvd_up $IMG $IMG $ORIGIN
	mkfs.ext4 -q -F $MAPPER || fail "mkfs.ext4"
	mkdir -p $mnt
	mount $MAPPER $mnt || fail "mount"
	$FVDIO fill $mnt/big 12582912 --seed 3
	for i in $(seq 1 200); do
		echo "file $i $RANDOM" >"$mnt/small-$i"
	done
	mkdir -p $mnt/dir/sub && cp $mnt/small-1* $mnt/dir/sub/
	(cd $mnt && find . -type f -print0 | sort -z | xargs -0 sha256sum) >/tmp/sums
	umount $mnt || fail "umount"
	e2fsck -fn $MAPPER || fail "e2fsck found errors"
	fvd_down
	fvd_up $IMG $IMG $ORIGIN
	e2fsck -fn $MAPPER || fail "e2fsck found errors after reload"
	mount -o ro $MAPPER $mnt || fail "mount after reload"
	(cd $mnt && sha256sum --quiet -c /tmp/sums) || fail "file contents changed"
	umount $mnt
	fvd_down
}

# fio jobs writing interleaved slots of the same absent blocks at once.
fio_same_blocks_case() {
	local jobs=$1 slot=$2 len=$((16 * MB)) period=65536 i args=()
	$FVD_CREATE --force --origin $ORIGIN $IMG >/dev/null
	fvd_up $IMG $IMG $ORIGIN
	for ((i = 0; i < jobs; i++)); do
		args+=(--name="slot$i" --offset=$((2 * i * slot)))
	done
	local odd="" fio_pid rounds=0
	for ((i = 0; i < jobs; i++)); do odd+="${odd:+,}$((2 * i + 1))"; done
	rm -f /tmp/slots.bad
	fio --filename=$MAPPER --direct=1 --ioengine=libaio --iodepth=8 \
		--rw=write:$((period - slot)) --bs=$slot --size=$len \
		--verify=crc32c --verify_fatal=1 --do_verify=1 --randseed=42 \
		--minimal "${args[@]}" >/tmp/fio.out 2>&1 &
	fio_pid=$!
	# Meanwhile, read the odd slots, which are never written: their blocks
	# are copied on read while the writes land next to them.
	while kill -0 $fio_pid 2>/dev/null; do
		$FVDIO slots $MAPPER $ORIGIN --period $period --slot-size $slot \
			--slots "$odd" --length $len >/dev/null || { touch /tmp/slots.bad; break; }
		rounds=$((rounds + 1))
	done
	wait $fio_pid || { cat /tmp/fio.out; fail "fio verify failed"; }
	[ ! -e /tmp/slots.bad ] || fail "origin data lost next to a write, while copying on read"
	say "$rounds read rounds during the writes, $(status_field 13) bytes copied on read"
	# The odd slots were never written: they must still hold the origin.
	$FVDIO slots $MAPPER $ORIGIN --period $period --slot-size $slot \
		--slots "$odd" --length $len || fail "origin data lost next to a write"
	fvd_down
	fvd_up $IMG $IMG $ORIGIN
	fio --filename=$MAPPER --direct=1 --ioengine=libaio --iodepth=8 \
		--rw=write:$((period - slot)) --bs=$slot --size=$len \
		--verify=crc32c --verify_fatal=1 --verify_only --randseed=42 \
		--minimal "${args[@]}" >/tmp/fio.out 2>&1 ||
		{ cat /tmp/fio.out; fail "fio verify after reload failed"; }
	fvd_down
}

test_fio_concurrent_writes_same_blocks() {
	fio_same_blocks_case 4 8192
}

test_fio_concurrent_writes_same_blocks_4k() {
	fio_same_blocks_case 8 4096
}

test_no_origin_reads_zeroes() {
	local size=$((40 * MB))
	$FVD_CREATE --force --size $size $IMG >/dev/null
	# stale data on the image's data area must never show through
	dd if=$ORIGIN of=$IMG bs=1M seek=17 count=40 conv=notrunc status=none
	$FVD_CREATE --force --size $size $IMG >/dev/null
	fvd_up $IMG $IMG -
	$FVDIO zeroes $MAPPER 0 $size || fail "unwritten space is not zero"
	head -c 3000 /dev/urandom >/tmp/piece
	truncate -s 3072 /tmp/piece
	dd if=/tmp/piece of=$MAPPER bs=512 seek=$((100 * 128 + 3)) oflag=direct \
		conv=notrunc status=none || fail "write"
	$FVDIO compare /tmp/piece $MAPPER --offset-b $(((100 * 128 + 3) * 512)) ||
		fail "written data differs"
	$FVDIO zeroes $MAPPER $((100 * 65536)) 1536 || fail "block head not zero"
	$FVDIO zeroes $MAPPER $((100 * 65536 + 1536 + 3072)) $((65536 - 4608)) ||
		fail "block tail not zero"
	expect_eq "$(local_blocks)" 1 "local blocks"
	fvd_down
}

test_origin_smaller_than_virtual_size() {
	local size=$((48 * MB)) small
	small=$(bytes $SMALL)
	$FVD_CREATE --force --origin $SMALL --size $size $IMG >/dev/null
	fvd_up $IMG $IMG $SMALL
	$FVDIO compare $SMALL $MAPPER || fail "origin part differs"
	$FVDIO zeroes $MAPPER "$small" $((size - small)) || fail "past the origin not zero"
	cp $SMALL /tmp/ref && truncate -s $size /tmp/ref
	# writes clustered around the end of the origin, then everywhere
	$FVDIO randwrite $MAPPER /tmp/ref --seed 5 --count 80 \
		--start $(((small / MB - 1) * MB)) --end $(((small / MB + 2) * MB)) ||
		fail "writes near the origin end failed"
	$FVDIO randwrite $MAPPER /tmp/ref --seed 6 --count 80 || fail "writes failed"
	$FVDIO compare $MAPPER /tmp/ref || fail "device differs from the reference"
	fvd_down
	fvd_up $IMG $IMG $SMALL
	$FVDIO compare $MAPPER /tmp/ref || fail "differs after reload"
	fvd_down
	rm -f /tmp/ref
}

# fvd-create never formats storage the origin lives on, however it is
# reached, and no option overrides that: a device-mapper device over the
# origin, a partition of it, the disk a partition origin is on; nor a data
# device that overlaps the image.  Devices that share a disk without
# sharing sectors (LVs of one volume group, partitions of one disk) are
# fine.  A disk something holds (a table, a mount) is refused as in use.
test_fvd_create_refuses_origin_storage() {
	local half quarter out
	half=$(($(sectors $SCRATCH) / 2))
	quarter=$((half / 2))
	refuse() {	# refuse MESSAGE ARGS...
		local message=$1
		shift
		if out=$($FVD_CREATE --force "$@" 2>&1); then
			fail "fvd-create $* formatted it: $out"
		fi
		grep -qF -- "$message" <<<"$out" || fail "fvd-create $*: $out (want: $message)"
		say "refused: $out"
	}
	dmsetup create fvdlin1 --table "0 $(sectors $ORIGIN) linear $ORIGIN 0"
	dmsetup create fvdlin2 --table "0 2048 linear $ORIGIN 1024"
	refuse "image /dev/mapper/fvdlin1 and origin $ORIGIN share storage (sectors 0-$(($(sectors $ORIGIN) - 1)) of vda" \
		--origin $ORIGIN /dev/mapper/fvdlin1
	refuse "data device /dev/mapper/fvdlin2 and origin /dev/mapper/fvdlin1 share storage (sectors 1024-3071 of vda" \
		--origin /dev/mapper/fvdlin1 --data-dev /dev/mapper/fvdlin2 $IMG
	# the origin's own disk, which the tables hold
	refuse "image $ORIGIN is in use (mounted, or held by" --origin /dev/mapper/fvdlin1 $ORIGIN
	dmsetup remove fvdlin1 fvdlin2

	# Two halves of one disk, as two LVs of a volume group, and a third
	# across the middle.
	dmsetup create fvdlin1 --table "0 $half linear $SCRATCH 0"
	dmsetup create fvdlin2 --table "0 $half linear $SCRATCH $half"
	dmsetup create fvdlin3 --table "0 $half linear $SCRATCH $quarter"
	out=$($FVD_CREATE --force --compact --journal-size 1M --origin /dev/mapper/fvdlin1 \
		/dev/mapper/fvdlin2 2>&1) || fail "the other half of the disk refused: $out"
	refuse "image /dev/mapper/fvdlin3 and origin /dev/mapper/fvdlin1 share storage (sectors $quarter-$((half - 1)) of vde" \
		--origin /dev/mapper/fvdlin1 /dev/mapper/fvdlin3
	refuse "data device /dev/mapper/fvdlin3 and image /dev/mapper/fvdlin2 share storage" \
		--origin $SMALL --data-dev /dev/mapper/fvdlin3 /dev/mapper/fvdlin2
	dmsetup remove fvdlin1 fvdlin2 fvdlin3

	# The same two halves and middle over a dm-delay device, which the tool
	# does not follow sector by sector (as md): compared by its own sectors.
	modprobe dm-delay || fail "modprobe dm-delay"
	dmsetup create fvdslow --table "0 $(sectors $SCRATCH) delay $SCRATCH 0 0"
	dmsetup create fvdlin1 --table "0 $half linear /dev/mapper/fvdslow 0"
	dmsetup create fvdlin2 --table "0 $half linear /dev/mapper/fvdslow $half"
	dmsetup create fvdlin3 --table "0 $half linear /dev/mapper/fvdslow $quarter"
	out=$($FVD_CREATE --force --compact --journal-size 1M --origin /dev/mapper/fvdlin1 \
		/dev/mapper/fvdlin2 2>&1) || fail "the other half of the delay device refused: $out"
	refuse "image /dev/mapper/fvdlin3 and origin /dev/mapper/fvdlin1 share storage (sectors $quarter-$((half - 1)) of dm-" \
		--origin /dev/mapper/fvdlin1 /dev/mapper/fvdlin3
	dmsetup remove fvdlin1 fvdlin2 fvdlin3 fvdslow

	# Partitions written here: 1 of 4 MiB from sector 2048, 2 of 24 MiB after it.
	trap 'dd if=/dev/zero of=$SCRATCH bs=512 count=1 oflag=direct status=none; blockdev --rereadpt $SCRATCH' EXIT
	python3 -c '
import struct, sys
mbr = bytearray(512)
for i, (start, size) in enumerate(((2048, 8192), (10240, 49152))):
    mbr[446 + 16 * i:462 + 16 * i] = struct.pack("<B3sB3sII", 0, bytes(3), 0x83, bytes(3), start, size)
mbr[510:] = b"\x55\xaa"
with open(sys.argv[1], "r+b") as f:
    f.write(mbr)' $SCRATCH
	blockdev --rereadpt $SCRATCH
	[ -b ${SCRATCH}1 ] && [ -b ${SCRATCH}2 ] || fail "no partitions ${SCRATCH}1 and ${SCRATCH}2"
	dd if=$SMALL of=${SCRATCH}1 bs=1M count=4 oflag=direct status=none
	refuse "image $SCRATCH and origin ${SCRATCH}1 share storage (sectors 2048-10239 of vde" \
		--origin ${SCRATCH}1 $SCRATCH
	refuse "image ${SCRATCH}1 and origin $SCRATCH share storage" --origin $SCRATCH ${SCRATCH}1
	out=$($FVD_CREATE --force --journal-size 1M --origin ${SCRATCH}1 ${SCRATCH}2 2>&1) ||
		fail "the disk's other partition refused: $out"
	cmp -n $((4 * MB)) ${SCRATCH}1 $SMALL || fail "the partition origin changed"
}

test_table_and_status_lines() {
	local table maj_min
	$FVD_CREATE --force --origin $ORIGIN $IMG >/dev/null
	fvd_up $IMG $IMG $ORIGIN
	table=$(dmsetup table $DEV)
	maj_min() { printf '%d:%d' "$(stat -c 0x%t "$1")" "$(stat -c 0x%T "$1")"; }
	expect_eq "$table" "0 131072 fvd $(maj_min $IMG) $(maj_min $IMG) $(maj_min $ORIGIN) 1 no_prefetch" "table line"
	# "<start> <length> fvd" and the fields fvd-status.h names
	expect_eq "$(dmsetup status $DEV | wc -w)" \
		$((3 + $(grep -c '^	\[FVD_ST_[A-Z_]*\] = "' $SRC/dm-fvd/fvd-status.h))) "status word count"
	expect_eq "$(prefetch_cause)" no_prefetch "prefetch cause"
	expect_eq "$(status_field 2)" 128 "block size in sectors"
	fvd_down
	# read_only feature: reads work, writes fail, the image is not touched
	dd if=$IMG of=/tmp/img.before bs=1M count=32 status=none
	fvd_up $IMG $IMG $ORIGIN read_only
	expect_eq "$(dmsetup table $DEV | awk '{print $7, $8, $9}')" "2 read_only no_prefetch" "feature in table"
	$FVDIO compare $MAPPER $ORIGIN || fail "read_only read differs"
	if dd if=/dev/zero of=$MAPPER bs=4096 count=1 oflag=direct status=none 2>/dev/null; then
		fail "write to a read_only target succeeded"
	fi
	fvd_down
	cmp -n $((32 * MB)) /tmp/img.before $IMG || fail "read_only load changed the image"
	rm -f /tmp/img.before
}

# expect_rejected NAME EXPECTED-MESSAGE TABLE
expect_rejected() {
	# keep what the kernel said so far for the runner's BUG/WARNING check
	dmesg -c >>/tmp/kernel-log.saved
	if dmsetup create fvdbad --table "$3" 2>/dev/null; then
		dmsetup remove fvdbad
		fail "$1: table accepted: $3"
	fi
	dmsetup remove fvdbad >/dev/null 2>&1 || true
	dmesg | grep -qF "$2" || { dmesg; fail "$1: no '$2' in the kernel log"; }
	say "rejected: $1"
	REJECTED=$((REJECTED + 1))
}

# sb_rejected NAME EXPECTED-MESSAGE [--keep-csum] FIELD=VALUE...: a fresh
# image with superblock fields rewritten must be refused
sb_rejected() {
	local name=$1 message=$2 keep=""
	shift 2
	if [ "$1" = --keep-csum ]; then
		keep=$1
		shift
	fi
	$FVD_CREATE --force --origin $ORIGIN $IMG >/dev/null
	$SBEDIT $keep $IMG "$@" || fail "fvd-sbedit $*"
	expect_rejected "$name" "$message" "0 $(sectors $ORIGIN) fvd $IMG $IMG $ORIGIN"
}

test_malformed_tables_rejected() {
	local n v
	REJECTED=0
	$FVD_CREATE --force --origin $ORIGIN $IMG >/dev/null
	n=$(sb_field $IMG virtual_sectors)
	v="0 $n fvd"
	expect_rejected "no arguments" "Not enough arguments" "$v"
	expect_rejected "two arguments" "Not enough arguments" "$v $IMG $IMG"
	expect_rejected "wrong length" "the table's length is $((n - 8)) sectors, the image's virtual size $n: give $n" \
		"0 $((n - 8)) fvd $IMG $IMG $ORIGIN"
	expect_rejected "bad metadata device" "Error opening metadata device" "$v /dev/nonexistent $IMG $ORIGIN"
	expect_rejected "bad data device" "Error opening data device" "$v $IMG /dev/nonexistent $ORIGIN"
	expect_rejected "bad origin device" "Error opening origin device" "$v $IMG $IMG /dev/nonexistent"
	expect_rejected "feature count too big" "Invalid number of feature arguments" "$v $IMG $IMG $ORIGIN 2 read_only"
	expect_rejected "feature count not a number" "Invalid number of feature arguments" "$v $IMG $IMG $ORIGIN x"
	expect_rejected "unknown feature" "feature argument 'frobnicate' is unknown" "$v $IMG $IMG $ORIGIN 1 frobnicate"
	expect_rejected "space feature on a full-size image" "Space feature arguments need a compact image" \
		"$v $IMG $IMG $ORIGIN 1 error_if_no_space"
	expect_rejected "low_water_mark without a value" "feature argument 'low_water_mark' needs a value" \
		"$v $IMG $IMG $ORIGIN 1 low_water_mark"
	expect_rejected "trailing argument" "Unexpected arguments" "$v $IMG $IMG $ORIGIN 0 extra"
	expect_rejected "origin missing" "needs its origin device" "$v $IMG $IMG -"
	expect_rejected "origin of the wrong size" \
		"origin device $SMALL has $(sectors $SMALL) sectors, the image was made over an origin of $(sectors $ORIGIN)" \
		"$v $IMG $IMG $SMALL"
	expect_rejected "origin is the image" "Origin device must differ" "$v $IMG $IMG $IMG"

	dmsetup create fvdmeta --table "0 2048 linear $IMG 0" || fail "linear"
	expect_rejected "metadata device cut short" \
		"metadata device /dev/mapper/fvdmeta has 2048 sectors, the image's metadata needs $(metadata_end $IMG)" \
		"$v /dev/mapper/fvdmeta $IMG $ORIGIN"
	dmsetup remove fvdmeta

	$FVD_CREATE --force --size 64M $IMG >/dev/null
	expect_rejected "origin given to an image without one" "Image has no origin" "$v $IMG $IMG $ORIGIN"

	$FVD_CREATE --force --origin $ORIGIN --data-dev $DATA $IMG >/dev/null
	expect_rejected "data on a separate device" "keeps its data on a separate device" "$v $IMG $IMG $ORIGIN"
	expect_rejected "data device too small" "data device $SMALL has $(sectors $SMALL) sectors, the image's data needs" \
		"$v $IMG $SMALL $ORIGIN"

	sb_rejected "corrupted field, stale crc" "checksum mismatch" --keep-csum virtual_sectors=$((n + 8))
	sb_rejected "wrong crc" "checksum mismatch" csum=12345
	sb_rejected "unknown incompatible feature" "unknown incompatible feature" incompat_features=0x100
	sb_rejected "future format version" "unsupported format version" version=2
	sb_rejected "block size not a power of two" "invalid block size" block_sectors=100
	sb_rejected "bitmap over the superblock" "invalid bitmap region" bitmap_offset=0
	sb_rejected "journal over the bitmap" "metadata regions overlap" journal_offset=16
	sb_rejected "journal over the backup superblock" "invalid journal region" journal_offset=8
	sb_rejected "unknown ro-compat feature, writable" "load it read_only" ro_compat_features=0x101
	dmsetup create fvdbad --table "$v $IMG $IMG $ORIGIN 1 read_only" ||
		fail "unknown ro-compat feature refused read_only"
	dmsetup remove fvdbad

	dd if=/dev/zero of=$IMG bs=4096 count=1 conv=notrunc status=none
	expect_rejected "zeroed superblock" "bad magic" "$v $IMG $IMG $ORIGIN"
	dd if=$ORIGIN of=$IMG bs=1M count=1 conv=notrunc status=none
	expect_rejected "random superblock" "bad magic" "$v $IMG $IMG $ORIGIN"

	say "$REJECTED malformed tables rejected"
	[ "$REJECTED" -ge 15 ] || fail "only $REJECTED cases"
}

# A journal write fails, the superblock still takes writes: the target
# goes read-only and records needs_check, which refuses a read-write load
# (a read-only one works) until fvd-check --repair clears it.  Before,
# nothing was recorded: the next load went on as after a crash.  The
# journal fails by the metadata device ending before it: a failing target
# under the journal would fail the device's flushes as well, and with them
# the superblock write.
test_needs_check_persisted() {
	local ev rc REJECTED=0
	$FVD_CREATE --force --origin $ORIGIN --data-dev $DATA $SCRATCH >/dev/null
	meta_linear_up
	fvd_up /dev/mapper/fvdmeta $DATA $ORIGIN
	expect_eq "$(status_field 21)" - "needs_check field of a healthy image"
	cp $ORIGIN /tmp/ref
	head -c 65536 /dev/urandom >/tmp/blk
	dd if=/tmp/blk of=$MAPPER bs=65536 seek=1 count=1 oflag=direct conv=fsync status=none ||
		fail "write block 1"
	dd if=/tmp/blk of=/tmp/ref bs=65536 seek=1 count=1 conv=notrunc status=none
	ev=$(event_nr)
	dmsetup suspend --nolockfs --noflush fvdmeta &&
		dmsetup reload fvdmeta --table "0 $(sb_field $SCRATCH journal_offset) linear $SCRATCH 0" &&
		dmsetup resume fvdmeta || fail "cannot cut fvdmeta short"
	if dd if=/tmp/blk of=$MAPPER bs=65536 seek=7 count=1 oflag=direct conv=fsync status=none 2>/dev/null; then
		fail "a write needing a journal commit succeeded"
	fi
	expect_eq "$(status_field 1)" ro "metadata mode after a failed journal write"
	expect_eq "$(status_field 21)" needs_check "status after the failure"
	[ "$(event_nr)" -gt "$ev" ] || fail "no dm event raised"
	fvd_down
	dmsetup remove fvdmeta
	[ $(( $(sb_field $SCRATCH flags) & 4 )) -eq 4 ] || fail "needs_check not on disk: flags $(sb_field $SCRATCH flags)"
	[ $(( $($SBEDIT --backup $SCRATCH | sed -n 's/^flags=//p') & 4 )) -eq 4 ] ||
		fail "needs_check not in the backup superblock"
	expect_rejected "read-write load of a needs_check image" \
		"has needs_check set: a metadata error stopped its last use; run fvd-check --repair on it, or load it read_only" \
		"$(fvd_table $SCRATCH $DATA $ORIGIN)"
	# read-only, it shows what was committed: block 1, not block 7
	fvd_up $SCRATCH $DATA $ORIGIN read_only
	expect_eq "$(status_field 21)" needs_check "status of the read-only load"
	$FVDIO compare $MAPPER /tmp/ref || fail "read-only load differs from the committed image"
	fvd_down
	$FVD_CHECK $SCRATCH >/tmp/check.out && rc=0 || rc=$?
	[ $rc -eq 4 ] && grep -q "needs_check is set" /tmp/check.out || { cat /tmp/check.out; fail "fvd-check verdict"; }
	$FVD_CHECK --repair $SCRATCH >/tmp/check.out && rc=0 || rc=$?
	[ $rc -eq 1 ] || { cat /tmp/check.out; fail "fvd-check --repair"; }
	fvd_up $SCRATCH $DATA $ORIGIN
	expect_eq "$(status_field 21)" - "needs_check after the repair"
	$FVDIO compare $MAPPER /tmp/ref || fail "repaired image differs"
	fvd_down
	rm -f /tmp/ref /tmp/blk /tmp/check.out
}

# Every superblock write reaches the backup at sector 8 too: after a run
# with checkpoints the two match; a damaged primary is refused with a word
# on the backup, fvd-check --repair restores it and the data is all there.
# An image made before the backup keeps its bitmap in that block: the
# target must never write a superblock over it.
test_backup_superblock() {
	local f i rc REJECTED=0
	$FVD_CREATE --force --origin $ORIGIN --journal-size 8K $IMG >/dev/null
	fvd_up $IMG $IMG $ORIGIN
	cp $ORIGIN /tmp/ref
	for i in 1 2 3 4 5 6; do
		$FVDIO randwrite $MAPPER /tmp/ref --seed $((50 + i)) --count 40 || fail "writes $i"
	done
	# the load's checkpoint and one at least of a full journal
	[ "$(status_field 9)" -ge 2 ] || fail "no checkpoints (status: $(dmsetup status $DEV))"
	fvd_down
	for f in flags checkpoint_seq virtual_sectors journal_offset; do
		expect_eq "$($SBEDIT --backup $IMG | sed -n "s/^$f=//p")" "$(sb_field $IMG $f)" \
			"backup superblock's $f after a clean shutdown"
	done
	[ "$(sb_field $IMG checkpoint_seq)" -gt 0 ] || fail "no checkpoint on disk"
	$SBEDIT --keep-csum $IMG flags=0
	expect_rejected "damaged primary superblock" \
		"superblock checksum mismatch; the backup superblock at sector 8 is valid: fvd-check --repair restores the primary from it" \
		"$(fvd_table $IMG $IMG $ORIGIN)"
	$FVD_CHECK --repair $IMG >/tmp/check.out && rc=0 || rc=$?
	[ $rc -eq 1 ] && grep -q "superblock restored from the backup" /tmp/check.out ||
		{ cat /tmp/check.out; fail "repair from the backup"; }
	fvd_up $IMG $IMG $ORIGIN
	$FVDIO compare $MAPPER /tmp/ref || fail "data differs after the restore"
	fvd_down

	# the 1.4 layout: bitmap in block 1, no backup
	$FVD_CREATE --force --origin $ORIGIN --journal-size 8K $IMG >/dev/null
	dd if=/dev/zero of=$IMG bs=4K seek=1 count=1 conv=notrunc status=none
	$SBEDIT $IMG ro_compat_features=0 bitmap_offset=8 || fail "sbedit"
	fvd_up $IMG $IMG $ORIGIN
	cp $ORIGIN /tmp/ref
	$FVDIO randwrite $MAPPER /tmp/ref --seed 60 --count 40 || fail "writes"
	fvd_down
	if $SBEDIT --backup $IMG 2>/dev/null | grep -q "^magic=$(sb_field $IMG magic)$"; then
		fail "a superblock was written over the bitmap of an image without a backup"
	fi
	$FVD_CHECK $IMG >/tmp/check.out || { cat /tmp/check.out; fail "old-layout image not clean"; }
	fvd_up $IMG $IMG $ORIGIN
	$FVDIO compare $MAPPER /tmp/ref || fail "old-layout image differs after a reload"
	fvd_down
	rm -f /tmp/ref /tmp/check.out
}

# The image knows its origin: a same-size device with other data (one byte
# in its last MiB) is refused with both fingerprints, loads with
# skip_origin_check; the same data by another path loads; an image without
# the identity (made before it) is checked by size alone.
test_origin_identity_checked() {
	local n msg rc s hint REJECTED=0
	n=$(sectors $ORIGIN)
	$FVD_CREATE --force --origin $ORIGIN $IMG >/tmp/create.out || fail "fvd-create"
	grep -q "fingerprint [0-9a-f]\{8\}" /tmp/create.out || { cat /tmp/create.out; fail "no fingerprint printed"; }
	dd if=$ORIGIN of=$REPLAY bs=1M count=$((n / 2048)) conv=fsync status=none
	printf 'Z' | dd of=$REPLAY bs=1 seek=$((n * 512 - 4000)) conv=notrunc,fsync status=none
	cmp -s -n $((n * 512)) $ORIGIN $REPLAY && fail "the other origin holds the same data"
	dmsetup create fvdother --table "0 $n linear $REPLAY 0" || fail "fvdother"
	dmsetup create fvdsame --table "0 $n linear $ORIGIN 0" || fail "fvdsame"
	msg="origin device /dev/mapper/fvdother is not the image's origin: $n sectors with fingerprint"
	expect_rejected "an origin with other data" "$msg" "$(fvd_table $IMG $IMG /dev/mapper/fvdother)"
	hint=$($FVD_CHECK --dump $IMG | sed -n 's/^  origin identity .*, hint //p')
	[ -n "$hint" ] || fail "no hint in fvd-check --dump"
	dmesg | grep -F "$msg" | grep -qF "the image was made over $n sectors with fingerprint $(sb_field $IMG origin_fingerprint | xargs printf '%08x') ($hint)" ||
		{ dmesg | tail -3; fail "the message lacks the image's identity"; }
	fvd_up $IMG $IMG /dev/mapper/fvdother skip_origin_check
	dmsetup table $DEV | grep -qw skip_origin_check || fail "table line lacks skip_origin_check"
	fvd_down
	fvd_up $IMG $IMG /dev/mapper/fvdsame
	$FVDIO compare $MAPPER $ORIGIN || fail "data through the origin's other path"
	fvd_down
	$FVD_CHECK --origin /dev/mapper/fvdother $IMG >/tmp/check.out && rc=0 || rc=$?
	[ $rc -eq 4 ] && grep -q "is not the image's origin" /tmp/check.out ||
		{ cat /tmp/check.out; fail "fvd-check --origin accepted the other origin"; }
	# a byte in a middle sample is seen as well; one between the samples is
	# not (the fingerprint is documented to cover the edges and 16 samples)
	s=$((n * 8 / 17 / 8 * 8))
	dd if=$ORIGIN of=$REPLAY bs=1M count=$((n / 2048)) conv=fsync status=none
	printf 'Z' | dd of=$REPLAY bs=1 seek=$((s * 512 + 100)) conv=notrunc,fsync status=none
	expect_rejected "other data in a middle sample" "$msg" "$(fvd_table $IMG $IMG /dev/mapper/fvdother)"
	dd if=$ORIGIN of=$REPLAY bs=1M count=$((n / 2048)) conv=fsync status=none
	printf 'Z' | dd of=$REPLAY bs=1 seek=$(((s + 64) * 512)) conv=notrunc,fsync status=none
	fvd_up $IMG $IMG /dev/mapper/fvdother
	fvd_down
	$SBEDIT $IMG compat_features=0 || fail "sbedit"
	fvd_up $IMG $IMG /dev/mapper/fvdother
	fvd_down
	dmsetup remove fvdother
	dmsetup remove fvdsame
	rm -f /tmp/create.out /tmp/check.out
}

# json_get EXPR: EXPR of the JSON document on stdin, as d (python)
json_get() {
	python3 -c 'import json, sys; d = json.load(sys.stdin); v = eval(sys.argv[1]); print("null" if v is None else v)' "$1"
}

# fvdsetup as an administrator uses it: format over an origin, open by the
# origin the image recorded, status while the prefetch runs (a person's
# view with an estimate, JSON naming every field of the status line), stop
# and start, status when done, close; files through loop devices that go
# away with the device; and each refusal with its message.
test_fvdsetup_open_status_close() {
	local json out i rc words
	# one 64 KiB batch per 50 ms at most: the copy takes close to a minute
	delayed_origin 50
	$FVDSETUP format --force --origin /dev/mapper/fvdorigin $IMG >/dev/null || fail "format"
	$FVDSETUP info $IMG | tee /tmp/info.out
	grep -q "recorded as /dev/mapper/fvdorigin" /tmp/info.out || fail "info: no origin path"
	$FVDSETUP open $IMG $DEV --feature prefetch_delay=0 --feature prefetch_batch=64 \
		--feature prefetch_writes=1 --feature prefetch_min_read=0 --feature prefetch_min_write=0 ||
		fail "open"
	[ -b $MAPPER ] || fail "no $MAPPER"
	for ((i = 0; i < 600; i++)); do
		json=$($FVDSETUP status $DEV --json) || fail "status --json"
		[ "$(json_get 'd["prefetch"]["state"]' <<<"$json")" = running ] &&
			[ "$(json_get 'd["prefetch"]["data_kib_s"]' <<<"$json")" -gt 0 ] && break
	done
	[ "$(json_get 'd["prefetch"]["eta_seconds"]' <<<"$json")" != null ] ||
		fail "no estimate while running: $json"
	$FVDSETUP status $DEV | tee /tmp/status.out
	grep -q "^  prefetch      running; .* left$" /tmp/status.out || fail "status while running"
	read -r -a words <<<"$(dmsetup status $DEV)"
	expect_eq "$(json_get 'len(d["fields"])' <<<"$json")" $((${#words[@]} - 3)) \
		"fields named in --json"
	$FVDSETUP prefetch $DEV stop || fail "prefetch stop"
	prefetch_wait stopped
	$FVDSETUP status $DEV | grep -qF "stopped by 'prefetch stop'" || fail "status after stop"
	$FVDSETUP prefetch $DEV start || fail "prefetch start"
	prefetch_wait done
	$FVDSETUP status $DEV | tee /tmp/status.out
	grep -q "local         1024 of 1024 blocks of 64.0 KiB (100.0 %)" /tmp/status.out ||
		fail "status when done"
	json=$($FVDSETUP status $DEV --json)
	expect_eq "$(json_get 'd["needs_check"]' <<<"$json")" False "needs_check in --json"
	expect_eq "$(json_get 'd["prefetch"]["eta_seconds"]' <<<"$json")" null "estimate when done"
	$FVDIO compare $MAPPER $ORIGIN || fail "data differs from the origin"
	$FVDSETUP close $DEV || fail "close"
	dmsetup info $DEV >/dev/null 2>&1 && fail "$DEV still there after close"

	# refusals, over an image that needs its origin again (an all-local one
	# opens without one, whatever --origin says)
	$FVDSETUP format --force --origin /dev/mapper/fvdorigin $IMG >/dev/null || fail "format"
	out=$($FVDSETUP open $IMG $DEV --origin $SMALL 2>&1) && fail "opened over $SMALL"
	grep -q "origin $SMALL has $(bytes $SMALL) bytes, the image was made over one of $(bytes $ORIGIN)" <<<"$out" ||
		fail "wrong-size origin: $out"
	dd if=/dev/zero of=$REPLAY bs=1M count=1 conv=fsync status=none
	out=$($FVDSETUP open $IMG $DEV --origin $REPLAY 2>&1) && fail "opened over $REPLAY"
	grep -q "origin $REPLAY is not the image's origin: fingerprint [0-9a-f]*, the image was made over one with fingerprint $(sb_field $IMG origin_fingerprint | xargs printf '%08x') (/dev/mapper/fvdorigin)" <<<"$out" ||
		fail "other origin: $out"
	dmsetup create fvdlin --table "0 2048 linear $SCRATCH 0" || fail "fvdlin"
	out=$($FVDSETUP close fvdlin 2>&1) && fail "closed a linear device"
	grep -q "fvdlin is not a dm-fvd device" <<<"$out" || fail "close of linear: $out"
	dmsetup remove fvdlin || fail "fvdlin was removed by close"
	$SBEDIT $IMG flags=4 || fail "sbedit"
	out=$($FVDSETUP open $IMG $DEV 2>&1) && fail "opened a needs_check image read-write"
	grep -q "needs checking: a metadata error stopped its last use; run 'fvdsetup repair $IMG' first" <<<"$out" ||
		fail "needs_check: $out"
	$FVDSETUP open $IMG $DEV --read-only || fail "read-only open of a needs_check image"
	dmsetup table $DEV | grep -qw read_only || fail "no read_only in the table"
	$FVDSETUP close $DEV || fail "close"
	$FVDSETUP repair $IMG >/dev/null && rc=0 || rc=$?
	expect_eq $rc 1 "fvdsetup repair exit status"
	dmsetup remove fvdorigin

	$FVDSETUP format --force --origin $ORIGIN --data-dev $DATA $SCRATCH >/dev/null || fail "format"
	out=$($FVDSETUP open $SCRATCH $DEV 2>&1) && fail "opened without the data device"
	grep -q "keeps its data on a separate device: give --data-dev" <<<"$out" || fail "data: $out"
	$FVDSETUP open $SCRATCH $DEV --data-dev $DATA --no-prefetch || fail "open with --data-dev"
	$FVDIO compare $MAPPER $ORIGIN || fail "separate data device: data differs"
	$FVDSETUP close $DEV || fail "close"

	# files: loop devices that go away with the device (a booted system has
	# a static /dev/loop-control that loads the module; the guest has not)
	modprobe loop || fail "modprobe loop"
	rm -f /tmp/fvd-file.img
	$FVDSETUP format --create --size 64M /tmp/fvd-file.img >/dev/null || fail "format a file"
	$FVDSETUP open /tmp/fvd-file.img $DEV || fail "open a file"
	head -c 65536 /dev/urandom >/tmp/blk
	dd if=/tmp/blk of=$MAPPER bs=65536 seek=3 oflag=direct conv=fsync status=none || fail "write"
	$FVDSETUP close $DEV || fail "close"
	[ -z "$(losetup -j /tmp/fvd-file.img)" ] || fail "loop device left: $(losetup -j /tmp/fvd-file.img)"
	$FVDSETUP open /tmp/fvd-file.img $DEV || fail "open the file again"
	dd if=$MAPPER of=/tmp/back bs=65536 skip=3 count=1 iflag=direct status=none
	cmp /tmp/blk /tmp/back || fail "file image lost a write"
	$FVDSETUP close $DEV || fail "close"
	rm -f /tmp/fvd-file.img /tmp/blk /tmp/back /tmp/info.out /tmp/status.out
}

# Boot-style activation: /etc/fvdtab (here $FVDTAB) through the systemd
# generator; its units pass systemd-analyze verify, and the commands they
# run bring the devices up (local-fs first, then the _netdev one) and down.
test_fvdtab_boot_activation() {
	local gen=/tmp/fvdgen unit cmd
	$FVDSETUP format --force --origin $ORIGIN $IMG >/dev/null || fail "format $IMG"
	$FVDSETUP format --force --origin $ORIGIN --data-dev $DATA $SCRATCH >/dev/null ||
		fail "format $SCRATCH"
	cat >/tmp/fvdtab <<-EOT
	# NAME  IMAGE     DATA   ORIGIN   OPTIONS
	vm-a    $IMG      -      -        no-prefetch
	vm-b    $SCRATCH  $DATA  $ORIGIN  _netdev,no-prefetch,feature=prefetch_delay=5
	EOT
	rm -rf $gen
	mkdir -p $gen/normal $gen/early $gen/late
	FVDTAB=/tmp/fvdtab $SRC/tools/fvdsetup-generator $gen/normal $gen/early $gen/late ||
		fail "generator"
	(cd $gen/normal && systemd-analyze verify --man=no ./*.service) || fail "systemd-analyze verify"
	for unit in $gen/normal/local-fs.target.requires/* $gen/normal/remote-fs.target.requires/*; do
		[ -e "$unit" ] || fail "no unit pulled in: $(find $gen/normal)"
		cmd=$(sed -n 's/^ExecStart=//p' "$unit")
		say "boot: $cmd"
		eval "$cmd" || fail "ExecStart of $unit"
	done
	$FVDIO compare /dev/mapper/vm-a $ORIGIN || fail "vm-a differs from the origin"
	$FVDIO compare /dev/mapper/vm-b $ORIGIN || fail "vm-b differs from the origin"
	dmsetup table vm-b | grep -q "prefetch_delay 5" || fail "vm-b lacks its feature: $(dmsetup table vm-b)"
	$FVDSETUP status vm-a >/dev/null || fail "status vm-a"
	for unit in $gen/normal/remote-fs.target.requires/* $gen/normal/local-fs.target.requires/*; do
		cmd=$(sed -n 's/^ExecStop=//p' "$unit")
		say "shutdown: $cmd"
		eval "$cmd" || fail "ExecStop of $unit"
	done
	dmsetup info vm-a >/dev/null 2>&1 && fail "vm-a still there"
	dmsetup info vm-b >/dev/null 2>&1 && fail "vm-b still there"
	$FVD_CHECK $IMG >/dev/null || fail "vm-a not clean after its close"
	rm -rf $gen /tmp/fvdtab
}

# Metadata behind a device whose writes fail: the target must go read-only,
# raise an event, keep local blocks writable, refuse new ones, and fail
# every flush while an acknowledged write is not durable.
test_metadata_write_error_goes_read_only() {
	local ev
	modprobe dm-flakey || fail "modprobe dm-flakey"
	$FVD_CREATE --force --origin $ORIGIN --data-dev $DATA $SCRATCH >/dev/null
	meta_linear_up
	fvd_up /dev/mapper/fvdmeta $DATA $ORIGIN
	cp $ORIGIN /tmp/ref
	# block 0 becomes local and durable
	head -c 65536 /dev/urandom >/tmp/blk
	dd if=/tmp/blk of=$MAPPER bs=65536 count=1 oflag=direct conv=fsync status=none || fail "write"
	dd if=/tmp/blk of=/tmp/ref bs=65536 count=1 conv=notrunc status=none
	ev=$(event_nr)
	meta_replace flakey $SCRATCH 0 0 3600 1 error_writes
	# block 5: its write is acknowledged, the commit its fsync needs fails
	if dd if=/tmp/blk of=$MAPPER bs=65536 seek=5 count=1 oflag=direct conv=fsync status=none 2>/dev/null; then
		fail "a write needing a metadata commit succeeded"
	fi
	dd if=/tmp/blk of=/tmp/ref bs=65536 seek=5 count=1 conv=notrunc status=none
	expect_eq "$(status_field 1)" ro "metadata mode after a failed commit"
	[ "$(event_nr)" -gt "$ev" ] || fail "no dm event raised"
	# local blocks still take writes, an absent one does not
	head -c 4096 /dev/urandom >/tmp/blk4
	dd if=/tmp/blk4 of=$MAPPER bs=4096 seek=3 count=1 oflag=direct status=none ||
		fail "write to a local block failed in read-only mode"
	dd if=/tmp/blk4 of=/tmp/ref bs=4096 seek=3 count=1 conv=notrunc status=none
	if dd if=/tmp/blk4 of=$MAPPER bs=4096 seek=4000 count=1 oflag=direct status=none 2>/dev/null; then
		fail "write to an absent block succeeded in read-only mode"
	fi
	# block 5 cannot become durable: every flush says so
	if dd if=/dev/null of=$MAPPER conv=fsync,notrunc status=none 2>/dev/null; then
		fail "a flush succeeded while block 5 is not durable"
	fi
	# Reads see every acknowledged write.
	$FVDIO compare $MAPPER /tmp/ref || fail "reads differ from the acknowledged writes"
	dmsetup status $DEV
	fvd_down
	# What is on disk: block 0, not block 5.
	meta_replace linear $SCRATCH 0
	fvd_up /dev/mapper/fvdmeta $DATA $ORIGIN
	dd if=$ORIGIN of=/tmp/ref bs=65536 skip=5 seek=5 count=1 conv=notrunc status=none
	$FVDIO compare $MAPPER /tmp/ref || fail "reads differ from the committed image after a reload"
	fvd_down
	dmsetup remove fvdmeta
	rm -f /tmp/ref /tmp/blk /tmp/blk4
}

# A write acknowledged while the target handles a failed commit (its
# metadata reads slowed down, so the handling takes seconds) must read
# back, and no later flush may claim it durable: before, the target rolled
# back to the committed bitmap, dropping the write, and then passed flushes.
test_metadata_error_keeps_acknowledged_writes() {
	local flusher
	modprobe dm-flakey || fail "modprobe dm-flakey"
	modprobe dm-delay || fail "modprobe dm-delay"
	$FVD_CREATE --force --origin $ORIGIN --data-dev $DATA $SCRATCH >/dev/null
	meta_linear_up
	fvd_up /dev/mapper/fvdmeta $DATA $ORIGIN
	cp $ORIGIN /tmp/ref
	head -c 65536 /dev/urandom >/tmp/blk
	dd if=/tmp/blk of=$MAPPER bs=65536 seek=2 count=1 oflag=direct conv=fsync status=none ||
		fail "write block 2"
	dd if=/tmp/blk of=/tmp/ref bs=65536 seek=2 count=1 conv=notrunc status=none
	# metadata writes fail, its reads take 3 s each
	dmsetup create fvdslow --table "0 $(sectors $SCRATCH) delay $SCRATCH 0 3000 $SCRATCH 0 0" ||
		fail "fvdslow"
	meta_replace flakey /dev/mapper/fvdslow 0 0 3600 1 error_writes
	# block 5: local, its commit fails (the flush's, or the timer's before)
	dd if=/tmp/blk of=$MAPPER bs=65536 seek=5 count=1 oflag=direct status=none || fail "write block 5"
	dd if=/tmp/blk of=/tmp/ref bs=65536 seek=5 count=1 conv=notrunc status=none
	dd if=/dev/null of=$MAPPER conv=fsync,notrunc status=none 2>/dev/null &
	flusher=$!
	# meanwhile, a rewrite of the uncommitted block 5
	head -c 65536 /dev/urandom >/tmp/blk2
	dd if=/tmp/blk2 of=$MAPPER bs=65536 seek=5 count=1 oflag=direct status=none ||
		fail "rewrite block 5"
	dd if=/tmp/blk2 of=/tmp/ref bs=65536 seek=5 count=1 conv=notrunc status=none
	if wait $flusher; then
		fail "a flush succeeded without metadata writes"
	fi
	expect_eq "$(status_field 1)" ro "metadata mode"
	if dd if=/dev/null of=$MAPPER conv=fsync,notrunc status=none 2>/dev/null; then
		fail "a later flush succeeded with block 5 not durable"
	fi
	$FVDIO compare $MAPPER /tmp/ref || fail "an acknowledged write does not read back"
	fvd_down
	dmsetup remove fvdmeta
	dmsetup remove fvdslow
	rm -f /tmp/ref /tmp/blk /tmp/blk2
}

# Metadata device gone entirely: fail mode, writes refused, reads served.
test_metadata_lost_goes_fail_mode() {
	$FVD_CREATE --force --origin $ORIGIN --data-dev $DATA $SCRATCH >/dev/null
	meta_linear_up
	fvd_up /dev/mapper/fvdmeta $DATA $ORIGIN
	head -c 65536 /dev/urandom >/tmp/blk
	dd if=/tmp/blk of=$MAPPER bs=65536 seek=2 count=1 oflag=direct conv=fsync status=none || fail "write"
	meta_replace error
	if dd if=/tmp/blk of=$MAPPER bs=65536 seek=9 count=1 oflag=direct conv=fsync status=none 2>/dev/null; then
		fail "write needing a commit succeeded without metadata"
	fi
	expect_eq "$(status_field 1)" fail "metadata mode"
	if dd if=/tmp/blk of=$MAPPER bs=65536 seek=2 count=1 oflag=direct status=none 2>/dev/null; then
		fail "write succeeded in fail mode"
	fi
	dd if=$MAPPER of=/tmp/back bs=65536 skip=2 count=1 iflag=direct status=none || fail "read in fail mode"
	cmp /tmp/blk /tmp/back || fail "local block reads wrong in fail mode"
	$FVDIO compare $MAPPER $ORIGIN --length $((2 * 65536)) || fail "origin reads wrong in fail mode"
	fvd_down
	dmsetup remove fvdmeta
	rm -f /tmp/blk /tmp/back
}

# A flush must make acknowledged writes survive without a clean shutdown:
# after fsync, the metadata device is cut off so that the removal cannot
# write anything, then reconnected.
test_flushed_writes_survive_without_clean_shutdown() {
	$FVD_CREATE --force --origin $ORIGIN --data-dev $DATA $SCRATCH >/dev/null
	meta_linear_up
	fvd_up /dev/mapper/fvdmeta $DATA $ORIGIN
	cp $ORIGIN /tmp/ref
	$FVDIO randwrite $MAPPER /tmp/ref --seed 9 --count 120 || fail "writes"
	sync
	meta_replace error
	dmsetup remove $DEV || fail "remove"
	expect_eq "$(sb_field $SCRATCH flags)" 0 "clean flag (the shutdown must not have been recorded)"
	dmsetup remove fvdmeta
	# The commits are in the journal only: the home bitmap is still empty.
	expect_eq "$(home_bitmap_bytes $SCRATCH)" 0 "non-zero home bitmap bytes before the replay"
	$FVD_CHECK $SCRATCH >/tmp/check.out || { cat /tmp/check.out; fail "fvd-check"; }
	cat /tmp/check.out
	grep -q "journal: [1-9][0-9]* commits\? " /tmp/check.out || fail "no journal commits to replay"
	fvd_up $SCRATCH $DATA $ORIGIN
	dmesg | grep -q "fvd: [0-9:]*: replayed [1-9][0-9]* journal commits" ||
		{ dmesg | tail -5; fail "the load did not report a replay"; }
	$FVDIO compare $MAPPER /tmp/ref || fail "flushed writes lost"
	fvd_down
	$FVD_CHECK $SCRATCH | grep -q "journal: no commits after checkpoint" || fail "journal not checkpointed"
	rm -f /tmp/ref /tmp/check.out
}

# A commit of many new blocks is one journal write, and the bitmap at home
# is only written by checkpoints: here the load's and the clean shutdown's.
test_journal_commit_is_one_write() {
	local commits jwrites jblocks ckpts local_blocks
	$FVD_CREATE --force --origin $ORIGIN --data-dev $DATA $SCRATCH >/dev/null
	fvd_up $SCRATCH $DATA $ORIGIN
	expect_eq "$(status_field 9)" 1 "checkpoints after the load"
	cp $ORIGIN /tmp/ref
	$FVDIO randwrite $MAPPER /tmp/ref --seed 21 --count 300 --max-bytes 65536 || fail "writes"
	commits=$(status_field 6)
	jwrites=$(status_field 7)
	jblocks=$(status_field 8)
	ckpts=$(status_field 9)
	local_blocks=$(local_blocks)
	say "$local_blocks blocks made local in $commits commits: $jwrites journal writes of $jblocks blocks, $ckpts checkpoints"
	[ "$commits" -ge 1 ] || fail "no commit"
	expect_eq "$jwrites" "$commits" "journal writes (one per commit)"
	expect_eq "$ckpts" 1 "checkpoints while running"
	[ "$jblocks" -le $((commits * 2)) ] || fail "more than two journal blocks per commit"
	expect_eq "$(home_bitmap_bytes $SCRATCH)" 0 "non-zero home bitmap bytes while running"
	fvd_down
	[ "$(home_bitmap_bytes $SCRATCH)" -gt 0 ] || fail "the clean shutdown did not write the bitmap home"
	$FVD_CHECK $SCRATCH >/tmp/check.out || { cat /tmp/check.out; fail "fvd-check"; }
	grep -q "$local_blocks/1024 blocks local, clean" /tmp/check.out ||
		{ cat /tmp/check.out; fail "fvd-check disagrees with the target"; }
	fvd_up $SCRATCH $DATA $ORIGIN
	expect_eq "$(local_blocks)" "$local_blocks" "local blocks after reload"
	$FVDIO compare $MAPPER /tmp/ref || fail "data after reload"
	fvd_down
	rm -f /tmp/ref /tmp/check.out
}

# fio random 4K writes with an fsync every 32 writes, then a verify pass:
# prints the journal cost of the commits it caused.  Every commit is one
# journal write unless it was a checkpoint, and carries few journal blocks.
test_journal_writes_per_commit_fio() {
	local commits jwrites jblocks ckpts
	$FVD_CREATE --force --origin $ORIGIN $IMG >/dev/null
	fvd_up $IMG $IMG $ORIGIN
	fio --name=jr --filename=$MAPPER --direct=1 --ioengine=libaio --iodepth=16 \
		--rw=randwrite --bs=4k --size=$((64 * MB)) --io_size=$((16 * MB)) \
		--fsync=32 --randseed=3 --verify=crc32c --verify_fatal=1 --verify_state_save=0 \
		--output=/tmp/fio.out >/dev/null || { cat /tmp/fio.out; fail "fio"; }
	commits=$(status_field 6)
	jwrites=$(status_field 7)
	jblocks=$(status_field 8)
	ckpts=$(status_field 9)
	say "fio 4K randwrite, fsync every 32 writes: $(local_blocks) blocks local;" \
		"$commits commits, $jwrites journal writes ($jblocks blocks)," \
		"$((ckpts - 1)) checkpoints besides the load's;" \
		"journal writes per commit: $(awk -v w="$jwrites" -v c="$commits" 'BEGIN { printf "%.2f", w / c }')," \
		"blocks per journal write: $(awk -v b="$jblocks" -v w="$jwrites" 'BEGIN { printf "%.2f", b / w }')"
	[ "$commits" -gt 10 ] || fail "too few commits to measure"
	[ $((jwrites + ckpts - 1)) -ge "$commits" ] || fail "a commit wrote neither journal nor checkpoint"
	[ "$jwrites" -le "$commits" ] || fail "more journal writes than commits"
	[ "$jblocks" -le "$((jwrites * 2))" ] || fail "more than two journal blocks per write"
	fvd_down
	$FVD_CHECK $IMG >/dev/null || fail "fvd-check after fio"
	rm -f /tmp/fio.out
}

# A journal of two blocks fills at almost every commit: commits become
# checkpoints, and nothing is lost across them or across a crash.
test_small_journal_checkpoints() {
	local i
	$FVD_CREATE --force --origin $ORIGIN --data-dev $DATA --journal-size 8K $SCRATCH >/dev/null
	meta_linear_up
	fvd_up /dev/mapper/fvdmeta $DATA $ORIGIN
	cp $ORIGIN /tmp/ref
	for i in 1 2 3 4 5 6; do
		$FVDIO randwrite $MAPPER /tmp/ref --seed $((30 + i)) --count 40 || fail "writes $i"
	done
	say "status: $(dmsetup status $DEV)"
	[ "$(status_field 9)" -ge 3 ] || fail "the full journal did not force checkpoints"
	meta_replace error
	dmsetup remove $DEV || fail "remove"
	dmsetup remove fvdmeta
	$FVD_CHECK $SCRATCH || fail "fvd-check after the crash"
	fvd_up $SCRATCH $DATA $ORIGIN
	$FVDIO compare $MAPPER /tmp/ref || fail "flushed writes lost"
	fvd_down
	rm -f /tmp/ref
}

# md5 of the metadata of image $1 (superblock to the end of its last region)
metadata_sum() {
	dd if="$1" bs=512 iflag=direct status=none count=$(metadata_end "$1") |
		md5sum | cut -d' ' -f1
}

# A journal damaged in the middle (valid commits follow the damaged one):
# a read-write load is refused with a message and the image is left as it
# was; a read-only load serves what precedes the damage; fvd-check --repair
# drops the later commits, after which the image loads.  Before, the load
# replayed up to the damage, then checkpointed past it: the later,
# acknowledged commits were gone for good.
test_journal_damage_refuses_load() {
	local i jblock sum
	$FVD_CREATE --force --origin $ORIGIN --data-dev $DATA $SCRATCH >/dev/null
	meta_linear_up
	fvd_up /dev/mapper/fvdmeta $DATA $ORIGIN
	cp $ORIGIN /tmp/ref
	head -c 65536 /dev/urandom >/tmp/blk
	# four commits, one journal block each
	for i in 0 1 2 3; do
		dd if=/tmp/blk of=$MAPPER bs=64K seek=$((i * 10)) count=1 oflag=direct conv=fsync \
			status=none || fail "write $i"
	done
	expect_eq "$(status_field 7)" 4 "journal writes"
	meta_replace error
	dmsetup remove $DEV || fail "remove"
	dmsetup remove fvdmeta
	# the second commit's block
	jblock=$(( $(sb_field $SCRATCH journal_offset) * 512 + 4096 ))
	printf '\377' | dd of=$SCRATCH bs=1 seek=$((jblock + 100)) conv=notrunc status=none
	sum=$(metadata_sum $SCRATCH)
	if dmsetup create $DEV --table "$(fvd_table $SCRATCH $DATA $ORIGIN)" 2>/dev/null; then
		fail "a read-write load over the damaged journal succeeded"
	fi
	dmsetup remove $DEV 2>/dev/null || true
	dmesg | grep -q "the journal is damaged: the replay stopped at journal block 1" ||
		{ dmesg | tail -5; fail "no message about the damage"; }
	expect_eq "$(metadata_sum $SCRATCH)" "$sum" "metadata after the refused load"
	# read-only: the first commit only
	fvd_up $SCRATCH $DATA $ORIGIN read_only
	dd if=/tmp/blk of=/tmp/ref bs=64K count=1 conv=notrunc status=none
	$FVDIO compare $MAPPER /tmp/ref || fail "read-only load: not the journal up to the damage"
	fvd_down
	expect_eq "$(metadata_sum $SCRATCH)" "$sum" "metadata after the read-only load"
	$FVD_CHECK $SCRATCH >/tmp/check.out && fail "fvd-check found nothing"
	grep -q "lost commits" /tmp/check.out || { cat /tmp/check.out; fail "fvd-check report"; }
	i=0
	$FVD_CHECK --repair $SCRATCH >/dev/null || i=$?
	expect_eq "$i" 1 "fvd-check --repair exit status"
	fvd_up $SCRATCH $DATA $ORIGIN
	$FVDIO compare $MAPPER /tmp/ref || fail "after the repair"
	fvd_down
	rm -f /tmp/ref /tmp/blk /tmp/check.out
}

# A superblock rewritten between the load of a table and its resume: the
# table sized its buffers and checked its devices by the one it loaded, so
# the resume fails, naming the field, and leaves the image alone.  Before,
# the resume adopted the new chunk size (or unknown read-only-compatible
# features) and went on with buffers of the old geometry.
test_superblock_changed_before_resume() {
	local field value msg
	$FVD_CREATE --force --compact --chunk-size 256K --origin $ORIGIN --data-dev $DATA \
		$SCRATCH >/dev/null || fail "fvd-create"
	for field in chunk_sectors=1024 ro_compat_features=257; do
		value=$(sb_field $SCRATCH "${field%=*}")
		dmsetup create $DEV --notable || fail "create"
		dmsetup load $DEV --table "$(fvd_table $SCRATCH $DATA $ORIGIN)" || fail "load"
		$SBEDIT $SCRATCH "$field" >/dev/null || fail "sbedit $field"
		if dmsetup resume $DEV 2>/dev/null; then
			fail "resume after $field succeeded"
		fi
		msg="reformatted after the table was loaded (superblock ${field%=*} was $value, is ${field#*=})"
		dmesg | grep -qF "$msg" || { dmesg | tail -3; fail "no message: $msg"; }
		dmsetup remove $DEV || fail "remove"
		$SBEDIT $SCRATCH "${field%=*}=$value" >/dev/null
	done
	fvd_up $SCRATCH $DATA $ORIGIN
	$FVDIO compare $MAPPER $ORIGIN || fail "data differs"
	fvd_down
}

# No journal region: every commit writes the bitmap home directly.
test_image_without_journal() {
	$FVD_CREATE --force --origin $ORIGIN --data-dev $DATA --journal-size 0 $SCRATCH >/dev/null
	expect_eq "$(sb_field $SCRATCH incompat_features)" 0 "incompat features"
	meta_linear_up
	fvd_up /dev/mapper/fvdmeta $DATA $ORIGIN
	cp $ORIGIN /tmp/ref
	$FVDIO randwrite $MAPPER /tmp/ref --seed 41 --count 100 || fail "writes"
	expect_eq "$(status_field 7)" 0 "journal writes"
	[ "$(home_bitmap_bytes $SCRATCH)" -gt 0 ] || fail "bitmap not written home by the commit"
	meta_replace error
	dmsetup remove $DEV || fail "remove"
	dmsetup remove fvdmeta
	fvd_up $SCRATCH $DATA $ORIGIN
	$FVDIO compare $MAPPER /tmp/ref || fail "flushed writes lost"
	fvd_down
	rm -f /tmp/ref
}

# FUA writes: a null_blk data device with a volatile cache advertises FUA,
# so O_DSYNC writes reach the target as REQ_FUA (whole-block ones through
# end_io, partial ones through the block copy) and complete only after a
# commit.  The data must then survive a removal that cannot write metadata.
test_fua_writes_survive_without_clean_shutdown() {
	local i dm queue offsets=()
	modprobe null_blk nr_devices=1 memory_backed=1 cache_size=16 gb=1 ||
		fail "modprobe null_blk"
	expect_eq "$(cat /sys/block/nullb0/queue/fua)" 1 "null_blk FUA support"
	$FVD_CREATE --force --origin $ORIGIN --data-dev /dev/nullb0 $SCRATCH >/dev/null
	meta_linear_up
	fvd_up /dev/mapper/fvdmeta /dev/nullb0 $ORIGIN
	dm=$(dmsetup info -c --noheadings -o blkdevname $DEV | tr -d " ")
	expect_eq "$(cat /sys/block/$dm/queue/fua)" 1 "FUA passed up by the fvd device"
	cp $ORIGIN /tmp/ref
	for i in $(seq 0 11); do
		if [ $((i % 2)) -eq 0 ]; then
			offsets+=("$((i * 5 * 65536)) 65536")		# whole block
		else
			offsets+=("$((i * 5 * 65536 + 8192)) 4096")	# partial block
		fi
	done
	for i in "${offsets[@]}"; do
		set -- $i
		head -c "$2" /dev/urandom >/tmp/piece
		dd if=/tmp/piece of=$MAPPER bs="$2" seek="$1" oflag=direct,dsync,seek_bytes \
			conv=notrunc status=none || fail "dsync write at $1"
		dd if=/tmp/piece of=/tmp/ref bs="$2" seek="$1" oflag=seek_bytes \
			conv=notrunc status=none
	done
	say "status after FUA writes: $(dmsetup status $DEV)"
	[ "$(status_field 6)" -ge 12 ] || fail "fewer commits than dsync writes"
	meta_replace error
	fvd_down
	expect_eq "$(sb_field $SCRATCH flags)" 0 "clean flag (shutdown must not be recorded)"
	dmsetup remove fvdmeta
	fvd_up $SCRATCH /dev/nullb0 $ORIGIN
	$FVDIO compare $MAPPER /tmp/ref || fail "FUA writes lost"
	fvd_down
	rmmod null_blk
	rm -f /tmp/ref /tmp/piece
}

# ---- copy-on-read ----

# status_field 12: fresh blocks, 13: bytes copied on read, 14: bytes read
# from the origin.

# data_blocks_are BLOCK_SIZE N LIST: the first N blocks of $DATA hold the
# origin's block where LIST (comma-separated block numbers) says, zeroes
# elsewhere.
data_blocks_are() {
	python3 - "$1" "$2" "$3" $DATA $ORIGIN <<'PY' || fail "data device content"
import sys
bs, n, listed, data, origin = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
want = {int(b) for b in listed.split(",")}
with open(data, "rb") as d, open(origin, "rb") as o:
    for b in range(n):
        got = d.read(bs)
        expect = o.read(bs) if b in want else (o.seek(bs, 1), bytes(bs))[1]
        if got != expect:
            sys.exit(f"data device block {b}: {'not the origin' if b in want else 'written'}")
PY
}

# Reads copy the whole blocks they touch to the data device: afterwards it
# holds exactly those of the origin's blocks; a second read is served
# locally; a write to a copied block needs no copy; removal persists the
# copies, so after a reload the origin is not read for them again.
test_copy_on_read() {
	local bs=65536
	dd if=/dev/zero of=$DATA bs=1M count=64 conv=fsync status=none
	$FVD_CREATE --force --origin $ORIGIN --data-dev $DATA $SCRATCH >/dev/null ||
		fail "fvd-create"
	expect_eq "$(sb_field $SCRATCH data_offset)" 0 "data offset"
	# the in-flight bound above the disk's size: on a slow host the copies
	# of a full read must not outrun it, or blocks are left uncopied
	fvd_up $SCRATCH $DATA $ORIGIN max_cor_inflight 65536
	dd if=$MAPPER of=/tmp/r1 bs=$bs count=4 iflag=direct status=none	# blocks 0-3
	dd if=$MAPPER of=/tmp/r2 bs=4096 skip=$((10 * 16 + 2)) count=1 iflag=direct \
		status=none								# in block 10
	dd if=$MAPPER of=/tmp/r3 bs=32K skip=$((20 * 2 + 1)) count=2 iflag=direct \
		status=none								# blocks 20-21
	cmp /tmp/r1 <(dd if=$ORIGIN bs=$bs count=4 status=none) || fail "read 1"
	cmp /tmp/r2 <(dd if=$ORIGIN bs=4096 skip=$((10 * 16 + 2)) count=1 status=none) ||
		fail "read 2"
	cmp /tmp/r3 <(dd if=$ORIGIN bs=32K skip=41 count=2 status=none) || fail "read 3"
	say "status after the reads: $(dmsetup status $DEV)"
	expect_eq "$(status_field 12)" 7 "fresh blocks"
	expect_eq "$(status_field 13)" $((7 * bs)) "bytes copied on read"
	expect_eq "$(status_field 14)" $((7 * bs)) "bytes read from the origin"
	expect_eq "$(local_blocks)" 0 "local blocks"
	expect_eq "$(status_field 6)" 0 "commits"
	data_blocks_are $bs 1024 0,1,2,3,10,20,21
	# again: from the data device
	dd if=$MAPPER of=/dev/null bs=$bs count=4 iflag=direct status=none
	dd if=$MAPPER of=/dev/null bs=32K skip=41 count=2 iflag=direct status=none
	expect_eq "$(status_field 14)" $((7 * bs)) "origin bytes after reading again"
	# a partial write to a copied block: no copy, the block is local
	cp $ORIGIN /tmp/ref
	head -c 4096 /dev/urandom >/tmp/piece
	dd if=/tmp/piece of=$MAPPER bs=4096 seek=$((10 * 16 + 5)) oflag=direct conv=notrunc \
		status=none || fail "write"
	dd if=/tmp/piece of=/tmp/ref bs=4096 seek=$((10 * 16 + 5)) conv=notrunc status=none
	expect_eq "$(status_field 4)" 0 "copies for the write"
	expect_eq "$(local_blocks)" 1 "local blocks after the write"
	expect_eq "$(status_field 12)" 6 "fresh blocks after the write"
	$FVDIO compare $MAPPER /tmp/ref || fail "data differs"
	expect_eq "$(status_field 12)" 1023 "fresh blocks after reading everything"
	fvd_down
	$FVD_CHECK --data-dev $DATA $SCRATCH >/tmp/check.out ||
		{ cat /tmp/check.out; fail "fvd-check"; }
	fvd_up $SCRATCH $DATA $ORIGIN
	expect_eq "$(local_blocks)" 1024 "local blocks after reload"
	$FVDIO compare $MAPPER /tmp/ref || fail "data differs after reload"
	expect_eq "$(status_field 14)" 0 "origin bytes after reload"
	fvd_down
	rm -f /tmp/r1 /tmp/r2 /tmp/r3 /tmp/ref /tmp/piece /tmp/check.out
}

# A read of a block whose copy-on-read is still storing it (the data
# device's writes slowed by dm-delay to a second) waits for the store and
# is served by the data device: four 4 KiB reads in a row of one block read
# the origin once, 64 KiB.  Before, the three later reads found the block
# busy and each went to the origin (76 KiB), a round trip each over a WAN.
test_copy_on_read_later_reads_wait_for_the_store() {
	local bs=65536
	modprobe dm-delay || fail "modprobe dm-delay"
	dmsetup create fvddata --table "0 $(sectors $DATA) delay $DATA 0 0 $DATA 0 1000" ||
		fail "fvddata"
	$FVD_CREATE --force --origin $ORIGIN --data-dev /dev/mapper/fvddata $SCRATCH >/dev/null ||
		fail "fvd-create"
	fvd_up $SCRATCH /dev/mapper/fvddata $ORIGIN
	dd if=$MAPPER of=/tmp/r1 bs=4096 skip=$((7 * 16)) count=4 iflag=direct status=none ||
		fail "reads in block 7"
	cmp /tmp/r1 <(dd if=$ORIGIN bs=4096 skip=$((7 * 16)) count=4 status=none) ||
		fail "the reads of block 7 differ from the origin"
	expect_eq "$(status_field 14)" $bs "bytes read from the origin"
	expect_eq "$(status_field 13)" $bs "bytes copied on read"
	expect_eq "$(status_field 12)" 1 "fresh blocks"
	fvd_down
	dmsetup remove fvddata || fail "remove fvddata"
	rm -f /tmp/r1
}

# profile_get: the whole recorded profile, "STATE NR RUN...", paged as
# fvdsetup pages it
profile_get() {
	local f index=0 state nr runs=()
	while :; do
		read -r -a f <<<"$(dmsetup message $DEV 0 profile get $index)"
		state=${f[0]}
		nr=${f[1]}
		[ "${f[2]}" = "$index" ] || fail "profile get $index answered from run ${f[2]}"
		runs+=("${f[@]:3}")
		index=$((index + ${#f[@]} - 3))
		[ "$index" -lt "$nr" ] || break
		[ ${#f[@]} -gt 3 ] || fail "profile get $index: no runs, $nr recorded"
	done
	echo "$state $nr ${runs[*]}"
}

# open_seeded PROFILE NR IMAGE [OPTIONS...]: fvdsetup open IMAGE as $DEV
# with --profile-from PROFILE (NR runs), and wait until the prefetch,
# started at once by the profile, waits for prefetch_delay again: the
# profile is copied.  The rate cap keeps it running long enough to be seen.
open_seeded() {
	local profile=$1 nr=$2 image=$3
	shift 3
	$FVDSETUP open $image $DEV "$@" --profile-from $profile \
		--feature prefetch_delay=3600 --feature prefetch_batch=64 \
		--feature prefetch_writes=1 --feature prefetch_max_rate=32 \
		--feature prefetch_min_read=0 --feature prefetch_min_write=0 >/tmp/open.out ||
		fail "fvdsetup open --profile-from $profile"
	grep -qF "prefetch seeded with $nr runs from $profile" /tmp/open.out ||
		fail "fvdsetup open said: $(cat /tmp/open.out)"
	prefetch_wait running
	prefetch_wait waiting
}

# profile_seconds records, in order, the blocks the guest's I/O needed
# from the origin (copy-on-read and the copy of a partial write), as origin
# sector ranges; a block read again once local, and anything after
# "profile stop", is not recorded.  "profile add" on another image over
# the same origin (fvdsetup profile save, open --profile-from) makes the
# prefetch copy those blocks first, and at once although prefetch_delay is
# an hour; then it waits for the delay: exactly the five profiled blocks
# are local, not the cursor's first (0).  Profiles of another origin, bad
# ranges and runs past the record are refused.
test_profile_record_and_seed() {
	local bs=65536 b=128 got deadline
	dd if=/dev/zero of=$DATA bs=1M count=64 conv=fsync status=none
	$FVD_CREATE --force --origin $ORIGIN --data-dev $DATA $SCRATCH >/dev/null ||
		fail "fvd-create"
	fvd_up $SCRATCH $DATA $ORIGIN profile_seconds 600
	[[ " $(dmsetup table $DEV) " == *" profile_seconds 600 "* ]] ||
		fail "table line without profile_seconds: $(dmsetup table $DEV)"
	expect_eq "$(dmsetup message $DEV 0 profile get 0)" "recording 0 0" "empty profile"
	dd if=$MAPPER of=/dev/null bs=4096 skip=$((37 * 16 + 3)) count=1 iflag=direct status=none
	dd if=$MAPPER of=/dev/null bs=4096 skip=$((38 * 16)) count=1 iflag=direct status=none
	dd if=$MAPPER of=/dev/null bs=4096 skip=$((5 * 16 + 15)) count=1 iflag=direct status=none
	# once its copy is written, block 37 is read locally: not recorded again
	deadline=$((SECONDS + 60))
	until [ "$(status_field 12)" -ge 3 ]; do
		[ $SECONDS -lt $deadline ] || fail "copies on read not written: $(dmsetup status $DEV)"
	done
	dd if=$MAPPER of=/dev/null bs=4096 skip=$((37 * 16 + 9)) count=1 iflag=direct status=none
	dd if=$MAPPER of=/dev/null bs=8192 skip=$((120 * 8 + 2)) count=1 iflag=direct status=none
	head -c 4096 /dev/urandom | dd of=$MAPPER bs=4096 seek=$((200 * 16 + 1)) oflag=direct \
		conv=notrunc status=none || fail "partial write"
	expect_eq "$(profile_get)" \
		"recording 4 $((37 * b))+$((2 * b)) $((5 * b))+$b $((120 * b))+$b $((200 * b))+$b" \
		"recorded profile"
	dmsetup message $DEV 0 profile stop || fail "profile stop"
	dd if=$MAPPER of=/dev/null bs=4096 skip=$((300 * 16)) count=1 iflag=direct status=none
	got=$(dmsetup message $DEV 0 profile get 2)
	expect_eq "$got" "done 4 2 $((120 * b))+$b $((200 * b))+$b" "profile from run 2 after stop"
	expect_eq "$(dmsetup message $DEV 0 profile get 4)" "done 4 4" "profile past its end"
	dmesg -c >>/tmp/kernel-log.saved
	! dmsetup message $DEV 0 profile get 5 2>/dev/null || fail "profile get 5 of 4 accepted"
	dmesg | grep -qF "profile get: run 5 asked, the profile holds 4" ||
		fail "no log line for run 5 of 4"
	rm -f /tmp/prof.fvd
	$FVDSETUP profile $DEV save /tmp/prof.fvd 2>/tmp/save.err || fail "fvdsetup profile save"
	! grep -q warning /tmp/save.err || fail "a finished profile saved with: $(cat /tmp/save.err)"
	expect_eq "$(grep -v '^#' /tmp/prof.fvd | tr '\n' ' ')" \
		"origin_sectors $(sectors $ORIGIN) origin_fingerprint $(printf %08x "$(sb_field $SCRATCH origin_fingerprint)") $((37 * b))+$((2 * b)) $((5 * b))+$b $((120 * b))+$b $((200 * b))+$b " \
		"saved profile"
	! $FVDSETUP profile $DEV save /tmp/prof.fvd 2>/dev/null || fail "an existing file overwritten"
	fvd_down

	# seeded on a fresh image of the same origin
	dd if=/dev/zero of=$DATA bs=1M count=64 conv=fsync status=none
	$FVD_CREATE --force --origin $ORIGIN --data-dev $DATA $SCRATCH >/dev/null ||
		fail "fvd-create for the seeded image"
	sed "s/^origin_sectors .*/origin_sectors $(($(sectors $ORIGIN) * 2))/" /tmp/prof.fvd \
		>/tmp/prof-other.fvd
	! $FVDSETUP open $SCRATCH $DEV --data-dev $DATA --profile-from /tmp/prof-other.fvd \
		2>/tmp/open.err || fail "a profile of another origin accepted"
	grep -qF "recorded over an origin of $(($(sectors $ORIGIN) * 2)) sectors" /tmp/open.err ||
		fail "refusal of another origin's profile: $(cat /tmp/open.err)"
	[ ! -b $MAPPER ] || fail "$MAPPER made with a refused profile"
	open_seeded /tmp/prof.fvd 4 $SCRATCH --data-dev $DATA
	expect_eq "$(status_field 16)" $((5 * bs)) "bytes copied for the profile"
	expect_eq "$(status_field 14)" $((5 * bs)) "origin bytes read"
	dmsetup message $DEV 0 prefetch stop || fail "prefetch stop"
	dmesg -c >>/tmp/kernel-log.saved
	! dmsetup message $DEV 0 profile add 0+0 2>/dev/null || fail "an empty range accepted"
	! dmsetup message $DEV 0 profile add $(sectors $ORIGIN)+1 2>/dev/null ||
		fail "a range past the origin accepted"
	dmesg | grep -qF "is not START+LEN inside the origin's $(sectors $ORIGIN) sectors" ||
		fail "no log line for a range past the origin"
	fvd_down
	data_blocks_are $bs 1024 5,37,38,120,200
	$FVD_CHECK --data-dev $DATA $SCRATCH >/tmp/check.out ||
		{ cat /tmp/check.out; fail "fvd-check"; }
	fvd_up $SCRATCH $DATA $ORIGIN
	$FVDIO compare $MAPPER $ORIGIN || fail "data differs on the seeded image"
	fvd_down
	rm -f /tmp/check.out /tmp/prof.fvd /tmp/prof-other.fvd /tmp/open.out /tmp/open.err \
		/tmp/save.err
}

# profile_in_image DESCRIPTION...: fvd-check's profile line for $SCRATCH
profile_in_image() {
	$FVD_CHECK --data-dev $DATA $SCRATCH >/tmp/check.out ||
		{ cat /tmp/check.out; fail "fvd-check, $*"; }
	sed -n 's/^[^:]*: profile: //p' /tmp/check.out
}

# An image with a profile region keeps the record: a suspend saves what a
# recording under way holds so far, "profile stop" saves it before it
# returns, and a table that found a profile saved before keeps it until
# "profile save", and the window's end saves it too.  fvdsetup open
# --profile-from IMAGE seeds another image over the same origin with it:
# exactly the profiled blocks are copied.
test_profile_saved_in_image() {
	local bs=65536 b=128 deadline
	dd if=/dev/zero of=$DATA bs=1M count=64 conv=fsync status=none
	$FVD_CREATE --force --origin $ORIGIN --data-dev $DATA $SCRATCH >/tmp/create.out ||
		fail "fvd-create"
	grep -q "^  profile  *sectors [0-9]*-[0-9]*, none recorded yet" /tmp/create.out ||
		fail "fvd-create made no profile region: $(cat /tmp/create.out)"
	expect_eq "$(profile_in_image new image)" "none recorded" "a new image's profile"
	dmesg -c >>/tmp/kernel-log.saved
	fvd_up $SCRATCH $DATA $ORIGIN profile_seconds 600
	dd if=$MAPPER of=/dev/null bs=4096 skip=$((37 * 16 + 3)) count=1 iflag=direct status=none
	dmsetup suspend $DEV || fail "suspend"
	dmesg | grep -qF "profile of 1 run saved (save 1)" ||
		fail "the suspend saved no profile: $(dmesg | grep profile)"
	dmsetup resume $DEV || fail "resume"
	dd if=$MAPPER of=/dev/null bs=4096 skip=$((5 * 16)) count=1 iflag=direct status=none
	dd if=$MAPPER of=/dev/null bs=8192 skip=$((120 * 8 + 2)) count=1 iflag=direct status=none
	dmsetup message $DEV 0 profile stop || fail "profile stop"
	dmesg | grep -qF "profile of 3 runs saved (save 2)" ||
		fail "profile stop saved no profile: $(dmesg | grep profile)"
	fvd_down
	! dmesg | grep -qF "(save 3)" || fail "an unchanged profile saved again at the remove"
	expect_eq "$(profile_in_image after the first boot)" \
		"3 runs, $((3 * b)) sectors of the origin, save 2" "the profile kept in the image"

	# another image over the origin, seeded from the first one's region
	$FVD_CREATE --force --origin $ORIGIN $IMG >/dev/null || fail "fvd-create of the second image"
	open_seeded $SCRATCH 3 $IMG
	expect_eq "$(status_field 16) $(status_field 14)" "$((3 * bs)) $((3 * bs))" \
		"bytes copied for the image's profile, origin bytes read"
	dmesg -c >>/tmp/kernel-log.saved
	! dmsetup message $DEV 0 profile save 2>/dev/null ||
		fail "profile save accepted on a table that records nothing"
	dmesg | grep -qF "profile save: the table records no profile" ||
		fail "no log line for a profile save without a record"
	$FVDIO compare $MAPPER $ORIGIN || fail "data differs on the seeded image"
	$FVDSETUP close $DEV || fail "fvdsetup close"
	# the recording's window passing saves it too: empty, all being local
	dmesg -c >>/tmp/kernel-log.saved
	fvd_up $IMG $IMG $ORIGIN profile_seconds 1
	dd if=$MAPPER of=/dev/null bs=4096 skip=$((37 * 16)) count=1 iflag=direct status=none
	deadline=$((SECONDS + 60))
	until dmesg | grep -qF "profile of 0 runs saved (save 1)"; do
		[ $SECONDS -lt $deadline ] ||
			fail "no save once profile_seconds passed: $(dmesg | grep profile)"
		sleep 0.2	# a poll: the save's log line decides
	done
	expect_eq "$(dmsetup message $DEV 0 profile get 0)" "done 0 0" "the record after its window"
	fvd_down
	$FVD_CHECK $IMG >/tmp/check.out || { cat /tmp/check.out; fail "fvd-check of $IMG"; }
	grep -qF "profile: 0 runs, 0 sectors of the origin, save 1" /tmp/check.out ||
		fail "the window's save: $(cat /tmp/check.out)"

	# a later boot of the first image reads little: its profile is not kept
	dmesg -c >>/tmp/kernel-log.saved
	fvd_up $SCRATCH $DATA $ORIGIN profile_seconds 600
	dd if=$MAPPER of=/dev/null bs=4096 skip=$((37 * 16)) count=16 iflag=direct status=none
	dd if=$MAPPER of=/dev/null bs=4096 skip=$((300 * 16)) count=1 iflag=direct status=none
	expect_eq "$(profile_get)" "recording 1 $((300 * b))+$b" "the second boot's record"
	dmsetup message $DEV 0 profile stop || fail "profile stop on the second boot"
	dmesg | grep -qF "the image keeps the profile saved before (3 runs)" ||
		fail "no log line for the profile kept: $(dmesg | grep profile)"
	fvd_down
	! dmesg | grep -qF "saved (save" || fail "the first boot's profile written over"
	expect_eq "$(profile_in_image after the second boot)" \
		"3 runs, $((3 * b)) sectors of the origin, save 2" "the first boot's profile kept"
	# ... unless asked
	fvd_up $SCRATCH $DATA $ORIGIN profile_seconds 600
	dd if=$MAPPER of=/dev/null bs=4096 skip=$((400 * 16)) count=1 iflag=direct status=none
	dmsetup message $DEV 0 profile save || fail "profile save"
	dmesg | grep -qF "profile of 1 run saved (save 1)" ||
		fail "profile save logged no save: $(dmesg | grep profile)"
	fvd_down
	expect_eq "$(profile_in_image after profile save)" \
		"1 run, $b sectors of the origin, save 1" "the profile profile save wrote"
	rm -f /tmp/check.out /tmp/create.out /tmp/open.out
}

# fvd-create --profile-from keeps a profile in the new image, and the table
# queues it itself at its first resume: with no message, and prefetch_delay
# an hour, the prefetch copies exactly the profiled blocks at once, then
# waits for the delay.  A later table finds them local and queues nothing;
# a damaged region is reported and ignored, and the data is the origin's.
test_profile_stored_seed() {
	local bs=65536 b=128 rate="prefetch_batch 64 prefetch_writes 1 prefetch_max_rate 32"
	local pace="prefetch_delay 3600 $rate prefetch_min_read 0 prefetch_min_write 0"
	dd if=/dev/zero of=$DATA bs=1M count=64 conv=fsync status=none
	$FVD_CREATE --force --origin $ORIGIN --data-dev $DATA $SCRATCH >/dev/null ||
		fail "fvd-create"
	printf '# dm-fvd profile 1\norigin_sectors %s\norigin_fingerprint %08x\n%s\n%s\n%s\n' \
		"$(sectors $ORIGIN)" "$(sb_field $SCRATCH origin_fingerprint)" \
		$((37 * b))+$((2 * b)) $((5 * b + 8))+$((b / 2)) $((120 * b))+$b >/tmp/prof.fvd
	$FVD_CREATE --force --origin $ORIGIN --data-dev $DATA --profile-from /tmp/prof.fvd \
		$SCRATCH >/tmp/create.out || fail "fvd-create --profile-from"
	grep -q "^  profile  *sectors [0-9]*-[0-9]*, 3 runs copied from /tmp/prof.fvd$" /tmp/create.out ||
		fail "fvd-create said: $(cat /tmp/create.out)"
	expect_eq "$(profile_in_image made with a profile)" \
		"3 runs, $((3 * b + b / 2)) sectors of the origin, copied by fvd-create" \
		"the profile fvd-create kept"
	dmesg -c >>/tmp/kernel-log.saved
	fvd_up $SCRATCH $DATA $ORIGIN $pace
	dmesg | grep -qF "the prefetch copies first 3 of the 3 runs of the image's profile" ||
		fail "the table queued no profile: $(dmesg | grep -i profile)"
	prefetch_wait running
	prefetch_wait waiting
	expect_eq "$(status_field 16) $(status_field 14)" "$((4 * bs)) $((4 * bs))" \
		"bytes copied for the stored profile, origin bytes read"
	fvd_down
	data_blocks_are $bs 1024 5,37,38,120

	# the blocks are local: nothing to queue, the prefetch waits its delay
	dmesg -c >>/tmp/kernel-log.saved
	fvd_up $SCRATCH $DATA $ORIGIN $pace
	expect_eq "$(prefetch_state) $(status_field 16)" "waiting 0" "a later table's prefetch"
	! dmesg | grep -qF "of the image's profile" || fail "a local profile queued: $(dmesg | grep -i profile)"
	fvd_down

	# a damaged region orders nothing, and is no error for the table
	$FVD_CREATE --force --origin $ORIGIN --data-dev $DATA --profile-from /tmp/prof.fvd \
		$SCRATCH >/dev/null || fail "fvd-create --profile-from, again"
	dd if=/dev/zero of=$DATA bs=1M count=64 conv=fsync status=none
	printf '\x01' | dd of=$SCRATCH bs=1 seek=$(($(sb_field $SCRATCH profile_offset) * 512 + 4096)) \
		conv=notrunc status=none
	dmesg -c >>/tmp/kernel-log.saved
	fvd_up $SCRATCH $DATA $ORIGIN $pace
	dmesg | grep -qF "the profile region at sector $(sb_field $SCRATCH profile_offset) is not valid (profile checksum mismatch)" ||
		fail "no warning for a damaged profile: $(dmesg | grep -i profile)"
	expect_eq "$(prefetch_state) $(status_field 16)" "waiting 0" "the prefetch beside a damaged profile"
	$FVDIO compare $MAPPER $ORIGIN || fail "data differs from the origin"
	fvd_down
	rm -f /tmp/prof.fvd /tmp/create.out /tmp/check.out
}

# no_copy_on_read: reads go to the origin and nothing is copied.  A compact
# image copies on read only into chunks already allocated.
test_copy_on_read_off_and_compact() {
	$FVD_CREATE --force --origin $ORIGIN $IMG >/dev/null || fail "fvd-create"
	fvd_up $IMG $IMG $ORIGIN no_copy_on_read
	dmsetup table $DEV | grep -q " 2 no_copy_on_read no_prefetch$" || fail "table line: $(dmsetup table $DEV)"
	dd if=$MAPPER of=/dev/null bs=1M count=2 iflag=direct status=none
	dd if=$MAPPER of=/dev/null bs=1M count=2 iflag=direct status=none
	expect_eq "$(status_field 12) $(status_field 13)" "0 0" "fresh blocks, bytes copied"
	expect_eq "$(status_field 14)" $((4 * MB)) "bytes read from the origin"
	fvd_down
	compact_up 8
	head -c 4096 /dev/urandom >/tmp/piece
	dd if=/tmp/piece of=$MAPPER bs=4096 seek=1 oflag=direct conv=notrunc status=none ||
		fail "write to chunk 0"
	dd if=$MAPPER of=/dev/null bs=$CHUNK count=2 iflag=direct status=none	# chunks 0-1
	expect_eq "$(status_field 12)" 3 "fresh blocks (chunk 0 but its written block)"
	expect_eq "$(status_field 10)" "7/8" "free/data chunks"
	fvd_down
	dmsetup remove fvddata
	rm -f /tmp/piece
}

# disk_requests DEV: reads and writes the disk has completed
disk_requests() {
	awk '{ print $1 + $5 }' "/sys/block/${1#/dev/}/stat"
}

# big_io_requests DEV DD-ARGS...: the requests DEV saw for one dd
big_io_requests() {
	local disk=$1 before
	shift
	before=$(disk_requests $disk)
	dd "$@" status=none || fail "dd $*"
	echo $(($(disk_requests $disk) - before))
}

# I/O over several blocks is not cut at block boundaries when the blocks
# are all local, or all read from the origin without copy-on-read: a 1 MiB
# request is one request on the disk below (or as few as its own limit
# allows), not 16.  Mixed ranges are cut; the data stays right.
test_big_io_spans_blocks() {
	local most
	# requests per 1 MiB that the disks' own limits allow: size, and
	# segments of 4 KiB (dd's buffer is not always physically contiguous)
	most=$(for d in vda vdb vdc vde; do
		echo "$(cat /sys/block/$d/queue/max_sectors_kb) $(cat /sys/block/$d/queue/max_segments)"
	done | awk '{ kb = $1 < 4 * $2 ? $1 : 4 * $2; if (!m || kb < m) m = kb }
		END { print int((1024 + m - 1) / m) }')
	# cut at every 64K block, a MiB would be 16
	[ "$most" -lt 16 ] || fail "the disks allow only $most requests per MiB"
	$FVD_CREATE --force --origin $ORIGIN $IMG >/dev/null || fail "fvd-create"
	fvd_up $IMG $IMG $ORIGIN no_copy_on_read
	cp $ORIGIN /tmp/ref
	head -c $((4 * MB)) /dev/urandom >/tmp/piece
	dd if=/tmp/piece of=/tmp/ref bs=1M seek=8 conv=notrunc status=none
	# absent blocks: cut into whole-block writes, no copies
	dd if=/tmp/piece of=$MAPPER bs=1M seek=8 oflag=direct status=none ||
		fail "write 4 MiB"
	expect_eq "$(status_field 3)" "64/1024" "local blocks"
	expect_eq "$(status_field 4)" 0 "partial-block copies"
	local n
	n=$(big_io_requests $IMG if=$MAPPER of=/dev/null bs=1M skip=8 count=4 iflag=direct)
	say "4 x 1 MiB read of local blocks: $n requests on the data disk (limit $((4 * most)))"
	[ "$n" -le $((4 * most)) ] || fail "local read cut into $n requests"
	n=$(big_io_requests $IMG if=/tmp/piece of=$MAPPER bs=1M seek=8 count=4 oflag=direct)
	say "4 x 1 MiB write of local blocks: $n requests"
	[ "$n" -le $((4 * most)) ] || fail "local write cut into $n requests"
	n=$(big_io_requests $ORIGIN if=$MAPPER of=/dev/null bs=1M skip=20 count=4 iflag=direct)
	say "4 x 1 MiB read of absent blocks: $n requests on the origin"
	[ "$n" -le $((4 * most)) ] || fail "origin read cut into $n requests"
	# ranges across local and absent blocks, reads and writes of up to 1 MiB
	$FVDIO compare $MAPPER /tmp/ref --offset $((7 * MB + 12288)) --length $((3 * MB)) ||
		fail "read across absent and local blocks"
	$FVDIO randwrite $MAPPER /tmp/ref --seed 91 --count 150 --block 65536 \
		--max-bytes $MB || fail "writes of up to 1 MiB"
	$FVDIO compare $MAPPER /tmp/ref || fail "device differs from the reference"
	# with copy-on-read, a read over absent blocks copies each of them
	fvd_down
	fvd_up $IMG $IMG $ORIGIN
	$FVDIO compare $MAPPER /tmp/ref || fail "reloaded device differs"
	[ "$(status_field 12)" -gt 0 ] || fail "no block copied on read"
	fvd_down
	$FVD_CHECK $IMG >/dev/null || fail "fvd-check after big I/O"
	# compact, copy-on-read on: chunks not mapped yet are not copied into,
	# so a read over them goes to the origin whole
	compact_up 8
	n=$(big_io_requests $ORIGIN if=$MAPPER of=/dev/null bs=1M skip=4 count=4 iflag=direct)
	say "compact: 4 x 1 MiB read of unmapped chunks: $n requests on the origin"
	[ "$n" -le $((4 * most)) ] || fail "compact origin read cut into $n requests"
	$FVDIO compare $MAPPER $ORIGIN || fail "compact device differs from the origin"
	fvd_down
	dmsetup remove fvddata
	rm -f /tmp/ref /tmp/piece
}

# origin_up: the origin behind a dm-linear "fvdorigin", so that a test can
# make it fail under the live target with origin_replace.
origin_up() {
	dmsetup create fvdorigin --table "0 $(sectors $ORIGIN) linear $ORIGIN 0" ||
		fail "cannot create fvdorigin"
}

origin_replace() {	# origin_replace TARGET [ARGS...]  (mapping all of $ORIGIN)
	dmsetup suspend --noflush fvdorigin &&
		dmsetup reload fvdorigin --table "0 $(sectors $ORIGIN) $*" &&
		dmsetup resume fvdorigin || fail "cannot switch fvdorigin to $1"
}

# An origin that fails reads: reads of absent blocks and partial writes to
# them fail with EIO and copy nothing; local and copied blocks stay usable,
# whole-block writes too; the origin's return brings everything back.
test_origin_read_errors() {
	local bs=65536
	origin_up
	$FVD_CREATE --force --origin /dev/mapper/fvdorigin $IMG >/dev/null || fail "fvd-create"
	fvd_up $IMG $IMG /dev/mapper/fvdorigin
	cp $ORIGIN /tmp/ref
	dd if=$MAPPER of=/dev/null bs=$bs skip=1 count=1 iflag=direct status=none ||
		fail "read block 1"
	head -c $bs /dev/urandom >/tmp/blk
	dd if=/tmp/blk of=$MAPPER bs=$bs seek=2 count=1 oflag=direct status=none ||
		fail "write block 2"
	dd if=/tmp/blk of=/tmp/ref bs=$bs seek=2 count=1 conv=notrunc status=none
	origin_replace error
	if dd if=$MAPPER of=/dev/null bs=$bs skip=5 count=1 iflag=direct status=none \
		2>/dev/null; then
		fail "a read of an absent block succeeded without the origin"
	fi
	if dd if=/tmp/blk of=$MAPPER bs=4096 seek=$((8 * 16)) count=1 oflag=direct \
		conv=notrunc status=none 2>/dev/null; then
		fail "a partial write to an absent block succeeded without the origin"
	fi
	dd if=/tmp/blk of=$MAPPER bs=$bs seek=7 count=1 oflag=direct status=none ||
		fail "whole-block write without the origin"
	dd if=/tmp/blk of=/tmp/ref bs=$bs seek=7 count=1 conv=notrunc status=none
	$FVDIO compare $MAPPER /tmp/ref --length $((2 * bs)) --offset $bs ||
		fail "copied or written blocks unreadable without the origin"
	$FVDIO compare $MAPPER /tmp/ref --length $bs --offset $((7 * bs)) ||
		fail "block written without the origin unreadable"
	expect_eq "$(status_field 1)" rw "metadata mode"
	expect_eq "$(status_field 12)" 1 "fresh blocks"
	expect_eq "$(local_blocks)" 2 "local blocks"
	origin_replace linear $ORIGIN 0
	$FVDIO compare $MAPPER /tmp/ref || fail "data differs once the origin is back"
	fvd_down
	dmsetup remove fvdorigin
	rm -f /tmp/ref /tmp/blk
}

# Suspend and removal while a reader copies on read (from an origin slowed
# by dm-delay, so both happen mid-read) never hang, and what was copied is
# consistent afterwards.
test_suspend_remove_during_copy_on_read() {
	local reader rc
	modprobe dm-delay || fail "modprobe dm-delay"
	dmsetup create fvdorigin --table "0 $(sectors $ORIGIN) delay $ORIGIN 0 10" ||
		fail "delayed origin"
	$FVD_CREATE --force --origin /dev/mapper/fvdorigin $IMG >/dev/null || fail "fvd-create"
	fvd_up $IMG $IMG /dev/mapper/fvdorigin
	dd if=$MAPPER of=/dev/null bs=64K iflag=direct status=none &
	reader=$!
	until [ "$(status_field 13)" -gt 0 ]; do
		kill -0 $reader 2>/dev/null || fail "the reader ended before copying"
	done
	timeout 120 dmsetup suspend $DEV || fail "suspend during copy-on-read"
	# the suspend made the blocks copied so far local
	say "suspended with $(local_blocks) blocks local"
	[ "$(local_blocks)" -gt 0 ] && [ "$(local_blocks)" -lt 1024 ] ||
		fail "$(local_blocks) blocks local at the suspend"
	timeout 120 dmsetup resume $DEV || fail "resume"
	until [ "$(status_field 12)" -gt 0 ]; do
		kill -0 $reader 2>/dev/null || fail "the reader ended before copying again"
	done
	# The device is open: --force swaps in an error table (so the fvd table
	# is suspended and destroyed) and then tries to remove it, which fails
	# while the reader holds it open.  The reader may meet the error table
	# first, end and close the device before that try: then it is gone.
	rc=0
	timeout 120 dmsetup remove --force $DEV 2>/dev/null || rc=$?
	[ $rc -ne 124 ] || fail "remove --force during copy-on-read hung"
	if dmsetup info $DEV >/dev/null 2>&1; then
		expect_eq "$(dmsetup table $DEV | awk '{print $3}')" error "table after remove --force"
		wait $reader || say "the reader saw the removal: exit $?"
		fvd_down
	else
		[ $rc -eq 0 ] || fail "remove --force failed ($rc) but the device is gone"
		wait $reader && fail "the reader ended well though its device was removed"
		say "the reader saw the error table and closed the device before the removal"
	fi
	$FVD_CHECK $IMG >/tmp/check.out || { cat /tmp/check.out; fail "fvd-check"; }
	fvd_up $IMG $IMG $ORIGIN
	$FVDIO compare $MAPPER $ORIGIN || fail "data differs after the removal"
	fvd_down
	dmsetup remove fvdorigin
	rm -f /tmp/check.out
}

# ---- prefetch ----

# Prefetch with no minimum throughput and no delay (tests that want pauses
# set their own minimums).
PREFETCH_NOW="prefetch_delay 0 prefetch_min_read 0 prefetch_min_write 0"

prefetch_state() {
	status_field 15
}

# why the prefetch is stopped or paused
prefetch_cause() {
	status_field 20
}

# prefetch_wait STATE...: wait, on dm events, until the prefetch is in one
# of the STATEs (every change of state raises an event); PREFETCH_CAUSE is
# the cause the same status line gave.
prefetch_wait() {
	local nr state s f
	while :; do
		nr=$(event_nr)
		# state and cause from one status line: a pause may end before the next
		read -r -a f <<<"$(dmsetup status "$DEV")"
		state=${f[17]}
		PREFETCH_CAUSE=${f[22]:-}
		for s in "$@"; do
			[ "$state" = "$s" ] && return 0
		done
		timeout "${PREFETCH_WAIT_TIMEOUT:-600}" dmsetup wait "$DEV" "$nr" >/dev/null ||
			fail "no event while the prefetch is $state (waiting for $*)"
	done
}

# prefetch_wait_bytes: until the prefetch has copied something (each status
# call takes a quarter of a second in the guest)
prefetch_wait_bytes() {
	local i
	for ((i = 0; i < 2400; i++)); do
		[ "$(status_field 16)" -gt 0 ] && return 0
		[ "$(prefetch_state)" = running ] || fail "prefetch $(prefetch_state) before copying"
	done
	fail "the prefetch copied nothing"
}

# delayed_origin MS: the origin behind a dm-delay "fvdorigin"
delayed_origin() {
	modprobe dm-delay || fail "modprobe dm-delay"
	dmsetup create fvdorigin --table "0 $(sectors $ORIGIN) delay $ORIGIN 0 $1" ||
		fail "delayed origin"
}

# The prefetch copies every block the guest did not write, concurrently with
# guest writes; the image is then all-local and works with "-" as origin,
# and an all-local image does not even open an origin the table names.
test_prefetch_completes_then_origin_detached() {
	local blocks writer
	$FVD_CREATE --force --origin $ORIGIN $IMG >/dev/null || fail "fvd-create"
	# small batches, one at a time: the prefetch lasts as long as the writes
	fvd_up $IMG $IMG $ORIGIN no_prefetch $PREFETCH_NOW prefetch_batch 64 prefetch_writes 1
	cp $ORIGIN /tmp/ref
	$FVDIO randwrite $MAPPER /tmp/ref --seed 41 --count 600 --block 65536 &
	writer=$!
	# start once the writer made a block local (paced by the status calls)
	until [ $(($(status_field 4) + $(status_field 5))) -gt 0 ]; do
		kill -0 $writer 2>/dev/null || fail "the writer ended before writing"
	done
	dmsetup message $DEV 0 prefetch start || fail "prefetch start"
	prefetch_wait done
	wait $writer || fail "guest writes"
	expect_eq "$(status_field 3)" 1024/1024 "local blocks"
	# every block made local once: by a guest write or by the prefetch
	blocks=$(($(status_field 16) / 65536 + $(status_field 4) + $(status_field 5)))
	say "prefetch copied $(($(status_field 16) / 65536)) blocks, guest writes $(($(status_field 4) + $(status_field 5))); read $(status_field 17) KiB/s, wrote $(status_field 18) KiB/s"
	expect_eq "$blocks" 1024 "blocks copied plus blocks written"
	$FVDIO compare $MAPPER /tmp/ref || fail "data differs after the prefetch"
	fvd_down
	expect_eq "$(sb_field $IMG flags)" 3 "superblock flags (clean, all-local)"
	$FVD_CHECK $IMG >/tmp/check.out || { cat /tmp/check.out; fail "fvd-check"; }
	fvd_up $IMG $IMG -
	expect_eq "$(prefetch_state)" done "prefetch state without origin"
	$FVDIO compare $MAPPER /tmp/ref || fail "data differs without the origin"
	expect_eq "$(status_field 14)" 0 "bytes read from the origin"
	fvd_down
	fvd_up $IMG $IMG $ORIGIN
	expect_eq "$(dmsetup deps -o devname $DEV | sed 's/.*: //')" "($(basename $IMG))" "devices opened"
	$FVDIO compare $MAPPER /tmp/ref || fail "data differs with the origin named"
	fvd_down
	rm -f /tmp/ref /tmp/check.out
}

# Messages and feature arguments: bad input is refused and changes nothing.
test_prefetch_messages_and_arguments() {
	local bad table REJECTED=0
	$FVD_CREATE --force --origin $ORIGIN $IMG >/dev/null || fail "fvd-create"
	fvd_up $IMG $IMG $ORIGIN no_prefetch
	expect_eq "$(prefetch_state)" stopped "state with no_prefetch"
	expect_eq "$(prefetch_cause)" no_prefetch "cause with no_prefetch"
	table=$(dmsetup table $DEV)
	for bad in "" "prefetch" "prefetch go" "prefetch start now" "set" \
		"set prefetch_batch" "set prefetch_batch 0" "set prefetch_batch 65537" \
		"set prefetch_batch abc" "set prefetch_batch -1" "set prefetch_batch 12x" \
		"set prefetch_writes 0" "set prefetch_writes 65" "set prefetch_window 9" \
		"set prefetch_max_pause 0" "set prefetch_delay 86401" \
		"set prefetch_min_read 16777217" "set no_such_tunable 1" \
		"set prefetch_batch 8 9" "copy everything"; do
		# shellcheck disable=SC2086
		if dmsetup message $DEV 0 $bad 2>/dev/null; then
			fail "message accepted: '$bad'"
		fi
	done
	expect_eq "$(dmsetup table $DEV)" "$table" "table after bad messages"
	expect_eq "$(prefetch_state)" stopped "state after bad messages"
	dmsetup message $DEV 0 set prefetch_batch 256 || fail "set prefetch_batch"
	dmsetup message $DEV 0 set PREFETCH_MIN_READ 0 || fail "set prefetch_min_read"
	dmsetup message $DEV 0 set prefetch_min_write 0 || fail "set prefetch_min_write"
	dmsetup table $DEV | grep -q " 7 no_prefetch prefetch_batch 256 prefetch_min_read 0 prefetch_min_write 0$" ||
		fail "table after set: $(dmsetup table $DEV)"
	dmsetup message $DEV 0 prefetch start || fail "prefetch start"
	prefetch_wait done
	dmsetup message $DEV 0 prefetch stop || fail "prefetch stop once done"
	expect_eq "$(prefetch_state)" done "state after stop once done"
	$FVDIO compare $MAPPER $ORIGIN || fail "data differs after the prefetch"
	fvd_down
	# a read-only table has nothing to prefetch into
	$FVD_CREATE --force --origin $ORIGIN $IMG >/dev/null || fail "fvd-create"
	fvd_up $IMG $IMG $ORIGIN read_only $PREFETCH_NOW
	expect_eq "$(prefetch_state)" off "state of a read-only table"
	if dmsetup message $DEV 0 prefetch start 2>/dev/null; then
		fail "prefetch start accepted on a read-only table"
	fi
	fvd_down
	local v="0 $(sectors $ORIGIN) fvd"
	expect_rejected "prefetch_batch 0" "Invalid prefetch_batch" \
		"$v $IMG $IMG $ORIGIN 2 prefetch_batch 0"
	expect_rejected "prefetch_delay without value" "missing its value" \
		"$v $IMG $IMG $ORIGIN 1 prefetch_delay"
	expect_rejected "prefetch_window twice" "feature argument 'prefetch_window' is given twice" \
		"$v $IMG $IMG $ORIGIN 4 prefetch_window 100 prefetch_window 100"
	expect_rejected "no_prefetch twice" "feature argument 'no_prefetch' is given twice" \
		"$v $IMG $IMG $ORIGIN 2 no_prefetch no_prefetch"
	expect_eq "$REJECTED" 4 "tables rejected"
}

# An origin that fails stops the prefetch in state "error" (no retry loop);
# "prefetch start" retries once it is back.
test_prefetch_origin_errors() {
	local REJECTED=0
	origin_up
	$FVD_CREATE --force --origin /dev/mapper/fvdorigin $IMG >/dev/null || fail "fvd-create"
	origin_replace error
	# an origin that cannot be read is refused, its identity unknown
	expect_rejected "an unreadable origin" \
		"cannot read origin device /dev/mapper/fvdorigin for its fingerprint (-5): check it, or add skip_origin_check" \
		"$(fvd_table $IMG $IMG /dev/mapper/fvdorigin $PREFETCH_NOW)"
	fvd_up $IMG $IMG /dev/mapper/fvdorigin $PREFETCH_NOW skip_origin_check
	prefetch_wait error
	expect_eq "$(status_field 3)" 0/1024 "local blocks after the failure"
	expect_eq "$(status_field 1)" rw "metadata mode"
	origin_replace linear $ORIGIN 0
	expect_eq "$(prefetch_state)" error "state once the origin is back"
	dmsetup message $DEV 0 prefetch start || fail "prefetch start"
	prefetch_wait done
	$FVDIO compare $MAPPER $ORIGIN || fail "data differs after the retry"
	fvd_down
	dmsetup remove fvdorigin
}

# Suspend mid-prefetch stops it; resume continues, and it completes having
# read every origin block exactly once.
test_prefetch_suspend_resume() {
	local bytes
	delayed_origin 20
	$FVD_CREATE --force --origin /dev/mapper/fvdorigin $IMG >/dev/null || fail "fvd-create"
	fvd_up $IMG $IMG /dev/mapper/fvdorigin $PREFETCH_NOW prefetch_batch 256 prefetch_writes 1
	prefetch_wait_bytes
	timeout 120 dmsetup suspend $DEV || fail "suspend during prefetch"
	bytes=$(status_field 16)
	say "suspended after $bytes bytes, $(local_blocks) blocks local"
	[ "$(local_blocks)" -lt 1024 ] || fail "the prefetch was done before the suspend"
	expect_eq "$(status_field 16)" "$bytes" "bytes copied while suspended"
	timeout 120 dmsetup resume $DEV || fail "resume"
	prefetch_wait done
	expect_eq "$(status_field 14)" $((64 * MB)) "bytes read from the origin"
	expect_eq "$(status_field 16)" $((64 * MB)) "bytes prefetched"
	$FVDIO compare $MAPPER $ORIGIN || fail "data differs after the prefetch"
	fvd_down
	dmsetup remove fvdorigin
}

# Removal mid-prefetch never hangs and persists what was copied.
test_prefetch_remove_midway() {
	local copied
	delayed_origin 20
	$FVD_CREATE --force --origin /dev/mapper/fvdorigin $IMG >/dev/null || fail "fvd-create"
	fvd_up $IMG $IMG /dev/mapper/fvdorigin $PREFETCH_NOW prefetch_batch 256
	prefetch_wait_bytes
	timeout 120 dmsetup remove $DEV || fail "remove during prefetch"
	$FVD_CHECK $IMG >/tmp/check.out || { cat /tmp/check.out; fail "fvd-check"; }
	copied=$(sed -n 's|.*: \([0-9]*\)/1024 blocks local.*|\1|p' /tmp/check.out)
	say "$copied blocks local after the removal"
	[ "$copied" -gt 0 ] && [ "$copied" -lt 1024 ] || fail "$copied blocks local"
	fvd_up $IMG $IMG /dev/mapper/fvdorigin
	expect_eq "$(local_blocks)" "$copied" "local blocks after reload"
	$FVDIO compare $MAPPER $ORIGIN || fail "data differs after the removal"
	fvd_down
	dmsetup remove fvdorigin
	rm -f /tmp/check.out
}

# An origin slowed by dm-delay falls below the minimum read throughput: the
# prefetch pauses, then measures afresh.
test_prefetch_pauses_on_slow_origin() {
	delayed_origin 50
	$FVD_CREATE --force --origin /dev/mapper/fvdorigin $IMG >/dev/null || fail "fvd-create"
	# at most 64 KiB per 50 ms, 1280 KiB/s: below the 4096 KiB/s asked for
	fvd_up $IMG $IMG /dev/mapper/fvdorigin prefetch_delay 0 prefetch_batch 64 \
		prefetch_writes 1 prefetch_window 200 prefetch_min_read 4096 \
		prefetch_min_write 0 prefetch_max_pause 300
	prefetch_wait paused
	expect_eq "$PREFETCH_CAUSE" origin_slow "cause of the pause"
	# the last figures measured stay in the status through the pause
	say "paused: origin $(status_field 17) KiB/s, data $(status_field 18) KiB/s"
	[ "$(status_field 17)" -gt 0 ] && [ "$(status_field 17)" -lt 4096 ] ||
		fail "paused at $(status_field 17) KiB/s"
	prefetch_wait running
	expect_eq "$PREFETCH_CAUSE" - "cause once running again"
	prefetch_wait paused
	[ "$(status_field 19)" -ge 2 ] || fail "$(status_field 19) pauses"
	dmsetup message $DEV 0 prefetch stop || fail "prefetch stop"
	prefetch_wait stopped
	expect_eq "$PREFETCH_CAUSE" message "cause after stop"
	fvd_down
	dmsetup remove fvdorigin
}

# prefetch_max_rate caps the prefetch's origin reads: over any span the
# bytes copied grow by at most the cap times the span, plus the batches
# that may have been in flight at its start and the one it allows at once.
# The cap lies below prefetch_min_read, yet the prefetch never pauses: the
# time it is held by the cap is no part of the throughput it measures.  A
# "set" lifts the cap, and the copy completes with the data intact.
test_prefetch_max_rate() {
	local t0 t1 b0 b1 f cap=512 batch=$((256 * KB)) seen=0 i limit deadline
	$FVD_CREATE --force --origin $ORIGIN $IMG >/dev/null || fail "fvd-create"
	fvd_up $IMG $IMG $ORIGIN prefetch_delay 0 prefetch_batch 256 prefetch_window 10 \
		prefetch_min_read 1024 prefetch_max_rate $cap
	prefetch_wait_bytes
	t0=$(date +%s%N)
	b0=$(status_field 16)
	# until 2 MiB more are copied, the cause said the cap held it, and a
	# throughput window ended (10 ms of copying: only the copying counts)
	i=0
	deadline=$((SECONDS + 300))
	while [ $SECONDS -lt $deadline ] && i=$((i + 1)); do
		read -r -a f <<<"$(dmsetup status "$DEV")"
		b1=${f[18]}
		[ "${f[22]}" = max_rate ] && seen=1
		[ "${f[17]}" = running ] || fail "prefetch ${f[17]} (${f[22]}) under the cap"
		[ $seen = 1 ] && [ $((b1 - b0)) -ge $((2 * MB)) ] && [ "${f[19]}" -gt 0 ] && break
	done
	t1=$(date +%s%N)
	[ $seen = 1 ] || fail "cause never max_rate in $i status calls"
	[ $((b1 - b0)) -ge $((2 * MB)) ] || fail "only $((b1 - b0)) bytes copied under the cap"
	# two batches in flight at t0 and one allowed at once
	limit=$(((t1 - t0) * cap * KB / 1000000000 + 3 * batch))
	say "$((b1 - b0)) bytes copied in $(((t1 - t0) / 1000000)) ms at a cap of $cap KiB/s (at most $limit); measured origin $(status_field 17) KiB/s, $(status_field 19) pauses"
	[ $((b1 - b0)) -le "$limit" ] || fail "$((b1 - b0)) bytes copied, the cap allows $limit"
	[ "${f[19]}" -gt 0 ] || fail "no throughput window ended"
	expect_eq "$(status_field 19)" 0 "pauses under a cap below prefetch_min_read"
	[[ " $(dmsetup table $DEV) " == *" prefetch_max_rate $cap "* ]] ||
		fail "table line without the cap: $(dmsetup table $DEV)"
	dmesg -c >>/tmp/kernel-log.saved
	if dmsetup message $DEV 0 set prefetch_max_rate 16777217 2>/dev/null; then
		fail "a cap of 16777217 KiB/s was accepted"
	fi
	dmesg | grep -qF "Invalid prefetch_max_rate: KiB/s, 0 to 16777216" ||
		fail "no message on the cap refused"
	dmsetup message $DEV 0 set prefetch_max_rate 0 || fail "lift the cap"
	[[ " $(dmsetup table $DEV) " == *" prefetch_max_rate 0 "* ]] ||
		fail "table line after the cap was lifted: $(dmsetup table $DEV)"
	prefetch_wait done
	$FVDIO compare $MAPPER $ORIGIN || fail "data differs after the capped prefetch"
	fvd_down
}

# A suspend that a signal interrupts while dm waits for a read from a slow
# origin is undone: the prefetch, which the presuspend stopped, runs again
# when told to.  Before, it stayed stopped for good with its state saying
# "running".
test_prefetch_after_interrupted_suspend() {
	local reader suspender i
	modprobe dm-delay || fail "modprobe dm-delay"
	origin_up
	$FVD_CREATE --force --origin /dev/mapper/fvdorigin $IMG >/dev/null || fail "fvd-create"
	fvd_up $IMG $IMG /dev/mapper/fvdorigin prefetch_delay 3600 prefetch_min_read 0 \
		prefetch_min_write 0
	# slow only from here: the fingerprint's reads at format and load are not the test's
	origin_replace delay $ORIGIN 0 20000
	expect_eq "$(prefetch_state)" waiting "prefetch state"
	dd if=$MAPPER of=/dev/null bs=64K count=1 iflag=direct status=none &
	reader=$!
	until [ "$(status_field 14)" -gt 0 ]; do
		kill -0 $reader 2>/dev/null || fail "the read ended before reading the origin"
	done
	dmsetup suspend --noflush $DEV 2>/dev/null &
	suspender=$!
	for ((i = 0; i < 2000; i++)); do
		grep -q dm_wait_for_completion /proc/$suspender/stack 2>/dev/null && break
		kill -0 $suspender 2>/dev/null || fail "the suspend ended before waiting for the read"
	done
	grep -q dm_wait_for_completion /proc/$suspender/stack || fail "the suspend does not wait"
	kill -TERM $suspender
	wait $suspender && fail "the interrupted suspend succeeded"
	dmsetup info $DEV | grep -q "^State: *ACTIVE" || fail "not active after the interrupted suspend"
	wait $reader || fail "the read from the origin"
	origin_replace linear $ORIGIN 0
	dmsetup message $DEV 0 prefetch start || fail "prefetch start"
	PREFETCH_WAIT_TIMEOUT=120 prefetch_wait done
	$FVDIO compare $MAPPER $ORIGIN || fail "data differs after the prefetch"
	fvd_down
	dmsetup remove fvdorigin
}

# A disk larger than its origin: the blocks past the origin's end read as
# zeroes without it, so the prefetch leaves them alone and the image is
# all-local once the origin's blocks are.
test_prefetch_disk_larger_than_origin() {
	$FVD_CREATE --force --origin $ORIGIN --size 96M $IMG >/dev/null || fail "fvd-create"
	fvd_up $IMG $IMG $ORIGIN $PREFETCH_NOW
	prefetch_wait done
	expect_eq "$(status_field 3)" 1024/1536 "local blocks"
	expect_eq "$(status_field 16)" $((64 * MB)) "bytes prefetched"
	fvd_down
	$FVD_CHECK $IMG >/tmp/check.out || { cat /tmp/check.out; fail "fvd-check"; }
	fvd_up $IMG $IMG -
	$FVDIO compare $MAPPER $ORIGIN --length $((64 * MB)) || fail "origin part differs"
	$FVDIO zeroes $MAPPER $((64 * MB)) $((32 * MB)) || fail "past the origin: not zeroes"
	fvd_down
	rm -f /tmp/check.out
}

# fio saturating the data device slows the prefetch's data writes below the
# minimum: it pauses.  The data device is a null_blk that serves one request
# at a time in 1 ms, in the order they came (no I/O scheduler).  A submitter
# that finds the one tag taken sleeps in the submission until its turn, so
# the load is 32 fio jobs, not one job's queue depth: each prefetch write
# waits behind some 32 ms of fio's.  The minimum is half the write
# throughput the prefetch measured alone on that device just before.
test_prefetch_pauses_on_busy_data_device() {
	local w0 fio_pid i nr
	modprobe null_blk nr_devices=1 memory_backed=1 gb=1 queue_mode=2 \
		hw_queue_depth=1 submit_queues=1 irqmode=2 completion_nsec=1000000 ||
		fail "modprobe null_blk"
	echo none >/sys/block/nullb0/queue/scheduler || fail "no I/O scheduler"
	# A 256 MiB origin whose reads each take 2 ms more: alone the prefetch
	# needs some 20 s for it, so measuring leaves most of it to copy even
	# when the host's page cache serves the origin's disks.
	modprobe dm-delay || fail "modprobe dm-delay"
	dd if=/dev/urandom of=$DATA bs=1M count=128 status=none || fail "origin data"
	printf '0 %s delay %s 0 2\n%s %s delay %s 0 2\n' "$(sectors $DATA)" $DATA \
		"$(sectors $DATA)" "$(sectors $IMG)" $IMG | dmsetup create fvdorigin ||
		fail "fvdorigin"
	$FVD_CREATE --force --origin /dev/mapper/fvdorigin --data-dev /dev/nullb0 \
		$SCRATCH >/dev/null || fail "fvd-create"
	fvd_up $SCRATCH /dev/nullb0 /dev/mapper/fvdorigin prefetch_delay 0 \
		prefetch_batch 64 prefetch_writes 1 prefetch_window 100 \
		prefetch_min_read 0 prefetch_min_write 0 prefetch_max_pause 200
	for ((i = 0; i < 2400; i++)); do
		set -- $(dmsetup status $DEV)
		w0=${21}
		[ "$w0" -gt 0 ] && break
		[ "${18}" = running ] || fail "prefetch ${18} before measuring"
	done
	[ "$w0" -gt 0 ] || fail "no write throughput measured"
	dmsetup message $DEV 0 prefetch stop || fail "prefetch stop"
	say "alone: data writes $w0 KiB/s after $(status_field 16) bytes; minimum now $((w0 / 2))"
	dmsetup message $DEV 0 set prefetch_min_write $((w0 / 2)) || fail "set"
	fio --name=load --filename=/dev/nullb0 --offset=512M --size=64M --direct=1 \
		--rw=randwrite --bs=4k --ioengine=libaio --numjobs=32 --iodepth=2 --time_based \
		--runtime=120 --output=/dev/null &
	fio_pid=$!
	# fio takes seconds to start in the guest: until it wrote 2000 blocks
	# (paced by the status calls)
	nr=$(awk '{ print $5 }' /sys/block/nullb0/stat)
	until [ "$(awk '{ print $5 }' /sys/block/nullb0/stat)" -ge $((nr + 2000)) ]; do
		kill -0 $fio_pid 2>/dev/null || fail "fio ended"
		status_field 19 >/dev/null
	done
	dmsetup message $DEV 0 prefetch start || fail "prefetch start"
	# on dm events (a pause raises two), for as long as fio runs
	until [ "$(status_field 19)" -gt 0 ]; do
		nr=$(event_nr)
		[ "$(prefetch_state)" = running ] || [ "$(prefetch_state)" = paused ] ||
			fail "prefetch $(prefetch_state) under load, without a pause"
		kill -0 $fio_pid 2>/dev/null || fail "no pause while fio ran"
		# bounded, so that the end of fio is noticed without an event
		timeout 5 dmsetup wait $DEV "$nr" >/dev/null || true
	done
	say "under fio: $(status_field 19) pauses, data writes $(status_field 18) KiB/s"
	kill $fio_pid 2>/dev/null || true	# it may have ended just now
	wait $fio_pid || true	# killed
	dmsetup message $DEV 0 set prefetch_min_write 0 || fail "set"
	prefetch_wait done
	$FVDIO compare $MAPPER /dev/mapper/fvdorigin || fail "data differs after the prefetch"
	fvd_down
	dmsetup remove fvdorigin
	rmmod null_blk
}

# nbd_serve: serve $ORIGIN read-only over NBD on the guest's loopback
nbd_serve() {
	cat >/tmp/nbd.conf <<EOF
[generic]
user = root
group = root
listenaddr = 127.0.0.1
port = 10809
[origin]
exportname = $ORIGIN
readonly = true
EOF
	nbd-server -C /tmp/nbd.conf || fail "nbd-server"
}

# An origin served over NBD on loopback: the server is killed mid-prefetch
# (with a 5 s I/O timeout the NBD device fails the reads in flight, the
# prefetch stops in state error, local blocks stay readable); once it
# runs again, the origin path is switched to a new connection and
# "prefetch start" completes the copy.
test_prefetch_nbd_origin_server_killed() {
	ip link set lo up || fail "loopback"
	modprobe nbd nbds_max=2 || fail "modprobe nbd"
	nbd_serve
	nbd-client 127.0.0.1 /dev/nbd0 -N origin -t 5 >/dev/null || fail "nbd-client nbd0"
	expect_eq "$(sectors /dev/nbd0)" "$(sectors $ORIGIN)" "NBD device size"
	dmsetup create fvdorigin --table "0 $(sectors $ORIGIN) linear /dev/nbd0 0" ||
		fail "fvdorigin"
	$FVD_CREATE --force --origin /dev/mapper/fvdorigin $IMG >/dev/null || fail "fvd-create"
	fvd_up $IMG $IMG /dev/mapper/fvdorigin $PREFETCH_NOW prefetch_batch 64 prefetch_writes 1
	prefetch_wait_bytes
	pkill -x nbd-server || fail "kill nbd-server"
	prefetch_wait error
	say "the prefetch stopped after $(status_field 16) bytes, $(local_blocks) blocks local"
	[ "$(local_blocks)" -gt 0 ] && [ "$(local_blocks)" -lt 1024 ] ||
		fail "$(local_blocks) blocks local"
	$FVDIO compare $MAPPER $ORIGIN --length 65536 || fail "local block 0 without the server"
	expect_eq "$(status_field 1)" rw "metadata mode"
	nbd_serve
	nbd-client 127.0.0.1 /dev/nbd1 -N origin -t 5 >/dev/null || fail "nbd-client nbd1"
	dmsetup suspend --noflush fvdorigin &&
		dmsetup reload fvdorigin --table "0 $(sectors $ORIGIN) linear /dev/nbd1 0" &&
		dmsetup resume fvdorigin || fail "switch fvdorigin to nbd1"
	dmsetup message $DEV 0 prefetch start || fail "prefetch start"
	prefetch_wait done
	$FVDIO compare $MAPPER $ORIGIN || fail "data differs after the prefetch"
	fvd_down
	dmsetup remove fvdorigin
	nbd-client -d /dev/nbd0 >/dev/null 2>&1
	nbd-client -d /dev/nbd1 >/dev/null || fail "nbd-client -d"
	pkill -x nbd-server
	rm -f /tmp/nbd.conf
}

# ms_since T0: milliseconds from a date +%s%N reading to now
ms_since() {
	echo $((($(date +%s%N) - $1) / 1000000))
}

# ratio A B: A / B to two places
ratio() {
	python3 -c "print('%.2f' % ($1 / $2))"
}

# nbd_read_sectors NBD: sectors read from /dev/NBD so far
nbd_read_sectors() {
	awk '{ print $3 }' /sys/block/"$1"/stat
}

# An origin across a shaped link (tests/lib/netorigin.sh, the WAN profile:
# 25 Mbit/s, 20 ms round trip): the shaping holds (single reads take a
# round trip, a sequential read takes the link's rate), and an image over
# it is copied whole by the prefetch, reading the origin exactly once, with
# 1 and with 4 batches in flight, against dd and fio through the same link
# at the same queue depths.  The ratios are figures for the issue; asserted
# are the link, the origin bytes and the data.
test_network_origin_wan() {
	local size=$((16 * MB)) t0 ms min_ms dd1_ms fio4_ms depth s0 s1 pf_ms=""
	dmsetup create fvdslice --table "0 $((size / 512)) linear $ORIGIN 0" || fail "fvdslice"
	netorigin_up wan /dev/mapper/fvdslice || fail "network origin"
	netorigin_connect nbd0 || fail "nbd-client"
	expect_eq "$(bytes /dev/nbd0)" $size "origin size over NBD"
	t0=$(date +%s%N)
	dd if=/dev/nbd0 of=/dev/null bs=4k count=20 skip=1000 iflag=direct status=none ||
		fail "single reads"
	ms=$(ms_since "$t0")
	[ "$ms" -ge 400 ] || fail "20 single reads in $ms ms: less than a 20 ms round trip each"
	t0=$(date +%s%N)
	dd if=/dev/nbd0 of=/dev/null bs=1M iflag=direct status=none || fail "dd over the link"
	dd1_ms=$(ms_since "$t0")
	# the bytes at 25 Mbit/s, less 10 % for netem's accounting of headers
	min_ms=$((size * 8 / 25000 * 9 / 10))
	[ "$dd1_ms" -ge "$min_ms" ] || fail "16 MiB in $dd1_ms ms: faster than the link's rate"
	# fio's own time: it takes a second or two to start under TCG
	fio --name=wan4 --filename=/dev/nbd0 --rw=read --bs=1M --iodepth=4 --ioengine=libaio \
		--direct=1 --size=$size --output-format=json --output=/tmp/fio.json ||
		fail "fio over the link"
	fio4_ms=$(python3 -c 'import json; print(json.load(open("/tmp/fio.json"))["jobs"][0]["read"]["runtime"])')
	rm -f /tmp/fio.json
	for depth in 1 4; do
		$FVD_CREATE --force --origin /dev/nbd0 $IMG >/dev/null || fail "fvd-create over NBD"
		fvd_up $IMG $IMG /dev/nbd0 no_prefetch prefetch_delay 0 prefetch_batch 1024 \
			prefetch_writes $depth
		s0=$(nbd_read_sectors nbd0)
		t0=$(date +%s%N)
		dmsetup message $DEV 0 prefetch start || fail "prefetch start"
		prefetch_wait done
		ms=$(ms_since "$t0")
		s1=$(nbd_read_sectors nbd0)
		expect_eq "$(((s1 - s0) * 512))" $size "origin bytes the prefetch read ($depth in flight)"
		$FVDIO compare $MAPPER /dev/mapper/fvdslice || fail "data differs ($depth in flight)"
		fvd_down
		pf_ms="$pf_ms $ms"
	done
	read -r ms t0 <<<"$pf_ms"
	say "WAN link, 16 MiB: dd 1 MiB ${dd1_ms} ms ($((size * 1000 / dd1_ms / 1024)) KiB/s), fio qd4 ${fio4_ms} ms; prefetch 1 in flight ${ms} ms = $(ratio "$dd1_ms" "$ms")x dd, 4 in flight ${t0} ms = $(ratio "$fio4_ms" "$t0")x fio qd4"
	netorigin_down
	dmsetup remove --retry fvdslice || fail "remove fvdslice"
}

# The origin over iSCSI, the second network transport (tests/lib/netorigin.sh:
# the kernel's target in the image server's namespace, open-iscsi's
# initiator in the host's), on the WAN link: the export takes no write and
# is shaped (single reads take a round trip each); dm-fvd copies two blocks
# on read and the prefetch the rest, reading each origin block once; the
# disk holds the origin's data, compared byte for byte, and still does once
# the session is logged out (the origin let go after the prefetch).
test_network_origin_iscsi() {
	local size=$((16 * MB)) disk t0 ms s0 s1
	dmsetup create fvdslice --table "0 $((size / 512)) linear $ORIGIN 0" || fail "fvdslice"
	netorigin_up wan /dev/mapper/fvdslice || fail "network origin"
	netorigin_iscsi_serve /dev/mapper/fvdslice || fail "the iSCSI export"
	disk=$(netorigin_iscsi_connect) || fail "the iSCSI login"
	expect_eq "$(bytes "$disk")" $size "origin size over iSCSI"
	if dd if=/dev/zero of="$disk" bs=4k count=1 oflag=direct status=none 2>/dev/null; then
		fail "the read-only export took a write"
	fi
	t0=$(date +%s%N)
	dd if="$disk" of=/dev/null bs=4k count=20 skip=1000 iflag=direct status=none ||
		fail "single reads over iSCSI"
	ms=$(ms_since "$t0")
	[ "$ms" -ge 400 ] || fail "20 single reads in $ms ms: less than a 20 ms round trip each"
	$FVD_CREATE --force --origin "$disk" $IMG >/dev/null || fail "fvd-create over iSCSI"
	fvd_up $IMG $IMG "$disk" no_prefetch prefetch_delay 0
	s0=$(nbd_read_sectors "${disk#/dev/}")
	cmp <(block_of $MAPPER 3) <(block_of /dev/mapper/fvdslice 3) || fail "block 3 read over iSCSI"
	cmp <(block_of $MAPPER 200) <(block_of /dev/mapper/fvdslice 200) ||
		fail "block 200 read over iSCSI"
	expect_eq "$(status_field 13)" $((2 * 65536)) "bytes copied on read"
	dmsetup message $DEV 0 prefetch start || fail "prefetch start"
	prefetch_wait done
	s1=$(nbd_read_sectors "${disk#/dev/}")
	expect_eq "$(((s1 - s0) * 512))" $size "origin bytes read over iSCSI (each block once)"
	$FVDIO compare $MAPPER /dev/mapper/fvdslice || fail "data differs over iSCSI"
	iscsiadm -m node --logoutall=all >/dev/null || fail "iSCSI logout"
	[ ! -b "$disk" ] || fail "$disk still there after the logout"
	$FVDIO compare $MAPPER /dev/mapper/fvdslice || fail "data differs once the origin is gone"
	fvd_down
	netorigin_down
	dmsetup remove --retry fvdslice || fail "remove fvdslice"
}

# held_wait N: until N guest I/Os are held for the origin (field 22)
held_wait() {
	local deadline=$((SECONDS + 120))
	while [ $SECONDS -lt $deadline ]; do
		[ "$(status_field 22)" -ge "$1" ] && return 0
	done
	fail "$(status_field 22) I/Os held after 120 s, expected $1"
}

# origin_back LINEAR NBD: the server runs again, /dev/NBD is a new
# connection to it, and the dm-linear LINEAR (the origin's path) leads there
origin_back() {
	netorigin_serve || fail "restart the server"
	netorigin_connect "$2" || fail "nbd-client $2"
	dmsetup suspend --noflush "$1" &&
		dmsetup reload "$1" --table "0 $(sectors $ORIGIN) linear /dev/$2 0" &&
		dmsetup resume "$1" || fail "switch $1 to $2"
}

# block_of DEV BLOCK: the 64 KiB block BLOCK of DEV, to stdout
block_of() {
	dd if="$1" bs=64k skip="$2" count=1 iflag=direct status=none
}

# origin_error_mode queue, the origin across the network, its server
# crashing: a read and a partial write of absent blocks are held (field 22,
# a dm event) instead of failing while local blocks are still served, and
# complete with the right data once the origin's path leads to a new
# connection.  Held reads go back to device-mapper on a noflush suspend and
# are served by the table resumed next; a suspend with flush fails them; past
# origin_queue_timeout they fail with EIO, and with origin_error_mode fail
# (the default) no I/O is held at all.
test_origin_error_mode_queue() {
	local reader writer rc nr
	head -c 4096 /dev/urandom >/tmp/w4k
	netorigin_up datacenter $ORIGIN || fail "network origin"
	netorigin_connect nbd0 || fail "nbd-client nbd0"
	dmsetup create fvdorigin --table "0 $(sectors $ORIGIN) linear /dev/nbd0 0" ||
		fail "fvdorigin"
	$FVD_CREATE --force --origin /dev/mapper/fvdorigin $IMG >/dev/null || fail "fvd-create"
	fvd_up $IMG $IMG /dev/mapper/fvdorigin origin_error_mode queue origin_queue_timeout 600
	[[ " $(dmsetup table $DEV) " == *" origin_error_mode queue origin_queue_timeout 600 "* ]] ||
		fail "table line: $(dmsetup table $DEV)"
	block_of $MAPPER 0 >/dev/null || fail "copy block 0 on read"

	say "the server crashes; a read (copy-on-read) and a partial write wait"
	netorigin_kill
	nr=$(event_nr)
	timeout 300 dd if=$MAPPER bs=64k skip=100 count=1 iflag=direct status=none >/tmp/held.out &
	reader=$!
	dd if=/tmp/w4k of=$MAPPER bs=4k seek=$((150 * 16)) count=1 oflag=direct conv=notrunc \
		status=none &
	writer=$!
	timeout 60 dmsetup wait $DEV "$nr" >/dev/null || fail "no dm event for the held I/O"
	held_wait 2
	kill -0 $reader && kill -0 $writer || fail "an I/O ended while the origin is down"
	cmp <(block_of $MAPPER 0) <(block_of $ORIGIN 0) || fail "local block 0 with the origin down"
	origin_back fvdorigin nbd1
	wait $reader || fail "the held read failed"
	wait $writer || fail "the held write failed"
	cmp /tmp/held.out <(block_of $ORIGIN 100) || fail "the held read returned other data"
	cmp <(block_of $MAPPER 150) <(cat /tmp/w4k; block_of $ORIGIN 150 | tail -c +4097) ||
		fail "the held write's block"
	expect_eq "$(status_field 22)" 0 "I/Os held once the origin is back"

	say "held reads are issued again to the next table after a noflush suspend"
	netorigin_kill
	timeout 300 dd if=$MAPPER of=/tmp/held.out bs=1M skip=2 count=1 iflag=direct status=none &
	reader=$!
	held_wait 1
	netorigin_serve || fail "restart the server"
	netorigin_connect nbd2 || fail "nbd-client nbd2"
	dmsetup create fvdlin1 --table "0 $(sectors $ORIGIN) linear /dev/nbd2 0" || fail "fvdlin1"
	dmsetup reload $DEV --table "$(fvd_table $IMG $IMG /dev/mapper/fvdlin1 no_prefetch \
		origin_error_mode queue)" || fail "reload over the new origin path"
	dmsetup suspend --noflush $DEV && dmsetup resume $DEV || fail "noflush suspend, resume"
	wait $reader || fail "the requeued read failed"
	cmp /tmp/held.out <(dd if=$ORIGIN bs=1M skip=2 count=1 status=none) ||
		fail "the requeued read returned other data"

	say "a suspend with flush fails a held read"
	netorigin_kill
	block_of $MAPPER 200 >/dev/null &
	reader=$!
	held_wait 1
	dmsetup suspend $DEV || fail "suspend with a held read"
	wait $reader && fail "the held read succeeded over a suspend with flush"
	dmsetup resume $DEV || fail "resume"
	expect_eq "$(status_field 22)" 0 "I/Os held after the suspend"

	say "a read of several blocks straight from the origin, held and retried"
	# the origin is down: the new tables cannot read its fingerprint
	dmsetup reload $DEV --table "$(fvd_table $IMG $IMG /dev/mapper/fvdlin1 no_prefetch \
		skip_origin_check no_copy_on_read origin_error_mode queue)" &&
		dmsetup suspend $DEV && dmsetup resume $DEV || fail "reload with no_copy_on_read"
	timeout 300 dd if=$MAPPER of=/tmp/held.out bs=1M skip=8 count=1 iflag=direct status=none &
	reader=$!
	held_wait 1
	origin_back fvdlin1 nbd3
	wait $reader || fail "the held read of 1 MiB failed"
	cmp /tmp/held.out <(dd if=$ORIGIN bs=1M skip=8 count=1 status=none) ||
		fail "the held read of 1 MiB returned other data"
	netorigin_kill

	say "past origin_queue_timeout, and without queue"
	dmsetup reload $DEV --table "$(fvd_table $IMG $IMG /dev/mapper/fvdlin1 no_prefetch \
		skip_origin_check no_copy_on_read origin_error_mode queue origin_queue_timeout 2)" &&
		dmsetup suspend $DEV && dmsetup resume $DEV || fail "reload with a 2 s timeout"
	dmesg -c >>/tmp/kernel-log.saved
	block_of $MAPPER 300 >/dev/null && fail "a read over a dead origin succeeded"
	dmesg | grep -q "still fails after 2 s (origin_queue_timeout): failing the I/O" ||
		fail "no kernel log line on the timeout"
	expect_eq "$(status_field 22)" 0 "I/Os held after the timeout"
	dmsetup reload $DEV --table "$(fvd_table $IMG $IMG /dev/mapper/fvdlin1 no_prefetch \
		skip_origin_check)" &&
		dmsetup suspend $DEV && dmsetup resume $DEV || fail "reload with origin_error_mode fail"
	dmesg -c >>/tmp/kernel-log.saved
	# held, it would wait for the default 60 s
	rc=0
	timeout 30 dd if=$MAPPER bs=64k skip=300 count=1 iflag=direct of=/dev/null status=none ||
		rc=$?
	[ $rc -ne 0 ] && [ $rc -ne 124 ] || fail "a read over a dead origin, fail mode: status $rc"
	dmesg | grep -q "guest I/O held" && fail "held with origin_error_mode fail"
	expect_eq "$(status_field 22)" 0 "I/Os held with origin_error_mode fail"
	fvd_down
	rm -f /tmp/w4k /tmp/held.out
}

# A held read is issued again as it first was: a blk-mq origin (null_blk,
# memory-backed, with bad blocks) advances a bio it fails, unlike the
# dm-linear origins above.  The read of 1 MiB straight from the origin
# (no_copy_on_read) is held while its sectors are bad and returns the
# origin's data once they are cleared.
test_origin_error_mode_queue_blk_mq() {
	local nb=/sys/kernel/config/nullb/fvdnull dev reader rc
	modprobe null_blk nr_devices=0 || fail "modprobe null_blk"
	mountpoint -q /sys/kernel/config || mount -t configfs none /sys/kernel/config ||
		fail "configfs"
	mkdir $nb && echo 64 >$nb/size && echo 1 >$nb/memory_backed && echo 1 >$nb/power ||
		fail "null_blk device"
	# named after the configfs directory (nullbN on older kernels)
	dev=/dev/fvdnull
	[ -b $dev ] || dev=/dev/nullb$(cat $nb/index)
	[ -b $dev ] || fail "no block device for $nb"
	dd if=$ORIGIN of=$dev bs=1M oflag=direct status=none || fail "origin data"
	$FVD_CREATE --force --origin $dev $IMG >/dev/null || fail "fvd-create"
	# the data on a dm-linear that can be switched to an error target
	dmsetup create fvddata --table "0 $(sectors $DATA) linear $DATA 0" || fail "fvddata"
	$FVD_CREATE --force --origin $dev --data-dev /dev/mapper/fvddata $IMG >/dev/null ||
		fail "fvd-create"
	fvd_up $IMG /dev/mapper/fvddata $dev no_copy_on_read origin_error_mode queue \
		origin_queue_timeout 600
	echo "+16384-18431" >$nb/badblocks || fail "bad blocks"
	# a broken restore could hang the read: that fails too
	timeout 300 dd if=$MAPPER of=/tmp/held.out bs=1M skip=8 count=1 iflag=direct \
		status=none &
	reader=$!
	held_wait 1
	echo "-16384-18431" >$nb/badblocks || fail "clear the bad blocks"
	wait $reader || fail "the held read failed"
	cmp /tmp/held.out <(dd if=$ORIGIN bs=1M skip=8 count=1 status=none) ||
		fail "the held read returned other data"
	expect_eq "$(status_field 22)" 0 "I/Os held at the end"
	# a partial write whose data write fails is no origin error: it fails
	# at once, where a held one would wait for the 600 s timeout
	dmsetup suspend fvddata && dmsetup reload fvddata --table "0 $(sectors $DATA) error" &&
		dmsetup resume fvddata || fail "fvddata to error"
	rc=0
	timeout 60 dd if=/dev/zero of=$MAPPER bs=4k seek=$((50 * 16)) count=1 oflag=direct \
		conv=notrunc status=none || rc=$?
	[ $rc -ne 0 ] && [ $rc -ne 124 ] || fail "a write failing on the data device: status $rc"
	expect_eq "$(status_field 22)" 0 "I/Os held for a data write error"
	dmsetup suspend fvddata && dmsetup reload fvddata --table "0 $(sectors $DATA) linear $DATA 0" &&
		dmsetup resume fvddata || fail "fvddata back"
	fvd_down
	rmdir $nb || fail "remove the null_blk device"
	rm -f /tmp/held.out
}

# fio_latency NAME ARGS...: run fio, print "p50 p99" completion latency (us)
fio_latency() {
	local name=$1
	shift
	# in /tmp: fio leaves the output of --exec_prerun in its directory
	(cd /tmp && fio --name="$name" --output-format=json "$@") >/tmp/fio.json ||
		fail "fio $name"
	python3 - <<'PY'
import json
text = open("/tmp/fio.json").read()
job = json.loads(text[text.index("\n{") + 1 if not text.startswith("{") else 0:])["jobs"][0]
lat = []
for d in ("read", "write"):
    p = job[d]["clat_ns"].get("percentile")
    if job[d]["io_bytes"] and p:
        lat.append((p["50.000000"], p["99.000000"]))
print(" ".join("%d/%d" % (a // 1000, b // 1000) for a, b in lat))
PY
}

# Figures for the issue, not goals: the prefetch of a 128 MiB origin against
# a plain dd of the same size on the same disks, and the latency of guest
# I/O to local blocks with the prefetch idle and running.  Asserts only the
# data.
test_prefetch_rate_and_guest_latency() {
	local t0 t1 dd_ms pf_ms idle busy state
	dd if=/dev/urandom of=$DATA bs=1M count=128 status=none || fail "origin data"
	$FVD_CREATE --force --origin $DATA --data-dev $IMG $SCRATCH >/dev/null || fail "fvd-create"
	t0=$(date +%s%N)
	dd if=$DATA of=$IMG bs=1M iflag=direct oflag=direct status=none || fail "dd"
	sync $IMG
	t1=$(date +%s%N)
	dd_ms=$(((t1 - t0) / 1000000))
	$FVD_CREATE --force --origin $DATA --data-dev $IMG $SCRATCH >/dev/null || fail "fvd-create"
	fvd_up $SCRATCH $IMG $DATA no_prefetch prefetch_delay 0
	t0=$(date +%s%N)
	dmsetup message $DEV 0 prefetch start || fail "prefetch start"
	prefetch_wait done
	t1=$(date +%s%N)
	pf_ms=$(((t1 - t0) / 1000000))
	say "128 MiB: dd ${dd_ms} ms, prefetch ${pf_ms} ms (with its commit and the status calls): prefetch/dd time $(python3 -c "print(round($pf_ms / $dd_ms, 2))")"
	$FVDIO compare $MAPPER $DATA || fail "data differs after the prefetch"
	fvd_down

	# Guest 4K random reads and writes on 16 MiB already local, with the
	# prefetch idle and copying a 256 MiB origin (two disks joined) to a
	# memory-backed null_blk, with no minimum throughput: it never backs off.
	modprobe null_blk nr_devices=1 memory_backed=1 gb=1 || fail "modprobe null_blk"
	printf '0 %s linear %s 0\n%s %s linear %s 0\n' "$(sectors $DATA)" $DATA \
		"$(sectors $DATA)" "$(sectors $IMG)" $IMG | dmsetup create fvdorigin ||
		fail "fvdorigin"
	$FVD_CREATE --force --origin /dev/mapper/fvdorigin --data-dev /dev/nullb0 \
		$SCRATCH >/dev/null || fail "fvd-create"
	fvd_up $SCRATCH /dev/nullb0 /dev/mapper/fvdorigin no_prefetch prefetch_delay 0 \
		prefetch_min_read 0 prefetch_min_write 0
	dd if=/dev/urandom of=$MAPPER bs=1M count=16 oflag=direct status=none || fail "local region"
	set -- --filename=$MAPPER --direct=1 --rw=randrw --bs=4k --size=16M \
		--ioengine=psync --randseed=7 --time_based --runtime=1
	idle=$(fio_latency idle "$@")
	# fio takes a second to start here: it starts the prefetch itself
	busy=$(fio_latency busy "$@" --exec_prerun="dmsetup message $DEV 0 prefetch start")
	state=$(prefetch_state)
	say "guest 4K read/write latency p50/p99 us: prefetch idle $idle, prefetch running $busy (prefetch $state at the end, $(status_field 16) bytes copied, data writes $(status_field 18) KiB/s)"
	prefetch_wait done
	fvd_down
	dmsetup remove fvdorigin
	rmmod null_blk
	rm -f /tmp/fio.json /tmp/busy.prerun.txt
}

# ---- compact images ----

CHUNK=$((256 * KB))

# compact_up CHUNKS [FEATURES...]: a 64 MiB compact disk over $ORIGIN, its
# metadata on $SCRATCH, its data on "fvddata", a linear device of CHUNKS
# chunks over $DATA (grown with compact_grow).
compact_up() {
	local chunks=$1
	shift
	$FVD_CREATE --force --compact --chunk-size 256K --origin $ORIGIN \
		--data-dev $DATA $SCRATCH >/dev/null || fail "fvd-create --compact"
	dmsetup create fvddata --table "0 $((chunks * CHUNK / 512)) linear $DATA 0" ||
		fail "fvddata"
	fvd_up $SCRATCH /dev/mapper/fvddata $ORIGIN "$@"
}

compact_grow() {	# compact_grow CHUNKS: grow the data device, noflush resume
	dmsetup suspend fvddata &&
		dmsetup reload fvddata --table "0 $(($1 * CHUNK / 512)) linear $DATA 0" &&
		dmsetup resume fvddata || fail "grow fvddata"
	dmsetup suspend --noflush $DEV && dmsetup resume $DEV || fail "suspend/resume"
}

# compact_check_reload SUMMARY: remove the disk, fvd-check must find it clean
# and print SUMMARY, load it again.
compact_check_reload() {
	fvd_down
	$FVD_CHECK --data-dev /dev/mapper/fvddata $SCRATCH >/tmp/check.out ||
		{ cat /tmp/check.out; fail "fvd-check"; }
	grep -q "$1" /tmp/check.out ||
		{ cat /tmp/check.out; fail "fvd-check disagrees on the chunk table"; }
	fvd_up $SCRATCH /dev/mapper/fvddata $ORIGIN
}

# status_field 10: <free chunks>/<data chunks>, 11: ok | low_water | out_of_data_space
free_chunks() {
	status_field 10 | cut -d/ -f1
}

# A compact disk whose data device holds 40 chunks of 256K takes random
# writes over its first 8 MiB (32 chunks), reads back like a full one,
# and keeps its chunk table across remove/create.
test_compact_random_writes() {
	local mapped
	compact_up 40
	expect_eq "$(status_field 10)" "40/40" "free/data chunks"
	expect_eq "$(status_field 11)" ok "space state"
	cp $ORIGIN /tmp/ref
	$FVDIO randwrite $MAPPER /tmp/ref --seed 51 --count 200 --end $((8 * MB)) ||
		fail "writes"
	$FVDIO compare $MAPPER /tmp/ref || fail "data differs"
	mapped=$((40 - $(free_chunks)))
	say "status: $(dmsetup status $DEV); $mapped chunks mapped"
	[ "$mapped" -ge 20 ] && [ "$mapped" -le 32 ] || fail "$mapped chunks mapped"
	compact_check_reload "$mapped/256 chunks mapped, data device holds 40 chunks"
	expect_eq "$(free_chunks)" $((40 - mapped)) "free chunks after reload"
	$FVDIO compare $MAPPER /tmp/ref || fail "data differs after reload"
	fvd_down
	dmsetup remove fvddata
	rm -f /tmp/ref /tmp/check.out
}

# error_if_no_space: the write needing a fifth chunk fails with ENOSPC at
# once, raises an event, and nothing written before is harmed.
test_compact_error_if_no_space() {
	local ev i
	compact_up 4 error_if_no_space
	cp $ORIGIN /tmp/ref
	head -c 8192 /dev/urandom >/tmp/piece
	for i in 0 1 2 3; do
		dd if=/tmp/piece of=$MAPPER bs=8192 seek=$((i * 64)) oflag=direct conv=notrunc \
			status=none || fail "write to chunk $i"
		dd if=/tmp/piece of=/tmp/ref bs=8192 seek=$((i * 64)) conv=notrunc status=none
	done
	expect_eq "$(status_field 10)" "0/4" "free/data chunks"
	ev=$(event_nr)
	if dd if=/tmp/piece of=$MAPPER bs=8192 seek=$((4 * 64)) oflag=direct conv=notrunc \
		status=none 2>/tmp/dd.err; then
		fail "a write needing a fifth chunk succeeded"
	fi
	grep -q "No space left on device" /tmp/dd.err || { cat /tmp/dd.err; fail "not ENOSPC"; }
	expect_eq "$(status_field 11)" out_of_data_space "space state"
	[ "$(event_nr)" -gt "$ev" ] || fail "no dm event"
	sync
	$FVDIO compare $MAPPER /tmp/ref || fail "data differs"
	fvd_down
	dmsetup remove fvddata
	rm -f /tmp/ref /tmp/piece /tmp/dd.err
}

# Without error_if_no_space a write needing a chunk waits; growing the data
# device and a noflush suspend/resume let it through.  The low water mark
# raised an event on the way down.
test_compact_hold_then_grow() {
	local ev pid i status
	compact_up 4 low_water_mark 2
	cp $ORIGIN /tmp/ref
	head -c 8192 /dev/urandom >/tmp/piece
	ev=$(event_nr)
	for i in 0 1 2 3; do
		dd if=/tmp/piece of=$MAPPER bs=8192 seek=$((i * 64)) oflag=direct conv=notrunc \
			status=none || fail "write to chunk $i"
		dd if=/tmp/piece of=/tmp/ref bs=8192 seek=$((i * 64)) conv=notrunc status=none
	done
	[ "$(event_nr)" -gt "$ev" ] || fail "no low water mark event"
	expect_eq "$(status_field 11)" low_water "space state below the low water mark"
	ev=$(event_nr)
	dd if=/tmp/piece of=$MAPPER bs=8192 seek=$((9 * 64)) oflag=direct conv=notrunc \
		status=none 2>/tmp/dd.err &
	pid=$!
	dd if=/tmp/piece of=/tmp/ref bs=8192 seek=$((9 * 64)) conv=notrunc status=none
	# the held write raises an event: wait for it, no sleeping
	dmsetup wait $DEV "$ev" || fail "dmsetup wait"
	expect_eq "$(status_field 11)" out_of_data_space "space state"
	kill -0 $pid 2>/dev/null || fail "the write did not wait for space"
	compact_grow 8
	wait $pid
	status=$?
	[ $status -eq 0 ] || { cat /tmp/dd.err; fail "held write failed after growth ($status)"; }
	expect_eq "$(status_field 10)" "3/8" "free/data chunks after growth"
	expect_eq "$(status_field 11)" ok "space state after growth"
	$FVDIO compare $MAPPER /tmp/ref || fail "data differs"
	fvd_down
	dmsetup remove fvddata
	rm -f /tmp/ref /tmp/piece /tmp/dd.err
}

# no_space_timeout: held writes fail with ENOSPC when it expires, later ones
# at once, until the data device grows.
test_compact_no_space_timeout() {
	compact_up 1 no_space_timeout 1
	head -c 8192 /dev/urandom >/tmp/piece
	dd if=/tmp/piece of=$MAPPER bs=8192 oflag=direct conv=notrunc status=none ||
		fail "write to chunk 0"
	if dd if=/tmp/piece of=$MAPPER bs=8192 seek=64 oflag=direct conv=notrunc \
		status=none 2>/tmp/dd.err; then
		fail "a write needing a second chunk succeeded"
	fi
	grep -q "No space left on device" /tmp/dd.err || { cat /tmp/dd.err; fail "not ENOSPC"; }
	if dd if=/tmp/piece of=$MAPPER bs=8192 seek=128 oflag=direct conv=notrunc \
		status=none 2>/dev/null; then
		fail "a write after the timeout succeeded"
	fi
	compact_grow 2
	dd if=/tmp/piece of=$MAPPER bs=8192 seek=128 oflag=direct conv=notrunc status=none ||
		fail "write after growth"
	expect_eq "$(status_field 10)" "0/2" "free/data chunks"
	fvd_down
	dmsetup remove fvddata
	rm -f /tmp/piece /tmp/dd.err
}

# flush_mapper: an empty write with fsync: a flush of the fvd device.
flush_mapper() {
	dd if=/dev/null of=$MAPPER conv=fsync,notrunc status=none || fail "flush"
}

# blkdiscard unmaps the whole chunks it covers: they read as the origin
# again and are free after the next commit (a write needing a chunk meanwhile
# waits for that commit, even with error_if_no_space); a partial chunk is
# left alone.  The table survives remove/create and fvd-check agrees.
test_compact_discard() {
	local dm
	compact_up 8 error_if_no_space
	dm=dm-$(dmsetup info -c --noheadings -o minor $DEV | tr -d ' ')
	expect_eq "$(cat /sys/block/$dm/queue/discard_granularity)" $CHUNK "discard granularity"
	cp $ORIGIN /tmp/ref
	head -c $((8 * CHUNK)) /dev/urandom >/tmp/piece
	dd if=/tmp/piece of=$MAPPER bs=$CHUNK oflag=direct conv=notrunc status=none ||
		fail "fill 8 chunks"
	dd if=/tmp/piece of=/tmp/ref bs=$CHUNK conv=notrunc status=none
	expect_eq "$(status_field 10)" "0/8" "free/data chunks when full"
	blkdiscard -o $((2 * CHUNK)) -l $((2 * CHUNK)) $MAPPER || fail "discard chunks 2-3"
	blkdiscard -o $((5 * CHUNK + 64 * KB)) -l $((128 * KB)) $MAPPER ||
		fail "discard inside chunk 5"
	dd if=$ORIGIN of=/tmp/ref bs=$CHUNK skip=2 seek=2 count=2 conv=notrunc status=none
	$FVDIO compare $MAPPER /tmp/ref || fail "data differs after the discards"
	# chunk 8 needs a chunk that the next commit frees
	head -c $CHUNK /dev/urandom >/tmp/piece
	dd if=/tmp/piece of=$MAPPER bs=$CHUNK seek=8 oflag=direct conv=notrunc status=none ||
		fail "write to chunk 8 with discarded chunks pending"
	dd if=/tmp/piece of=/tmp/ref bs=$CHUNK seek=8 conv=notrunc status=none
	flush_mapper
	expect_eq "$(status_field 10)" "1/8" "free/data chunks after the discard's commit"
	dd if=/tmp/piece of=$MAPPER bs=$CHUNK seek=9 oflag=direct conv=notrunc status=none ||
		fail "write to chunk 9"
	dd if=/tmp/piece of=/tmp/ref bs=$CHUNK seek=9 conv=notrunc status=none
	if dd if=/tmp/piece of=$MAPPER bs=$CHUNK seek=10 oflag=direct conv=notrunc \
		status=none 2>/dev/null; then
		fail "a ninth chunk was allocated"
	fi
	$FVDIO compare $MAPPER /tmp/ref || fail "data differs after reuse"
	compact_check_reload "8/256 chunks mapped, data device holds 8 chunks"
	$FVDIO compare $MAPPER /tmp/ref || fail "data differs after reload"
	# everything: the disk is the origin again, every chunk free
	blkdiscard $MAPPER || fail "discard the whole disk"
	flush_mapper
	expect_eq "$(status_field 10)" "8/8" "free/data chunks after discarding all"
	expect_eq "$(local_blocks)" 0 "local blocks"
	fvd_down
	$FVD_CHECK --data-dev /dev/mapper/fvddata $SCRATCH >/tmp/check.out ||
		{ cat /tmp/check.out; fail "fvd-check after discarding all"; }
	fvd_up $SCRATCH /dev/mapper/fvddata $ORIGIN
	$FVDIO compare $MAPPER $ORIGIN || fail "not the origin after discarding all"
	fvd_down
	dmsetup remove fvddata
	rm -f /tmp/ref /tmp/piece /tmp/check.out
}

# Compact image without a low-water mark, its data device far smaller than
# the disk: the prefetch stops with a reserve of free chunks (1/32 of them),
# and a guest write to a chunk of its own still finds one.  Before, the
# prefetch took the last free chunk and the write failed with ENOSPC.
test_compact_prefetch_leaves_room_for_writes() {
	compact_up 64 $PREFETCH_NOW error_if_no_space
	prefetch_wait stopped
	expect_eq "$(free_chunks)" 2 "free chunks when the prefetch stopped"
	head -c 8192 /dev/urandom >/tmp/piece
	dd if=/tmp/piece of=$MAPPER bs=8192 seek=$((200 * CHUNK / 8192)) oflag=direct \
		conv=notrunc status=none || fail "a guest write to a new chunk failed"
	cp $ORIGIN /tmp/ref
	dd if=/tmp/piece of=/tmp/ref bs=8192 seek=$((200 * CHUNK / 8192)) conv=notrunc status=none
	$FVDIO compare $MAPPER /tmp/ref || fail "data differs"
	fvd_down
	dmsetup remove fvddata
	rm -f /tmp/piece /tmp/ref
}

# Compact image: the prefetch allocates chunks only while more than
# low_water_mark are free, then stops; once the data device grew, "prefetch
# start" completes it.  On the all-local image, discards leave the chunks
# holding origin data mapped (there would be nothing to read back).
test_compact_prefetch_space_and_discard() {
	compact_up 100 $PREFETCH_NOW low_water_mark 10
	prefetch_wait stopped
	expect_eq "$PREFETCH_CAUSE" no_space "cause of the stop"
	expect_eq "$(free_chunks)" 10 "free chunks when the prefetch stopped"
	expect_eq "$(local_blocks)" 360 "local blocks (90 chunks of 4 blocks)"
	$FVDIO compare $MAPPER $ORIGIN || fail "data differs after the stop"
	compact_grow 300
	expect_eq "$(prefetch_state)" stopped "state after the resume"
	expect_eq "$(prefetch_cause)" no_space "cause after the resume"
	dmsetup message $DEV 0 prefetch start || fail "prefetch start"
	prefetch_wait done
	expect_eq "$PREFETCH_CAUSE" - "cause once done"
	expect_eq "$(status_field 10)" 44/300 "free/data chunks when done"
	expect_eq "$(local_blocks)" 1024 "local blocks when done"
	blkdiscard $MAPPER || fail "blkdiscard"
	expect_eq "$(status_field 10)" 44/300 "free/data chunks after the discard"
	expect_eq "$(local_blocks)" 1024 "local blocks after the discard"
	compact_check_reload "1024/1024 blocks local"
	$FVDIO compare $MAPPER $ORIGIN || fail "data differs after the discard"
	fvd_down
	expect_eq "$(sb_field $SCRATCH flags)" 3 "superblock flags"
	dmsetup remove fvddata
	rm -f /tmp/check.out
}

# The metadata behind fvdmeta, the data behind a linear fvddata of CHUNKS
# chunks, the origin behind fvdorigin: a compact image whose three devices
# a test can each swap for a failing or slow one.
compact_swappable_up() {	# compact_swappable_up CHUNKS [FEATURES...]
	local chunks=$1
	shift
	origin_up
	$FVD_CREATE --force --compact --chunk-size 256K --origin /dev/mapper/fvdorigin \
		--data-dev $DATA $SCRATCH >/dev/null || fail "fvd-create --compact"
	meta_linear_up
	dmsetup create fvddata --table "0 $((chunks * CHUNK / 512)) linear $DATA 0" ||
		fail "fvddata"
	fvd_up /dev/mapper/fvdmeta /dev/mapper/fvddata /dev/mapper/fvdorigin "$@"
}

# A copy-on-read in flight (its origin read slowed down) when a commit fails
# writes where its block was when it started.  The metadata device's writes
# take 8 s, then fail: the commit of a discard and a remapping of chunk 0
# is under way while the copy starts, and fails.  Before, the target then
# rolled back to the table on disk and the copy looked its chunk up again
# after the read: it wrote the origin's data over block 1 of the chunk's
# committed mapping.
test_compact_copy_on_read_across_commit_failure() {
	local reader before
	modprobe dm-flakey || fail "modprobe dm-flakey"
	modprobe dm-delay || fail "modprobe dm-delay"
	compact_swappable_up 8
	cp $ORIGIN /tmp/ref
	# block 1 of chunk 0 committed: chunk 0 is physical chunk 0
	head -c 65536 /dev/urandom >/tmp/blk
	dd if=/tmp/blk of=$MAPPER bs=64K seek=1 count=1 oflag=direct conv=fsync status=none ||
		fail "write block 1"
	dd if=/tmp/blk of=/tmp/ref bs=64K seek=1 count=1 conv=notrunc status=none
	dmsetup create fvdfail --table "0 $(sectors $SCRATCH) flakey $SCRATCH 0 0 3600 1 error_writes" ||
		fail "fvdfail"
	meta_replace delay /dev/mapper/fvdfail 0 0 /dev/mapper/fvdfail 0 8000
	# chunk 0 discarded and written again (block 2): physical chunk 1, as
	# long as no commit of the discard completed
	blkdiscard -o 0 -l $CHUNK $MAPPER || fail "discard chunk 0"
	dd if=/tmp/blk of=$MAPPER bs=64K seek=2 count=1 oflag=direct status=none ||
		fail "write block 2"
	# a read of block 1 copies it on read, from an origin taking 8 s
	origin_replace delay $ORIGIN 0 8000
	before=$(status_field 14)
	dd if=$MAPPER of=/tmp/got bs=64K skip=1 count=1 iflag=direct status=none &
	reader=$!
	until [ "$(status_field 14)" -gt "$before" ]; do
		kill -0 $reader 2>/dev/null || fail "the read ended before reading the origin"
	done
	expect_eq "$(status_field 1)" rw "metadata mode when the copy started"
	if dd if=/dev/null of=$MAPPER conv=fsync,notrunc status=none 2>/dev/null; then
		fail "a flush succeeded without metadata writes"
	fi
	expect_eq "$(status_field 1)" ro "metadata mode"
	wait $reader || fail "the read of block 1"
	$FVDIO compare /tmp/got $ORIGIN --offset-b 65536 --length 65536 ||
		fail "block 1 did not read as the origin after its discard"
	fvd_down
	# what the metadata device holds: chunk 0 with block 1's write
	meta_replace linear $SCRATCH 0
	dmsetup remove fvdfail
	origin_replace linear $ORIGIN 0
	fvd_up /dev/mapper/fvdmeta /dev/mapper/fvddata /dev/mapper/fvdorigin
	$FVDIO compare $MAPPER /tmp/ref || fail "the image on disk differs"
	fvd_down
	dmsetup remove fvddata
	dmsetup remove fvdmeta
	dmsetup remove fvdorigin
	rm -f /tmp/ref /tmp/blk /tmp/got
}

# Writes held for a free chunk (no_space_timeout 0: until the data device
# grows) fail when a metadata error ends rw mode, and so does one held for
# the chunk a discard frees at the next commit, when that commit fails.
# Before, both waited for ever.
test_compact_held_writes_fail_when_metadata_fails() {
	local pid ev phase
	modprobe dm-flakey || fail "modprobe dm-flakey"
	head -c 8192 /dev/urandom >/tmp/piece
	for phase in full discard; do
		compact_swappable_up 2 no_space_timeout 0
		dd if=/tmp/piece of=$MAPPER bs=8192 seek=0 oflag=direct conv=notrunc,fsync status=none ||
			fail "write to chunk 0"
		dd if=/tmp/piece of=$MAPPER bs=8192 seek=$((CHUNK / 8192)) oflag=direct \
			conv=notrunc,fsync status=none || fail "write to chunk 1"
		expect_eq "$(status_field 10)" "0/2" "free/data chunks"
		if [ $phase = discard ]; then
			# metadata writes fail, after 3 s: the write below is held first
			dmsetup create fvdfail --table "0 $(sectors $SCRATCH) flakey $SCRATCH 0 0 3600 1 error_writes" ||
				fail "fvdfail"
			meta_replace delay /dev/mapper/fvdfail 0 0 /dev/mapper/fvdfail 0 3000
			blkdiscard -o 0 -l $CHUNK $MAPPER || fail "discard chunk 0"
		fi
		ev=$(event_nr)
		dd if=/tmp/piece of=$MAPPER bs=8192 seek=$((2 * CHUNK / 8192)) oflag=direct \
			conv=notrunc status=none 2>/tmp/dd.err &
		pid=$!
		if [ $phase = full ]; then
			dmsetup wait $DEV "$ev" >/dev/null || fail "dmsetup wait"
			expect_eq "$(status_field 11)" out_of_data_space "space state"
			kill -0 $pid 2>/dev/null || fail "the write to chunk 2 was not held"
			# a block of chunk 0 made local, then a commit that fails
			meta_replace flakey $SCRATCH 0 0 3600 1 error_writes
			dd if=/tmp/piece of=$MAPPER bs=8192 seek=8 oflag=direct conv=notrunc \
				status=none || fail "write to chunk 0"
			dd if=/dev/null of=$MAPPER conv=fsync,notrunc status=none 2>/dev/null &&
				fail "a flush succeeded without metadata writes"
		fi
		timeout 60 tail --pid=$pid -f /dev/null
		kill -0 $pid 2>/dev/null && fail "$phase: the held write still waits in $(status_field 1) mode"
		wait $pid && fail "$phase: the held write succeeded"
		expect_eq "$(status_field 1)" ro "$phase: metadata mode"
		fvd_down
		dmsetup remove fvddata
		dmsetup remove fvdmeta
		dmsetup remove fvdorigin
		[ $phase = full ] || dmsetup remove fvdfail
	done
	rm -f /tmp/piece /tmp/dd.err
}

# A flushing suspend syncs the device's page cache (lock_fs), and writing
# it back needs a chunk the full data device does not have: that write
# fails with ENOSPC (a flushing suspend cannot keep it) rather than being
# held for no_space_timeout, as long as the suspend would wait.  After the
# resume, a write held for space still fails once no_space_timeout ran out.
test_compact_suspend_writeback_needs_space() {
	local pid
	compact_up 1 no_space_timeout 5
	head -c 8192 /dev/urandom >/tmp/piece
	dd if=/tmp/piece of=$MAPPER bs=8192 oflag=direct conv=notrunc status=none ||
		fail "write to chunk 0"
	# An opener keeps dd's close from writing the page cache back.
	exec 3<$MAPPER
	dd if=/tmp/piece of=$MAPPER bs=8192 seek=$((2 * CHUNK / 8192)) conv=notrunc \
		status=none || fail "buffered write to chunk 2"
	expect_eq "$(status_field 11)" ok "space state before the suspend (written back early?)"
	# 6.1 ignores the error of the writeback that freezing the device does;
	# since 6.8 the suspend fails with it (so it does over dm-thin out of
	# space).  Either way at once, not after no_space_timeout.
	if ! timeout 120 dmsetup suspend $DEV 2>/tmp/suspend.err; then
		grep -q "suspend ioctl on $DEV *failed: Input/output error" /tmp/suspend.err ||
			{ cat /tmp/suspend.err; fail "suspend"; }
		say "the suspend failed with the error of its writeback"
	fi
	exec 3<&-
	if dmesg | grep -q "data device full for"; then
		fail "the write back was held until no_space_timeout"
	fi
	expect_eq "$(status_field 11)" out_of_data_space "space state after the suspend"
	dmsetup resume $DEV || fail "resume"
	dd if=/tmp/piece of=$MAPPER bs=8192 seek=$((3 * CHUNK / 8192)) oflag=direct \
		conv=notrunc status=none 2>/tmp/dd.err &
	pid=$!
	timeout 60 tail --pid=$pid -f /dev/null
	kill -0 $pid 2>/dev/null && fail "a write held after the resume outlived no_space_timeout"
	wait $pid && fail "a write to chunk 3 succeeded"
	grep -q "No space left on device" /tmp/dd.err || { cat /tmp/dd.err; fail "not ENOSPC"; }
	compact_grow 2
	dd if=/tmp/piece of=$MAPPER bs=8192 seek=$((2 * CHUNK / 8192)) oflag=direct \
		conv=notrunc status=none || fail "write to chunk 2 after growth"
	fvd_down
	dmsetup remove fvddata
	rm -f /tmp/piece /tmp/dd.err /tmp/suspend.err
}

# A chunk mapped and discarded between two commits, never committed, is
# free once the next commit switched I/O epochs: a write that needs a chunk
# meanwhile waits for that commit, even with error_if_no_space.  Slow
# metadata writes keep a commit under way throughout, so that the chunk is
# never described before it is discarded.
test_compact_write_waits_for_uncommitted_discard() {
	local i
	modprobe dm-delay || fail "modprobe dm-delay"
	compact_swappable_up 2 error_if_no_space
	cp $ORIGIN /tmp/ref
	head -c 8192 /dev/urandom >/tmp/piece
	dd if=/tmp/piece of=$MAPPER bs=8192 oflag=direct conv=notrunc,fsync status=none ||
		fail "write to chunk 0"
	dd if=/tmp/piece of=/tmp/ref bs=8192 conv=notrunc status=none
	# block 1 of chunk 0, for the timer's next commit, which takes 5 s (the
	# timer's, not one of the worker, which maps and unmaps chunks)
	meta_replace delay $SCRATCH 0 0 $SCRATCH 0 5000
	dd if=/tmp/piece of=$MAPPER bs=8192 seek=8 oflag=direct conv=notrunc status=none ||
		fail "write to block 1"
	dd if=/tmp/piece of=/tmp/ref bs=8192 seek=8 conv=notrunc status=none
	# until that commit waits on its delayed journal write
	for ((i = 0; i < 2000; i++)); do
		[ "$(dmsetup status fvdmeta | awk '{ print $5 }')" -gt 0 ] && break
	done
	[ $i -lt 2000 ] || fail "no metadata write delayed"
	dd if=/tmp/piece of=$MAPPER bs=8192 seek=$((CHUNK / 8192)) oflag=direct \
		conv=notrunc status=none || fail "write to chunk 1"
	blkdiscard -o $CHUNK -l $CHUNK $MAPPER || fail "discard chunk 1"
	dd if=/tmp/piece of=$MAPPER bs=8192 seek=$((2 * CHUNK / 8192)) oflag=direct \
		conv=notrunc status=none || fail "the write to chunk 2 did not wait for chunk 1"
	dd if=/tmp/piece of=/tmp/ref bs=8192 seek=$((2 * CHUNK / 8192)) conv=notrunc status=none
	$FVDIO compare $MAPPER /tmp/ref || fail "data differs"
	fvd_down
	dmsetup remove fvddata
	dmsetup remove fvdmeta
	dmsetup remove fvdorigin
	rm -f /tmp/piece /tmp/ref
}

# A data device of 64M chunks of 4 KiB (256 GiB: a linear start, dm-zero
# behind it): the chunk maps, 8 MiB each, come from kvmalloc at the resume
# that sees the device grown.  Before, kmalloc refused them and the resume
# failed.
test_compact_huge_data_device() {
	local total=$((256 * 1024 * 2048)) start=$((64 * 2048)) mapped
	$FVD_CREATE --force --compact --block-size 4K --chunk-size 4K --origin $ORIGIN \
		--data-dev $DATA $SCRATCH >/dev/null || fail "fvd-create"
	dmsetup create fvddata --table "0 $start linear $DATA 0" || fail "fvddata"
	fvd_up $SCRATCH /dev/mapper/fvddata $ORIGIN
	cp $ORIGIN /tmp/ref
	$FVDIO randwrite $MAPPER /tmp/ref --seed 61 --count 50 --block 4096 || fail "writes"
	dmsetup suspend fvddata &&
		dmsetup reload fvddata --table "0 $start linear $DATA 0
$start $((total - start)) zero" &&
		dmsetup resume fvddata || fail "grow fvddata"
	dmsetup suspend --noflush $DEV || fail "suspend"
	dmsetup resume $DEV || fail "resume with $((total / 8)) data chunks"
	mapped=$(( $(status_field 10 | cut -d/ -f2) - $(free_chunks) ))
	expect_eq "$(status_field 10)" "$((total / 8 - mapped))/$((total / 8))" "free/data chunks"
	$FVDIO randwrite $MAPPER /tmp/ref --seed 62 --count 50 --block 4096 || fail "writes after growth"
	$FVDIO compare $MAPPER /tmp/ref || fail "data differs"
	fvd_down
	$FVD_CHECK --data-dev /dev/mapper/fvddata $SCRATCH >/tmp/check.out ||
		{ cat /tmp/check.out; fail "fvd-check"; }
	fvd_up $SCRATCH /dev/mapper/fvddata $ORIGIN
	$FVDIO compare $MAPPER /tmp/ref || fail "data differs after reload"
	fvd_down
	dmsetup remove fvddata
	rm -f /tmp/ref /tmp/check.out
}

# ---- crash consistency ----

# A 9 MiB disk over an 8 MiB origin, 16K blocks and a 64K journal (so the
# workloads cross journal-full checkpoints), image and data on $IMG.  The
# image is copied to $REPLAY before logging starts: the log replays on it.
crash_setup() {	# crash_setup VIRTUAL_MIB [FVD-CREATE OPTIONS...]
	local image_bytes size=$1
	shift
	dmsetup create crashorigin --table "0 16384 linear $SMALL 0" || fail "crashorigin"
	$FVD_CREATE --force --origin /dev/mapper/crashorigin --size "${size}M" --block-size 16K \
		--journal-size 64K "$@" $IMG >/dev/null || fail "fvd-create"
	image_bytes=$(( ($(sb_field $IMG data_offset) + size * 2048) * 512 ))
	dd if=$IMG of=$REPLAY bs=64K count=$((image_bytes / 65536)) conv=fsync status=none ||
		fail "copy the image to the replay disk"
	dmsetup create crashlog --table "0 $(sectors $IMG) log-writes $IMG $DATA" ||
		fail "log-writes"
	# shellcheck disable=SC2086
	fvd_up /dev/mapper/crashlog /dev/mapper/crashlog /dev/mapper/crashorigin ${CRASH_FEATURES:-}
}

crash_teardown() {
	fvd_down
	dmsetup remove crashlog || fail "remove log-writes"
}

# crash_case WORKLOAD SEED RANDOM-POINTS "OPTIONS" [FVD-CREATE OPTIONS...]:
# crash.py's WORKLOAD (raw or fio, with OPTIONS) under dm-log-writes, then
# every crash point of its log.  The number of points checked is left in
# /tmp/crash.points.
crash_case() {
	local workload=$1 seed=$2 random=$3 opts=$4 rc=0 n
	shift 4
	modprobe dm-log-writes || fail "modprobe dm-log-writes"
	modprobe dm-snapshot || fail "modprobe dm-snapshot"
	crash_setup "${CRASH_MIB:-9}" "$@"
	$CRASH $workload-workload $MAPPER --seed "$seed" $opts --log-dev crashlog ||
		fail "workload"
	say "status after the workload: $(dmsetup status $DEV)"
	crash_teardown
	$CRASH check --log $DATA --replay $REPLAY --cow $COW --origin /dev/mapper/crashorigin \
		--virtual $((${CRASH_MIB:-9} * 2048)) --workload $workload --seed "$seed" $opts \
		--random-points "$random" --fvd-check $FVD_CHECK --sbedit $SBEDIT \
		${CRASH_CHECK_OPTS:-} >/tmp/crash.out 2>&1 || rc=$?
	cat /tmp/crash.out
	[ $rc -eq 0 ] || fail "crash point check failed"
	dmsetup remove crashorigin
	n=$(sed -n 's/^crash points checked: \([0-9]*\).*/\1/p' /tmp/crash.out)
	echo "$n" >/tmp/crash.points
}

# The prefetch copying one block at a time while random writes run: every
# crash point loads and reads back every acknowledged write; once the
# all-local flag is on disk, it does so with "-" as origin.
test_crash_points_prefetch() {
	local counts
	CRASH_FEATURES="prefetch_delay 0 prefetch_batch 16 prefetch_writes 1 prefetch_min_read 0 prefetch_min_write 0" \
		crash_case raw 11 20 "--steps 60"
	grep -q "(0 needed fvd-check --repair)" /tmp/crash.out || fail "repairs were needed"
	counts=$(sed -n 's/^all-local crash points: \([0-9]*\) of \([0-9]*\)$/\1 \2/p' /tmp/crash.out)
	set -- $counts
	[ $# -eq 2 ] && [ "$1" -gt 0 ] && [ "$1" -lt "$2" ] ||
		fail "all-local at $1 of $2 crash points: want some before and after"
}

# Random writes with fsyncs and DSYNC (FUA) writes; every crash point of
# the log must load and read back every acknowledged write exactly.
test_crash_points_random_writes() {
	crash_case raw 7 70 "--steps 160"
	[ "$(cat /tmp/crash.points)" -ge 200 ] || fail "only $(cat /tmp/crash.points) crash points"
}

# The same on a compact image (64K chunks), with discards of whole chunks:
# chunk allocations and unmappings go through the journal with the bits of
# the blocks written in them, and a discarded chunk reads as the origin
# once a flush acknowledged the discard (before, either way).
test_crash_points_compact() {
	crash_case raw 8 20 "--steps 120 --discard-chunk $((64 * KB))" --compact --chunk-size 64K
}

# Commits larger than one journal write: 4K blocks, a journal of one
# block (254 runs), steps writing 1000 chunks every other one through the
# page cache before an fsync.  Each such commit goes out in rounds with a
# checkpoint between them; on the compact image, large discards of whole
# chunks let the scattered writes map chunks again, within the commits.
# Crash points after every entry of each commit that took several journal
# writes (and at every mark): each loads without repair and reads back
# every acknowledged write.  Before, a commit over the journal's budget
# went home directly, and a crash inside it left bits of one mapping with
# another.
#
# The guard asks for several such commits, one of them of three journal
# writes or more (two checkpoints inside it), not for a number of crash
# points: where the one-second commit timer cuts the fsync's writeback
# decides how many entries each commit has, and a 1-vCPU guest cuts more
# often (measured: 4 to 7 commits of 2 to 5 writes, 84 to 122 points).
crash_oversized_case() {	# crash_oversized_case SEED STEPS "OPTIONS" [FVD-CREATE OPTIONS...]
	local seed=$1 steps=$2 opts=$3 sizes commits=0 largest=0 w
	shift 3
	CRASH_CHECK_OPTS=--commit-points crash_case raw "$seed" 0 \
		"--steps $steps --scatter 1000 $opts" --block-size 4K --journal-size 4K "$@"
	grep -q "(0 needed fvd-check --repair)" /tmp/crash.out || fail "repairs were needed"
	sizes=$(sed -n 's/^journal writes of each: //p' /tmp/crash.out)
	for w in $sizes; do
		commits=$((commits + 1))
		[ "$w" -le "$largest" ] || largest=$w
	done
	[ "$commits" -ge 3 ] && [ "$largest" -ge 3 ] ||
		fail "commits of several journal writes: ${sizes:-none}; want 3 or more, one of 3 writes or more"
}

# Bits only set: blocks become local once, so a larger disk (18 MiB).
test_crash_points_oversized_commits() {
	CRASH_MIB=18 crash_oversized_case 17 60 ""
}

test_crash_points_oversized_commits_compact() {
	crash_oversized_case 18 120 "--discard-chunk $((16 * KB))" --compact --chunk-size 16K
}

# fio random 4K writes with an fsync every 8, in phases over regions of
# their own, each phase marked when done; at the end fio verifies them all:
# at every crash point, every phase completed reads back as fio verified it.
test_crash_points_fio() {
	crash_case fio 13 10 "--phases 6 --reference /tmp/fio.ref"
}

# ext4 with fsync-heavy file creation: at every crash point the fsynced
# files are intact after the journal replay and e2fsck -fn is clean.
test_crash_points_ext4() {
	local rc=0
	modprobe dm-log-writes || fail "modprobe dm-log-writes"
	modprobe dm-snapshot || fail "modprobe dm-snapshot"
	dmsetup create crashorigin --table "0 16384 linear $SMALL 0" || fail "crashorigin"
	$FVD_CREATE --force --origin /dev/mapper/crashorigin --size 24M --block-size 16K \
		--journal-size 64K $IMG >/dev/null || fail "fvd-create"
	fvd_up $IMG $IMG /dev/mapper/crashorigin
	mkfs.ext4 -q -F $MAPPER || fail "mkfs.ext4"
	fvd_down
	dd if=$IMG of=$REPLAY bs=64K count=$(( ($(sb_field $IMG data_offset) * 512 + 24 * MB) / 65536 )) \
		conv=fsync status=none || fail "copy the image to the replay disk"
	dmsetup create crashlog --table "0 $(sectors $IMG) log-writes $IMG $DATA" ||
		fail "log-writes"
	fvd_up /dev/mapper/crashlog /dev/mapper/crashlog /dev/mapper/crashorigin
	mkdir -p /tmp/mnt
	mount $MAPPER /tmp/mnt || fail "mount"
	$CRASH ext4-workload /tmp/mnt --seed 11 --files 16 --log-dev crashlog || fail "workload"
	umount /tmp/mnt
	crash_teardown
	$CRASH check --log $DATA --replay $REPLAY --cow $COW --origin /dev/mapper/crashorigin \
		--virtual $((24 * 2048)) --workload ext4 --seed 11 \
		--random-points 10 --fvd-check $FVD_CHECK >/tmp/crash.out 2>&1 || rc=$?
	cat /tmp/crash.out
	[ $rc -eq 0 ] || fail "crash point check failed"
	dmsetup remove crashorigin
}

# ---- runner ----

# origin_sum: the origins' checksums, taken after every test (md5: a test
# that wrote the origin is what it catches, and sha256 took 2.5 s under TCG)
origin_sum() {
	md5sum $ORIGIN $SMALL | awk '{print $1}' | tr '\n' ' '
}

# dm_remove NAME...: remove those of the devices that exist, in this order
# (the stacked ones first).  Looked up in sysfs: cleanup_devices runs after
# every test, and a dmsetup per name it lists cost 4 s under TCG.
dm_remove() {
	local live d
	live=" $(cat /sys/block/dm-*/dm/name 2>/dev/null | tr '\n' ' ') "
	for d in "$@"; do
		[[ $live != *" $d "* ]] || dmsetup remove --retry "$d" >/dev/null 2>&1 || true
	done
}

# kill_leftover NAME...: SIGKILL the processes of these names (/proc/PID/comm)
kill_leftover() {
	local p comm name
	for p in /proc/[0-9]*; do
		read -r comm <"$p/comm" 2>/dev/null || continue
		for name in "$@"; do
			[ "$comm" != "$name" ] || kill -KILL "${p#/proc/}" 2>/dev/null || true
		done
	done
}

# Everything a test may have left: only what exists is acted on, so a test
# that left nothing costs well under a second (it was 10 s per test).
cleanup_devices() {
	# a test that failed may leave fio running; remove --retry waits for it
	local mounts
	kill_leftover fio dd
	mounts=$(</proc/mounts)
	[[ $mounts != *" /tmp/crashmnt "* ]] || umount /tmp/crashmnt >/dev/null 2>&1 || true
	[[ $mounts != *" /tmp/mnt "* ]] || umount /tmp/mnt >/dev/null 2>&1 || true
	dm_remove $DEV fvdbad fvdmeta fvdslow fvdfail fvddata fvdorigin fvdlin1 fvdlin2 fvdlin3 \
		crashfvd crashsnap crashlog crashorigin
	if [ -d /sys/module/null_blk ]; then
		rmdir /sys/kernel/config/nullb/* >/dev/null 2>&1 || true
		rmmod null_blk >/dev/null 2>&1 || true
	fi
	netorigin_down
	[ ! -d /sys/module/nbd ] || rmmod nbd >/dev/null 2>&1 || true
	dm_remove fvdslice
}

# claim TEST: true for the one guest that takes TEST from the shared queue
# (mkdir on the host's file system is atomic across the 9p servers).
claim() {
	[ "$QUEUE" -eq 0 ] || mkdir "$QUEUE_DIR/claimed/$1" 2>/dev/null
}

main() {
	local tests=("$@") t rc passed=0 failed=0 sum_before kernel_log started
	QUEUE=0
	QUEUE_DIR=/run/fvd/shared
	if [ "${1:-}" = --queue ]; then
		[ -f $QUEUE_DIR/queue ] || { echo "not ok - no shared queue" | tee -a $OUT/results; return 1; }
		QUEUE=1
		read -r -a tests <<<"$(tr '\n' ' ' <$QUEUE_DIR/queue)"
	fi
	: >$OUT/results
	# What loading the module made the kernel say counts too.
	if ! load_dm_fvd; then
		echo "not ok - load dm-fvd.ko" | tee -a $OUT/results
		return 1
	fi
	kernel_log=$(dmesg -c)
	if kernel_log_has_report "$kernel_log"; then
		sed 's/^/    /' <<<"$kernel_log"
		echo "not ok - load dm-fvd.ko" | tee -a $OUT/results
	else
		echo "ok - load dm-fvd.ko" | tee -a $OUT/results
	fi
	dmsetup targets | grep fvd
	if [ ${#tests[@]} -eq 0 ]; then
		read -r -a tests <<<"$(declare -F | awk '/ test_/ {print $3}' | tr '\n' ' ')"
	fi
	[ ${#tests[@]} -gt 0 ] || { echo "not ok - no tests found" | tee -a $OUT/results; return 1; }
	sum_before=$(origin_sum)
	dmesg -c >/dev/null
	for t in "${tests[@]}"; do
		t=${t#test_}
		claim "$t" || continue
		echo "# --- $t"
		started=$(date +%s)
		(set -e; "test_$t") >$OUT/log.$t 2>&1
		rc=$?
		cleanup_devices
		echo "# $t took $(($(date +%s) - started)) s" >>$OUT/log.$t
		sed 's/^/    /' $OUT/log.$t
		[ "$(origin_sum)" = "$sum_before" ] || { echo "    origin changed!"; rc=1; }
		kernel_log=$(cat /tmp/kernel-log.saved 2>/dev/null; dmesg -c)
		rm -f /tmp/kernel-log.saved
		kernel_log_has_report "$kernel_log" && rc=1
		# A failed test's kernel log says what the target saw.
		if [ $rc -ne 0 ] && [ -n "$kernel_log" ]; then
			echo "    kernel log:"
			sed 's/^/    /' <<<"$kernel_log"
		fi
		if [ $rc -eq 0 ]; then
			echo "ok - $t" | tee -a $OUT/results
		else
			echo "not ok - $t" | tee -a $OUT/results
		fi
	done
	# Every target is gone: the module must unload (no leaked reference).
	if rmmod dm-fvd; then
		echo "ok - unload dm-fvd.ko" | tee -a $OUT/results
	else
		echo "not ok - unload dm-fvd.ko" | tee -a $OUT/results
	fi
	passed=$(grep -c '^ok' $OUT/results)
	failed=$(grep -c '^not ok' $OUT/results)
	echo "dmtest: $passed passed, $failed failed"
	[ "$failed" -eq 0 ]
}

main "$@"
