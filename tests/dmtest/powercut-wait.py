#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""Host side of the power-cut test: wait until the guest has acknowledged
STEPS durable steps (lines "s<step>" in the progress file), then kill QEMU
with SIGKILL, mid-workload.  Exits 1 if QEMU ends first.

Usage: powercut-wait.py PROGRESS-FILE QEMU-PIDFILE STEPS BOOT-PID

A QEMU that ends before its guest started the command (out/started, beside
the progress file) died while booting: the test bed boots it again and
writes a new pidfile, so the wait goes on until BOOT-PID (the shell running
testbed_boot) has given up.
"""
import os
import signal
import sys
import time


def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def read_pid(pidfile):
    try:
        with open(pidfile) as f:
            text = f.read().strip()
    except FileNotFoundError:
        return None
    return int(text) if text else None


def main():
    progress, pidfile, steps, boot = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    started = os.path.join(os.path.dirname(progress), "started")
    while True:
        pid = read_pid(pidfile)
        if pid is not None and not alive(pid):
            if os.path.exists(started):
                print("powercut: QEMU ended before the power cut", file=sys.stderr)
                return 1
            if not alive(boot):
                print("powercut: the guest never started the workload", file=sys.stderr)
                return 1
            pid = None	# died while booting: the next boot's pidfile comes
        try:
            with open(progress) as f:
                acked = sum(1 for line in f if line.startswith("s"))
        except FileNotFoundError:
            acked = 0
        if pid is not None and acked >= steps:
            os.kill(pid, signal.SIGKILL)
            print(f"powercut: QEMU killed after {acked} acknowledged steps")
            return 0
        # Polling a file QEMU's guest appends to over 9p: nothing to block on.
        time.sleep(0.05)


if __name__ == "__main__":
    sys.exit(main())
