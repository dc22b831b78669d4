# SPDX-License-Identifier: GPL-2.0
# shellcheck shell=bash
# Sourced by scripts that run inside the test bed guest.

FVD_SRC=/run/fvd/src
FVD_OUT=/run/fvd/out
FVD_KROOT=/run/fvd/kroot
FVD_MODULE=/run/fvd/module/dm-fvd.ko

# The distro kernel's modules are not under /lib/modules of the chroot.
modprobe() {
	command modprobe -d $FVD_KROOT "$@"
}

# Load dm-fvd.ko as built for this kernel, after the modules it depends on
# (modprobe also accepts those the kernel has built in).
load_dm_fvd() {
	local m
	for m in $(modinfo -F depends $FVD_MODULE | tr ',' ' '); do
		modprobe "$m" || return 1
	done
	insmod $FVD_MODULE
}

# kernel_log_has_report TEXT: true when the kernel log TEXT holds a bug,
# warning, UBSAN or hung-task report (what fails a test run).
kernel_log_has_report() {
	grep -qE '(BUG|WARNING|UBSAN):|Oops|blocked for more than|general protection|Call Trace:' <<<"$1"
}
