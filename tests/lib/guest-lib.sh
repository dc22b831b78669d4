# SPDX-License-Identifier: GPL-2.0
# shellcheck shell=bash
# Sourced by scripts that run inside the test bed guest.

FVD_SRC=/run/fvd/src
FVD_OUT=/run/fvd/out
FVD_KROOT=/run/fvd/kroot

# The distro kernel's modules are not under /lib/modules of the chroot.
modprobe() {
	command modprobe -d $FVD_KROOT "$@"
}

# Load dm-fvd.ko as built on the host, after the modules it depends on.
load_dm_fvd() {
	local m
	for m in $(modinfo -F depends $FVD_SRC/dm-fvd/dm-fvd.ko | tr ',' ' '); do
		modprobe "$m" || return 1
	done
	insmod $FVD_SRC/dm-fvd/dm-fvd.ko
}
