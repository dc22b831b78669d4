// SPDX-License-Identifier: GPL-2.0
/*
 * fvd-create: format a dm-fvd image.
 *
 * The superblock is written last, after the metadata regions are zeroed and
 * flushed, so an image whose formatting was interrupted never looks valid.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>
#include <linux/fs.h>

#include "fvd-format.h"
#include "fvd-origin.h"
#include "fvd-profile-file.h"
#include "fvd-storage.h"
#include "fvd-tool.h"
#include "fvd-version.h"

#define SECTOR 512ULL
#define SIGNATURE_SCAN_BYTES (68 * 1024)

static const char *prog = "fvd-create";

/*
 * Files this run created, removed again unless it succeeds (then it
 * forgets them).  Written with signals held, so the handler below never
 * sees an entry half set.
 */
static const char *created[2];

static void remove_created(void)
{
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(created); i++)
		if (created[i])
			unlink(created[i]);
}

static void hold_signals(sigset_t *old)
{
	sigset_t all;

	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, old);
}

static void release_signals(const sigset_t *old)
{
	sigprocmask(SIG_SETMASK, old, NULL);
}

/* Interrupted: the files made so far go too (unlink is async-signal-safe). */
static void remove_created_and_die(int sig)
{
	remove_created();
	raise(sig);		/* SA_RESETHAND: now the default action */
}

/* The image is written: what this run made stays. */
static void keep_created(void)
{
	sigset_t old;

	hold_signals(&old);
	memset(created, 0, sizeof(created));
	release_signals(&old);
}

static void catch_signals(void)
{
	static const int sigs[] = { SIGINT, SIGTERM, SIGHUP };
	struct sigaction sa = { .sa_handler = remove_created_and_die,
				.sa_flags = SA_RESETHAND };
	struct sigaction old;
	unsigned int i;

	sigfillset(&sa.sa_mask);
	for (i = 0; i < ARRAY_SIZE(sigs); i++) {
		/* nohup and background jobs ignore some: leave them ignored */
		if (!sigaction(sigs[i], NULL, &old) && old.sa_handler == SIG_IGN)
			continue;
		sigaction(sigs[i], &sa, NULL);
	}
	/* Over a file size limit, a write fails (EFBIG) and is reported. */
	signal(SIGXFSZ, SIG_IGN);
}

static void __noreturn __printf(1, 2) die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fvd_vdie(prog, 1, fmt, ap);
}

/* The smallest block or chunk size, 4K or more, at most @count of which cover @size. */
static uint64_t size_for_count(uint64_t size, uint64_t count)
{
	uint64_t unit = 4096;

	while (unit < (size + count - 1) / count)
		unit <<= 1;
	return unit;
}

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: %s [--size SIZE] [--origin PATH] [--block-size SIZE]\n"
		"       [--data-dev PATH] [--journal-size SIZE] [--create]\n"
		"       [--compact [--chunk-size SIZE] [--data-size SIZE] [--low-water-mark N]]\n"
		"       [--profile-from FILE|IMAGE] [--force] [--quiet] IMAGE\n"
		"\n"
		"Formats IMAGE (a block device or a file) as a dm-fvd image.\n"
		"  --size SIZE        virtual disk size (default: the origin's size)\n"
		"  --origin PATH      read-only base image the disk starts as a copy of\n"
		"  --block-size SIZE  copy-on-write granularity, a power of two from\n"
		"                     4K to 2M (default 64K)\n"
		"  --data-dev PATH    keep the data on PATH instead of after the metadata\n"
		"  --journal-size SIZE  metadata journal region (default 16M)\n"
		"  --compact          allocate the data chunk by chunk on first write,\n"
		"                     so the data device may be smaller than the disk\n"
		"  --chunk-size SIZE  allocation unit of --compact: a power of two,\n"
		"                     a multiple of the block size (default 1M)\n"
		"  --data-size SIZE   with --compact, room for chunks to allocate into:\n"
		"                     a file holds at least that much after the metadata\n"
		"                     (allocated on the host), a block device must too\n"
		"  --low-water-mark N with --compact, warn when the data device has room\n"
		"                     for fewer than N chunks, and put the table's\n"
		"                     low_water_mark N in the table line printed\n"
		"  --create           make IMAGE and the data device files if they do not\n"
		"                     exist (so does --size or --data-size); never under /dev\n"
		"  --profile-from FILE|IMAGE  with --origin, keep this access profile in\n"
		"                     the image (a file 'fvdsetup profile NAME save'\n"
		"                     wrote, or the one another image over the same\n"
		"                     origin keeps): the target's prefetch copies its\n"
		"                     blocks first, from the moment the table is live\n"
		"  --force            overwrite an existing image or filesystem\n"
		"  --quiet            print nothing but warnings and errors\n"
		"  --version          print the version of dm-fvd and exit\n"
		"SIZE is in bytes, with an optional K, M, G, T, P or E suffix (powers of\n"
		"1024, also KiB ... EiB) or KB, MB, ... EB (powers of 1000).\n",
		prog);
}

/*
 * A whole number of bytes with an optional suffix, as coreutils reads
 * them: K, M, G, T, P, E (or KiB ... EiB) are powers of 1024, KB ... EB
 * powers of 1000.  "1.5G" is refused: sizes are whole numbers.  Returns 0,
 * -1 for text that is not a size, -ERANGE for one past 2^64 - 1.
 */
static int parse_size(const char *text, uint64_t *bytes)
{
	static const char units[] = "KMGTPE";
	const char *unit;
	char *end;
	unsigned long long value;
	unsigned int power = 0, i;
	uint64_t base = 1024;

	if (!*text || *text == '-' || *text == '+' || *text == ' ')
		return -1;
	errno = 0;
	value = strtoull(text, &end, 10);
	if (end == text)
		return -1;
	if (errno == ERANGE)
		return -ERANGE;
	if (*end) {
		unit = strchr(units, *end & ~0x20);
		if (!unit || !(*end & ~0x20))
			return -1;
		power = unit - units + 1;
		end++;
		if ((*end == 'i' || *end == 'I') && (end[1] == 'B' || end[1] == 'b'))
			end += 2;
		else if (*end == 'B' || *end == 'b') {
			base = 1000;
			end++;
		}
	}
	if (*end)
		return -1;
	for (i = 0; i < power; i++) {
		if (value > UINT64_MAX / base)
			return -ERANGE;
		value *= base;
	}
	*bytes = value;
	return 0;
}

/* parse_size() or die, naming the option and what is wrong. */
static uint64_t size_arg(const char *what, const char *text)
{
	uint64_t bytes;
	int r = parse_size(text, &bytes);

	if (r == -ERANGE)
		die("invalid %s '%s': more than 2^64 - 1 bytes", what, text);
	if (r)
		die("invalid %s '%s': a whole number of bytes, with an optional K, M, G, T, P or E (powers of 1024) or KB, MB, ... (powers of 1000)",
		    what, text);
	return bytes;
}

static uint64_t fd_size(int fd, const char *path, bool *is_blockdev)
{
	uint64_t size;
	int r = fvd_fd_size(fd, &size, is_blockdev);

	if (r == FVD_NOT_A_DEVICE)
		die("%s is neither a block device nor a regular file", path);
	if (r)
		die("cannot get the size of %s: %s", path, strerror(errno));
	return size;
}

static bool match_at(const uint8_t *buf, size_t len, size_t off,
		     const void *sig, size_t sig_len)
{
	return off + sig_len <= len && !memcmp(buf + off, sig, sig_len);
}

/* Name the content of @buf when it looks like something worth keeping. */
static const char *detect_signature(const uint8_t *buf, size_t len)
{
	uint64_t magic;

	if (len >= 8) {
		memcpy(&magic, buf, 8);
		if (le64toh(magic) == FVD_MAGIC)
			return "an FVD image";
	}
	if (match_at(buf, len, 1080, "\x53\xef", 2))
		return "an ext2/3/4 filesystem";
	if (match_at(buf, len, 0, "XFSB", 4))
		return "an XFS filesystem";
	if (match_at(buf, len, 65600, "_BHRfS_M", 8))
		return "a btrfs filesystem";
	if (match_at(buf, len, 0, "LUKS\xba\xbe", 6))
		return "a LUKS volume";
	if (match_at(buf, len, 512 + 0, "LABELONE", 8) ||
	    match_at(buf, len, 512 + 24, "LVM2 001", 8))
		return "an LVM physical volume";
	if (match_at(buf, len, 512, "EFI PART", 8))
		return "a GPT partition table";
	if (match_at(buf, len, 4086, "SWAPSPACE2", 10))
		return "a swap area";
	if (match_at(buf, len, 3, "NTFS    ", 8))
		return "an NTFS filesystem";
	if (match_at(buf, len, 82, "FAT32   ", 8) ||
	    match_at(buf, len, 54, "FAT1", 4))
		return "a FAT filesystem";
	if (match_at(buf, len, 510, "\x55\xaa", 2))
		return "a DOS partition table or boot sector";
	return NULL;
}

static void refuse_if_in_use(int fd, const char *path, bool force)
{
	static uint8_t buf[SIGNATURE_SCAN_BYTES];
	ssize_t got;
	const char *what;

	got = pread(fd, buf, sizeof(buf), 0);
	if (got < 0)
		die("cannot read %s: %s", path, strerror(errno));
	what = detect_signature(buf, got);
	if (what && !force)
		die("%s holds %s; use --force to overwrite it", path, what);
}

static void write_all(int fd, const char *path, const void *buf, size_t len,
		      uint64_t offset)
{
	const uint8_t *p = buf;
	ssize_t done;

	while (len) {
		done = pwrite(fd, p, len, offset);
		if (done < 0) {
			if (errno == EINTR)
				continue;
			die("write to %s failed at byte %" PRIu64 ": %s", path,
			    offset, strerror(errno));
		}
		p += done;
		len -= done;
		offset += done;
	}
}

static void zero_range(int fd, const char *path, uint64_t offset, uint64_t len)
{
	static uint8_t zeroes[1 << 20];
	size_t n;

	while (len) {
		n = len < sizeof(zeroes) ? len : sizeof(zeroes);
		write_all(fd, path, zeroes, n, offset);
		offset += n;
		len -= n;
	}
}

static void sync_or_die(int fd, const char *path)
{
	if (fsync(fd))
		die("cannot flush %s: %s", path, strerror(errno));
}

/* Make @fd at least @bytes long: extend a file sparsely, check a device. */
static void ensure_size(int fd, const char *path, bool is_blockdev,
			uint64_t have, uint64_t need, const char *what)
{
	if (have >= need)
		return;
	if (is_blockdev)
		die("%s is too small for %s: %" PRIu64 " bytes, needs %" PRIu64,
		    path, what, have, need);
	if (ftruncate(fd, need))
		die("cannot extend %s to %" PRIu64 " bytes: %s", path, need,
		    strerror(errno));
}

/* A path under /dev: its directory is on the file system of /dev. */
static bool under_dev(const char *path)
{
	char dir[PATH_MAX], *slash;
	struct stat st_dir, st_dev;

	if (strlen(path) >= sizeof(dir))
		return false;
	strcpy(dir, path);
	slash = strrchr(dir, '/');
	if (!slash)
		strcpy(dir, ".");
	else if (slash == dir)
		dir[1] = '\0';
	else
		*slash = '\0';
	return !stat(dir, &st_dir) && !stat("/dev", &st_dev) && st_dir.st_dev == st_dev.st_dev;
}

/*
 * Open @path for formatting: a block device exclusively (not one mounted or
 * held by device-mapper, md or anyone else); a path that does not exist
 * becomes a file only when @may_create, and never under /dev.  Its stat in
 * @st.  Signals are held while a file is made and recorded, so that an
 * interrupted run removes it.
 */
static int open_for_format(const char *path, const char *what, bool may_create,
			   unsigned int slot, struct stat *st)
{
	sigset_t old;
	int fd;

	if (stat(path, st)) {
		if (errno != ENOENT)
			die("cannot access %s %s: %s", what, path, strerror(errno));
		if (!strncmp(path, "/dev/", 5) || under_dev(path))
			die("%s %s does not exist (and no file is made under /dev)", what, path);
		if (!may_create)
			die("%s %s does not exist; --create (or --size) makes it a file", what, path);
		hold_signals(&old);
		fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		if (fd >= 0)
			created[slot] = path;
		release_signals(&old);
		if (fd < 0)
			die("cannot create %s %s: %s", what, path, strerror(errno));
	} else if (S_ISBLK(st->st_mode)) {
		fd = open(path, O_RDWR | O_EXCL | O_CLOEXEC);
		if (fd < 0 && errno == EBUSY)
			die("%s %s is in use (mounted, or held by device-mapper, md or another program)",
			    what, path);
	} else {
		fd = open(path, O_RDWR | O_CLOEXEC);
	}
	if (fd < 0)
		die("cannot open %s %s: %s", what, path, strerror(errno));
	if (fstat(fd, st))
		die("cannot stat %s %s: %s", what, path, strerror(errno));
	return fd;
}

/* A loop device reads and writes a file behind the back of O_EXCL. */
static void refuse_file_in_use(const char *what, const char *path, const struct stat *st)
{
	char loop[64];

	if (S_ISREG(st->st_mode) && fvd_file_loop_user(st, loop, sizeof(loop)))
		die("%s %s is in use: it backs %s (losetup --detach %s first)", what, path,
		    loop, loop);
}

/* Where the bytes of @path (open, of stat @st) live, or die. */
static void storage_of(const char *path, const char *what, const struct stat *st,
		       bool reading, struct fvd_extents *e)
{
	if (!S_ISBLK(st->st_mode) && !S_ISREG(st->st_mode))
		die("%s %s is neither a block device nor a regular file", what, path);
	if (fvd_storage_extents(path, st, reading, e))
		die("cannot tell where %s %s is stored: %s", what, path, strerror(errno));
}

/*
 * Refuse @path (IMAGE or the data device, open, of stat @st) when it shares
 * storage with @other: the origin, which formatting it would destroy, or
 * the image when @path is the data device.  No option overrides this.
 */
static void refuse_shared_storage(const char *what, const char *path, const struct stat *st,
				  const char *other_what, const char *other,
				  const struct fvd_extents *other_extents)
{
	struct fvd_extents mine = { 0 };
	const struct fvd_extent *a, *b;
	struct fvd_extent common;
	char where[256];

	storage_of(path, what, st, false, &mine);
	a = fvd_storage_overlap(&mine, other_extents, &b);
	if (a) {
		fvd_extent_intersect(a, b, &common);
		fvd_extent_describe(&common, where, sizeof(where));
		/* Say how, when it is not the paths themselves. */
		if (strcmp(a->via, path) || strcmp(b->via, other))
			die("%s %s and %s %s share storage (%s, reached through %s and %s); refusing to format it",
			    what, path, other_what, other, where, a->via, b->via);
		die("%s %s and %s %s share storage (%s); refusing to format it", what, path,
		    other_what, other, where);
	}
	fvd_storage_free(&mine);
}

/* Allocate @len bytes of the file from @offset: room the host keeps for it. */
static void reserve(int fd, const char *path, bool is_blockdev, uint64_t offset,
		    uint64_t len)
{
	int r;

	if (!len || is_blockdev)
		return;
	r = posix_fallocate(fd, offset, len);
	if (r)
		die("cannot allocate %" PRIu64 " bytes of %s for the data: %s", len, path,
		    strerror(r));
}

static void print_uuid(const uint8_t *u)
{
	int i;

	for (i = 0; i < 16; i++)
		printf("%02x%s", u[i], (i == 3 || i == 5 || i == 7 || i == 9) ? "-" : "");
}

/*
 * --profile-from: the profile at @path, which must have been recorded over
 * this origin (its size, and its fingerprint when it names one).
 */
static void read_profile(const char *path, const char *origin, uint64_t origin_size,
			 uint32_t fingerprint, struct fvd_profile_file *prof)
{
	struct fvd_sb_info over = {
		.origin_sectors = origin_size / SECTOR,
		.compat_features = FVD_COMPAT_ORIGIN_ID,
		.origin_fingerprint = fingerprint,
	};

	fvd_profile_file_read(prog, "fvd-check", path, prof);
	fvd_profile_file_match(prog, path, prof, &over, origin);
}

/*
 * The profile into the new image's (zeroed) region, as the target saves
 * one, but with save number 0: copied, not recorded by a table here.
 */
static void write_profile(int fd, const char *path, const struct fvd_sb_info *sb,
			  const struct fvd_profile_file *prof)
{
	struct fvd_disk_profile_run *run;
	uint8_t *region = calloc(1, FVD_PROFILE_REGION_BYTES);
	size_t i, len;

	if (!region)
		die("cannot write the profile into %s: out of memory", path);
	for (i = 0; i < prof->nr; i++) {
		run = fvd_profile_region_run(region, i);
		run->start = htole64(prof->runs[i].start);
		run->len = htole64(prof->runs[i].len);
	}
	fvd_profile_region_seal(region, prof->nr, sb->origin_sectors, 0, 0);
	len = FVD_PROFILE_HEADER_SIZE +
	      (prof->nr * sizeof(*run) + FVD_META_BLOCK_SIZE - 1) / FVD_META_BLOCK_SIZE *
	      FVD_META_BLOCK_SIZE;
	write_all(fd, path, region, len, sb->profile_offset * SECTOR);
	free(region);
}

/* Options with no short form. */
enum { OPT_DATA_SIZE = 256, OPT_CREATE, OPT_LOW_WATER_MARK, OPT_PROFILE_FROM };

int main(int argc, char **argv)
{
	static const struct option options[] = {
		{ "size", required_argument, NULL, 's' },
		{ "origin", required_argument, NULL, 'o' },
		{ "block-size", required_argument, NULL, 'b' },
		{ "data-dev", required_argument, NULL, 'd' },
		{ "journal-size", required_argument, NULL, 'j' },
		{ "compact", no_argument, NULL, 'c' },
		{ "chunk-size", required_argument, NULL, 'C' },
		{ "data-size", required_argument, NULL, OPT_DATA_SIZE },
		{ "create", no_argument, NULL, OPT_CREATE },
		{ "low-water-mark", required_argument, NULL, OPT_LOW_WATER_MARK },
		{ "profile-from", required_argument, NULL, OPT_PROFILE_FROM },
		{ "force", no_argument, NULL, 'f' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	const char *origin = NULL, *data_dev = NULL, *image, *profile_from = NULL;
	struct fvd_profile_file prof = { 0 };
	uint64_t size = 0, block_size = FVD_DEFAULT_BLOCK_SIZE;
	uint64_t journal_size = FVD_DEFAULT_JOURNAL_SIZE, origin_size = 0;
	uint64_t chunk_size = 0, data_reserve = 0, nr_room = 0, low_water_mark = 0;
	bool have_low_water_mark = false;
	char features[64];
	bool compact = false, have_data_size = false, create = false;
	struct fvd_extents origin_extents = { 0 };
	uint64_t image_size, data_size = 0, data_bytes, meta_bytes;
	bool have_size = false, force = false, quiet = false, image_blk, data_blk = false;
	bool shared;
	uint32_t origin_fingerprint = 0;
	char origin_hint[FVD_ORIGIN_HINT_SIZE] = "";
	int opt, image_fd, data_fd = -1, origin_fd;
	struct fvd_sb_info sb;
	static uint8_t block[FVD_SB_SIZE];
	char probe[SECTOR];
	struct stat st_image, st_data, st_origin;

	while ((opt = getopt_long(argc, argv, "s:o:b:d:j:cC:fqhV", options, NULL)) != -1) {
		switch (opt) {
		case 's':
			size = size_arg("size", optarg);
			have_size = true;
			break;
		case 'o':
			origin = optarg;
			break;
		case 'b':
			block_size = size_arg("block size", optarg);
			break;
		case 'd':
			data_dev = optarg;
			break;
		case 'j':
			journal_size = size_arg("journal size", optarg);
			break;
		case 'c':
			compact = true;
			break;
		case 'C':
			chunk_size = size_arg("chunk size", optarg);
			if (!chunk_size)
				die("invalid chunk size '%s': not a power of two", optarg);
			break;
		case OPT_DATA_SIZE:
			data_reserve = size_arg("data size", optarg);
			if (!data_reserve)
				die("invalid data size '%s': room for no chunk", optarg);
			have_data_size = true;
			break;
		case OPT_CREATE:
			create = true;
			break;
		case OPT_PROFILE_FROM:
			profile_from = optarg;
			break;
		case OPT_LOW_WATER_MARK: {
			char *end;

			errno = 0;
			low_water_mark = strtoull(optarg, &end, 10);
			if (errno || end == optarg || *end || *optarg == '-')
				die("invalid low-water mark '%s': a number of chunks", optarg);
			have_low_water_mark = true;
			break;
		}
		case 'f':
			force = true;
			break;
		case 'q':
			quiet = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("%s (dm-fvd) %s\n", prog, FVD_VERSION);
			return 0;
		default:
			usage(stderr);
			return 1;
		}
	}
	if (optind != argc - 1) {
		usage(stderr);
		return 1;
	}
	image = argv[optind];

	if (!fvd_block_size_valid(block_size))
		die("block size %" PRIu64 " is not a power of two from 4K to 2M",
		    block_size);
	if (have_size && (!size || size % SECTOR))
		die("size %" PRIu64 " is not a positive multiple of 512 bytes", size);
	if (journal_size % FVD_META_BLOCK_SIZE)
		die("journal size %" PRIu64 " is not a multiple of 4K", journal_size);
	if (chunk_size && !compact)
		die("--chunk-size needs --compact");
	if (have_low_water_mark && !compact)
		die("--low-water-mark needs --compact (it counts free chunks)");
	if (profile_from && !origin)
		die("--profile-from needs --origin (a profile orders the copies from an origin)");
	if (have_data_size && !compact)
		die("--data-size needs --compact (the data of other images is as large as the disk)");
	if (compact) {
		if (!chunk_size)
			chunk_size = block_size < FVD_DEFAULT_CHUNK_SIZE ?
				     FVD_DEFAULT_CHUNK_SIZE : block_size;
		if (chunk_size < block_size || chunk_size > (1ULL << FVD_MAX_CHUNK_SHIFT) ||
		    (chunk_size & (chunk_size - 1)))
			die("chunk size %" PRIu64 " is not a power of two from the block size to 1G",
			    chunk_size);
		if (!journal_size)
			die("a compact image needs a journal (--journal-size)");
	}

	if (origin) {
		bool blk;

		origin_fd = open(origin, O_RDONLY);
		if (origin_fd < 0)
			die("cannot open origin %s: %s", origin, strerror(errno));
		origin_size = fd_size(origin_fd, origin, &blk);
		if (!origin_size)
			die("origin %s is empty", origin);
		if (origin_size % SECTOR)
			die("origin %s is %" PRIu64 " bytes, not a multiple of 512",
			    origin, origin_size);
		if (pread(origin_fd, probe, sizeof(probe), 0) != (ssize_t)sizeof(probe))
			die("origin %s is unreadable", origin);
		if (fstat(origin_fd, &st_origin))
			die("cannot stat origin %s: %s", origin, strerror(errno));
		/* What the origin reads, as well as what it holds. */
		storage_of(origin, "origin", &st_origin, true, &origin_extents);
		/* Read as the target reads it at every load, to tell origins apart. */
		if (fvd_origin_fingerprint(origin_fd, origin_size / SECTOR, &origin_fingerprint))
			die("cannot read origin %s for its fingerprint: %s", origin,
			    strerror(errno));
		if (fvd_origin_hint(origin, origin_hint, sizeof(origin_hint))) {
			fprintf(stderr, "%s: warning: no path hint recorded for origin %s: %s\n",
				prog, origin, strerror(errno));
			origin_hint[0] = '\0';
		}
		close(origin_fd);
		if (!have_size)
			size = origin_size;
		if (size < origin_size)
			die("size %" PRIu64 " is smaller than the origin (%" PRIu64 " bytes)",
			    size, origin_size);
		/* Read before anything is written: it may be IMAGE's own. */
		if (profile_from)
			read_profile(profile_from, origin, origin_size, origin_fingerprint, &prof);
	} else if (!have_size) {
		die("--size is required without --origin");
	}

	atexit(remove_created);
	catch_signals();
	create = create || have_size || have_data_size;
	image_fd = open_for_format(image, "image", create, 0, &st_image);
	if (origin)
		refuse_shared_storage("image", image, &st_image, "origin", origin,
				      &origin_extents);
	refuse_file_in_use("image", image, &st_image);
	image_size = fd_size(image_fd, image, &image_blk);
	refuse_if_in_use(image_fd, image, force);

	shared = !data_dev;
	/* The same file or device twice: the data after the metadata. */
	if (data_dev && !stat(data_dev, &st_data))
		shared = S_ISBLK(st_image.st_mode) ? S_ISBLK(st_data.st_mode) &&
						     st_image.st_rdev == st_data.st_rdev :
			 st_image.st_dev == st_data.st_dev && st_image.st_ino == st_data.st_ino;
	if (!shared) {
		struct fvd_extents image_extents = { 0 };

		data_fd = open_for_format(data_dev, "data device", create, 1, &st_data);
		if (origin)
			refuse_shared_storage("data device", data_dev, &st_data, "origin", origin,
					      &origin_extents);
		storage_of(image, "image", &st_image, false, &image_extents);
		refuse_shared_storage("data device", data_dev, &st_data, "image", image,
				      &image_extents);
		fvd_storage_free(&image_extents);
		refuse_file_in_use("data device", data_dev, &st_data);
		data_size = fd_size(data_fd, data_dev, &data_blk);
		refuse_if_in_use(data_fd, data_dev, force);
	}
	fvd_storage_free(&origin_extents);

	if (size / SECTOR <= FVD_MAX_VIRTUAL_SECTORS &&
	    (size + block_size - 1) / block_size > FVD_MAX_BLOCKS)
		die("%" PRIu64 " blocks of %" PRIu64 " bytes: more than the 2^32 supported; use --block-size %" PRIu64 " or more",
		    (size + block_size - 1) / block_size, block_size,
		    size_for_count(size, FVD_MAX_BLOCKS));
	if (compact && size / SECTOR <= FVD_MAX_VIRTUAL_SECTORS &&
	    (size + chunk_size - 1) / chunk_size > FVD_MAX_CHUNKS)
		die("%" PRIu64 " chunks of %" PRIu64 " bytes: more than the 2^27 supported; use --chunk-size %" PRIu64 " or more",
		    (size + chunk_size - 1) / chunk_size, chunk_size,
		    size_for_count(size, FVD_MAX_CHUNKS));
	if (fvd_layout_init(&sb, size / SECTOR, origin_size / SECTOR,
			    block_size / SECTOR, chunk_size / SECTOR,
			    journal_size / SECTOR, shared))
		die("cannot lay out a %" PRIu64 "-byte image", size);
	/* Room for the target to keep what the guest's boot read. */
	if (origin && fvd_layout_add_profile(&sb))
		die("cannot lay out the profile region of a %" PRIu64 "-byte image", size);
	if (getrandom(sb.uuid, sizeof(sb.uuid), 0) != sizeof(sb.uuid))
		die("cannot get random bytes for the UUID");
	sb.uuid[6] = (sb.uuid[6] & 0x0f) | 0x40;
	sb.uuid[8] = (sb.uuid[8] & 0x3f) | 0x80;
	/* Nothing to replay or check on a new image. */
	sb.flags = FVD_FLAG_CLEAN;
	if (origin) {
		sb.compat_features |= FVD_COMPAT_ORIGIN_ID;
		sb.origin_fingerprint = origin_fingerprint;
		memcpy(sb.origin_hint, origin_hint, sizeof(sb.origin_hint));
	}

	meta_bytes = sb.metadata_sectors * SECTOR;
	/*
	 * A compact image's data device holds what --data-size asks for, or
	 * what it already has: without either, room for no chunk at all.
	 */
	data_bytes = (sb.data_offset + (compact ? 0 : sb.virtual_sectors)) * SECTOR +
		     data_reserve;
	if (shared) {
		ensure_size(image_fd, image, image_blk, image_size, data_bytes,
			    "the metadata and data");
		reserve(image_fd, image, image_blk, sb.data_offset * SECTOR, data_reserve);
		data_size = image_size > data_bytes ? image_size : data_bytes;
	} else {
		ensure_size(image_fd, image, image_blk, image_size, meta_bytes,
			    "the metadata");
		if (data_bytes)
			ensure_size(data_fd, data_dev, data_blk, data_size, data_bytes,
				    "the data");
		reserve(data_fd, data_dev, data_blk, sb.data_offset * SECTOR, data_reserve);
		close(data_fd);
		if (data_size < data_bytes)
			data_size = data_bytes;
	}
	if (compact)
		nr_room = (data_size - sb.data_offset * SECTOR) / chunk_size;

	/* Invalidate whatever was there first, then zero, then the superblock. */
	zero_range(image_fd, image, 0, FVD_SB_SIZE);
	sync_or_die(image_fd, image);
	zero_range(image_fd, image, FVD_SB_SIZE, meta_bytes - FVD_SB_SIZE);
	sync_or_die(image_fd, image);
	if (profile_from)
		write_profile(image_fd, image, &sb, &prof);
	/* The backup first: the image is valid once the primary is written. */
	fvd_sb_encode(&sb, block);
	write_all(image_fd, image, block, sizeof(block), FVD_BACKUP_SB_SECTOR * SECTOR);
	sync_or_die(image_fd, image);
	write_all(image_fd, image, block, sizeof(block), 0);
	sync_or_die(image_fd, image);
	close(image_fd);
	keep_created();
	if (compact && !nr_room)
		fprintf(stderr,
			"%s: warning: the data device has room for no chunk: the first write will wait for it to grow (give --data-size, or grow it and reload the table)\n",
			prog);
	else if (compact && nr_room < low_water_mark)
		fprintf(stderr,
			"%s: warning: the data device has room for %" PRIu64 " chunk%s, fewer than the low-water mark of %" PRIu64 ": the target raises its low-water event at once\n",
			prog, nr_room, nr_room == 1 ? "" : "s", low_water_mark);
	if (quiet)
		return 0;

	printf("Formatted %s as an FVD image\n", image);
	printf("  uuid          ");
	print_uuid(sb.uuid);
	printf("\n  virtual size  %" PRIu64 " bytes (%" PRIu64 " sectors)\n",
	       size, sb.virtual_sectors);
	printf("  block size    %" PRIu64 " bytes, %" PRIu64 " blocks\n",
	       block_size, sb.nr_blocks);
	if (origin) {
		printf("  origin        %s, %" PRIu64 " bytes, fingerprint %08x\n", origin,
		       origin_size, origin_fingerprint);
		if (origin_hint[0] && strcmp(origin_hint, origin))
			printf("  origin hint   %s\n", origin_hint);
	} else {
		printf("  origin        none (unwritten blocks read as zeroes)\n");
	}
	printf("  superblock    sectors 0-%d, backup %d-%d\n", FVD_META_BLOCK_SECTORS - 1,
	       FVD_BACKUP_SB_SECTOR, FVD_BACKUP_SB_SECTOR + FVD_META_BLOCK_SECTORS - 1);
	printf("  bitmap        sectors %" PRIu64 "-%" PRIu64 "\n", sb.bitmap_offset,
	       sb.bitmap_offset + sb.bitmap_sectors - 1);
	if (compact)
		printf("  chunk table   sectors %" PRIu64 "-%" PRIu64 ", %" PRIu64
		       " chunks of %" PRIu64 " bytes, allocated on first write\n",
		       sb.table_offset, sb.table_offset + sb.table_sectors - 1,
		       sb.nr_chunks, chunk_size);
	if (compact)
		printf("  chunk room    %" PRIu64 " chunk%s on the data device now\n", nr_room,
		       nr_room == 1 ? "" : "s");
	if (sb.journal_sectors)
		printf("  journal       sectors %" PRIu64 "-%" PRIu64 "\n",
		       sb.journal_offset, sb.journal_offset + sb.journal_sectors - 1);
	if (profile_from)
		printf("  profile       sectors %" PRIu64 "-%" PRIu64 ", %zu run%s copied from %s\n",
		       sb.profile_offset, sb.profile_offset + sb.profile_sectors - 1, prof.nr,
		       prof.nr == 1 ? "" : "s", profile_from);
	else if (sb.compat_features & FVD_COMPAT_PROFILE)
		printf("  profile       sectors %" PRIu64 "-%" PRIu64 ", none recorded yet\n",
		       sb.profile_offset, sb.profile_offset + sb.profile_sectors - 1);
	printf("  data          %s from sector %" PRIu64 "\n",
	       shared ? image : data_dev, sb.data_offset);
	features[0] = '\0';
	if (have_low_water_mark)
		snprintf(features, sizeof(features), " 2 low_water_mark %" PRIu64, low_water_mark);
	printf("Table line:\n  0 %" PRIu64 " fvd %s %s %s%s\n", sb.virtual_sectors,
	       image, shared ? image : data_dev, origin ? origin : "-", features);
	printf("Create the device with:\n  dmsetup create NAME --table \"0 %" PRIu64
	       " fvd %s %s %s%s\"\n", sb.virtual_sectors, image,
	       shared ? image : data_dev, origin ? origin : "-", features);
	if (!image_blk || (!shared && !data_blk))
		printf("Regular files must be attached first (losetup --find --show FILE)\n"
		       "and named by their loop device in the table.\n");
	return 0;
}
