#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Power-cut test, guest side; tests/dmtest/run boots the guest twice:
#   powercut-guest.sh run      format /dev/vdb over the origin /dev/vda (a
#                              compact image: journal and chunk table), load
#                              the target and write until the host kills QEMU
#                              (the workload logs each acknowledged step to
#                              /run/fvd/out/powercut.progress as it goes)
#   powercut-guest.sh verify   after the cut: fvd-check, load (journal
#                              replay), every acknowledged write reads back,
#                              clean after removal
# verify writes "ok"/"not ok" lines to /run/fvd/out/results.
set -u
. /run/fvd/src/tests/lib/guest-lib.sh
CRASH="python3 $FVD_SRC/tests/dmtest/crash.py"
CHECK=$FVD_SRC/tools/fvd-check
ORIGIN=/dev/vda
IMG=/dev/vdb
PROGRESS=$FVD_OUT/powercut.progress
STEPS=100000
SEED=5

table() {
	echo "0 $(blockdev --getsz $ORIGIN) fvd $IMG $IMG $ORIGIN 1 no_prefetch"
}

result() {	# result STATUS NAME
	if [ "$1" -eq 0 ]; then
		echo "ok - power_cut: $2" | tee -a $FVD_OUT/results
	else
		echo "not ok - power_cut: $2" | tee -a $FVD_OUT/results
	fi
}

run() {
	load_dm_fvd || exit 1
	$FVD_SRC/tools/fvd-create --force --origin $ORIGIN --block-size 16K --compact --chunk-size 64K \
		--journal-size 64K $IMG >/dev/null || exit 1
	dmsetup create fvd0 --table "$(table)" || exit 1
	: >$PROGRESS
	echo "power cut: workload started"
	$CRASH raw-workload /dev/mapper/fvd0 --seed $SEED --steps $STEPS --progress $PROGRESS \
		--discard-chunk 65536
	echo "power cut: the workload ended before the power cut"
	exit 1
}

verify() {
	local out status
	: >$FVD_OUT/results
	load_dm_fvd || { result 1 "load dm-fvd.ko"; exit 1; }
	echo "power cut: progress file ends with: $(tail -n 2 $PROGRESS | tr '\n' ' ')"
	out=$($CHECK $IMG 2>&1)
	status=$?
	echo "$out"
	result $status "fvd-check after the cut (exit $status)"
	dmsetup create fvd0 --table "$(table)"
	result $? "target loads after the cut"
	dmesg | grep "fvd:" | tail -n 3
	$CRASH verify-raw /dev/mapper/fvd0 --seed $SEED --steps $STEPS --origin $ORIGIN \
		--discard-chunk 65536 \
		--virtual "$(blockdev --getsz $ORIGIN)" --progress $PROGRESS
	result $? "acknowledged writes read back after the cut"
	dmsetup remove fvd0
	out=$($CHECK $IMG 2>&1)
	status=$?
	echo "$out"
	grep -q ", clean$" <<<"$out"
	result $((status + $?)) "clean after removal"
}

"$1"
