#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""The boot benchmark's report, in Markdown, from bench/storm's raw file.

    storm-report.py RAW [PNG-PREFIX]

RAW holds "setup ..." lines, "boot PROFILE PEER BOOT METRIC VALUE" lines
the prefetch's "prefetch PROFILE METRIC VALUE" (against fio and dd through
the link) and the settle's "settle PROFILE METRIC VALUE", "settle_host
PROFILE HOST METRIC VALUE" and "settle_sample PROFILE HOST MS ORIGIN-BYTES"
lines (bench/storm-guest.sh).  Ratios are of times, the peer's against dm-linear
on a local full copy ("local"): above 1 is faster than the limit, which
only a cache could be.  With PNG-PREFIX, the charts are drawn with gnuplot
into PNG-PREFIX-boot.png (boot times per peer, with the range of the
repeats) and PNG-PREFIX-settle-LINK.png (each host's origin throughput
while the prefetch settles) and linked.
"""

import os
import re
import statistics
import subprocess
import sys

NAMES = {
    "local": "dm-linear, local full copy",
    "fvd": "dm-fvd",
    "fvd-nocor": "dm-fvd, no_copy_on_read",
    "fvd-16k": "dm-fvd, 16 KiB blocks",
    "fvd-profile": "dm-fvd, prefetch seeded with another host's profile",
    "fvd-stored": "dm-fvd, that profile stored by fvd-create, device made ahead",
    "thin": "dm-thin, external origin",
    "clone": "dm-clone (no hydration)",
    "qcow2": "qcow2, origin as backing file",
}
LINKS = {
    "wan": "WAN: 25 Mbit/s, 20 ms round trip",
    "datacenter": "datacenter: 1 Gbit/s, 0.5 ms round trip (TCG moves less)",
    "wan-iscsi": "WAN, the origin over iSCSI (LIO to open-iscsi)",
    "datacenter-iscsi": "datacenter, the origin over iSCSI (LIO to open-iscsi)",
}

# what one measurement of the prefetch against the link records
PREFETCH_METRICS = ("bytes", "fio_us", "dd_us", "prefetch_us", "prefetch_bytes",
                    "origin_bytes", "pauses")


def load(path):
    """setup lines, boots by profile/peer/boot, and the settle by profile:
    {"run": {metric: value}, "hosts": {host: {metric: value}},
    "samples": {host: [(ms, origin bytes)]}}"""
    setup, runs, settles, prefetches = [], {}, {}, {}
    for line in open(path):
        words = line.split()
        if not words:
            continue
        if words[0] == "setup":
            setup.append(" ".join(words[1:]))
        elif words[0] == "prefetch" and len(words) == 4:
            prefetches.setdefault(words[1], {}).setdefault(words[2], []).append(int(words[3]))
        elif words[0] in ("settle", "settle_host", "settle_sample"):
            st = settles.setdefault(words[1], {"run": {}, "hosts": {}, "samples": {}})
            if words[0] == "settle" and len(words) == 4:
                st["run"][words[2]] = int(words[3])
            elif words[0] == "settle_host" and len(words) == 5:
                st["hosts"].setdefault(int(words[2]), {})[words[3]] = int(words[4])
            elif words[0] == "settle_sample" and len(words) == 5:
                st["samples"].setdefault(int(words[2]), []).append(
                    (int(words[3]), int(words[4])))
        elif words[0] == "boot" and len(words) == 6:
            _, profile, peer, boot, metric, value = words
            runs.setdefault(profile, {}).setdefault(peer, {}).setdefault(boot, {}) \
                .setdefault(metric, []).append(int(value))
    # Repeats: the median stands for a metric, "runs" and "range" (of the
    # times) say how many and how far apart.  What the activation read
    # (dm-fvd: the fingerprint) counts as origin bytes too.
    for peers in runs.values():
        for peer, boots in peers.items():
            for b in boots.values():
                activation = b.pop("activation_origin_bytes", [])
                if activation:
                    if len(activation) != len(b.get("origin_bytes", [])):
                        sys.exit(f"{path}: origin and activation bytes of {peer} differ "
                                 "in number")
                    b["origin_bytes"] = [x + y for x, y in zip(b["origin_bytes"], activation)]
                times = b.get("ms", [])
                b["runs"] = len(times)
                b["range"] = (min(times), max(times)) if times else None
                for metric, values in list(b.items()):
                    if isinstance(values, list):
                        b[metric] = statistics.median(values)
    for profile, p in prefetches.items():
        counts = {len(p.get(metric, [])) for metric in PREFETCH_METRICS} | \
            {len(v) for v in p.values()}
        if len(counts) != 1:
            sys.exit(f"{path}: the prefetch measurements of {profile} differ in number")
    return setup, runs, settles, prefetches


def spread(values, fmt):
    """The median, and the range when more than one value."""
    med = fmt.format(statistics.median(values))
    if len(values) < 2:
        return med
    return f"{med} ({fmt.format(min(values))}–{fmt.format(max(values))}, n={len(values)})"


def prefetch_table(p):
    """One host's prefetch against fio and dd reading the same bytes of the
    link; returns the lines and the ratios (per run) against fio and dd."""
    runs = len(p["prefetch_us"])
    size = p["bytes"][0]
    vs_fio = [f / q for f, q in zip(p["fio_us"], p["prefetch_us"])]
    vs_dd = [d / q for d, q in zip(p["dd_us"], p["prefetch_us"])]
    def rate(us):
        return spread([size / u for u in us], "{:.2f}")
    out = [f"The prefetch against the link (one host; {runs} run{'s' if runs > 1 else ''}): "
           f"dm-fvd's prefetch (default",
           f"tunables: two batches of 1 MiB in flight) copies the first {mib(size)} MiB of the",
           "origin, fio reads the same bytes the same way (1 MiB reads, two in flight,",
           "direct), dd reads them 1 MiB at a time; the server's cache cold for each.",
           "",
           "| MiB | prefetch MB/s | fio 2 × 1 MiB MB/s | dd 1 MiB MB/s | prefetch ×fio "
           "| prefetch ×dd | origin MiB read by the prefetch | pauses |",
           "|---|---|---|---|---|---|---|---|",
           "| " + " | ".join([
               mib(size), rate(p["prefetch_us"]), rate(p["fio_us"]), rate(p["dd_us"]),
               spread(vs_fio, "{:.2f}×"), spread(vs_dd, "{:.2f}×"),
               mib(statistics.median(p["origin_bytes"])),
               str(max(p["pauses"]))]) + " |", ""]
    bad = [b for b in p["prefetch_bytes"] if b != size]
    if bad:
        out += [f"(the prefetch counted {mib(bad[0])} MiB copied, not {mib(size)})", ""]
    return out, vs_fio, vs_dd


def block_footprint(setup):
    for line in setup:
        m = re.search(r"(\d+) bytes in 64 KiB blocks", line)
        if m:
            return int(m.group(1))
    return None


def trace_bytes(setup):
    for line in setup:
        m = re.search(r"boot trace: (\d+) reads, (\d+) bytes", line)
        if m:
            return int(m.group(2))
    return None


def seconds(b):
    """A boot's time: the median, and the range of the repeats when more
    than one ran."""
    if "ms" not in b:
        return "-"
    if b["runs"] < 2:
        return f"{b['ms'] / 1000:.2f}"
    lo, hi = b["range"]
    return f"{b['ms'] / 1000:.2f} ({lo / 1000:.2f}–{hi / 1000:.2f}, n={b['runs']})"


def mib(b):
    return f"{b / 1048576:.1f}"


def storm_table(stormed, boot_set):
    """The storm: every host boots at once, twice."""
    out = ["Every host at once (each in a namespace of its own, with its own",
           "connection; the server's link is shared):", "",
           "| peer | hosts | boot | longest s | wall s | p50/p99 ms | origin MiB "
           "| per host MiB | per host ×boot set |",
           "|---|---|---|---|---|---|---|---|---|"]
    for peer, boots in stormed.items():
        for name in ("storm-first", "storm-second"):
            b = boots.get(name)
            if not b:
                continue
            per_host = b["origin_bytes"] / b["hosts"]
            out.append("| " + " | ".join([
                NAMES.get(peer, peer), str(b["hosts"]), name.split("-")[1],
                f"{b['ms'] / 1000:.2f}", f"{b['wall_ms'] / 1000:.2f}",
                f"{b['p50_us'] / 1000:.2f}/{b['p99_us'] / 1000:.2f}",
                mib(b["origin_bytes"]), mib(per_host),
                f"{per_host / boot_set:.2f}×" if boot_set else "-"]) + " |")
    return out + [""]


def settle_table(st):
    """The settle: every host's prefetch at once, a light load on each."""
    run, hosts = st["run"], st["hosts"]
    n, rate = run["hosts"], run["link_bytes_per_s"]
    bound = n * run["origin_bytes_each"] / rate
    left = run["absent_bytes"] / rate
    out = [f"The settle (one run): after the storm, the {n} hosts' prefetches run at",
           "once (default tunables) while each host keeps a light load (4 KiB random",
           "reads and writes at a fixed rate on a region already local; its latency",
           "counted on each host until that host is all-local).  The link moved",
           f"{rate / 1e6:.1f} MB/s to {n} hosts reading at once (fio, a job each, 1 MiB",
           f"reads, 2 in flight, cold server cache): N × origin size ÷ that rate is",
           f"{bound:.0f} s; what was left to copy, {mib(run['absent_bytes'])} MiB, "
           f"÷ that rate is {left:.0f} s", f"(the settle took {run['ms'] / 1000 / left:.2f}× that).",
           "",
           "| hosts | all local s | ×(N × origin ÷ link) | origin MiB | MB/s "
           "| load p50/p99 ms, idle | load p50/p99 ms, settling | p99 ×idle |",
           "|---|---|---|---|---|---|---|---|"]
    origin = sum(h.get("origin_bytes", 0) for h in hosts.values())
    out.append("| " + " | ".join([
        str(n), f"{run['ms'] / 1000:.1f}", f"{run['ms'] / 1000 / bound:.2f}×",
        mib(origin), f"{origin / run['ms'] / 1000:.1f}",
        f"{run['idle_p50_us'] / 1000:.2f}/{run['idle_p99_us'] / 1000:.2f}",
        f"{run['busy_p50_us'] / 1000:.2f}/{run['busy_p99_us'] / 1000:.2f}",
        f"{run['busy_p99_us'] / run['idle_p99_us']:.2f}×"]) + " |")
    out += ["", "| host | all local s | pauses | origin MiB |", "|---|---|---|---|"]
    for host in sorted(hosts):
        h = hosts[host]
        out.append(f"| {host} | {h['done_ms'] / 1000:.1f} | {h['pauses']} "
                   f"| {mib(h['origin_bytes'])} |")
    return out + [""], bound


CHART_ERRORS = []


def gnuplot(script, png):
    try:
        subprocess.run(["gnuplot"], input=script, text=True, check=True)
    except (OSError, subprocess.CalledProcessError) as err:
        print(f"storm-report: no chart {png}: {err}", file=sys.stderr)
        CHART_ERRORS.append(f"{os.path.basename(png)}: {err}")
        return False
    return True


def boot_chart(runs, png):
    """Bars of the first and second boot's time per link and peer."""
    rows = [(profile, peer, boots) for profile, peers in runs.items()
            for peer, boots in peers.items() if "ms" in boots.get("first", {})]
    if not rows:
        return False
    dat = png + ".dat"
    def cells(b):	# the median and the range, in seconds
        if "ms" not in b:
            return "- - -"
        lo, hi = b["range"]
        return f"{b['ms'] / 1000:.3f} {lo / 1000:.3f} {hi / 1000:.3f}"
    with open(dat, "w") as f:
        f.write('peer "first boot" lo hi "second boot" lo hi\n')
        for profile, peer, boots in rows:
            f.write(f'"{profile}: {NAMES.get(peer, peer)}" {cells(boots["first"])} '
                    f'{cells(boots.get("second", {}))}\n')
    script = f"""
set terminal pngcairo size 1400,650 font "sans,10"
set output '{png}'
set title "Boot trace replay time per peer (one host; median, bars: range of the repeats; lower is better)"
set style data histogram
set style histogram errorbars gap 1 lw 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set datafile missing '-'
set termoption noenhanced
set logscale y
set ylabel "seconds (log scale)"
set yrange [0.1:*]
set grid ytics
set xtics rotate by -25
set key top left
plot '{dat}' using 2:3:4:xtic(1) title columnheader(2), '' using 5:6:7 title columnheader(5)
"""
    try:
        return gnuplot(script, png)
    finally:
        os.unlink(dat)


def settle_chart(profile, st, png):
    """Each host's origin read rate over time while the prefetch settles."""
    samples = st["samples"]
    if not samples:
        return False
    dat = png + ".dat"
    hosts = sorted(samples)
    with open(dat, "w") as f:
        for host in hosts:
            f.write(f'"host {host}"\n')
            last_ms, last_bytes = 0, 0
            for ms, b in samples[host]:
                if ms > last_ms:
                    f.write(f"{ms / 1000:.2f} {(b - last_bytes) / (ms - last_ms) / 1000:.3f}\n")
                last_ms, last_bytes = ms, b
            f.write("\n\n")
        # and the link's total: the hosts are sampled at the same moments
        f.write('"all hosts"\n')
        total = {}
        for host in hosts:
            for ms, b in samples[host]:
                total[ms] = total.get(ms, 0) + b
        last_ms, last_bytes = 0, 0
        for ms in sorted(total):
            f.write(f"{ms / 1000:.2f} {(total[ms] - last_bytes) / (ms - last_ms) / 1000:.3f}\n")
            last_ms, last_bytes = ms, total[ms]
    script = f"""
set terminal pngcairo size 1400,650 font "sans,10"
set output '{png}'
set title "Origin reads per host while the prefetch settles ({profile} link, {len(hosts)} hosts)"
set termoption noenhanced
set xlabel "seconds since the prefetches started"
set ylabel "MB/s read from the origin"
set grid
set key outside right top
set yrange [0:*]
plot for [i=0:{len(hosts) - 1}] '{dat}' index i using 1:2 with lines lw 1.5 title columnheader(1), \\
     '{dat}' index {len(hosts)} using 1:2 with lines lw 3 dt 2 lc rgb "#404040" title columnheader(1)
"""
    try:
        return gnuplot(script, png)
    finally:
        os.unlink(dat)


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    setup, runs, settles, prefetches = load(sys.argv[1])
    prefix = sys.argv[2] if len(sys.argv) == 3 else None
    boot_set = trace_bytes(setup)
    out = ["# Boot over a network origin", ""]
    out += ["One host replays a boot-shaped read trace (bench/boot-trace.py: direct",
            "reads at queue depth 1) on each peer, whose origin is served by",
            "nbd-server (the links named \"iscsi\": by the kernel's iSCSI target, LIO,",
            "to open-iscsi) from another network namespace over a shaped veth link",
            "(tests/lib/netorigin.sh): the first boot, then, after deactivating and",
            "activating the disk, the second.  Each figure is the median of its",
            "repeats, each from a fresh image; times give their range when more",
            "than one ran.  The storm and the settle ran once.  The",
            "prefetch and dm-clone's hydration are off: the boot alone is measured",
            "(but for the seeded peer's first boot: its prefetch, started with the",
            "replay, copies the profile first, then goes on over the rest of the disk;",
            "and for the stored profile's first boot, which starts once the prefetch,",
            "started by the table at its activation, has copied the profile: the time",
            "that took is given below, and what it read counts as the activation's).",
            "The server's page cache is dropped before every boot.  Origin bytes",
            "include what the activation read (dm-fvd reads the origin's",
            "fingerprint, 2 MiB and 64 KiB, at each load).  The hosts of the storm",
            "share the guest's two vCPUs and its data and metadata disks.",
            ""]
    out += [f"- {s}" for s in setup] + [""]
    goals = []
    for profile in dict.fromkeys(list(runs) + list(prefetches) + list(settles)):
        peers = runs.get(profile, {})
        out += [f"## {LINKS.get(profile, profile)}", ""]
        if any("first" in boots for boots in peers.values()):
            out += ["| peer | first boot s | second boot s | first p50/p99 ms "
                    "| second p50/p99 ms | origin MiB, first | origin MiB, second "
                    "| first ×local | second ×local |",
                    "|---|---|---|---|---|---|---|---|---|"]
        local = peers.get("local", {})
        for peer, boots in peers.items():
            if "first" not in boots:
                continue
            first, second = boots.get("first", {}), boots.get("second", {})
            row = [NAMES.get(peer, peer)]
            for b in (first, second):
                row.append(seconds(b))
            for b in (first, second):
                row.append(f"{b['p50_us'] / 1000:.2f}/{b['p99_us'] / 1000:.2f}"
                           if "p50_us" in b else "-")
            for b in (first, second):
                row.append(mib(b["origin_bytes"]) if "origin_bytes" in b else "-")
            for name in ("first", "second"):
                mine, lim = boots.get(name, {}).get("ms"), local.get(name, {}).get("ms")
                row.append(f"{lim / mine:.2f}×" if mine and lim else "-")
            out.append("| " + " | ".join(row) + " |")
        if out[-1]:
            out.append("")
        copied = [f"- {NAMES.get(peer, peer)}, {name} boot: {mib(b['cor_bytes'])} MiB copied "
                  f"on read, {mib(b['prefetch_bytes'])} MiB by the prefetch"
                  for peer, boots in peers.items() for name, b in boots.items()
                  if "cor_bytes" in b and "prefetch_bytes" in b]
        if copied:
            out += copied + [""]
        ahead = [f"- {NAMES.get(peer, peer)}: the profile was local "
                 f"{boots['first']['ahead_ms'] / 1000:.1f} s after the activation, when the "
                 "first boot began (its origin bytes above count that copy)"
                 for peer, boots in peers.items() if "ahead_ms" in boots.get("first", {})]
        if ahead:
            out += ahead + [""]
        if profile in prefetches:
            table, vs_fio, vs_dd = prefetch_table(prefetches[profile])
            out += table
            ratio = statistics.median(vs_fio)
            wanted = profile.startswith("wan")
            goals.append((profile, "prefetch against fio through the link at the same queue "
                          "depth (2 × 1 MiB)", "≥ 0.80×" if wanted else "–",
                          spread(vs_fio, "{:.2f}×"), ratio >= 0.8 if wanted else None))
            goals.append((profile, "prefetch against dd through the link (1 MiB, one at a time)",
                          "–", spread(vs_dd, "{:.2f}×"), None))
        stormed = {peer: boots for peer, boots in peers.items() if "storm-first" in boots}
        settle_goals = []
        if stormed:
            out += storm_table(stormed, boot_set)
        st = settles.get(profile)
        if st and "ms" in st["run"]:
            table, bound = settle_table(st)
            out += table
            all_local = st["run"]["ms"] / 1000 / bound
            settle_goals.append((profile, f"settle, {st['run']['hosts']} hosts: all local, against "
                          "N × origin size ÷ link rate", "≤ 1.30×", f"{all_local:.2f}×",
                          all_local <= 1.3))
            p99 = st["run"]["busy_p99_us"] / st["run"]["idle_p99_us"]
            settle_goals.append((profile, "settle: the guests' p99 against idle", "≤ 1.50×",
                          f"{p99:.2f}×", p99 <= 1.5))
            png = f"{prefix}-settle-{profile}.png" if prefix else None
            if png and settle_chart(profile, st, png):
                out += [f"![origin reads per host, {profile}]({os.path.basename(png)})", ""]
        fvd = peers.get("fvd", {})
        if "first" in fvd and "second" in fvd and "first" in local and "second" in local:
            second = local["second"]["ms"] / fvd["second"]["ms"]
            goals.append((profile, "second boot, dm-fvd against the local copy",
                          "≥ 0.90×", f"{second:.2f}×", second >= 0.9))
            others = [p["first"]["ms"] for name, p in peers.items()
                      if not name.startswith("fvd") and name != "local" and "first" in p]
            if others:
                first = min(others) / fvd["first"]["ms"]
                goals.append((profile, "first boot, dm-fvd against the best peer",
                              "≥ 0.95×", f"{first:.2f}×", first >= 0.95))
            if boot_set:
                share = (fvd["first"]["origin_bytes"] + fvd["second"]["origin_bytes"]) / boot_set
                goals.append((profile, "origin bytes of both boots, dm-fvd, against the boot set",
                              "≤ 1.10×", f"{share:.2f}×", share <= 1.1))
        seeded = peers.get("fvd-profile", {})
        if "first" in fvd and "first" in seeded:
            faster = fvd["first"]["ms"] / seeded["first"]["ms"]
            goals.append((profile, "first boot with another host's profile against "
                          "dm-fvd without (prefetch copying the profile first)",
                          "≥ 3.00×", f"{faster:.2f}×", faster >= 3))
        stored = peers.get("fvd-stored", {}).get("first", {})
        if "first" in fvd and "ms" in stored:
            faster = fvd["first"]["ms"] / stored["ms"]
            goals.append((profile, "first boot with the profile stored in the image, the device "
                          "made before the boot (profile copied), against dm-fvd without",
                          "≥ 3.00×", f"{faster:.2f}×", faster >= 3))
            if "ahead_ms" in stored:
                whole = fvd["first"]["ms"] / (stored["ms"] + stored["ahead_ms"])
                goals.append((profile, "the same, counting the time from the activation",
                              "–", f"{whole:.2f}×", None))
        if boot_set and "storm-first" in fvd:
            storm = [fvd[b] for b in ("storm-first", "storm-second")]
            share = sum(b["origin_bytes"] for b in storm) / storm[0]["hosts"] / boot_set
            goals.append((profile, f"storm of {storm[0]['hosts']} hosts, both boots, dm-fvd: "
                          "origin bytes per host against the boot set",
                          "≤ 1.10×", f"{share:.2f}×", share <= 1.1))
            footprint = block_footprint(setup)
            if footprint:
                share = sum(b["origin_bytes"] for b in storm) / storm[0]["hosts"] / footprint
                goals.append((profile, "the same against the 64 KiB blocks the trace touches "
                              "(what a copy by blocks must read)", "–", f"{share:.2f}×", None))
        goals += settle_goals
    if prefix and boot_chart(runs, prefix + "-boot.png"):
        out += ["## Boot times", "",
                "![boot times per peer](%s)" % os.path.basename(prefix + "-boot.png"), ""]
    if CHART_ERRORS:
        out += ["Charts not drawn: " + "; ".join(CHART_ERRORS), ""]
    if goals:
        out += ["## Goals (issue 15)", "",
                "| link | goal | wanted | measured | met |", "|---|---|---|---|---|"]
        out += [f"| {p} | {g} | {w} | {m} | {'–' if ok is None else 'yes' if ok else 'no'} |"
                for p, g, w, m, ok in goals]
        out.append("")
    print("\n".join(out))


if __name__ == "__main__":
    main()
