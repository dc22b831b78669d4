// SPDX-License-Identifier: GPL-2.0
/*
 * Where a path's bytes live, from sysfs and the loop and device-mapper
 * ioctls: a device is followed down through loop devices (to their backing
 * file or device, at their offset), partitions (to the whole disk, at the
 * partition's start) and device-mapper tables (linear, striped, crypt and
 * thin precisely; anything else as the whole of each device below it).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include <linux/dm-ioctl.h>
#include <linux/loop.h>

#include "fvd-storage.h"

/* Deeper than any real stack; a loop back onto itself ends here. */
#define MAX_DEPTH 16

/* @src into @dst of @size bytes, cut short if need be (names for messages). */
static void copy_text(char *dst, size_t size, const char *src)
{
	size_t n = strlen(src);

	if (n >= size)
		n = size - 1;
	memcpy(dst, src, n);
	dst[n] = '\0';
}

/* @chain (of @size bytes) is @via, then " > " and @step: how an extent was reached. */
static void chain_step(char *chain, size_t size, const char *via, const char *step)
{
	copy_text(chain, size, via);
	if (*via && strlen(chain) + 3 < size)
		strcat(chain, " > ");
	copy_text(chain + strlen(chain), size - strlen(chain), step);
}

/* The sector after @e, UINT64_MAX for one that runs to the end. */
static uint64_t extent_end(const struct fvd_extent *e)
{
	if (e->len == FVD_EXTENT_TO_END || e->start + e->len < e->start)
		return UINT64_MAX;
	return e->start + e->len;
}

/* /sys/dev/block/MAJ:MIN/@rel in @path. */
static void sysfs_path(char *path, size_t size, dev_t dev, const char *rel)
{
	snprintf(path, size, "/sys/dev/block/%u:%u/%s", major(dev), minor(dev), rel);
}

/* One walk down from a path: where the extents go and how they are tagged. */
struct walk {
	struct fvd_extents *out;
	bool reading;		/* the origin: also what its devices read */
	uint64_t opaque;	/* the device not followed precisely above, or 0 */
};

static int add_extent(struct walk *w, enum fvd_extent_kind kind, uint64_t dev,
		      uint64_t ino, uint64_t start, uint64_t len, const char *via)
{
	struct fvd_extents *out = w->out;
	struct fvd_extent *e;

	if (!len)
		return 0;
	if (out->n == out->cap) {
		size_t cap = out->cap ? 2 * out->cap : 8;

		e = realloc(out->v, cap * sizeof(*e));
		if (!e)
			return -1;
		out->v = e;
		out->cap = cap;
	}
	e = &out->v[out->n++];
	e->kind = kind;
	e->dev = dev;
	e->ino = ino;
	e->start = start;
	e->len = len;
	e->opaque = w->opaque;
	copy_text(e->via, sizeof(e->via), via);
	return 0;
}

/* The content of /sys/dev/block/MAJ:MIN/@rel, without its newline. */
static int read_sysfs(dev_t dev, const char *rel, char *buf, size_t size)
{
	char path[PATH_MAX];
	ssize_t got;
	int fd;

	sysfs_path(path, sizeof(path), dev, rel);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	got = read(fd, buf, size - 1);
	close(fd);
	if (got < 0)
		return -1;
	while (got && (buf[got - 1] == '\n' || buf[got - 1] == ' '))
		got--;
	buf[got] = '\0';
	return 0;
}

static int read_sysfs_u64(dev_t dev, const char *rel, uint64_t *value)
{
	char buf[64], *end;

	if (read_sysfs(dev, rel, buf, sizeof(buf)))
		return -1;
	errno = 0;
	*value = strtoull(buf, &end, 10);
	return errno || end == buf || *end ? -1 : 0;
}

static bool sysfs_has(dev_t dev, const char *rel)
{
	char path[PATH_MAX];

	sysfs_path(path, sizeof(path), dev, rel);
	return access(path, F_OK) == 0;
}

/* The kernel's name of the device ("sdb", "dm-3", "loop0"). */
static void dev_name(dev_t dev, char *name, size_t size)
{
	char link[PATH_MAX], target[PATH_MAX];
	ssize_t n;
	const char *slash;

	snprintf(link, sizeof(link), "/sys/dev/block/%u:%u", major(dev), minor(dev));
	n = readlink(link, target, sizeof(target) - 1);
	if (n <= 0) {
		snprintf(name, size, "%u:%u", major(dev), minor(dev));
		return;
	}
	target[n] = '\0';
	slash = strrchr(target, '/');
	copy_text(name, size, slash ? slash + 1 : target);
}

static int parse_dev(const char *text, dev_t *dev)
{
	unsigned int maj, min;
	char tail;

	if (sscanf(text, "%u:%u%c", &maj, &min, &tail) != 2)
		return -1;
	*dev = makedev(maj, min);
	return 0;
}

static int resolve_dev(struct walk *w, dev_t dev, uint64_t start, uint64_t len,
		       const char *via, int depth);

/*
 * @dev cannot be followed precisely (md, a device-mapper target not known
 * here): its own sectors count, and all of every device below it, tagged
 * with it, so that two devices on it compare by its sectors, not theirs.
 */
static int resolve_opaque(struct walk *w, dev_t dev, uint64_t start, uint64_t len,
			  const char *via, int depth)
{
	char path[PATH_MAX], rel[PATH_MAX + 16], buf[32];
	uint64_t outer = w->opaque;
	struct dirent *d;
	dev_t below;
	DIR *dir;
	int r;

	r = add_extent(w, FVD_EXTENT_DISK, dev, 0, start, len, via);
	sysfs_path(path, sizeof(path), dev, "slaves");
	dir = opendir(path);
	if (!dir)
		return r;
	if (!w->opaque)
		w->opaque = dev;
	while (!r && (d = readdir(dir))) {
		if (d->d_name[0] == '.')
			continue;
		snprintf(rel, sizeof(rel), "slaves/%s/dev", d->d_name);
		if (read_sysfs(dev, rel, buf, sizeof(buf)) || parse_dev(buf, &below))
			continue;
		r = resolve_dev(w, below, 0, FVD_EXTENT_TO_END, via, depth + 1);
	}
	closedir(dir);
	w->opaque = outer;
	return r;
}

/* Version and flags as dmsetup sends them. */
static void dm_init(struct dm_ioctl *io, size_t size, dev_t dev, uint32_t flags)
{
	unsigned int maj = major(dev), min = minor(dev);

	memset(io, 0, size);
	io->version[0] = DM_VERSION_MAJOR;
	io->data_size = size;
	io->data_start = sizeof(*io);
	io->flags = flags;
	/* The kernel's huge_encode_dev(), which names a device by number. */
	io->dev = (min & 0xff) | ((uint64_t)maj << 8) | ((uint64_t)(min & ~0xffu) << 12);
}

/* The table of device-mapper device @dev, NULL when it cannot be read. */
static struct dm_ioctl *dm_table(dev_t dev)
{
	size_t size = 16384;
	struct dm_ioctl *io;
	int fd;

	fd = open("/dev/mapper/control", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	for (;;) {
		io = malloc(size);
		if (!io)
			break;
		dm_init(io, size, dev, DM_STATUS_TABLE_FLAG);
		if (ioctl(fd, DM_TABLE_STATUS, io)) {
			free(io);
			io = NULL;
			break;
		}
		if (!(io->flags & DM_BUFFER_FULL_FLAG) || size >= (1u << 24))
			break;
		free(io);
		size *= 4;
	}
	close(fd);
	if (io && (io->flags & DM_BUFFER_FULL_FLAG)) {
		free(io);
		io = NULL;
	}
	return io;
}

/*
 * One target of a table, the part of it from @start for @len sectors (both
 * relative to the target), onto the devices it maps.  Returns 1 for a
 * target whose mapping is not known here.
 */
static int resolve_target(struct walk *w, const char *type, char *params, uint64_t tlen,
			  uint64_t start, uint64_t len, const char *via, int depth)
{
	char *arg[64], *save = NULL, *tok;
	uint64_t offset, stripes, chunk;
	unsigned int n = 0, i;
	dev_t below;
	int r;

	for (tok = strtok_r(params, " ", &save); tok && n < 64; tok = strtok_r(NULL, " ", &save))
		arg[n++] = tok;
	if (!strcmp(type, "linear") || !strcmp(type, "crypt")) {
		/* linear: dev offset; crypt: cipher key iv_offset dev offset ... */
		i = strcmp(type, "linear") ? 3 : 0;
		if (n < i + 2 || parse_dev(arg[i], &below) ||
		    sscanf(arg[i + 1], "%" SCNu64, &offset) != 1)
			return 1;
		return resolve_dev(w, below, offset + start, len, via, depth + 1);
	}
	if (!strcmp(type, "striped")) {
		/* #stripes chunk dev offset ...: each stripe's share, from its offset */
		if (n < 2 || sscanf(arg[0], "%" SCNu64, &stripes) != 1 ||
		    sscanf(arg[1], "%" SCNu64, &chunk) != 1 || !stripes || n < 2 + 2 * stripes)
			return 1;
		for (i = 0; i < stripes; i++) {
			if (parse_dev(arg[2 + 2 * i], &below) ||
			    sscanf(arg[3 + 2 * i], "%" SCNu64, &offset) != 1)
				return 1;
			if (resolve_dev(w, below, offset, (tlen + stripes - 1) / stripes, via,
					depth + 1))
				return -1;
		}
		return 0;
	}
	if (!strcmp(type, "thin")) {
		/*
		 * pool dev_id [external origin]: thin devices of one pool share
		 * no sectors; an origin reads its external origin too.
		 */
		if (n < 2 || parse_dev(arg[0], &below) ||
		    sscanf(arg[1], "%" SCNu64, &offset) != 1)
			return 1;
		r = add_extent(w, FVD_EXTENT_THIN, below, offset, 0, FVD_EXTENT_TO_END, via);
		if (!r && w->reading && n >= 3 && !parse_dev(arg[2], &below))
			r = resolve_dev(w, below, 0, FVD_EXTENT_TO_END, via, depth + 1);
		return r;
	}
	if (!strcmp(type, "error") || !strcmp(type, "zero"))
		return 0;
	return 1;
}

static int resolve_dm(struct walk *w, dev_t dev, uint64_t start, uint64_t len,
		      const char *via, int depth)
{
	struct dm_ioctl *io = dm_table(dev);
	struct dm_target_spec *spec;
	uint64_t end = len == FVD_EXTENT_TO_END ? UINT64_MAX : start + len;
	uint64_t from, to;
	char *data;
	uint32_t i, offset;
	int r = 0;

	if (!io)
		return 1;
	data = (char *)io + io->data_start;
	offset = 0;
	for (i = 0; i < io->target_count && !r; i++) {
		if (io->data_start + offset + sizeof(*spec) > io->data_size) {
			r = 1;
			break;
		}
		spec = (struct dm_target_spec *)(data + offset);
		from = spec->sector_start > start ? spec->sector_start : start;
		to = spec->sector_start + spec->length < end ? spec->sector_start + spec->length : end;
		if (from < to) {
			spec->target_type[sizeof(spec->target_type) - 1] = '\0';
			r = resolve_target(w, spec->target_type, (char *)(spec + 1), spec->length,
					   from - spec->sector_start, to - from, via, depth);
		}
		offset = spec->next;
		if (!offset && i + 1 < io->target_count)
			r = 1;
	}
	free(io);
	return r;
}

/* How many sectors bytes [@from, @to) touch (the first rounded down, the last up). */
static uint64_t sectors_touched(uint64_t from, uint64_t to)
{
	return to == UINT64_MAX ? FVD_EXTENT_TO_END : (to + 511) / 512 - from / 512;
}

static int resolve_loop(struct walk *w, dev_t dev, uint64_t start, uint64_t len,
			const char *via, int depth)
{
	char backing[PATH_MAX], name[64], node[80];
	char chain[sizeof(((struct fvd_extent *)0)->via)];
	struct loop_info64 info;
	bool have_info = false;
	uint64_t offset = 0, limit = 0, from, to;
	struct stat st;
	int fd;

	dev_name(dev, name, sizeof(name));
	snprintf(node, sizeof(node), "/dev/%s", name);
	fd = open(node, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		struct stat nst;

		have_info = !fstat(fd, &nst) && S_ISBLK(nst.st_mode) && nst.st_rdev == dev &&
			    !ioctl(fd, LOOP_GET_STATUS64, &info);
		close(fd);
	}
	if (have_info) {
		offset = info.lo_offset;
		limit = info.lo_sizelimit;
	} else {
		read_sysfs_u64(dev, "loop/offset", &offset);
		read_sysfs_u64(dev, "loop/sizelimit", &limit);
	}
	/* In bytes of the backing file: loop offsets need not be sector-aligned. */
	from = offset + start * 512;
	to = len == FVD_EXTENT_TO_END || len > (UINT64_MAX - from) / 512 ?
	     UINT64_MAX : from + len * 512;
	if (limit && (to == UINT64_MAX || to > offset + limit))
		to = offset + limit;
	if (to != UINT64_MAX && to <= from)
		return 0;
	if (!read_sysfs(dev, "loop/backing_file", backing, sizeof(backing)) &&
	    !stat(backing, &st) &&
	    (S_ISBLK(st.st_mode) ?
	     !have_info || !info.lo_rdevice || st.st_rdev == (dev_t)info.lo_rdevice :
	     !have_info || (st.st_dev == (dev_t)info.lo_device && st.st_ino == info.lo_inode))) {
		if (S_ISBLK(st.st_mode))
			return resolve_dev(w, st.st_rdev, from / 512, sectors_touched(from, to),
					   via, depth + 1);
		chain_step(chain, sizeof(chain), via, backing);
		return add_extent(w, FVD_EXTENT_FILE, st.st_dev, st.st_ino, from / 512,
				  sectors_touched(from, to), chain);
	}
	if (have_info) {
		/* renamed or deleted: the inode the loop device holds */
		if (info.lo_rdevice)
			return resolve_dev(w, info.lo_rdevice, from / 512,
					   sectors_touched(from, to), via, depth + 1);
		return add_extent(w, FVD_EXTENT_FILE, info.lo_device, info.lo_inode, from / 512,
				  sectors_touched(from, to), via);
	}
	return add_extent(w, FVD_EXTENT_DISK, dev, 0, start, len, via);
}

static int resolve_dev(struct walk *w, dev_t dev, uint64_t start, uint64_t len,
		       const char *via, int depth)
{
	char chain[sizeof(((struct fvd_extent *)0)->via)], name[64], buf[32];
	const char *base = strrchr(via, '/');
	uint64_t part_start, part_size;
	dev_t whole;
	int r;

	dev_name(dev, name, sizeof(name));
	/* "/dev/loop0", not "/dev/loop0 > loop0" */
	if (depth == 0 && !strcmp(base ? base + 1 : via, name))
		copy_text(chain, sizeof(chain), via);
	else
		chain_step(chain, sizeof(chain), via, name);
	if (depth > MAX_DEPTH)
		return add_extent(w, FVD_EXTENT_DISK, dev, 0, 0, FVD_EXTENT_TO_END, chain);
	if (sysfs_has(dev, "loop"))
		return resolve_loop(w, dev, start, len, chain, depth);
	if (sysfs_has(dev, "partition") && !read_sysfs_u64(dev, "start", &part_start) &&
	    !read_sysfs_u64(dev, "size", &part_size) &&
	    !read_sysfs(dev, "../dev", buf, sizeof(buf)) && !parse_dev(buf, &whole)) {
		/* no further than the partition's end */
		if (start >= part_size)
			return 0;
		if (len == FVD_EXTENT_TO_END || len > part_size - start)
			len = part_size - start;
		return resolve_dev(w, whole, part_start + start, len, chain, depth + 1);
	}
	if (sysfs_has(dev, "dm")) {
		size_t before = w->out->n;

		r = resolve_dm(w, dev, start, len, chain, depth);
		if (r <= 0)
			return r;
		w->out->n = before;
	}
	/* md, a device-mapper target not known here, or a disk */
	return resolve_opaque(w, dev, start, len, chain, depth);
}

int fvd_storage_extents(const char *path, const struct stat *st, bool reading,
			struct fvd_extents *out)
{
	struct walk w = { .out = out, .reading = reading };

	if (S_ISREG(st->st_mode))
		return add_extent(&w, FVD_EXTENT_FILE, st->st_dev, st->st_ino, 0,
				  FVD_EXTENT_TO_END, path);
	if (S_ISBLK(st->st_mode))
		return resolve_dev(&w, st->st_rdev, 0, FVD_EXTENT_TO_END, path, 0);
	errno = EINVAL;
	return -1;
}

static bool extents_overlap(const struct fvd_extent *a, const struct fvd_extent *b)
{
	if (a->kind != b->kind || a->dev != b->dev)
		return false;
	/* Both below one md or dm device: its own sectors tell. */
	if (a->opaque && a->opaque == b->opaque)
		return false;
	if (a->kind != FVD_EXTENT_DISK && a->ino != b->ino)
		return false;
	if (a->kind == FVD_EXTENT_THIN)
		return true;
	return a->start < extent_end(b) && b->start < extent_end(a);
}

const struct fvd_extent *fvd_storage_overlap(const struct fvd_extents *a,
					     const struct fvd_extents *b,
					     const struct fvd_extent **hit_b)
{
	size_t i, j;

	for (i = 0; i < a->n; i++)
		for (j = 0; j < b->n; j++)
			if (extents_overlap(&a->v[i], &b->v[j])) {
				*hit_b = &b->v[j];
				return &a->v[i];
			}
	return NULL;
}

void fvd_extent_intersect(const struct fvd_extent *a, const struct fvd_extent *b,
			  struct fvd_extent *out)
{
	uint64_t end = extent_end(a) < extent_end(b) ? extent_end(a) : extent_end(b);

	*out = *a;
	out->start = a->start > b->start ? a->start : b->start;
	out->len = end == UINT64_MAX ? FVD_EXTENT_TO_END : end - out->start;
}

void fvd_storage_free(struct fvd_extents *e)
{
	free(e->v);
	e->v = NULL;
	e->n = e->cap = 0;
}

const char *fvd_extent_describe(const struct fvd_extent *e, char *buf, size_t size)
{
	char range[64], name[64];

	if (e->len == FVD_EXTENT_TO_END)
		snprintf(range, sizeof(range), "sectors %" PRIu64 " to the end", e->start);
	else
		snprintf(range, sizeof(range), "sectors %" PRIu64 "-%" PRIu64, e->start,
			 e->start + e->len - 1);
	switch (e->kind) {
	case FVD_EXTENT_FILE:
		snprintf(buf, size, "%s of the file with inode %" PRIu64 " on %u:%u", range,
			 e->ino, major(e->dev), minor(e->dev));
		break;
	case FVD_EXTENT_THIN:
		snprintf(buf, size, "thin device %" PRIu64 " of pool %u:%u", e->ino,
			 major(e->dev), minor(e->dev));
		break;
	default:
		dev_name(e->dev, name, sizeof(name));
		snprintf(buf, size, "%s of %s (%u:%u)", range, name, major(e->dev),
			 minor(e->dev));
	}
	return buf;
}

bool fvd_file_loop_user(const struct stat *st, char *name, size_t size)
{
	char backing[PATH_MAX], node[300];
	struct loop_info64 info;
	struct stat bst;
	struct dirent *d;
	bool found = false;
	DIR *dir;
	int fd;

	dir = opendir("/sys/block");
	if (!dir)
		return false;
	while (!found && (d = readdir(dir))) {
		if (strncmp(d->d_name, "loop", 4))
			continue;
		snprintf(node, sizeof(node), "/dev/%s", d->d_name);
		fd = open(node, O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			if (!ioctl(fd, LOOP_GET_STATUS64, &info) &&
			    (dev_t)info.lo_device == st->st_dev && info.lo_inode == st->st_ino)
				found = true;
			close(fd);
			if (found)
				break;
			continue;
		}
		/* no device node to ask: the backing file's name */
		snprintf(node, sizeof(node), "/sys/block/%s/loop/backing_file", d->d_name);
		fd = open(node, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		memset(backing, 0, sizeof(backing));
		if (read(fd, backing, sizeof(backing) - 1) > 0) {
			backing[strcspn(backing, "\n")] = '\0';
			found = !stat(backing, &bst) && bst.st_dev == st->st_dev &&
				bst.st_ino == st->st_ino;
		}
		close(fd);
	}
	if (found)
		snprintf(name, size, "/dev/%s", d->d_name);
	closedir(dir);
	return found;
}
