#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""Crash-consistency workloads and checker for dm-fvd, over dm-log-writes.

  raw-workload DEV --seed S --steps N (--log-dev NAME | --progress FILE)
               [--discard-chunk BYTES] [--scatter N]
      Random 4K-aligned O_DIRECT writes to DEV, with fsyncs and RWF_DSYNC
      (FUA) writes among them, with --discard-chunk discards of whole
      chunks of that size (a compact image's chunks), and with --scatter N
      steps writing N chunks, every other one, through the page cache,
      then an fsync (a commit of N runs of blocks).  After each fsync or DSYNC write returns, a
      mark "s<step>" is put in the log of the dm-log-writes device NAME, or
      the line "s<step>" appended to FILE (which also gets "b<step>" before
      each step begins).
  verify-raw DEV --seed S --steps N --origin DEV --virtual SECTORS
             --progress FILE
      After a power cut during raw-workload --progress: every write the
      progress file shows acknowledged reads back exactly.
  fio-workload DEV --seed S --phases N --log-dev NAME --reference FILE
      Phase k: fio random 4K O_DIRECT writes, each block of its own region
      once, with an fsync every few writes and at the end (verify=crc32c
      headers in the data), then a mark "p<k>".  At the end fio verifies
      every region and FILE gets their content.
  ext4-workload DIR --seed S --files N --log-dev NAME
      Creates files in DIR, each written, fsynced and its directory fsynced,
      then marked "f<index>".
  check --log LOG --replay DEV --cow DEV --origin DEV --virtual SECTORS
        --workload raw|fio|ext4 ... [--random-points N]
      Reads the log (format: the kernel's log-writes.rst), picks crash
      points (before and after every flush and FUA entry, every mark, and
      random points in between) and for each one: replays the log up to it
      onto DEV, takes a throw-away snapshot, runs fvd-check (and --repair
      when it asks for it), loads the target on the snapshot and checks that
      every write acknowledged before the crash point reads back exactly:
      chunk by chunk for raw, the regions of the phases completed against
      the reference that fio verified for fio, file by file plus e2fsck -fn
      for ext4.  --commit-points takes instead a point after every mark
      and after every entry of each commit that took several journal writes
      (a run of metadata writes and flushes holding more than one journal
      write), and counts the latter.

Data written by the raw workload is self-describing: 4 KiB chunk c of the
write at step j is a 32-byte digest of (seed, j, c) repeated, so the checker
knows which write, if any, each chunk it reads came from.
"""
import argparse
import hashlib
import os
import random
import struct
import subprocess
import sys
import time

CHUNK = 4096
BLKDISCARD = 0x1277
LOG_FLUSH, LOG_FUA, LOG_DISCARD, LOG_MARK = 1, 2, 4, 8
LOG_MAGIC = 0x6a736677736872
FVD_FLAG_ALL_LOCAL = 2


# ---- the raw workload's plan, shared by the writer and the checker ----

def raw_plan(seed, steps, virtual_bytes, discard_bytes=0, scatter=0):
    """
    [(kind, first_chunk, nr_chunks)], kind in write / dsync / fsync / discard
    / scatter.  A scatter step writes nr_chunks chunks, every other one from
    first_chunk on, each with a write of its own (runs of one block each for
    the commit that follows: it is always an fsync).
    """
    rng = random.Random(seed)
    chunks = virtual_bytes // CHUNK
    per_discard = discard_bytes // CHUNK
    plan = []
    for _ in range(steps):
        if plan and plan[-1][0] == "scatter":
            plan.append(("fsync", 0, 0))
            continue
        r = rng.random()
        if scatter and r < 0.15:
            plan.append(("scatter", rng.randrange(0, chunks - 2 * scatter + 1), scatter))
            continue
        if r < 0.15:
            plan.append(("fsync", 0, 0))
            continue
        if per_discard and r >= 0.88:
            # with scatter steps, discards large enough for them to refill
            n = rng.randrange(8, 128) if scatter else rng.choice([1, 1, 2, 3])
            first = rng.randrange(0, chunks // per_discard - n + 1) * per_discard
            plan.append(("discard", first, n * per_discard))
            continue
        kind = "dsync" if r < 0.3 else "write"
        n = rng.choice([1, 1, 2, 3, 4, 8, 16])
        first = rng.randrange(0, chunks - n + 1)
        plan.append((kind, first, n))
    return plan


def chunk_digest(seed, step, chunk):
    return hashlib.blake2b(f"{seed}/{step}/{chunk}".encode(), digest_size=32).digest()


def chunk_data(seed, step, chunk):
    return chunk_digest(seed, step, chunk) * (CHUNK // 32)


def step_chunks(kind, first, n):
    """The chunks a step of the plan writes."""
    if kind == "scatter":
        return range(first, first + 2 * n, 2)
    return range(first, first + n)


# ---- device-mapper ioctls ----
#
# dmsetup costs a quarter of a second per call in the TCG guest, mostly
# process start-up; a checker making six device-mapper calls per crash point
# talks to /dev/mapper/control itself (include/uapi/linux/dm-ioctl.h).

DM_HEADER = struct.Struct("<3I I I I i I I I Q 128s 129s 7x")
DM_SPEC = struct.Struct("<Q Q i I 16s")
DM_DEV_CREATE, DM_DEV_REMOVE, DM_DEV_SUSPEND, DM_TABLE_LOAD, DM_TARGET_MSG = 3, 4, 6, 9, 14
DM_BUFFER_FULL_FLAG = 1 << 8


def dm_ioctl(nr, name, payload=b"", target_count=0, flags=0):
    import fcntl
    size = DM_HEADER.size + len(payload)
    header = DM_HEADER.pack(4, 0, 0, size, DM_HEADER.size, target_count, 0, flags,
                            0, 0, 0, name.encode(), b"")
    buf = bytearray(header + payload)
    request = (3 << 30) | (DM_HEADER.size << 16) | (0xfd << 8) | nr
    with open("/dev/mapper/control", "rb", buffering=0) as control:
        try:
            fcntl.ioctl(control, request, buf)
        except OSError as e:
            raise Failure(f"device-mapper ioctl {nr} on {name}: {e}") from None
    dev = DM_HEADER.unpack_from(buf)[10]
    return os.major(dev), os.minor(dev)


def dm_create(name, sectors, target, params):
    """Create and resume a one-target device; returns its /dev/dm-N path."""
    dm_ioctl(DM_DEV_CREATE, name)
    text = params.encode() + b"\0"
    spec_size = (DM_SPEC.size + len(text) + 7) // 8 * 8
    spec = DM_SPEC.pack(0, sectors, 0, spec_size, target.encode()) + text
    try:
        dm_ioctl(DM_TABLE_LOAD, name, spec.ljust(spec_size, b"\0"), target_count=1)
        _, minor = dm_ioctl(DM_DEV_SUSPEND, name)	# no suspend flag: resume
    except Failure:
        dm_ioctl(DM_DEV_REMOVE, name)
        raise
    return f"/dev/dm-{minor}"


def dm_remove(name):
    dm_ioctl(DM_DEV_REMOVE, name)


def mark(log_dev, text):
    msg = struct.pack("<Q", 0) + f"mark {text}".encode() + b"\0"
    dm_ioctl(DM_TARGET_MSG, log_dev, msg)


def cmd_raw_workload(args):
    fd = os.open(args.dev, os.O_RDWR | os.O_DIRECT)
    cached = os.open(args.dev, os.O_RDWR)
    size = os.lseek(fd, 0, os.SEEK_END)
    import mmap
    buf = mmap.mmap(-1, 16 * CHUNK)
    counts = {"write": 0, "dsync": 0, "fsync": 0, "discard": 0, "scatter": 0}
    progress = open(args.progress, "w", buffering=1) if args.progress else None
    plan = raw_plan(args.seed, args.steps, size, args.discard_chunk, args.scatter)
    for step, (kind, first, n) in enumerate(plan, 1):
        counts[kind] += 1
        if progress:
            progress.write(f"b{step}\n")
        if kind == "scatter":
            # Through the page cache: the fsync that follows writes them back
            # at once, so one commit, not a second's worth at a time, makes
            # them all durable.
            for c in step_chunks(kind, first, n):
                if os.pwrite(cached, chunk_data(args.seed, step, c), c * CHUNK) != CHUNK:
                    print(f"short write at step {step}", file=sys.stderr)
                    return 1
            continue
        if kind == "fsync":
            os.fsync(cached)
            os.fsync(fd)
        elif kind == "discard":
            import fcntl
            fcntl.ioctl(fd, BLKDISCARD, struct.pack("<QQ", first * CHUNK, n * CHUNK))
            continue
        else:
            for i in range(n):
                buf[i * CHUNK:(i + 1) * CHUNK] = chunk_data(args.seed, step, first + i)
            view = memoryview(buf)[:n * CHUNK]
            flags = os.RWF_DSYNC if kind == "dsync" else 0
            if os.pwritev(fd, [view], first * CHUNK, flags) != n * CHUNK:
                print(f"short write at step {step}", file=sys.stderr)
                return 1
            if kind == "write":
                continue
        if progress:
            progress.write(f"s{step}\n")
        else:
            mark(args.log_dev, f"s{step}")
    os.close(cached)
    os.close(fd)
    print(f"raw workload: {args.steps} steps: {counts['write']} writes, "
          f"{counts['dsync']} DSYNC writes, {counts['fsync']} fsyncs, "
          f"{counts['discard']} discards, {counts['scatter']} scattered writes")
    return 0


def cmd_verify_raw(args):
    """After a power cut: the progress file says what was acknowledged."""
    durable = begun = 0
    with open(args.progress) as f:
        for line in f:
            if line.startswith("s"):
                durable = int(line[1:])
            elif line.startswith("b"):
                begun = int(line[1:])
    image = RawImage(args.seed, args.steps, args.origin, args.virtual * 512,
                     args.discard_chunk)
    try:
        image.verify(args.dev, durable, begun)
    except Failure as e:
        print(f"after step {durable} acknowledged, {begun} begun: {e}", file=sys.stderr)
        return 1
    print(f"power cut after step {durable} acknowledged, {begun} begun: "
          f"every acknowledged write reads back")
    return 0


# ---- the fio workload ----

FIO_REGION = 128 * 1024


def fio_phase_args(seed, phase):
    """The fio job of one phase: its own region, its own random order."""
    return [f"--name=p{phase}", f"--offset={phase * FIO_REGION}", f"--size={FIO_REGION}",
            f"--randseed={seed * 1000 + phase}"]


def fio_command(dev, extra):
    # --thread: no process per job, which costs seconds in the TCG guest
    return ["fio", "--thread", "--rw=randwrite", "--bs=4k", "--direct=1", "--verify=crc32c",
            f"--filename={dev}", "--output-format=terse"] + extra


def cmd_fio_workload(args):
    for phase in range(args.phases):
        r = run(fio_command(args.dev, ["--do_verify=0", "--fsync=8", "--end_fsync=1"] +
                            fio_phase_args(args.seed, phase)))
        if r.returncode:
            print(f"fio phase {phase}: exit {r.returncode}: {r.stdout}", file=sys.stderr)
            return 1
        mark(args.log_dev, f"p{phase}")
    # fio checks every block once; the crash points compare with what it checked
    jobs = []
    for phase in range(args.phases):
        jobs += fio_phase_args(args.seed, phase)
    r = run(fio_command(args.dev, ["--verify_only=1"] + jobs))
    if r.returncode:
        print(f"fio --verify_only: exit {r.returncode}: {r.stdout}", file=sys.stderr)
        return 1
    with open(args.dev, "rb") as dev, open(args.reference, "wb") as ref:
        ref.write(dev.read(args.phases * FIO_REGION))
    print(f"fio workload: {args.phases} phases of {FIO_REGION // 4096} random 4K writes, "
          f"fsync every 8; fio verified them all")
    return 0


# ---- the ext4 workload ----

def ext4_file(seed, index):
    rng = random.Random(f"{seed}/{index}")
    return rng.randbytes(rng.randint(1, 48) * 1024 - rng.randint(0, 1000))


def cmd_ext4_workload(args):
    dirfd = os.open(args.dir, os.O_RDONLY | os.O_DIRECTORY)
    for i in range(args.files):
        sub = os.path.join(args.dir, f"d{i % 4}")
        os.makedirs(sub, exist_ok=True)
        path = os.path.join(sub, f"f{i}")
        with open(path, "wb") as f:
            f.write(ext4_file(args.seed, i))
            f.flush()
            os.fsync(f.fileno())
        subfd = os.open(sub, os.O_RDONLY | os.O_DIRECTORY)
        os.fsync(subfd)
        os.close(subfd)
        os.fsync(dirfd)
        mark(args.log_dev, f"f{i}")
    os.close(dirfd)
    print(f"ext4 workload: {args.files} files created and fsynced")
    return 0


# ---- dm-log-writes log ----

class Entry:
    __slots__ = ("sector", "nr_sectors", "flags", "mark", "data_offset")


def read_log(path):
    with open(path, "rb") as f:
        magic, version, nr_entries, sectorsize = struct.unpack("<QQQI", f.read(28))
        if magic != LOG_MAGIC or version != 1:
            raise SystemExit(f"{path}: not a dm-log-writes log")
        entries = []
        pos = sectorsize
        for _ in range(nr_entries):
            f.seek(pos)
            header = f.read(sectorsize)
            e = Entry()
            e.sector, e.nr_sectors, e.flags, data_len = struct.unpack("<QQQQ", header[:32])
            e.mark = header[32:32 + data_len].decode() if e.flags & LOG_MARK else None
            pos += sectorsize
            e.data_offset = pos
            if not e.flags & (LOG_DISCARD | LOG_MARK):
                pos += e.nr_sectors * sectorsize
            entries.append(e)
    return entries, sectorsize


# ---- checking ----

def run(cmd, **kw):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, **kw)


def must(cmd):
    r = run(cmd)
    if r.returncode:
        raise Failure(f"{' '.join(cmd)}: exit {r.returncode}: {r.stdout.strip()}")
    return r.stdout


class Failure(Exception):
    pass


def sectors(dev):
    return int(must(["blockdev", "--getsz", dev]))


class RawImage:
    """What the disk may hold after the raw workload ran some steps."""

    def __init__(self, seed, steps, origin, virtual_bytes, discard_bytes=0, scatter=0):
        self.seed = seed
        self.plan = raw_plan(seed, steps, virtual_bytes, discard_bytes, scatter)
        self.virtual_bytes = virtual_bytes
        with open(origin, "rb") as f:
            data = f.read(virtual_bytes)
        # what an untouched chunk reads as: the origin, zeroes past it
        self.base = data.ljust(virtual_bytes, b"\0")
        self.data = {}

    def chunk(self, step, c):
        if self.plan[step - 1][0] == "discard":
            return self.base[c * CHUNK:(c + 1) * CHUNK]
        if (step, c) not in self.data:
            self.data[step, c] = chunk_data(self.seed, step, c)
        return self.data[step, c]

    def verify(self, path, durable_step, horizon):
        """
        Every step up to @durable_step was acknowledged as durable (an
        fsync, or a DSYNC write), none after @horizon was issued.  Each chunk
        must hold its last acknowledged write (the origin if none) or a
        write issued after that one.  A discard "writes" the origin's data,
        and is acknowledged by the next fsync only.
        """
        last_fsync = max([s for s, (k, _, _) in enumerate(self.plan, 1)
                          if k == "fsync" and s <= durable_step], default=0)
        # chunk -> [(step, durable)] for every write up to the horizon
        history = {}
        for step, (kind, first, n) in enumerate(self.plan[:horizon], 1):
            if kind == "fsync":
                continue
            durable = step <= last_fsync or (kind == "dsync" and step <= durable_step)
            for c in step_chunks(kind, first, n):
                history.setdefault(c, []).append((step, durable))
        with open(path, "rb", buffering=0) as f:
            disk = f.read(self.virtual_bytes)
        if len(disk) != self.virtual_bytes:
            raise Failure(f"short read: {len(disk)} bytes")
        for c in range(self.virtual_bytes // CHUNK):
            data = disk[c * CHUNK:(c + 1) * CHUNK]
            base = self.base[c * CHUNK:(c + 1) * CHUNK]
            writes = history.get(c)
            if not writes:
                if data != base:
                    raise Failure(f"chunk {c}, never written, differs from the origin")
                continue
            durable = [i for i, (_, d) in enumerate(writes) if d]
            if not durable and data == base:
                continue
            if any(data == self.chunk(s, c) for s, _ in writes[durable[-1] if durable else 0:]):
                continue
            what = "the origin's data" if data == base else "unknown data"
            raise Failure(f"chunk {c} holds {what}; writes to it (step, acknowledged): {writes}")


class Checker:
    def __init__(self, args):
        self.args = args
        self.entries, self.sectorsize = read_log(args.log)
        self.log = open(args.log, "rb")
        self.replay = os.open(args.replay, os.O_RDWR)
        self.applied = 0
        self.replay_sectors = sectors(args.replay)
        self.virtual_bytes = args.virtual * 512
        self.repairs = 0
        self.all_local_points = 0
        self.times = {}
        if args.workload == "raw":
            self.raw = RawImage(args.seed, args.steps, args.origin, self.virtual_bytes,
                                args.discard_chunk, args.scatter)
        self.layout = None
        if args.sbedit:
            out = must([args.sbedit, args.replay])
            self.layout = {k: int(v, 0) for k, v in
                           (l.split("=", 1) for l in out.splitlines() if "=" in l)}

    def apply_until(self, point):
        for e in self.entries[self.applied:point]:
            if e.flags & LOG_MARK or not e.nr_sectors:
                continue
            length = e.nr_sectors * self.sectorsize
            if e.flags & LOG_DISCARD:
                data = bytes(length)
            else:
                self.log.seek(e.data_offset)
                data = self.log.read(length)
            os.pwrite(self.replay, data, e.sector * self.sectorsize)
        self.applied = point
        os.fsync(self.replay)

    def marks_around(self, point):
        """The last mark before the crash point and the first one after it."""
        last = nxt = None
        for i, e in enumerate(self.entries):
            if e.flags & LOG_MARK and e.mark != "dm-log-writes-end":
                if i < point:
                    last = e.mark
                elif nxt is None:
                    nxt = e.mark
        return last, nxt

    def points(self):
        """
        Every FUA entry: just before and just after it.  Flushes and marks
        carry no data, so the image before one is the image after it: just
        after (where a mark makes the most writes count as acknowledged).
        Then random points, and the end of the log.
        """
        n = len(self.entries)
        pts = {n}
        for i, e in enumerate(self.entries):
            if self.args.commit_points:
                # only the marks, beside the commits below
                if e.flags & LOG_MARK:
                    pts.add(i + 1)
                continue
            if e.flags & LOG_FUA:
                pts.add(i)
            if e.flags & (LOG_FLUSH | LOG_FUA | LOG_MARK):
                pts.add(i + 1)
        rng = random.Random(self.args.seed)
        pts.update(rng.randrange(0, n + 1) for _ in range(self.args.random_points))
        if self.args.commit_points:
            for first, last in self.oversized_commits():
                pts.update(range(first + 1, last + 2))
        return sorted(pts)

    def commits(self):
        """
        Commits as the log shows them: maximal runs of entries that write no
        data (journal and home metadata writes, flushes, marks), with how
        many journal writes each holds: [(first, last, journal writes)].
        """
        lay = self.layout
        journal = (lay["journal_offset"], lay["journal_offset"] + lay["journal_sectors"])
        out = []
        first = None
        writes = 0
        for i, e in enumerate(self.entries + [None]):
            if e is None or (e.nr_sectors and not e.flags & LOG_MARK and
                             e.sector >= lay["data_offset"]):
                if first is not None:
                    out.append((first, i - 1, writes))
                first = None
                writes = 0
                continue
            if first is None:
                first = i
            if e.nr_sectors and journal[0] <= e.sector < journal[1]:
                writes += 1
        return out

    def oversized_commits(self):
        """The commits that took more than one journal write."""
        return [(a, b) for a, b, w in self.commits() if w > 1]

    # -- one crash point --

    def timed(self, what, fn, *args):
        start = time.monotonic()
        try:
            return fn(*args)
        finally:
            self.times[what] = self.times.get(what, 0) + time.monotonic() - start

    def check_point(self, point):
        self.timed("replay", self.apply_until, point)
        snap = self.timed("snapshot", dm_create, "crashsnap", self.replay_sectors, "snapshot",
                          f"{self.args.replay} {self.args.cow} N 8")
        try:
            self.timed("fvd-check", self.fvd_check, snap)
            # Once the all-local flag is durable, the origin must not be needed.
            origin = self.args.origin
            if self.args.sbedit and self.all_local(snap):
                origin = "-"
                self.all_local_points += 1
            # Copying on read the whole disk at every point only costs time;
            # the ext4 workload's own reads copy on read under the log.
            # No prefetch either: the default delay could start one.
            features = (" 1 no_prefetch" if self.args.workload == "ext4"
                        else " 2 no_copy_on_read no_prefetch")
            self.fvd = self.timed("load", dm_create, "crashfvd", self.args.virtual, "fvd",
                                  f"{snap} {snap} {origin}{features}")
            try:
                if self.args.workload == "raw":
                    self.timed("verify", self.verify_raw, point)
                elif self.args.workload == "fio":
                    self.timed("verify", self.verify_fio, point)
                else:
                    self.timed("verify", self.verify_ext4, point)
            finally:
                self.timed("unload", dm_remove, "crashfvd")
            out = self.timed("fvd-check", self.fvd_check, snap)
            if ", clean" not in out:
                raise Failure(f"not clean after the target's shutdown: {out}")
        finally:
            self.timed("snapshot", dm_remove, "crashsnap")

    def all_local(self, dev):
        out = run([self.args.sbedit, dev]).stdout
        flags = next(int(l.split("=", 1)[1], 0) for l in out.splitlines()
                     if l.startswith("flags="))
        return bool(flags & FVD_FLAG_ALL_LOCAL)

    def fvd_check(self, dev):
        r = run([self.args.fvd_check, dev])
        if r.returncode == 4:
            fixed = run([self.args.fvd_check, "--repair", dev])
            if fixed.returncode != 1:
                raise Failure(f"fvd-check --repair: exit {fixed.returncode}: {fixed.stdout}")
            self.repairs += 1
            r = run([self.args.fvd_check, dev])
        if r.returncode != 0:
            raise Failure(f"fvd-check: exit {r.returncode}: {r.stdout}")
        return r.stdout

    def verify_raw(self, point):
        last, nxt = self.marks_around(point)
        self.raw.verify(self.fvd, int(last[1:]) if last else 0,
                        int(nxt[1:]) if nxt else len(self.raw.plan))

    def verify_fio(self, point):
        """Every phase completed reads back as fio verified it at the end."""
        last, _ = self.marks_around(point)
        length = (int(last[1:]) + 1 if last else 0) * FIO_REGION
        with open(self.args.reference, "rb") as f:
            ref = f.read(length)
        with open(self.fvd, "rb", buffering=0) as f:
            got = f.read(length)
        if got != ref:
            block = next(i for i in range(length) if got[i] != ref[i]) // 4096
            raise Failure(f"4K block {block} of a completed fio phase differs "
                          f"(phases done: {length // FIO_REGION})")

    def verify_ext4(self, point):
        last, _ = self.marks_around(point)
        durable = int(last[1:]) if last else -1
        os.makedirs("/tmp/crashmnt", exist_ok=True)
        must(["mount", "-t", "ext4", self.fvd, "/tmp/crashmnt"])
        try:
            for i in range(durable + 1):
                path = f"/tmp/crashmnt/d{i % 4}/f{i}"
                try:
                    with open(path, "rb") as f:
                        got = f.read()
                except OSError as e:
                    raise Failure(f"fsynced file f{i} unreadable: {e}")
                if got != ext4_file(self.args.seed, i):
                    raise Failure(f"fsynced file f{i}: content differs ({len(got)} bytes)")
        finally:
            must(["umount", "/tmp/crashmnt"])
        r = run(["e2fsck", "-fn", self.fvd])
        if r.returncode != 0:
            raise Failure(f"e2fsck -fn: exit {r.returncode}: {r.stdout[-2000:]}")


def cmd_check(args):
    checker = Checker(args)
    points = checker.points()
    flushes = sum(1 for e in checker.entries if e.flags & (LOG_FLUSH | LOG_FUA))
    print(f"log: {len(checker.entries)} entries, {flushes} flush/FUA entries; "
          f"checking {len(points)} crash points")
    for p in points:
        try:
            checker.check_point(p)
        except Failure as e:
            last, _ = checker.marks_around(p)
            print(f"crash point {p} (after mark {last}): {e}", file=sys.stderr)
            return 1
    print(f"crash points checked: {len(points)} ({checker.repairs} needed fvd-check --repair)")
    if args.commit_points:
        big = checker.oversized_commits()
        inside = sum(1 for p in points if any(a < p <= b for a, b in big))
        print(f"crash points inside commits of several journal writes: {inside} "
              f"(in {len(big)} commits)")
        print("journal writes of each: " +
              " ".join(str(w) for _, _, w in checker.commits() if w > 1))
    print(f"all-local crash points: {checker.all_local_points} of {len(points)}")
    print("seconds spent: " + ", ".join(f"{k} {v:.1f}" for k, v in sorted(checker.times.items())))
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("raw-workload")
    s.add_argument("dev")
    s.add_argument("--seed", type=int, required=True)
    s.add_argument("--steps", type=int, required=True)
    g = s.add_mutually_exclusive_group(required=True)
    g.add_argument("--log-dev")
    g.add_argument("--progress")
    s.add_argument("--discard-chunk", type=int, default=0)
    s.add_argument("--scatter", type=int, default=0)
    s = sub.add_parser("verify-raw")
    s.add_argument("dev")
    s.add_argument("--seed", type=int, required=True)
    s.add_argument("--steps", type=int, required=True)
    s.add_argument("--origin", required=True)
    s.add_argument("--virtual", type=int, required=True)
    s.add_argument("--progress", required=True)
    s.add_argument("--discard-chunk", type=int, default=0)
    s = sub.add_parser("fio-workload")
    s.add_argument("dev")
    s.add_argument("--seed", type=int, required=True)
    s.add_argument("--phases", type=int, required=True)
    s.add_argument("--log-dev", required=True)
    s.add_argument("--reference", required=True)
    s = sub.add_parser("ext4-workload")
    s.add_argument("dir")
    s.add_argument("--seed", type=int, required=True)
    s.add_argument("--files", type=int, required=True)
    s.add_argument("--log-dev", required=True)
    s = sub.add_parser("check")
    s.add_argument("--log", required=True)
    s.add_argument("--replay", required=True)
    s.add_argument("--cow", required=True)
    s.add_argument("--origin", required=True)
    s.add_argument("--virtual", type=int, required=True)
    s.add_argument("--workload", choices=["raw", "fio", "ext4"], required=True)
    s.add_argument("--seed", type=int, required=True)
    s.add_argument("--steps", type=int, default=0)
    s.add_argument("--phases", type=int, default=0)
    s.add_argument("--reference")
    s.add_argument("--random-points", type=int, default=40)
    s.add_argument("--fvd-check", required=True)
    s.add_argument("--sbedit", help="fvd-sbedit: load all-local points without origin")
    s.add_argument("--discard-chunk", type=int, default=0)
    s.add_argument("--scatter", type=int, default=0)
    s.add_argument("--commit-points", action="store_true",
                   help="every entry of the commits the workload marked")
    args = p.parse_args()
    return globals()["cmd_" + args.cmd.replace("-", "_")](args)


if __name__ == "__main__":
    sys.exit(main())
