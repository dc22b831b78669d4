// SPDX-License-Identifier: GPL-2.0
/*
 * fvd-check: check a dm-fvd image, replaying its journal in memory.
 *
 * Exit codes follow fsck(8): 0 no errors, 1 errors corrected (--repair wrote
 * the image), 4 errors left uncorrected, 8 operational error (cannot open or
 * read the image, bad usage).
 *
 * Everything read from the image goes through the shared validators of
 * dm-fvd/fvd-format.c before it is used, so a corrupt or hostile image gets
 * a diagnosis, not a crash.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "fvd-format.h"
#include "fvd-origin.h"
#include "fvd-storage.h"
#include "fvd-tool.h"
#include "fvd-version.h"

#define SECTOR ((uint64_t)512)

enum {
	EXIT_CLEAN = 0,
	EXIT_CORRECTED = 1,
	EXIT_UNCORRECTED = 4,
	EXIT_OPERATIONAL = 8,
};

static const char *prog = "fvd-check";

struct image {
	const char *path;
	int fd;
	uint64_t size;
	struct fvd_sb_info sb;
	struct fvd_sb_info backup;	/* the backup superblock, when valid */
	enum fvd_sb_status backup_status;	/* FVD_SB_NR_STATUS: none read */
	bool restore_primary;	/* the check runs on the backup */
	uint8_t *home;		/* bitmap region as on disk */
	uint8_t *bitmap;	/* home + journal: the image's state */
	size_t bitmap_bytes;
	uint8_t *home_table;	/* compact images: chunk table as on disk */
	uint8_t *table;		/* home + journal */
	size_t table_bytes;
	uint64_t data_size;	/* bytes of the data device; 0: unknown */
	struct fvd_replay replay;
	uint8_t jblock[FVD_JOURNAL_BLOCK_SIZE];
	uint8_t *profile;	/* PROFILE: the region as on disk */
	enum fvd_profile_status profile_status;
	uint32_t profile_runs;
	bool clear_profile;	/* --repair: a damaged profile reads as none */
	unsigned int errors;	/* found, each correctable by --repair */
	unsigned int fatal;	/* found, not correctable */
	bool needs_write;	/* --repair has something to write */
};

static const char *plural(uint64_t n)
{
	return n == 1 ? "" : "s";
}

static void __noreturn __printf(1, 2) fail_op(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fvd_vdie(prog, EXIT_OPERATIONAL, fmt, ap);
}

/* --quiet: only problems, repairs and what was asked for (--dump). */
static bool quiet;

/* A line that says how the image is, not what is wrong with it. */
static void info(const char *fmt, ...)
{
	va_list ap;

	if (quiet)
		return;
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
}

static void report_error(struct image *img, const char *fmt, va_list ap)
{
	printf("%s: error: ", img->path);
	vprintf(fmt, ap);
	putchar('\n');
}

/* A problem --repair can fix. */
static void problem(struct image *img, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	report_error(img, fmt, ap);
	va_end(ap);
	img->errors++;
	img->needs_write = true;
}

/* A problem nothing here can fix. */
static void fatal(struct image *img, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	report_error(img, fmt, ap);
	va_end(ap);
	img->fatal++;
}

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: %s [--repair] [--dump] [--data-dev PATH] [--origin PATH]\n"
		"       [--backup-superblock] [--quiet] IMAGE\n"
		"\n"
		"Checks a dm-fvd image: superblocks, device sizes, bitmap, journal.\n"
		"The journal is replayed in memory; nothing is written unless\n"
		"--repair is given.\n"
		"  --repair          write the replayed state home, fix what can be\n"
		"                    fixed (a damaged superblock from its backup),\n"
		"                    clear needs_check, mark the image clean\n"
		"  --dump            print the superblock, the journal and the\n"
		"                    allocation map\n"
		"  --data-dev PATH   also check the size of a separate data device\n"
		"  --origin PATH     also check that PATH is the image's origin\n"
		"  --backup-superblock\n"
		"                    use the backup superblock whatever sector 0 holds\n"
		"                    (with --repair: write it over sector 0)\n"
		"  --quiet           print only problems and repairs\n"
		"  --version         print the version of dm-fvd and exit\n"
		"Exit status: 0 clean, 1 errors corrected, 4 errors left,\n"
		"8 operational error.\n",
		prog);
}

static uint64_t fd_size(int fd, const char *path)
{
	uint64_t size;
	bool is_blockdev;
	int r = fvd_fd_size(fd, &size, &is_blockdev);

	if (r == FVD_NOT_A_DEVICE)
		fail_op("%s is neither a block device nor a regular file", path);
	if (r)
		fail_op("cannot get the size of %s: %s", path, strerror(errno));
	return size;
}

static void read_at(struct image *img, void *buf, size_t len, uint64_t off)
{
	ssize_t n;
	size_t done = 0;

	while (done < len) {
		n = pread(img->fd, (char *)buf + done, len - done, off + done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			fail_op("read error on %s at byte %" PRIu64 ": %s", img->path,
				off + done, strerror(errno));
		if (n == 0)
			fail_op("%s: unexpected end of device at byte %" PRIu64,
				img->path, off + done);
		done += n;
	}
}

static void write_at(struct image *img, const void *buf, size_t len, uint64_t off)
{
	ssize_t n;
	size_t done = 0;

	while (done < len) {
		n = pwrite(img->fd, (const char *)buf + done, len - done, off + done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			fail_op("write error on %s at byte %" PRIu64 ": %s", img->path,
				off + done, n < 0 ? strerror(errno) : "short write");
		done += n;
	}
}

static void sync_image(struct image *img)
{
	if (fsync(img->fd))
		fail_op("cannot flush %s: %s", img->path, strerror(errno));
}

static bool bit_test(const uint8_t *map, uint64_t nr)
{
	return (map[nr >> 3] >> (nr & 7)) & 1;
}

static void bit_clear(uint8_t *map, uint64_t nr)
{
	map[nr >> 3] &= ~(1U << (nr & 7));
}

static int journal_read(void *context, uint64_t index, const void **block)
{
	struct image *img = context;

	read_at(img, img->jblock, sizeof(img->jblock),
		img->sb.journal_offset * SECTOR + index * FVD_JOURNAL_BLOCK_SIZE);
	*block = img->jblock;
	return 0;
}

static int journal_apply(void *context, const struct fvd_jrec *rec)
{
	struct image *img = context;

	return fvd_jrec_apply(&img->sb, rec, img->bitmap, img->table);
}

/* Bits past the last block are cleared by check_bitmap() first. */
static uint64_t count_bits(const uint8_t *map, size_t bytes)
{
	uint64_t n = 0;
	size_t i;

	for (i = 0; i < bytes; i++)
		n += __builtin_popcount(map[i]);
	return n;
}

/* @uuid as text in @buf of at least 37 bytes. */
static const char *uuid_text(const uint8_t *uuid, char *buf)
{
	unsigned int i;
	char *p = buf;

	for (i = 0; i < 16; i++)
		p += sprintf(p, "%02x%s", uuid[i], i == 3 || i == 5 || i == 7 || i == 9 ? "-" : "");
	return buf;
}

static void print_uuid(const uint8_t *uuid)
{
	char buf[40];

	fputs(uuid_text(uuid, buf), stdout);
}

/* The backup superblock, if the device is large enough for one. */
static void read_backup(struct image *img)
{
	static uint8_t block[FVD_SB_SIZE];

	img->backup_status = FVD_SB_NR_STATUS;
	if (img->size < (FVD_BACKUP_SB_SECTOR + FVD_META_BLOCK_SECTORS) * SECTOR)
		return;
	read_at(img, block, sizeof(block), FVD_BACKUP_SB_SECTOR * SECTOR);
	img->backup_status = fvd_sb_decode(block, &img->backup);
	/* An old image's bitmap starts there: only a backup that says so is one. */
	if (img->backup_status == FVD_SB_OK &&
	    !(img->backup.ro_compat_features & FVD_RO_COMPAT_BACKUP_SB))
		img->backup_status = FVD_SB_BAD_MAGIC;
}

static bool backup_valid(const struct image *img)
{
	return img->backup_status == FVD_SB_OK;
}

/* Check the backup against a valid primary. */
static void compare_backup(struct image *img)
{
	const struct fvd_sb_info *sb = &img->sb, *b = &img->backup;
	const char *field;
	u64 was, now;

	if (!(sb->ro_compat_features & FVD_RO_COMPAT_BACKUP_SB))
		return;
	if (!backup_valid(img)) {
		problem(img, "backup superblock at sector %d: %s", FVD_BACKUP_SB_SECTOR,
			img->backup_status == FVD_SB_NR_STATUS ? "past the end of the device" :
			fvd_sb_status_str(img->backup_status));
		return;
	}
	field = fvd_sb_layout_change(sb, b, &now, &was);
	if (field) {
		problem(img, "backup superblock differs from the primary: %s %" PRIu64
			", primary %" PRIu64, field, was, now);
		return;
	}
	/* Set at format, never changed: a difference is damage, not a lag. */
	if (b->compat_features != sb->compat_features ||
	    b->origin_fingerprint != sb->origin_fingerprint ||
	    strcmp(b->origin_hint, sb->origin_hint)) {
		problem(img, "backup superblock differs from the primary in the origin's identity");
		return;
	}
	/* The backup is written after the primary: it is never ahead. */
	if (b->checkpoint_seq > sb->checkpoint_seq) {
		problem(img, "backup superblock is ahead of the primary: checkpoint %" PRIu64
			", primary %" PRIu64, b->checkpoint_seq, sb->checkpoint_seq);
		return;
	}
	/* A crash between the writes of the two leaves the backup one step behind. */
	if (b->flags != sb->flags || b->checkpoint_seq != sb->checkpoint_seq)
		info("%s: backup superblock lags the primary (checkpoint %" PRIu64
		     ", flags 0x%" PRIx64 "; primary %" PRIu64 ", 0x%" PRIx64
		     "): the next superblock write updates it\n", img->path,
		     b->checkpoint_seq, b->flags, sb->checkpoint_seq, sb->flags);
}

static void use_backup(struct image *img, const char *why)
{
	char uuid[40];

	img->sb = img->backup;
	img->restore_primary = true;
	problem(img, "%s; checked with the backup superblock at sector %d (uuid %s), which --repair writes over the primary",
		why, FVD_BACKUP_SB_SECTOR, uuid_text(img->backup.uuid, uuid));
}

static void check_superblock(struct image *img, bool force_backup)
{
	static uint8_t block[FVD_SB_SIZE];
	enum fvd_sb_status status;
	char why[128];

	/* Not an FVD image at all: nothing to check, as e2fsck says of a non-ext2. */
	if (img->size < FVD_SB_SIZE)
		fail_op("%s: %" PRIu64 " bytes, too small for an FVD superblock: not an FVD image",
			img->path, img->size);
	read_at(img, block, sizeof(block), 0);
	status = fvd_sb_decode(block, &img->sb);
	read_backup(img);
	if (force_backup) {
		if (!backup_valid(img))
			fail_op("%s: no valid backup superblock at sector %d: %s", img->path,
				FVD_BACKUP_SB_SECTOR,
				img->backup_status == FVD_SB_NR_STATUS ?
				"past the end of the device" :
				fvd_sb_status_str(img->backup_status));
		snprintf(why, sizeof(why), "primary superblock set aside (--backup-superblock; it is %s)",
			 status == FVD_SB_OK ? "valid" : fvd_sb_status_str(status));
		use_backup(img, why);
	} else if (status == FVD_SB_BAD_MAGIC) {
		/*
		 * Sector 0 holds something else: maybe a file system made over
		 * the image.  Overwriting it takes an explicit request.
		 */
		if (backup_valid(img)) {
			printf("%s: error: no FVD superblock at sector 0 (bad magic), but a valid backup at sector %d (uuid ",
			       img->path, FVD_BACKUP_SB_SECTOR);
			print_uuid(img->backup.uuid);
			printf("): if this is an FVD image whose start was overwritten, restore it with --repair --backup-superblock\n");
			exit(EXIT_UNCORRECTED);
		}
		fail_op("%s: no FVD superblock (bad magic): not an FVD image", img->path);
	} else if (status == FVD_SB_BAD_CSUM && backup_valid(img) &&
		   !memcmp(((const struct fvd_disk_superblock *)block)->uuid,
			   img->backup.uuid, sizeof(img->backup.uuid))) {
		/* A torn or damaged write of the primary: the backup is the state before it. */
		use_backup(img, "primary superblock checksum mismatch");
	} else if (status == FVD_SB_BAD_CSUM && backup_valid(img)) {
		printf("%s: error: invalid superblock: %s, and its uuid is not the backup's: --backup-superblock checks with the backup\n",
		       img->path, fvd_sb_status_str(status));
		exit(EXIT_UNCORRECTED);
	} else if (status != FVD_SB_OK) {
		printf("%s: error: invalid superblock: %s%s\n", img->path,
		       fvd_sb_status_str(status),
		       backup_valid(img) ? " (a valid backup superblock exists: --backup-superblock checks with it)" : "");
		exit(EXIT_UNCORRECTED);
	} else {
		compare_backup(img);
	}
	if (img->size < img->sb.metadata_sectors * SECTOR) {
		printf("%s: error: the metadata needs %" PRIu64 " bytes, the device has %" PRIu64 " (truncated?)\n",
		       img->path, img->sb.metadata_sectors * SECTOR, img->size);
		exit(EXIT_UNCORRECTED);
	}
}

/* Is @path the origin the image was made over? */
static void check_origin(struct image *img, const char *path)
{
	const struct fvd_sb_info *sb = &img->sb;
	uint64_t size;
	uint32_t fingerprint;
	int fd;

	if (!sb->origin_sectors) {
		fatal(img, "the image has no origin, but --origin %s was given", path);
		return;
	}
	fd = open(path, O_RDONLY);
	if (fd < 0)
		fail_op("cannot open origin %s: %s", path, strerror(errno));
	size = fd_size(fd, path);
	if (size != sb->origin_sectors * SECTOR) {
		fatal(img, "origin %s has %" PRIu64 " bytes, the image was made over one of %" PRIu64,
		      path, size, sb->origin_sectors * SECTOR);
	} else if (!(sb->compat_features & FVD_COMPAT_ORIGIN_ID)) {
		info("%s: origin %s has the size the image was made over (the image records no fingerprint)\n",
		     img->path, path);
	} else if (fvd_origin_fingerprint(fd, sb->origin_sectors, &fingerprint)) {
		fail_op("cannot read origin %s: %s", path, strerror(errno));
	} else if (fingerprint != sb->origin_fingerprint) {
		fatal(img, "origin %s is not the image's origin: fingerprint %08x, the image was made over one with fingerprint %08x (%s)",
		      path, fingerprint, sb->origin_fingerprint,
		      sb->origin_hint[0] ? sb->origin_hint : "no path recorded");
	} else {
		info("%s: origin %s is the image's origin (%" PRIu64 " bytes, fingerprint %08x)\n",
		     img->path, path, size, fingerprint);
	}
	close(fd);
}

static void check_data_device(struct image *img, const char *data_path)
{
	uint64_t need = (img->sb.data_offset + img->sb.virtual_sectors) * SECTOR;
	uint64_t size;
	int fd;

	if (fvd_compact(&img->sb))
		need = img->sb.data_offset * SECTOR;
	if (img->sb.data_offset) {
		size = img->size;
		data_path = img->path;
	} else if (data_path) {
		fd = open(data_path, O_RDONLY);
		if (fd < 0)
			fail_op("cannot open %s: %s", data_path, strerror(errno));
		size = fd_size(fd, data_path);
		close(fd);
	} else {
		return;
	}
	img->data_size = size;
	if (size < need)
		fatal(img, "data device %s has %" PRIu64 " bytes, the image needs %" PRIu64,
		      data_path, size, need);
}

static uint32_t table_get(const uint8_t *table, uint64_t chunk)
{
	uint32_t entry;

	memcpy(&entry, table + chunk * 4, 4);
	return le32_to_cpu(entry);
}

static int compare_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static void read_table(struct image *img)
{
	if (!fvd_compact(&img->sb))
		return;
	img->table_bytes = img->sb.table_sectors * SECTOR;
	img->home_table = malloc(img->table_bytes);
	img->table = malloc(img->table_bytes);
	if (!img->home_table || !img->table)
		fail_op("out of memory for a %zu-byte chunk table", img->table_bytes);
	read_at(img, img->home_table, img->table_bytes, img->sb.table_offset * SECTOR);
	memcpy(img->table, img->home_table, img->table_bytes);
}

/*
 * After the replay: no physical chunk mapped twice or past the data device
 * (when its size is known), and no local block in an unmapped chunk.
 */
static void check_table(struct image *img)
{
	const struct fvd_sb_info *sb = &img->sb;
	uint64_t per_chunk = 1ULL << sb->chunk_block_shift;
	uint64_t nr_phys = img->data_size > sb->data_offset * SECTOR ?
			   (img->data_size - sb->data_offset * SECTOR) >>
			   (sb->chunk_shift + FVD_SECTOR_SHIFT) : 0;
	uint64_t chunk, block, orphans = 0, mapped = 0, i;
	uint32_t entry, *used;

	if (!fvd_compact(sb))
		return;
	used = malloc(sb->nr_chunks * sizeof(*used));
	if (!used)
		fail_op("out of memory for %" PRIu64 " chunk entries", sb->nr_chunks);
	for (chunk = 0; chunk < sb->nr_chunks; chunk++) {
		entry = table_get(img->table, chunk);
		if (!entry) {
			for (block = chunk * per_chunk;
			     block < (chunk + 1) * per_chunk && block < sb->nr_blocks; block++) {
				if (bit_test(img->bitmap, block)) {
					bit_clear(img->bitmap, block);
					orphans++;
				}
			}
			continue;
		}
		used[mapped++] = entry - 1;
		if (img->data_size && entry - 1 >= nr_phys)
			fatal(img, "chunk %" PRIu64 " maps physical chunk %u, past the end of the data device (%" PRIu64 " chunks)",
			      chunk, entry - 1, nr_phys);
	}
	/* a physical chunk mapped twice: adjacent after sorting */
	qsort(used, mapped, sizeof(*used), compare_u32);
	for (i = 1; i < mapped; i++)
		if (used[i] == used[i - 1] && (i == 1 || used[i - 2] != used[i]))
			fatal(img, "physical chunk %u is mapped more than once", used[i]);
	free(used);
	if (orphans)
		problem(img, "%" PRIu64 " local blocks lie in unmapped chunks", orphans);
	printf("%s: %" PRIu64 "/%" PRIu64 " chunks mapped", img->path, mapped, sb->nr_chunks);
	if (img->data_size)
		printf(", data device holds %" PRIu64 " chunks", nr_phys);
	printf("\n");
}

static void check_bitmap(struct image *img)
{
	uint64_t block, stray = 0;

	img->bitmap_bytes = img->sb.bitmap_sectors * SECTOR;
	img->home = malloc(img->bitmap_bytes);
	img->bitmap = malloc(img->bitmap_bytes);
	if (!img->home || !img->bitmap)
		fail_op("out of memory for a %zu-byte bitmap", img->bitmap_bytes);
	read_at(img, img->home, img->bitmap_bytes, img->sb.bitmap_offset * SECTOR);
	memcpy(img->bitmap, img->home, img->bitmap_bytes);
	for (block = img->sb.nr_blocks; block < img->bitmap_bytes * 8ULL; block++) {
		if (bit_test(img->bitmap, block)) {
			bit_clear(img->bitmap, block);
			stray++;
		}
	}
	if (stray)
		problem(img, "%" PRIu64 " bitmap bits set past the last block (%" PRIu64 ")",
			stray, img->sb.nr_blocks);
}

/*
 * A block the replay did not reach, yet valid and newer than where it
 * stopped, means commits were lost: no crash leaves one behind, because a
 * load checkpoints past every sequence number a torn commit could hold.
 */
static void check_journal_tail(struct image *img)
{
	const struct fvd_disk_jheader *h = (const void *)img->jblock;

	if (!img->replay.nr_newer)
		return;
	journal_read(img, img->replay.first_newer, &(const void *){ NULL });
	printf("%s: journal block %" PRIu64 " holds commit %" PRIu64
	       " but the journal ends at commit %" PRIu64 "\n",
	       img->path, img->replay.first_newer, (uint64_t)le64_to_cpu(h->seq),
	       img->replay.next_seq - 1);
	problem(img, "%" PRIu64 " journal blocks newer than the end of the journal (lost commits)",
		img->replay.nr_newer);
}

static void check_journal(struct image *img)
{
	struct fvd_replay *replay = &img->replay;
	int r;

	if (!(img->sb.incompat_features & FVD_INCOMPAT_JOURNAL))
		return;
	r = fvd_journal_replay(&img->sb, journal_read, journal_apply, img, replay);
	if (r)
		fail_op("journal replay failed: %s", strerror(-r));
	/* Nothing after the checkpoint is what a clean shutdown leaves. */
	if (!replay->nr_commits && !replay->full)
		info("%s: journal: no commits after checkpoint %" PRIu64 "\n", img->path,
		       img->sb.checkpoint_seq);
	else
		info("%s: journal: %" PRIu64 " commit%s (%" PRIu64 " block%s, %" PRIu64
		       " record%s) after checkpoint %" PRIu64 "; ends at block %" PRIu64 ": %s\n",
		       img->path, replay->nr_commits, plural(replay->nr_commits), replay->head,
		       plural(replay->head), replay->nr_records, plural(replay->nr_records),
		       img->sb.checkpoint_seq, replay->head,
		       replay->full ? "region full" : fvd_jblock_status_str(replay->stop));
	if (replay->nr_commits) {
		img->needs_write = true;
		if (img->sb.flags & FVD_FLAG_CLEAN)
			problem(img, "marked clean, but the journal holds %" PRIu64 " commits",
				replay->nr_commits);
	}
	check_journal_tail(img);
}

/*
 * The profile is advisory: a damaged one is an error --repair fixes by
 * clearing it, as the target ignores it.
 */
static void check_profile(struct image *img)
{
	const struct fvd_disk_profile_header *h;
	uint64_t sectors = 0;
	uint32_t i;

	if (!(img->sb.compat_features & FVD_COMPAT_PROFILE))
		return;
	img->profile = malloc(FVD_PROFILE_REGION_BYTES);
	if (!img->profile)
		fail_op("out of memory");
	read_at(img, img->profile, FVD_PROFILE_REGION_BYTES, img->sb.profile_offset * SECTOR);
	img->profile_status = fvd_profile_region_check(img->profile, img->sb.origin_sectors,
						       &img->profile_runs);
	h = (const void *)img->profile;
	switch (img->profile_status) {
	case FVD_PROFILE_OK:
		for (i = 0; i < img->profile_runs; i++)
			sectors += le64toh(fvd_profile_region_run(img->profile, i)->len);
		/* save 0: fvd-create copied it from another image or a file */
		if (!h->seq)
			info("%s: profile: %" PRIu32 " run%s, %" PRIu64 " sectors of the origin, copied by fvd-create%s\n",
			     img->path, img->profile_runs, plural(img->profile_runs), sectors,
			     le32toh(h->flags) & FVD_PROFILE_FULL ? ", ended full" : "");
		else
			info("%s: profile: %" PRIu32 " run%s, %" PRIu64 " sectors of the origin, save %" PRIu64 "%s\n",
			     img->path, img->profile_runs, plural(img->profile_runs), sectors,
			     (uint64_t)le64toh(h->seq),
			     le32toh(h->flags) & FVD_PROFILE_FULL ? ", ended full" : "");
		break;
	case FVD_PROFILE_NONE:
		info("%s: profile: none recorded\n", img->path);
		break;
	default:
		problem(img, "profile region at sector %" PRIu64 ": %s (--repair clears it; it only orders the prefetch)",
			img->sb.profile_offset, fvd_profile_status_str(img->profile_status));
		img->clear_profile = true;
		img->needs_write = true;
		break;
	}
}

static void check_flags(struct image *img)
{
	uint64_t local = count_bits(img->bitmap, img->bitmap_bytes);
	uint64_t origin_blocks = fvd_origin_blocks(&img->sb), absent = 0, b;

	if (img->sb.flags & FVD_FLAG_ALL_LOCAL) {
		for (b = 0; b < origin_blocks; b++)
			absent += !((img->bitmap[b / 8] >> (b % 8)) & 1);
		if (absent)
			problem(img, "marked all-local, but %" PRIu64 " of the %" PRIu64
				" blocks holding origin data are not local",
				absent, origin_blocks);
	}
	if (img->sb.flags & FVD_FLAG_NEEDS_CHECK)
		problem(img, "needs_check is set: the target met a metadata error and stopped writing");
	info("%s: %" PRIu64 "/%" PRIu64 " blocks local, %s\n", img->path, local,
	       img->sb.nr_blocks,
	       img->sb.flags & FVD_FLAG_CLEAN ? "clean" : "not cleanly shut down");
}

static void dump(struct image *img)
{
	const struct fvd_sb_info *sb = &img->sb;
	uint64_t block, start = 0;
	bool in_run = false;

	printf("superblock:\n");
	printf("  version             %u\n", sb->version);
	printf("  features            incompat 0x%" PRIx64 " ro_compat 0x%" PRIx64
	       " compat 0x%" PRIx64 "\n", sb->incompat_features,
	       sb->ro_compat_features, sb->compat_features);
	printf("  flags               0x%" PRIx64 "%s%s%s\n", sb->flags,
	       sb->flags & FVD_FLAG_CLEAN ? " clean" : "",
	       sb->flags & FVD_FLAG_ALL_LOCAL ? " all-local" : "",
	       sb->flags & FVD_FLAG_NEEDS_CHECK ? " needs-check" : "");
	printf("  uuid                ");
	print_uuid(sb->uuid);
	printf("\n");
	if (img->restore_primary)
		printf("  backup superblock   in use: the primary is not valid\n");
	else if (!(sb->ro_compat_features & FVD_RO_COMPAT_BACKUP_SB))
		printf("  backup superblock   none (made before dm-fvd 1.5)\n");
	else if (!backup_valid(img))
		printf("  backup superblock   sector %d: %s\n", FVD_BACKUP_SB_SECTOR,
		       img->backup_status == FVD_SB_NR_STATUS ? "past the end of the device" :
		       fvd_sb_status_str(img->backup_status));
	else
		printf("  backup superblock   sector %d: valid, checkpoint %" PRIu64 ", flags 0x%" PRIx64 "\n",
		       FVD_BACKUP_SB_SECTOR, img->backup.checkpoint_seq, img->backup.flags);
	if (sb->compat_features & FVD_COMPAT_ORIGIN_ID)
		printf("  origin identity     %" PRIu64 " sectors, fingerprint %08x, hint %s\n",
		       sb->origin_sectors, sb->origin_fingerprint,
		       sb->origin_hint[0] ? sb->origin_hint : "none");
	printf("  virtual sectors     %" PRIu64 "\n", sb->virtual_sectors);
	printf("  origin sectors      %" PRIu64 "\n", sb->origin_sectors);
	printf("  block sectors       %u (%" PRIu64 " blocks)\n", sb->block_sectors,
	       sb->nr_blocks);
	printf("  bitmap              sectors %" PRIu64 "+%" PRIu64 "\n",
	       sb->bitmap_offset, sb->bitmap_sectors);
	printf("  journal             sectors %" PRIu64 "+%" PRIu64 " (%" PRIu64 " blocks)\n",
	       sb->journal_offset, sb->journal_sectors, fvd_journal_blocks(sb));
	if (sb->compat_features & FVD_COMPAT_PROFILE)
		printf("  profile             sectors %" PRIu64 "+%" PRIu64 ": %s, %" PRIu32 " run%s\n",
		       sb->profile_offset, sb->profile_sectors,
		       fvd_profile_status_str(img->profile_status), img->profile_runs,
		       plural(img->profile_runs));
	printf("  data offset         %" PRIu64 "\n", sb->data_offset);
	printf("  checkpoint seq      %" PRIu64 "\n", sb->checkpoint_seq);
	printf("journal:\n");
	printf("  commits to replay   %" PRIu64 " (sequence %" PRIu64 "-%" PRIu64 ")\n",
	       img->replay.nr_commits, sb->checkpoint_seq + 1,
	       img->replay.next_seq - 1);
	printf("  blocks, records     %" PRIu64 ", %" PRIu64 "\n",
	       img->replay.head, img->replay.nr_records);
	if (fvd_compact(sb)) {
		uint64_t chunk, run = 0;

		printf("chunk map (virtual -> physical, after the journal):\n");
		for (chunk = 0; chunk <= sb->nr_chunks; chunk++) {
			uint32_t e = chunk < sb->nr_chunks ? table_get(img->table, chunk) : 0;
			uint32_t first = run < chunk ? table_get(img->table, run) : 0;

			if (run < chunk && (!e || e != first + (chunk - run))) {
				printf("  %" PRIu64 "-%" PRIu64 " -> %u-%" PRIu64 "\n", run,
				       chunk - 1, first - 1, first - 1 + (chunk - 1 - run));
				run = chunk;
			}
			if (!e)
				run = chunk + 1;
		}
	}
	printf("allocation map (local blocks, after the journal):\n");
	for (block = 0; block <= sb->nr_blocks; block++) {
		bool local = block < sb->nr_blocks && bit_test(img->bitmap, block);

		if (local && !in_run)
			start = block;
		if (!local && in_run)
			printf("  %" PRIu64 "-%" PRIu64 "%s\n", start, block - 1,
			       bit_test(img->home, start) ? "" : " (journal)");
		in_run = local;
	}
}

/* Write the replayed bitmap home, then the superblock: a checkpoint. */
static void repair(struct image *img)
{
	static uint8_t block[FVD_SB_SIZE];
	size_t off;

	for (off = 0; off < img->table_bytes; off += FVD_META_BLOCK_SIZE)
		if (memcmp(img->home_table + off, img->table + off, FVD_META_BLOCK_SIZE))
			write_at(img, img->table + off, FVD_META_BLOCK_SIZE,
				 img->sb.table_offset * SECTOR + off);
	for (off = 0; off < img->bitmap_bytes; off += FVD_META_BLOCK_SIZE)
		if (memcmp(img->home + off, img->bitmap + off, FVD_META_BLOCK_SIZE))
			write_at(img, img->bitmap + off, FVD_META_BLOCK_SIZE,
				 img->sb.bitmap_offset * SECTOR + off);
	if (img->clear_profile) {
		memset(img->profile, 0, FVD_PROFILE_HEADER_SIZE);
		write_at(img, img->profile, FVD_PROFILE_HEADER_SIZE,
			 img->sb.profile_offset * SECTOR);
	}
	sync_image(img);

	/*
	 * The checkpoint takes the sequence number a torn commit may hold, and
	 * any newer one found past the end, so no such block replays later.
	 */
	if (img->sb.incompat_features & FVD_INCOMPAT_JOURNAL)
		img->sb.checkpoint_seq = img->replay.next_seq > img->replay.max_seq ?
					 img->replay.next_seq : img->replay.max_seq;
	if ((img->sb.flags & FVD_FLAG_ALL_LOCAL) &&
	    !fvd_bits_all_set(img->bitmap, fvd_origin_blocks(&img->sb)))
		img->sb.flags &= ~FVD_FLAG_ALL_LOCAL;
	img->sb.flags |= FVD_FLAG_CLEAN;
	img->sb.flags &= ~FVD_FLAG_NEEDS_CHECK;
	fvd_sb_encode(&img->sb, block);
	write_at(img, block, sizeof(block), 0);
	sync_image(img);
	/* As the target does: the backup only after the primary is on disk. */
	if (img->sb.ro_compat_features & FVD_RO_COMPAT_BACKUP_SB) {
		write_at(img, block, sizeof(block), FVD_BACKUP_SB_SECTOR * SECTOR);
		sync_image(img);
	}
	printf("%s: repaired: %s%sjournal written home, checkpoint %" PRIu64 ", marked clean\n",
	       img->path, img->restore_primary ? "superblock restored from the backup, " : "",
	       img->clear_profile ? "damaged profile cleared, " : "",
	       img->sb.checkpoint_seq);
}

/* Options with no short form (-d is --data-dev, as in fvd-create). */
enum { OPT_DUMP = 256, OPT_ORIGIN, OPT_BACKUP_SB };

int main(int argc, char **argv)
{
	static const struct option options[] = {
		{ "repair", no_argument, NULL, 'r' },
		{ "dump", no_argument, NULL, OPT_DUMP },
		{ "data-dev", required_argument, NULL, 'd' },
		{ "origin", required_argument, NULL, OPT_ORIGIN },
		{ "backup-superblock", no_argument, NULL, OPT_BACKUP_SB },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	struct image img = { 0 };
	const char *data_path = NULL, *origin_path = NULL;
	bool do_repair = false, do_dump = false, force_backup = false;
	int c;

	while ((c = getopt_long(argc, argv, "rd:qhV", options, NULL)) != -1) {
		switch (c) {
		case 'r':
			do_repair = true;
			break;
		case OPT_DUMP:
			do_dump = true;
			break;
		case 'd':
			data_path = optarg;
			break;
		case OPT_ORIGIN:
			origin_path = optarg;
			break;
		case OPT_BACKUP_SB:
			force_backup = true;
			break;
		case 'q':
			quiet = true;
			break;
		case 'h':
			usage(stdout);
			return EXIT_CLEAN;
		case 'V':
			printf("%s (dm-fvd) %s\n", prog, FVD_VERSION);
			return EXIT_CLEAN;
		default:
			usage(stderr);
			return EXIT_OPERATIONAL;
		}
	}
	if (optind != argc - 1) {
		usage(stderr);
		return EXIT_OPERATIONAL;
	}
	img.path = argv[optind];
	/* Repairing an image a live target holds would corrupt it: O_EXCL. */
	img.fd = open(img.path, do_repair ? O_RDWR | O_EXCL : O_RDONLY);
	if (img.fd < 0)
		fail_op("cannot open %s%s: %s", img.path,
			do_repair ? " exclusively for repair" : "", strerror(errno));
	if (do_repair) {
		/* A file is held through its loop device, which O_EXCL cannot see. */
		struct stat st;
		char loop[64];

		if (!fstat(img.fd, &st) && S_ISREG(st.st_mode) &&
		    fvd_file_loop_user(&st, loop, sizeof(loop)))
			fail_op("cannot repair %s: it is in use, it backs %s (losetup --detach %s first)",
				img.path, loop, loop);
	}
	img.size = fd_size(img.fd, img.path);

	check_superblock(&img, force_backup);
	check_data_device(&img, data_path);
	if (origin_path)
		check_origin(&img, origin_path);
	check_bitmap(&img);
	read_table(&img);
	check_journal(&img);
	check_table(&img);
	check_profile(&img);
	check_flags(&img);
	if (do_dump)
		dump(&img);

	if (img.fatal) {
		printf("%s: %u error%s that --repair cannot fix\n", img.path, img.fatal,
		       plural(img.fatal));
		return EXIT_UNCORRECTED;
	}
	if (do_repair && img.needs_write) {
		repair(&img);
		return EXIT_CORRECTED;
	}
	if (img.errors) {
		printf("%s: %u error%s, run with --repair\n", img.path, img.errors,
		       plural(img.errors));
		return EXIT_UNCORRECTED;
	}
	return EXIT_CLEAN;
}
