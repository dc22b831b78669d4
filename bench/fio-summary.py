#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Print "IOPS MiB/s P50_us P99_us IOS" of a fio JSON output file.

The bench runs fio with unified_rw_reporting=mixed, so reads and writes of
a job are already merged into one "mixed" entry: the guest sees both.
"""
import json
import sys


def main():
    text = open(sys.argv[1]).read()
    # fio may print notes (e.g. from --exec_prerun) before the JSON.
    job = json.loads(text[text.index("{"):])["jobs"][0]
    mixed = job["mixed"]
    pct = mixed["clat_ns"].get("percentile", {})
    print("%.1f %.2f %.0f %.0f %d" % (mixed["iops"], mixed["bw_bytes"] / (1 << 20),
                                      pct.get("50.000000", 0) / 1000,
                                      pct.get("99.000000", 0) / 1000,
                                      mixed["total_ios"]))


if __name__ == "__main__":
    main()
