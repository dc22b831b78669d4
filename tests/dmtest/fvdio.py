#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""I/O helpers for the dm-fvd guest tests.

  randwrite DEV REF --seed S --count N [--max-bytes B] [--block B]
            [--start OFF] [--end OFF]
      Random writes of 512 B .. B bytes at 512-aligned offsets, a third of
      them straddling a block boundary.  Each write goes to DEV with O_DIRECT
      and to the reference file REF at the same offset.
  compare A B [--offset OFF] [--length L] [--offset-b OFF]
      Byte-for-byte comparison; names the first differing byte.
  zeroes DEV OFFSET LENGTH
      Checks that a range reads as zeroes.
  slots DEV REF --period P --slot-size S --slots I,J,.. --length L
      Compares only the listed slots of each period (e.g. the 8K slots of
      every 64K block that no fio job wrote) between DEV and REF.
  fill FILE LENGTH --seed S
      Writes LENGTH pseudo-random bytes (reproducible from the seed).

Exit status 0 on success, 1 on a mismatch, 2 on misuse.
"""
import argparse
import mmap
import os
import random
import sys

CHUNK = 1 << 20


def aligned(size):
    return mmap.mmap(-1, max(size, mmap.PAGESIZE))


def open_direct(path, flags):
    try:
        return os.open(path, flags | os.O_DIRECT)
    except OSError:
        return os.open(path, flags)  # tmpfs files do not take O_DIRECT


def size_of(fd):
    return os.lseek(fd, 0, os.SEEK_END)


def read_at(fd, offset, length):
    buf = aligned(length)
    done = 0
    while done < length:
        view = memoryview(buf)[done:length]
        n = os.preadv(fd, [view], offset + done)
        if n <= 0:
            raise OSError(f"short read at {offset + done}")
        done += n
    return bytes(memoryview(buf)[:length])


def cmd_randwrite(args):
    rng = random.Random(args.seed)
    dev = open_direct(args.dev, os.O_RDWR)
    ref = os.open(args.ref, os.O_RDWR)
    end = args.end or size_of(dev)
    sectors = (end - args.start) // 512
    buf = aligned(args.max_bytes)
    for _ in range(args.count):
        length = rng.randint(1, args.max_bytes // 512) * 512
        if rng.random() < 1 / 3:
            # straddle a block edge
            edge = rng.randrange(args.start + args.block, end, args.block)
            offset = edge - rng.randint(1, length // 512) * 512 if length > 512 else edge - 512
        else:
            offset = args.start + rng.randrange(0, sectors) * 512
        offset = max(args.start, min(offset, end - length))
        data = rng.randbytes(length)
        buf[:length] = data
        if os.pwritev(dev, [memoryview(buf)[:length]], offset) != length:
            print(f"short write at {offset}", file=sys.stderr)
            return 1
        os.pwrite(ref, data, offset)
    os.fsync(dev)
    os.close(dev)
    os.close(ref)
    return 0


def cmd_compare(args):
    a = open_direct(args.a, os.O_RDONLY)
    b = open_direct(args.b, os.O_RDONLY)
    length = args.length or size_of(a) - args.offset
    if not args.length and size_of(b) - args.offset_b - args.offset < length:
        print(f"{args.b} is shorter than {args.a}", file=sys.stderr)
        return 1
    pos, end = args.offset, args.offset + length
    while pos < end:
        n = min(CHUNK, end - pos)
        x = read_at(a, pos, n)
        y = read_at(b, args.offset_b + pos, n)
        if x != y:
            i = next(i for i in range(n) if x[i] != y[i])
            print(f"differ at byte {pos + i}: {x[i]:#04x} != {y[i]:#04x}", file=sys.stderr)
            return 1
        pos += n
    return 0


def cmd_zeroes(args):
    fd = open_direct(args.dev, os.O_RDONLY)
    pos = args.offset
    end = args.offset + args.length
    while pos < end:
        n = min(CHUNK, end - pos)
        data = read_at(fd, pos, n)
        if data.count(0) != n:
            i = next(i for i in range(n) if data[i])
            print(f"non-zero byte at {pos + i}", file=sys.stderr)
            return 1
        pos += n
    return 0


def cmd_slots(args):
    dev = open_direct(args.dev, os.O_RDONLY)
    ref = open_direct(args.ref, os.O_RDONLY)
    slots = [int(s) for s in args.slots.split(",")]
    checked = 0
    for base in range(0, args.length, args.period):
        for s in slots:
            off = base + s * args.slot_size
            if read_at(dev, off, args.slot_size) != read_at(ref, off, args.slot_size):
                print(f"slot at byte {off} differs", file=sys.stderr)
                return 1
            checked += 1
    print(f"{checked} slots equal")
    return 0


def cmd_fill(args):
    rng = random.Random(args.seed)
    with open(args.file, "wb") as f:
        left = args.length
        while left:
            n = min(CHUNK, left)
            f.write(rng.randbytes(n))
            left -= n
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("randwrite")
    s.add_argument("dev")
    s.add_argument("ref")
    s.add_argument("--seed", type=int, required=True)
    s.add_argument("--count", type=int, required=True)
    s.add_argument("--max-bytes", type=int, default=3 * 65536)
    s.add_argument("--block", type=int, default=65536)
    s.add_argument("--start", type=int, default=0)
    s.add_argument("--end", type=int, default=0)
    s = sub.add_parser("compare")
    s.add_argument("a")
    s.add_argument("b")
    s.add_argument("--offset", type=int, default=0)
    s.add_argument("--length", type=int, default=0)
    s.add_argument("--offset-b", type=int, default=0)
    s = sub.add_parser("zeroes")
    s.add_argument("dev")
    s.add_argument("offset", type=int)
    s.add_argument("length", type=int)
    s = sub.add_parser("slots")
    s.add_argument("dev")
    s.add_argument("ref")
    s.add_argument("--period", type=int, required=True)
    s.add_argument("--slot-size", type=int, required=True)
    s.add_argument("--slots", required=True)
    s.add_argument("--length", type=int, required=True)
    s = sub.add_parser("fill")
    s.add_argument("file")
    s.add_argument("length", type=int)
    s.add_argument("--seed", type=int, required=True)
    args = p.parse_args()
    return globals()["cmd_" + args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
