#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""The boot benchmark's report, in Markdown, from bench/storm's raw file.

    storm-report.py RAW

RAW holds "setup ..." lines and "boot PROFILE PEER BOOT METRIC VALUE"
lines (bench/storm-guest.sh).  Ratios are of times, the peer's against
dm-linear on a local full copy ("local"): above 1 is faster than the
limit, which only a cache could be.
"""

import re
import sys

NAMES = {
    "local": "dm-linear, local full copy",
    "fvd": "dm-fvd",
    "fvd-nocor": "dm-fvd, no_copy_on_read",
    "fvd-profile": "dm-fvd, prefetch seeded with another host's profile",
    "thin": "dm-thin, external origin",
    "clone": "dm-clone (no hydration)",
    "qcow2": "qcow2, origin as backing file",
}
LINKS = {
    "wan": "WAN: 25 Mbit/s, 20 ms round trip",
    "datacenter": "datacenter: 1 Gbit/s, 0.5 ms round trip (TCG moves less)",
}


def load(path):
    setup, runs = [], {}
    for line in open(path):
        words = line.split()
        if not words:
            continue
        if words[0] == "setup":
            setup.append(" ".join(words[1:]))
        elif words[0] == "boot" and len(words) == 6:
            _, profile, peer, boot, metric, value = words
            runs.setdefault(profile, {}).setdefault(peer, {}).setdefault(boot, {})[metric] = \
                int(value)
    # what the activation read (dm-fvd: the fingerprint) counts too
    for peers in runs.values():
        for boots in peers.values():
            for b in boots.values():
                b["origin_bytes"] = b.get("origin_bytes", 0) + b.get("activation_origin_bytes", 0)
    return setup, runs


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


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    setup, runs = load(sys.argv[1])
    boot_set = trace_bytes(setup)
    out = ["# Boot over a network origin", ""]
    out += ["One host replays a boot-shaped read trace (bench/boot-trace.py: direct",
            "reads at queue depth 1) on each peer, whose origin is served by",
            "nbd-server from another network namespace over a shaped veth link",
            "(tests/lib/netorigin.sh): the first boot, then, after deactivating and",
            "activating the disk, the second.  One run each (no spread yet).  The",
            "prefetch and dm-clone's hydration are off: the boot alone is measured.",
            "The server's page cache is dropped before every boot.  Origin bytes",
            "include what the activation read (dm-fvd reads the origin's",
            "fingerprint, 2 MiB and 64 KiB, at each load).  The hosts of the storm",
            "share the guest's two vCPUs and its data and metadata disks.",
            ""]
    out += [f"- {s}" for s in setup] + [""]
    goals = []
    for profile, peers in runs.items():
        out += [f"## {LINKS.get(profile, profile)}", ""]
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
                row.append(f"{b['ms'] / 1000:.2f}" if "ms" in b else "-")
            for b in (first, second):
                row.append(f"{b['p50_us'] / 1000:.2f}/{b['p99_us'] / 1000:.2f}"
                           if "p50_us" in b else "-")
            for b in (first, second):
                row.append(mib(b["origin_bytes"]) if "origin_bytes" in b else "-")
            for name in ("first", "second"):
                mine, lim = boots.get(name, {}).get("ms"), local.get(name, {}).get("ms")
                row.append(f"{lim / mine:.2f}×" if mine and lim else "-")
            out.append("| " + " | ".join(row) + " |")
        out.append("")
        stormed = {peer: boots for peer, boots in peers.items() if "storm-first" in boots}
        if stormed:
            out += storm_table(stormed, boot_set)
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
    if goals:
        out += ["## Goals (issue 15)", "",
                "| link | goal | wanted | measured | met |", "|---|---|---|---|---|"]
        out += [f"| {p} | {g} | {w} | {m} | {'–' if ok is None else 'yes' if ok else 'no'} |"
                for p, g, w, m, ok in goals]
        out.append("")
    print("\n".join(out))


if __name__ == "__main__":
    main()
