#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""A read trace shaped like an operating system's boot, as an fio iolog.

    boot-trace.py SEED DISK_BYTES OUT [--share PERCENT] [--reads N]

What a boot reads of its root disk, seen below the page cache: a few
thousand reads, most of them small (4-16 KiB: metadata, small files),
some larger (64-256 KiB: readahead of libraries and binaries), in runs of
sequential reads through a file, the files spread over the disk, about
10-20 % of it read in all, at low queue depth (the benchmarks replay it at
one).  The same SEED and
sizes always give the same trace (fio replays it with --read_iolog and
--replay_redirect).  Prints the trace's reads and bytes on stderr, and the
bytes of the 64 KiB blocks it touches (what a copy by whole blocks reads).
"""

import argparse
import random
import sys

KIB = 1024
ALIGN = 4 * KIB

# (weight, smallest, largest) of a read's size in KiB, each a power of two
SIZES = ((45, 4, 4), (25, 8, 16), (15, 32, 64), (10, 128, 128), (5, 256, 256))


def read_size(rng):
    total = sum(w for w, _, _ in SIZES)
    pick = rng.randrange(total)
    for weight, low, high in SIZES:
        if pick < weight:
            sizes = [s for s in (4, 8, 16, 32, 64, 128, 256) if low <= s <= high]
            return rng.choice(sizes) * KIB
        pick -= weight
    raise AssertionError("weights")


def make_trace(seed, disk_bytes, share, nr_reads):
    """[(offset, length)] in boot order."""
    rng = random.Random(seed)
    footprint = disk_bytes * share // 100
    # the files: extents spread over the disk, none overlapping
    nr_files = max(1, nr_reads // 12)
    file_bytes = max(ALIGN, footprint // nr_files // ALIGN * ALIGN)
    slots = disk_bytes // file_bytes
    starts = sorted(rng.sample(range(slots), min(nr_files, slots)))
    files = [[s * file_bytes, 0] for s in starts]	# start, bytes read so far
    reads = []
    current = None
    while len(reads) < nr_reads:
        # a run goes on through its file; else the boot opens another one
        if current is None or rng.random() < 0.3 or files[current][1] >= file_bytes:
            open_files = [i for i, f in enumerate(files) if f[1] < file_bytes]
            if not open_files:
                break
            current = rng.choice(open_files)
        start, done = files[current]
        length = min(read_size(rng), file_bytes - done)
        reads.append((start + done, length))
        files[current][1] += length
    return reads


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("seed", type=int)
    parser.add_argument("disk_bytes", type=int)
    parser.add_argument("out")
    parser.add_argument("--share", type=int, default=15,
                        help="percent of the disk the boot reads (default 15)")
    parser.add_argument("--reads", type=int, default=3000)
    args = parser.parse_args()
    if not 1 <= args.share <= 100 or args.disk_bytes < 64 * 256 * KIB:
        parser.error("share is 1 to 100 percent, the disk at least 16 MiB")
    reads = make_trace(args.seed, args.disk_bytes, args.share, args.reads)
    with open(args.out, "w") as out:
        out.write("fio version 2 iolog\n/dev/disk add\n/dev/disk open\n")
        for offset, length in reads:
            out.write(f"/dev/disk read {offset} {length}\n")
        out.write("/dev/disk close\n")
    total = sum(length for _, length in reads)
    block = 64 * KIB
    blocks = {b for offset, length in reads
              for b in range(offset // block, (offset + length - 1) // block + 1)}
    print(f"boot trace: {len(reads)} reads, {total} bytes "
          f"({100 * total / args.disk_bytes:.1f} % of the disk), "
          f"{len(blocks) * block} bytes in 64 KiB blocks", file=sys.stderr)


if __name__ == "__main__":
    main()
