#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# In the guest of tests/package/run: dm-fvd as DKMS installed it.
# /dev/vda is the origin, /dev/vdb the image.  Writes "ok"/"not ok" lines
# to $FVD_OUT/results.
# Usage: guest.sh VERSION SBIN   (SBIN: the packaged tools' directory)
. /run/fvd/src/tests/lib/guest-lib.sh
version=$1
sbin=$2
results=$FVD_OUT/results
: >"$results"
result() {	# result STATUS NAME
	if [ "$1" -eq 0 ]; then echo "ok - $2"; else echo "not ok - $2"; fi | tee -a "$results"
}
fvdio() {
	python3 $FVD_SRC/tests/dmtest/fvdio.py "$@"
}

path=$(modprobe --show-depends dm-fvd 2>&1 | awk '$1 == "insmod" {p = $2} END {print p}')
modprobe dm-fvd
result $? "modprobe dm-fvd loads the module and its dependencies"
case $path in
*/updates/dkms/dm-fvd.ko*) status=0 ;;
*) status=1; echo "loaded from: $path" ;;
esac
result $status "the module is the one DKMS installed (updates/dkms)"
got=$(cat /sys/module/dm_fvd/version 2>/dev/null)
targets=$(dmsetup targets)
echo "module version $got; $(grep fvd <<<"$targets")"
[ "$got" = "$version" ] && grep -q "^fvd *v$version\$" <<<"$targets"
result $? "module and target report version $version"
"$sbin/fvd-create" --version | grep -qx "fvd-create (dm-fvd) $version"
result $? "the packaged fvd-create reports version $version"

# Copy-on-write: 4 MiB of random writes over the origin, read back through
# the target against a reference copy, then again after a reload.
origin=/dev/vda
image=/dev/vdb
sectors=$(blockdev --getsz $origin)
table="0 $sectors fvd $image $image $origin"
ref=/tmp/ref.img
cp $origin $ref
origin_sum=$(md5sum <$origin)
status=1
if "$sbin/fvd-create" --origin $origin --block-size 4K --force $image >/dev/null &&
	dmsetup create pkgtest --table "$table" &&
	fvdio randwrite /dev/mapper/pkgtest $ref --seed 11 --count 200 --block 4096 &&
	fvdio compare /dev/mapper/pkgtest $ref &&
	dmsetup remove pkgtest &&
	"$sbin/fvdsetup" open $image pkgtest --no-prefetch &&
	fvdio compare /dev/mapper/pkgtest $ref &&
	"$sbin/fvdsetup" close pkgtest &&
	"$sbin/fvd-check" $image >/dev/null; then
	status=0
fi
dmsetup remove pkgtest 2>/dev/null
[ "$(md5sum <$origin)" = "$origin_sum" ] || { echo "the origin changed"; status=1; }
result $status "copy-on-write over the origin reads back byte for byte (again after fvdsetup open), fvd-check clean"
rmmod dm-fvd
result $? "rmmod dm-fvd"
kernel_log=$(dmesg)
if kernel_log_has_report "$kernel_log"; then
	printf '%s\n' "$kernel_log"
	status=1
else
	status=0
fi
result $status "no BUG, WARNING or UBSAN report in the kernel log"
