#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Read the guest's fio reports on the host.

  fio-summary.py JSON
      Print "IOPS MiB/s P50_us P99_us IOS" of one fio JSON report.
  fio-summary.py --expand RAW FIO_DIR
      Print RAW with every line "WORKLOAD PEER REPEAT KIND JOB" replaced by
      the figures of FIO_DIR/JOB.json (and JOB.io, the requests each disk
      saw during the job: see bench/guest.sh):
        fio       the workload's figure (MiB/s for seqread, else IOPS),
                  io_guest and the disks' io_* counts;
        fio_idle  idle_p50_us, idle_p99_us;
        fio_busy  p50_us, p99_us.

The bench runs fio with unified_rw_reporting=mixed, so reads and writes of
a job are already merged into one "mixed" entry: the guest sees both.
"""
import json
import os
import sys

MIB_PER_S = ("seqread",)

# the order of the numbers in a JOB.io file: reads, sectors read, writes,
# sectors written, flushes of the origin, the data and the metadata disk
IO_FIELDS = (("io_origin_reads", 0, 1), ("io_origin_KiB", 1, 2),
             ("io_data_reads", 5, 1), ("io_data_KiB_read", 6, 2),
             ("io_data_writes", 7, 1), ("io_data_KiB_written", 8, 2),
             ("io_data_flushes", 9, 1), ("io_meta_writes", 12, 1))


def summary(path):
    text = open(path).read()
    # fio may print notes (e.g. from --exec_prerun) before the JSON.
    job = json.loads(text[text.index("{"):])["jobs"][0]
    mixed = job["mixed"]
    pct = mixed["clat_ns"].get("percentile", {})
    return (mixed["iops"], mixed["bw_bytes"] / (1 << 20),
            pct.get("50.000000", 0) / 1000, pct.get("99.000000", 0) / 1000,
            mixed["total_ios"])


def expand(raw, fio_dir):
    out = []
    for line in open(raw):
        words = line.split()
        if len(words) != 5 or not words[3].startswith("fio"):
            out.append(line.rstrip("\n"))
            continue
        wl, peer, rep, kind, job = words
        iops, mib, p50, p99, ios = summary(os.path.join(fio_dir, job + ".json"))
        head = "%s %s %s" % (wl, peer, rep)
        if kind == "fio":
            if wl in MIB_PER_S:
                out.append("%s MiB/s %.2f" % (head, mib))
            else:
                out.append("%s IOPS %.1f" % (head, iops))
            out.append("%s io_guest %d" % (head, ios))
            counts = [int(n) for n in
                      open(os.path.join(fio_dir, job + ".io")).read().split()]
            for name, index, div in IO_FIELDS:
                out.append("%s %s %d" % (head, name, counts[index] // div))
        elif kind == "fio_idle":
            out.append("%s idle_p50_us %.0f" % (head, p50))
            out.append("%s idle_p99_us %.0f" % (head, p99))
        elif kind == "fio_busy":
            out.append("%s p50_us %.0f" % (head, p50))
            out.append("%s p99_us %.0f" % (head, p99))
        else:
            raise SystemExit("fio-summary: unknown kind %r" % kind)
    return out


def main():
    if sys.argv[1] == "--expand":
        print("\n".join(expand(sys.argv[2], sys.argv[3])))
    else:
        print("%.1f %.2f %.0f %.0f %d" % summary(sys.argv[1]))


if __name__ == "__main__":
    main()
