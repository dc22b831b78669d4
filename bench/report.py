#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Turn the guest's raw bench lines into bench/results/<date>.md and .png.

Usage: report.py RAW RESULTS_DIR [--date YYYY-MM-DD] [--no-chart]

RAW is what bench/run collected from the guest: "WORKLOAD PEER REPEAT
METRIC VALUE" per measurement, "setup KEY VALUE" and "duration WORKLOAD
SECONDS" lines.  Every figure is the
median of the repeats; the spread is their minimum and maximum.  Ratios
are of medians.  The tables are printed on stdout as well.
"""
import datetime
import os
import statistics
import subprocess
import sys

PEER_NAMES = {
    "linear": "dm-linear (data disk)",
    "fvd": "dm-fvd",
    "fvd-nocor": "dm-fvd no_copy_on_read",
    "fvd-compact": "dm-fvd compact",
    "thin": "dm-thin external origin",
    "snapshot": "dm-snapshot persistent",
    "clone": "dm-clone",
    "clone-1M": "dm-clone hydration_batch_size 16",
    "qcow2": "qcow2 via qemu-nbd",
    "dd": "dd (the limit)",
}

# One colour per peer; the limits are grey.
COLORS = {
    "linear": "#808080", "dd": "#404040", "fvd": "#1f77b4",
    "fvd-nocor": "#9ecae1", "fvd-compact": "#08519c", "thin": "#ff7f0e",
    "snapshot": "#2ca02c", "clone": "#d62728", "clone-1M": "#f4a582",
    "qcow2": "#9467bd",
}

# workload: (title, metric, what it is, the limit peer)
WORKLOADS = {
    "seqread": ("Sequential read of an untouched disk", "MiB/s",
                "fio read, 1M, queue depth 4, the whole disk once", "linear"),
    "randread": ("4K random read of an untouched disk", "IOPS",
                 "fio randread, 4K, queue depth 16, the whole disk", "linear"),
    "randwrite_absent": ("4K random write to absent blocks", "IOPS",
                         "one 4K write to every 64K block, in random order "
                         "(a fio replay log with a fixed seed): each is the "
                         "first write to its block; queue depth 16", "linear"),
    "randwrite_local": ("4K random write to local blocks", "IOPS",
                        "32 MiB written first, then fio randwrite 4K, "
                        "queue depth 16, in it", "linear"),
    "write_fsync": ("4K write + fsync", "IOPS",
                    "fio randwrite 4K, psync, fsync after every write, "
                    "64 MiB of a fresh disk", "linear"),
    "reread_after_cor": ("4K random re-read after copy-on-read", "IOPS",
                         "32 MiB read once sequentially, then fio randread "
                         "4K, queue depth 16, in it", "linear"),
    "copy_idle": ("Full copy of the origin, idle guest", "MiB/s",
                  "prefetch (dm-fvd), hydration (dm-clone), dd bs=1M direct",
                  "dd"),
    "copy_under_load": ("Full copy of the origin under guest load", "MiB/s",
                        "the guest does 4K random reads and writes (psync, "
                        "200 IOPS) on 64 MiB of local blocks during the copy",
                        "dd"),
}

GOALS = []


def load(path):
    """Read a .raw file: measurements, "setup KEY VALUE", "duration WL S"."""
    data, order, setup, durations = {}, [], [], []
    with open(path) as f:
        for line in f:
            words = line.split()
            if not words:
                continue
            if words[0] == "setup":
                setup.append((words[1], " ".join(words[2:])))
            elif words[0] == "duration":
                durations.append((words[1], words[2]))
            elif len(words) == 5:
                wl, peer, _, metric, value = words
                data.setdefault((wl, peer, metric), []).append(float(value))
                if (wl, peer) not in order:
                    order.append((wl, peer))
    return data, order, setup, durations


def median(values):
    return statistics.median(values) if values else None


def fmt(value):
    if value is None:
        return "–"
    if value >= 100:
        return "%.0f" % value
    if value >= 10:
        return "%.1f" % value
    return "%.2f" % value


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def fmt_ratio(r):
    return "–" if r is None else "%.2f×" % r


class Report:
    def __init__(self, data, order):
        self.data = data
        self.order = order
        self.lines = []
        self.chart = {}   # workload -> {peer: ratio to the limit}

    def med(self, wl, peer, metric):
        return median(self.data.get((wl, peer, metric), []))

    def spread(self, wl, peer, metric):
        values = self.data.get((wl, peer, metric), [])
        if not values:
            return "–"
        return "%s–%s (n=%d)" % (fmt(min(values)), fmt(max(values)),
                                 len(values))

    def peers(self, wl):
        return [p for w, p in self.order if w == wl]

    def out(self, text=""):
        self.lines.append(text)

    def throughput_table(self, wl):
        title, metric, what, limit = WORKLOADS[wl]
        peers = self.peers(wl)
        if not peers:
            return
        self.out("### %s (%s)" % (title, metric))
        self.out()
        self.out(what + ".")
        self.out()
        self.out("| peer | %s (median) | spread | × %s | × dm-fvd |" %
                 (metric, PEER_NAMES[limit].split(" (")[0]))
        self.out("|---|---:|---:|---:|---:|")
        ref = self.med(wl, limit, metric)
        fvd = self.med(wl, "fvd", metric)
        self.chart[wl] = {}
        for peer in peers:
            value = self.med(wl, peer, metric)
            self.chart[wl][peer] = ratio(value, ref)
            self.out("| %s | %s | %s | %s | %s |" % (
                PEER_NAMES.get(peer, peer), fmt(value),
                self.spread(wl, peer, metric),
                fmt_ratio(ratio(value, ref)), fmt_ratio(ratio(value, fvd))))
        self.out()

    def latency_table(self):
        wl = "copy_under_load"
        peers = self.peers(wl)
        if not peers:
            return
        self.out("Guest latency (µs) of that load, without a copy (idle) "
                 "and during the copy:")
        self.out()
        self.out("| peer | p50 idle | p50 copy | p99 idle | p99 copy | "
                 "p99 copy / idle | p99 copy spread |")
        self.out("|---|---:|---:|---:|---:|---:|---:|")
        for peer in peers:
            idle99 = self.med(wl, peer, "idle_p99_us")
            busy99 = self.med(wl, peer, "p99_us")
            self.out("| %s | %s | %s | %s | %s | %s | %s |" % (
                PEER_NAMES.get(peer, peer),
                fmt(self.med(wl, peer, "idle_p50_us")),
                fmt(self.med(wl, peer, "p50_us")), fmt(idle99), fmt(busy99),
                fmt_ratio(ratio(busy99, idle99)),
                self.spread(wl, peer, "p99_us")))
        self.out()

    IO_COLUMNS = (("io_origin_reads", "origin reads"),
                  ("io_origin_KiB", "origin KiB"),
                  ("io_data_reads", "data reads"),
                  ("io_data_KiB_read", "data KiB read"),
                  ("io_data_writes", "data writes"),
                  ("io_data_KiB_written", "data KiB written"),
                  ("io_data_flushes", "data flushes"),
                  ("io_meta_writes", "metadata-disk writes"))

    def per_request(self, wl, peer, metric):
        """Median over the repeats of METRIC per guest request."""
        guest = self.data.get((wl, peer, "io_guest"), [])
        values = self.data.get((wl, peer, metric), [])
        return median([v / g for v, g in zip(values, guest) if g])

    def io_tables(self):
        rows = [wl for wl in WORKLOADS
                if any(p for p in self.peers(wl)
                       if (wl, p, "io_guest") in self.data)]
        if not rows:
            return
        self.out("## What the disks did per guest request")
        self.out()
        self.out("Requests and KiB that reached the origin disk and the data "
                 "disk (from /sys/block/*/stat, around the measured fio job), "
                 "divided by the requests fio completed; the metadata disk "
                 "holds dm-thin's and dm-clone's metadata (dm-fvd keeps its "
                 "own on the data disk).  qcow2's requests are qemu-nbd's.")
        self.out()
        for wl in rows:
            self.out("### %s" % WORKLOADS[wl][0])
            self.out()
            self.out("| peer | " + " | ".join(c[1] for c in self.IO_COLUMNS)
                     + " |")
            self.out("|---|" + "---:|" * len(self.IO_COLUMNS))
            for peer in self.peers(wl):
                if (wl, peer, "io_guest") not in self.data:
                    continue
                self.out("| %s | %s |" % (PEER_NAMES.get(peer, peer), " | ".join(
                    fmt(self.per_request(wl, peer, c[0]))
                    for c in self.IO_COLUMNS)))
            self.out()

    def memory_mib(self, peer):
        """The larger of the expected and the counted (Slab + VmallocUsed:
        6.1 counts large kmallocs as slab) memory, in MiB.  MemFree is
        shown, not used: other allocations move it by megabytes."""
        exp = self.med("memory", peer, "expected_KiB")
        if exp is None:
            return None
        counted = (self.med("memory", peer, "slab_KiB") or 0) + \
            (self.med("memory", peer, "vmalloc_KiB") or 0)
        return max(exp, counted) / 1024

    def memory_table(self):
        peers = self.peers("memory")
        if not peers:
            return
        self.out("### Kernel memory of a 1 TiB virtual disk (KiB)")
        self.out()
        self.out("*Expected* adds up the in-memory structures of the image's "
                 "geometry (three bitmaps of one bit per block; two copies "
                 "of the chunk table of a compact image); the others are "
                 "the changes of /proc/meminfo when the table is loaded, "
                 "after dropping caches.  MiB per TiB is the larger of "
                 "*expected* and Slab + VmallocUsed (6.1 counts large "
                 "kmallocs as slab); MemFree moves by megabytes with "
                 "everything else the kernel does and is shown only.")
        self.out()
        self.out("| peer | expected | MemFree drop | Slab | VmallocUsed | "
                 "MiB per TiB |")
        self.out("|---|---:|---:|---:|---:|---:|")
        for peer in peers:
            mib = self.memory_mib(peer)
            self.out("| %s | %s | %s, %s | %s | %s | %s |" % (
                PEER_NAMES.get(peer, peer),
                fmt(self.med("memory", peer, "expected_KiB")),
                fmt(self.med("memory", peer, "memfree_KiB")),
                self.spread("memory", peer, "memfree_KiB"),
                fmt(self.med("memory", peer, "slab_KiB")),
                fmt(self.med("memory", peer, "vmalloc_KiB")),
                fmt(mib)))
        self.out()

    def goal(self, text, value, target, higher=True):
        if value is None:
            verdict = "not measured"
        elif (value >= target) if higher else (value <= target):
            verdict = "met"
        else:
            verdict = "**missed**"
        shown = "–" if value is None else (
            "%.2f×" % value if "MiB" not in text else "%.1f MiB" % value)
        self.out("| %s | %s | %s |" % (text, shown, verdict))

    def goals(self):
        m = self.med
        self.out("## Goals")
        self.out()
        self.out("| goal | measured | |")
        self.out("|---|---:|---|")
        for wl, name in (("seqread", "sequential read, untouched"),
                         ("randread", "4K random read, untouched"),
                         ("randwrite_local", "4K random write, local blocks")):
            metric = WORKLOADS[wl][1]
            for peer in ("fvd", "fvd-compact"):
                self.goal("%s, %s ≥ 0.95× dm-linear" % (name, PEER_NAMES[peer]),
                          ratio(m(wl, peer, metric), m(wl, "linear", metric)),
                          0.95)
        wl = "randwrite_absent"
        self.goal("4K random write to absent blocks ≥ 1.5× dm-thin",
                  ratio(m(wl, "fvd", "IOPS"), m(wl, "thin", "IOPS")), 1.5)
        self.goal("4K random write to absent blocks ≥ 3× qcow2",
                  ratio(m(wl, "fvd", "IOPS"), m(wl, "qcow2", "IOPS")), 3)
        self.goal("4K write + fsync ≥ 1.5× dm-thin",
                  ratio(m("write_fsync", "fvd", "IOPS"),
                        m("write_fsync", "thin", "IOPS")), 1.5)
        wl = "copy_idle"
        self.goal("idle full copy ≥ 0.8× dd",
                  ratio(m(wl, "fvd", "MiB/s"), m(wl, "dd", "MiB/s")), 0.8)
        for clone in ("clone", "clone-1M"):
            self.goal("idle full copy faster than %s (> 1×)" %
                      PEER_NAMES[clone],
                      ratio(m(wl, "fvd", "MiB/s"), m(wl, clone, "MiB/s")),
                      1.0000001)
        wl = "copy_under_load"
        self.goal("guest p99 during the copy ≤ 1.2× idle p99",
                  ratio(m(wl, "fvd", "p99_us"), m(wl, "fvd", "idle_p99_us")),
                  1.2, higher=False)
        for peer in ("fvd", "fvd-compact"):
            value = self.memory_mib(peer)
            self.goal("%s: ≤ 8 MiB kernel memory per TiB" % PEER_NAMES[peer],
                      value, 8, higher=False)
        self.out()

    def build(self, date, setup, durations):
        self.out("# dm-fvd benchmark, %s" % date)
        self.out()
        self.out("All peers ran in one boot of the test bed guest (QEMU TCG, "
                 "no KVM) on the same virtio disks, backed by fully "
                 "allocated files on the host: the origin on one disk, "
                 "each peer's data on another, dm-thin and dm-clone "
                 "metadata on a third.  Absolute numbers under emulation "
                 "mean little; the ratios are the result.  Each peer is set "
                 "up afresh for every repeat; peers take turns within a "
                 "repeat.")
        self.out()
        self.out("| setting | value |")
        self.out("|---|---|")
        for key, value in setup:
            self.out("| %s | %s |" % (key, value))
        self.out()
        self.goals()
        self.out("## Workloads")
        self.out()
        for wl in WORKLOADS:
            self.throughput_table(wl)
        self.latency_table()
        self.memory_table()
        self.io_tables()
        if durations:
            self.out("Time per workload (s): " + ", ".join(
                "%s %s" % kv for kv in durations) + ".")
            self.out()


def chart(report, png):
    """A clustered bar chart of every peer's ratio to the limit."""
    peers = [p for p in PEER_NAMES
             if any(p in row for row in report.chart.values())]
    rows = [wl for wl in WORKLOADS if wl in report.chart]
    if not rows or not peers:
        return False
    dat = png + ".dat"
    with open(dat, "w") as f:
        f.write("workload " + " ".join('"%s"' % PEER_NAMES[p] for p in peers)
                + "\n")
        for wl in rows:
            values = [report.chart[wl].get(p) for p in peers]
            f.write('"%s" ' % wl.replace("_", " ") + " ".join(
                "-" if v is None else "%.4f" % v for v in values) + "\n")
    script = """
set terminal pngcairo size 1600,700 font "sans,10"
set output '%s'
set title "Throughput relative to the limit (dm-linear; dd for the copies), median of the repeats"
set style data histogram
set style histogram cluster gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set datafile missing '-'
set termoption noenhanced
set key outside right top vertical
set ylabel "× limit"
set yrange [0:*]
set grid ytics
set xtics rotate by -20
colors = "%s"
plot for [i=2:%d] '%s' using i:xtic(1) title columnheader(i) lc rgb word(colors, i - 1)
""" % (png, " ".join(COLORS[p] for p in peers), len(peers) + 1, dat)
    try:
        subprocess.run(["gnuplot"], input=script, text=True, check=True)
    except (OSError, subprocess.CalledProcessError) as err:
        print("report: no chart: %s" % err, file=sys.stderr)
        return False
    finally:
        os.unlink(dat)
    return True


def main():
    args = sys.argv[1:]
    date = datetime.date.today().isoformat()
    want_chart = True
    if "--date" in args:
        i = args.index("--date")
        date = args[i + 1]
        del args[i:i + 2]
    if "--no-chart" in args:
        args.remove("--no-chart")
        want_chart = False
    raw, results = args
    data, order, setup, durations = load(raw)
    report = Report(data, order)
    report.build(date, setup, durations)
    os.makedirs(results, exist_ok=True)
    md = os.path.join(results, date + ".md")
    png = os.path.join(results, date + ".png")
    if want_chart and chart(report, png):
        report.out("![ratios](%s)" % os.path.basename(png))
        report.out()
    text = "\n".join(report.lines)
    with open(md, "w") as f:
        f.write(text)
    print(text)
    print("report: wrote %s" % md, file=sys.stderr)


if __name__ == "__main__":
    main()
