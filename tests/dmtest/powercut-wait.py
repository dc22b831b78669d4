#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""Host side of the power-cut test: wait until the guest has acknowledged
STEPS durable steps (lines "s<step>" in the progress file), then kill QEMU
with SIGKILL, mid-workload.  Exits 1 if QEMU ends first.

Usage: powercut-wait.py PROGRESS-FILE QEMU-PIDFILE STEPS
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


def main():
    progress, pidfile, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
    pid = None
    while True:
        if pid is None and os.path.exists(pidfile):
            with open(pidfile) as f:
                text = f.read().strip()
            pid = int(text) if text else None
        if pid is not None and not alive(pid):
            print("powercut: QEMU ended before the power cut", file=sys.stderr)
            return 1
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
