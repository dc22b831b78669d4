// SPDX-License-Identifier: GPL-2.0
/*
 * KUnit tests for dm-fvd: superblock encoding and validation, block and
 * bitmap geometry, the commit bookkeeping of the bitmap, journal blocks,
 * commits and replay, compact images, the table line parser, and the
 * prefetch's throughput averaging and pause decision.  tests/kunit/run
 * places this file next to the dm-fvd sources in a
 * kernel tree and runs it on UML.
 */
#include <kunit/test.h>
#include <linux/device-mapper.h>
#include <linux/slab.h>
#include <linux/string.h>

#include "fvd-format.h"
#include "fvd-meta.h"
#include "fvd-prefetch.h"
#include "fvd-profile.h"
#include "fvd-table.h"

#define MiB_SECTORS	2048ULL

/* A valid 1 GiB image over a 600 MiB origin, 64 KiB blocks, shared data. */
static void fvd_test_layout(struct kunit *test, struct fvd_sb_info *sb)
{
	KUNIT_ASSERT_EQ(test, 0, fvd_layout_init(sb, 1024 * MiB_SECTORS,
						 600 * MiB_SECTORS, 128, 0,
						 16 * MiB_SECTORS, true));
}

/* ---- superblock ---- */

static void fvd_test_crc32c_check_value(struct kunit *test)
{
	KUNIT_EXPECT_EQ(test, 0xe3069283U, fvd_crc32c("123456789", 9));
	KUNIT_EXPECT_EQ(test, 0U, fvd_crc32c("", 0));
}

static void fvd_test_sb_roundtrip(struct kunit *test)
{
	struct fvd_sb_info sb, out;
	void *block = kunit_kzalloc(test, FVD_SB_SIZE, GFP_KERNEL);

	KUNIT_ASSERT_NOT_NULL(test, block);
	fvd_test_layout(test, &sb);
	memset(sb.uuid, 0xa5, sizeof(sb.uuid));
	sb.flags = FVD_FLAG_CLEAN;
	sb.compat_features = 1ULL << 40;	/* unknown compat bits are fine */
	sb.ro_compat_features |= 1ULL << 40;	/* decided by the target */
	sb.checkpoint_seq = 77;
	sb.compat_features |= FVD_COMPAT_ORIGIN_ID;
	sb.origin_fingerprint = 0xdeadbeef;
	strscpy(sb.origin_hint, "/dev/disk/by-id/wwn-0x5000c500a1b2c3d4",
		sizeof(sb.origin_hint));
	fvd_sb_encode(&sb, block);
	KUNIT_ASSERT_EQ(test, FVD_SB_OK, fvd_sb_decode(block, &out));
	KUNIT_EXPECT_EQ(test, 0, memcmp(&sb, &out, sizeof(sb)));
	KUNIT_EXPECT_EQ(test, out.nr_blocks, 16384ULL);
	KUNIT_EXPECT_EQ(test, out.block_shift, 7U);
}

/* A hint that fills its field is cut to fit, never read past its end. */
static void fvd_test_sb_hint_terminated(struct kunit *test)
{
	struct fvd_disk_superblock *disk;
	struct fvd_sb_info sb, out;

	disk = kunit_kzalloc(test, sizeof(*disk), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, disk);
	fvd_test_layout(test, &sb);
	fvd_sb_encode(&sb, disk);
	memset(disk->origin_hint, 'a', sizeof(disk->origin_hint));
	disk->csum = cpu_to_le32(fvd_sb_csum(disk));
	KUNIT_ASSERT_EQ(test, FVD_SB_OK, fvd_sb_decode(disk, &out));
	KUNIT_EXPECT_EQ(test, strlen(out.origin_hint), FVD_ORIGIN_HINT_SIZE - 1);
	/* and the encoder writes a terminated one */
	memset(out.origin_hint, 'b', sizeof(out.origin_hint));
	fvd_sb_encode(&out, disk);
	KUNIT_EXPECT_EQ(test, disk->origin_hint[FVD_ORIGIN_HINT_SIZE - 1], 0);
	KUNIT_EXPECT_EQ(test, disk->origin_hint[FVD_ORIGIN_HINT_SIZE - 2], 'b');
}

/*
 * The fingerprint's ranges: inside the origin, the edges first, the samples
 * 4 KiB aligned and where the format says, whatever the origin's size.
 */
static void fvd_test_fp_ranges(struct kunit *test)
{
	static const u64 sizes[] = { 1, 7, 8, 100, 2047, 2048, 2049, 3000,
				     4096, 4097, 1ULL << 21, (1ULL << 44) - 1 };
	struct fvd_fp_range r[FVD_FP_MAX_RANGES];
	unsigned int n, i, j;
	u64 size, covered;

	KUNIT_EXPECT_EQ(test, 0U, fvd_origin_fp_ranges(0, r));
	for (i = 0; i < ARRAY_SIZE(sizes); i++) {
		size = sizes[i];
		n = fvd_origin_fp_ranges(size, r);
		KUNIT_EXPECT_EQ_MSG(test, n, size > FVD_FP_EDGE_SECTORS ?
				    FVD_FP_MAX_RANGES : FVD_FP_MAX_RANGES - 1,
				    "origin of %llu sectors", size);
		KUNIT_EXPECT_EQ(test, r[0].start, 0ULL);
		KUNIT_EXPECT_EQ(test, r[0].len, min_t(u64, size, FVD_FP_EDGE_SECTORS));
		covered = r[0].len;
		if (size > FVD_FP_EDGE_SECTORS) {
			/* the tail ends the origin and follows the head */
			KUNIT_EXPECT_EQ(test, r[1].start + r[1].len, size);
			KUNIT_EXPECT_EQ(test, r[1].start,
					max_t(u64, FVD_FP_EDGE_SECTORS,
					      size - FVD_FP_EDGE_SECTORS));
			covered += r[1].len;
		}
		/* every edge byte once: the first and last MiB, or all of it */
		KUNIT_EXPECT_EQ(test, covered, min_t(u64, size, 2 * FVD_FP_EDGE_SECTORS));
		for (j = n - FVD_FP_NR_SAMPLES; j < n; j++) {
			u64 at = size * (j - (n - FVD_FP_NR_SAMPLES) + 1) /
				 (FVD_FP_NR_SAMPLES + 1);

			KUNIT_EXPECT_EQ(test, r[j].start % FVD_FP_SAMPLE_SECTORS, 0ULL);
			KUNIT_EXPECT_EQ(test, r[j].start, at - at % FVD_FP_SAMPLE_SECTORS);
			KUNIT_EXPECT_GT(test, r[j].len, 0ULL);
			KUNIT_EXPECT_LE(test, r[j].len, (u64)FVD_FP_SAMPLE_SECTORS);
			KUNIT_EXPECT_LE(test, r[j].start + r[j].len, size);
		}
	}
	/* a 1 GiB origin: samples spread over it, a full 4 KiB each */
	n = fvd_origin_fp_ranges(1ULL << 21, r);
	KUNIT_EXPECT_EQ(test, r[2].start, 123360ULL);
	KUNIT_EXPECT_EQ(test, r[17].start, 1973784ULL);
	KUNIT_EXPECT_EQ(test, r[17].len, 8ULL);
}

static void fvd_test_sb_little_endian(struct kunit *test)
{
	struct fvd_sb_info sb;
	u8 *block = kunit_kzalloc(test, FVD_SB_SIZE, GFP_KERNEL);

	KUNIT_ASSERT_NOT_NULL(test, block);
	fvd_test_layout(test, &sb);
	fvd_sb_encode(&sb, block);
	KUNIT_EXPECT_EQ(test, 0, memcmp(block, "FVD-DM1", 8));
	/* version 1 at byte 8, little-endian */
	KUNIT_EXPECT_EQ(test, block[8], 1);
	KUNIT_EXPECT_EQ(test, block[9], 0);
	/* block_sectors (128) at its fixed offset */
	KUNIT_EXPECT_EQ(test, block[offsetof(struct fvd_disk_superblock,
					     block_sectors)], 128);
}

struct fvd_sb_case {
	const char *name;
	void (*mutate)(struct fvd_sb_info *sb, struct fvd_disk_superblock *disk);
	bool raw;	/* mutate the encoded block, do not re-encode */
	enum fvd_sb_status expect;
};

static void mut_magic(struct fvd_sb_info *sb, struct fvd_disk_superblock *d)
{
	d->magic = cpu_to_le64(FVD_MAGIC + 1);
}

static void mut_csum(struct fvd_sb_info *sb, struct fvd_disk_superblock *d)
{
	d->csum = cpu_to_le32(le32_to_cpu(d->csum) ^ 1);
}

static void mut_payload(struct fvd_sb_info *sb, struct fvd_disk_superblock *d)
{
	d->padding[100] ^= 0x10;	/* even the padding is checksummed */
}

static void mut_version(struct fvd_sb_info *sb, struct fvd_disk_superblock *d)
{
	sb->version = 2;
}

static void mut_incompat(struct fvd_sb_info *sb, struct fvd_disk_superblock *d)
{
	sb->incompat_features = 1ULL << 63;
}

static void mut_flags(struct fvd_sb_info *sb, struct fvd_disk_superblock *d)
{
	sb->flags = 1ULL << 5;
}

static void mut_block_small(struct fvd_sb_info *sb, struct fvd_disk_superblock *d)
{
	sb->block_sectors = 4;		/* 2 KiB */
}

static void mut_block_large(struct fvd_sb_info *sb, struct fvd_disk_superblock *d)
{
	sb->block_sectors = 8192;	/* 4 MiB */
}

static void mut_block_npot(struct fvd_sb_info *sb, struct fvd_disk_superblock *d)
{
	sb->block_sectors = 96;
}

static void mut_virtual_zero(struct fvd_sb_info *sb, struct fvd_disk_superblock *d)
{
	sb->virtual_sectors = 0;
}

static void mut_virtual_huge(struct fvd_sb_info *sb, struct fvd_disk_superblock *d)
{
	sb->virtual_sectors = 1ULL << 50;
}

static void mut_too_many_blocks(struct fvd_sb_info *sb, struct fvd_disk_superblock *d)
{
	sb->virtual_sectors = 1ULL << 40;	/* 512 TiB of 64 KiB blocks */
}

static void mut_origin(struct fvd_sb_info *sb, struct fvd_disk_superblock *d)
{
	sb->origin_sectors = sb->virtual_sectors + 1;
}

static void mut_chunk(struct fvd_sb_info *sb, struct fvd_disk_superblock *d)
{
	sb->chunk_sectors = 2048;
}

static void mut_bitmap_offset(struct fvd_sb_info *sb, struct fvd_disk_superblock *d)
{
	sb->bitmap_offset = 0;		/* over the superblock */
}

static void mut_bitmap_align(struct fvd_sb_info *sb, struct fvd_disk_superblock *d)
{
	sb->bitmap_offset = 9;
}

static void mut_bitmap_short(struct fvd_sb_info *sb, struct fvd_disk_superblock *d)
{
	sb->virtual_sectors *= 4;	/* needs two bitmap blocks, has one */
}

static void mut_bitmap_long(struct fvd_sb_info *sb, struct fvd_disk_superblock *d)
{
	sb->bitmap_sectors += 8;
}

static void mut_table(struct fvd_sb_info *sb, struct fvd_disk_superblock *d)
{
	sb->table_sectors = 8;
}

static void mut_journal_align(struct fvd_sb_info *sb, struct fvd_disk_superblock *d)
{
	sb->journal_sectors = 12;
}

static void mut_journal_wrap(struct fvd_sb_info *sb, struct fvd_disk_superblock *d)
{
	sb->journal_offset = ~0ULL - 7;	/* offset + length overflows */
}

static void mut_overlap(struct fvd_sb_info *sb, struct fvd_disk_superblock *d)
{
	sb->journal_offset = sb->bitmap_offset;
}

static void mut_bitmap_on_backup(struct fvd_sb_info *sb, struct fvd_disk_superblock *d)
{
	sb->bitmap_offset = FVD_BACKUP_SB_SECTOR;
}

static void mut_journal_on_backup(struct fvd_sb_info *sb, struct fvd_disk_superblock *d)
{
	sb->journal_offset = FVD_BACKUP_SB_SECTOR;
}

/* An image made before the backup: its bitmap starts in the second block. */
static void mut_no_backup(struct fvd_sb_info *sb, struct fvd_disk_superblock *d)
{
	sb->ro_compat_features &= ~FVD_RO_COMPAT_BACKUP_SB;
	sb->bitmap_offset = FVD_META_BLOCK_SECTORS;
}

static void mut_needs_check(struct fvd_sb_info *sb, struct fvd_disk_superblock *d)
{
	sb->flags |= FVD_FLAG_NEEDS_CHECK;
}

static void mut_data_offset(struct fvd_sb_info *sb, struct fvd_disk_superblock *d)
{
	sb->data_offset = sb->bitmap_offset;	/* data over the bitmap */
}

static const struct fvd_sb_case fvd_sb_cases[] = {
	{ "bad magic", mut_magic, true, FVD_SB_BAD_MAGIC },
	{ "bad checksum", mut_csum, true, FVD_SB_BAD_CSUM },
	{ "payload changed", mut_payload, true, FVD_SB_BAD_CSUM },
	{ "version 2", mut_version, false, FVD_SB_BAD_VERSION },
	{ "unknown incompat bit", mut_incompat, false, FVD_SB_UNKNOWN_INCOMPAT },
	{ "unknown flag", mut_flags, false, FVD_SB_UNKNOWN_FLAGS },
	{ "block size 2K", mut_block_small, false, FVD_SB_BAD_BLOCK_SIZE },
	{ "block size 4M", mut_block_large, false, FVD_SB_BAD_BLOCK_SIZE },
	{ "block size 48K", mut_block_npot, false, FVD_SB_BAD_BLOCK_SIZE },
	{ "virtual size 0", mut_virtual_zero, false, FVD_SB_BAD_VIRTUAL_SIZE },
	{ "virtual size 512 PiB", mut_virtual_huge, false, FVD_SB_BAD_VIRTUAL_SIZE },
	{ "2^33 blocks", mut_too_many_blocks, false, FVD_SB_TOO_MANY_BLOCKS },
	{ "origin larger than disk", mut_origin, false, FVD_SB_BAD_ORIGIN_SIZE },
	{ "chunk size set", mut_chunk, false, FVD_SB_BAD_CHUNK_SIZE },
	{ "bitmap over superblock", mut_bitmap_offset, false, FVD_SB_BAD_BITMAP },
	{ "bitmap misaligned", mut_bitmap_align, false, FVD_SB_BAD_BITMAP },
	{ "bitmap too short", mut_bitmap_short, false, FVD_SB_BAD_BITMAP },
	{ "bitmap too long", mut_bitmap_long, false, FVD_SB_BAD_BITMAP },
	{ "chunk table present", mut_table, false, FVD_SB_BAD_TABLE },
	{ "journal misaligned", mut_journal_align, false, FVD_SB_BAD_JOURNAL },
	{ "journal wraps", mut_journal_wrap, false, FVD_SB_BAD_JOURNAL },
	{ "journal over bitmap", mut_overlap, false, FVD_SB_REGIONS_OVERLAP },
	{ "data over metadata", mut_data_offset, false, FVD_SB_BAD_DATA_OFFSET },
	{ "bitmap over the backup superblock", mut_bitmap_on_backup, false, FVD_SB_BAD_BITMAP },
	{ "journal over the backup superblock", mut_journal_on_backup, false, FVD_SB_BAD_JOURNAL },
	{ "no backup, bitmap in block 1", mut_no_backup, false, FVD_SB_OK },
	{ "needs_check set", mut_needs_check, false, FVD_SB_OK },
};

static void fvd_sb_case_desc(const struct fvd_sb_case *c, char *desc)
{
	strscpy(desc, c->name, KUNIT_PARAM_DESC_SIZE);
}

KUNIT_ARRAY_PARAM(fvd_sb, fvd_sb_cases, fvd_sb_case_desc);

static void fvd_test_sb_rejects(struct kunit *test)
{
	const struct fvd_sb_case *c = test->param_value;
	struct fvd_disk_superblock *disk;
	struct fvd_sb_info sb, out;

	disk = kunit_kzalloc(test, sizeof(*disk), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, disk);
	fvd_test_layout(test, &sb);
	fvd_sb_encode(&sb, disk);
	c->mutate(&sb, disk);
	if (!c->raw)
		fvd_sb_encode(&sb, disk);
	KUNIT_EXPECT_EQ(test, c->expect, fvd_sb_decode(disk, &out));
	KUNIT_EXPECT_STRNEQ(test, "unknown error", fvd_sb_status_str(c->expect));
}

/*
 * A table sizes its buffers by the superblock it loaded: every layout field
 * of the one read again at resume must match, only the flags and the
 * checkpoint may move on.
 */
static void fvd_test_expect_change(struct kunit *test,
				   const struct fvd_sb_info *sb,
				   const struct fvd_sb_info *other,
				   const char *field)
{
	const char *changed;
	u64 was, now;

	changed = fvd_sb_layout_change(sb, other, &was, &now);
	KUNIT_ASSERT_NOT_NULL_MSG(test, changed, "%s change not seen", field);
	KUNIT_EXPECT_STREQ(test, changed, field);
}

static void fvd_test_sb_layout_change(struct kunit *test)
{
	struct fvd_sb_info sb, other;
	u64 was, now;

	KUNIT_ASSERT_EQ(test, 0, fvd_layout_init(&sb, 64 * MiB_SECTORS, 64 * MiB_SECTORS,
						 128, 512, 64, false));
	other = sb;
	other.flags |= FVD_FLAG_CLEAN | FVD_FLAG_ALL_LOCAL;
	other.checkpoint_seq = 99;
	other.compat_features = 4;
	KUNIT_EXPECT_PTR_EQ(test, fvd_sb_layout_change(&sb, &other, &was, &now),
			    (const char *)NULL);

	other = sb;
	other.chunk_sectors = 1024;
	fvd_test_expect_change(test, &sb, &other, "chunk_sectors");
	fvd_sb_layout_change(&sb, &other, &was, &now);
	KUNIT_EXPECT_EQ(test, was, 512ULL);
	KUNIT_EXPECT_EQ(test, now, 1024ULL);
	other = sb;
	other.table_offset += 8;
	fvd_test_expect_change(test, &sb, &other, "table_offset");
	other = sb;
	other.table_sectors += 8;
	fvd_test_expect_change(test, &sb, &other, "table_sectors");
	other = sb;
	other.bitmap_sectors += 8;
	fvd_test_expect_change(test, &sb, &other, "bitmap_sectors");
	other = sb;
	other.ro_compat_features ^= FVD_RO_COMPAT_BACKUP_SB;
	fvd_test_expect_change(test, &sb, &other, "ro_compat_features");
	/* the origin's identity is not layout */
	other = sb;
	other.origin_fingerprint ^= 1;
	other.origin_hint[0] = '/';
	other.flags |= FVD_FLAG_NEEDS_CHECK;
	KUNIT_EXPECT_PTR_EQ(test, fvd_sb_layout_change(&sb, &other, &was, &now),
			    (const char *)NULL);
	other = sb;
	other.uuid[15] ^= 1;
	fvd_test_expect_change(test, &sb, &other, "uuid");
}

static void fvd_test_sb_status_strings(struct kunit *test)
{
	int i;

	for (i = 0; i < FVD_SB_NR_STATUS; i++) {
		KUNIT_EXPECT_NOT_NULL(test, fvd_sb_status_str(i));
		KUNIT_EXPECT_STRNEQ(test, "unknown error", fvd_sb_status_str(i));
	}
	KUNIT_EXPECT_STREQ(test, "unknown error",
			   fvd_sb_status_str(FVD_SB_NR_STATUS));
}

static struct kunit_case fvd_format_cases[] = {
	KUNIT_CASE(fvd_test_crc32c_check_value),
	KUNIT_CASE(fvd_test_sb_roundtrip),
	KUNIT_CASE(fvd_test_sb_little_endian),
	KUNIT_CASE(fvd_test_sb_hint_terminated),
	KUNIT_CASE(fvd_test_fp_ranges),
	KUNIT_CASE_PARAM(fvd_test_sb_rejects, fvd_sb_gen_params),
	KUNIT_CASE(fvd_test_sb_layout_change),
	KUNIT_CASE(fvd_test_sb_status_strings),
	{}
};

static struct kunit_suite fvd_format_suite = {
	.name = "dm-fvd-format",
	.test_cases = fvd_format_cases,
};

/* ---- geometry ---- */

static void fvd_test_layout_shared(struct kunit *test)
{
	struct fvd_sb_info sb;

	fvd_test_layout(test, &sb);
	/* after the superblock and its backup */
	KUNIT_EXPECT_EQ(test, sb.ro_compat_features, FVD_RO_COMPAT_BACKUP_SB);
	KUNIT_EXPECT_EQ(test, sb.bitmap_offset, 16ULL);
	/* 16384 blocks = 2 KiB of bits, padded to one 4 KiB block */
	KUNIT_EXPECT_EQ(test, sb.bitmap_sectors, 8ULL);
	KUNIT_EXPECT_EQ(test, sb.journal_offset, 24ULL);
	KUNIT_EXPECT_EQ(test, sb.metadata_sectors, 24 + 16 * MiB_SECTORS);
	/* data starts on the next 1 MiB boundary */
	KUNIT_EXPECT_EQ(test, sb.data_offset, 17 * MiB_SECTORS);
}

static void fvd_test_layout_separate_and_large_blocks(struct kunit *test)
{
	struct fvd_sb_info sb;

	KUNIT_ASSERT_EQ(test, 0, fvd_layout_init(&sb, 1024 * MiB_SECTORS, 0,
						 4096, 0, 0, false));
	KUNIT_EXPECT_EQ(test, sb.data_offset, 0ULL);
	KUNIT_EXPECT_EQ(test, sb.journal_sectors, 0ULL);
	KUNIT_EXPECT_EQ(test, sb.nr_blocks, 512ULL);
	/* 2 MiB blocks: data aligned to a block, not just 1 MiB */
	KUNIT_ASSERT_EQ(test, 0, fvd_layout_init(&sb, 1024 * MiB_SECTORS, 0,
						 4096, 0, 8, true));
	KUNIT_EXPECT_EQ(test, sb.data_offset, 4096ULL);
}

static void fvd_test_layout_rejects(struct kunit *test)
{
	struct fvd_sb_info sb;

	KUNIT_EXPECT_EQ(test, -EINVAL, fvd_layout_init(&sb, 0, 0, 128, 0, 0, true));
	KUNIT_EXPECT_EQ(test, -EINVAL, fvd_layout_init(&sb, 100, 101, 128, 0, 0, true));
	KUNIT_EXPECT_EQ(test, -EINVAL, fvd_layout_init(&sb, 100, 0, 100, 0, 0, true));
	KUNIT_EXPECT_EQ(test, -EINVAL, fvd_layout_init(&sb, 100, 0, 4, 0, 0, true));
	KUNIT_EXPECT_EQ(test, -EINVAL, fvd_layout_init(&sb, 100, 0, 8192, 0, 0, true));
}

static void fvd_test_bitmap_region_edges(struct kunit *test)
{
	KUNIT_EXPECT_EQ(test, fvd_bitmap_bytes(1), 1ULL);
	KUNIT_EXPECT_EQ(test, fvd_bitmap_bytes(8), 1ULL);
	KUNIT_EXPECT_EQ(test, fvd_bitmap_bytes(9), 2ULL);
	KUNIT_EXPECT_EQ(test, fvd_bitmap_region_sectors(1), 8ULL);
	KUNIT_EXPECT_EQ(test, fvd_bitmap_region_sectors(32768), 8ULL);
	KUNIT_EXPECT_EQ(test, fvd_bitmap_region_sectors(32769), 16ULL);
	KUNIT_EXPECT_EQ(test, fvd_meta_mblock_of(32767), 0UL);
	KUNIT_EXPECT_EQ(test, fvd_meta_mblock_of(32768), 1UL);
}

/* 10 blocks and a half of 64 KiB; the origin ends inside block 4. */
static void fvd_test_partial_geometry(struct kunit *test, struct fvd_sb_info *sb)
{
	KUNIT_ASSERT_EQ(test, 0, fvd_layout_init(sb, 10 * 128 + 64,
						 4 * 128 + 24, 128, 0, 0, true));
}

static void fvd_test_block_edges(struct kunit *test)
{
	struct fvd_sb_info sb;

	fvd_test_partial_geometry(test, &sb);
	KUNIT_EXPECT_EQ(test, sb.nr_blocks, 11ULL);
	KUNIT_EXPECT_EQ(test, fvd_sector_to_block(&sb, 0), 0ULL);
	KUNIT_EXPECT_EQ(test, fvd_sector_to_block(&sb, 127), 0ULL);
	KUNIT_EXPECT_EQ(test, fvd_sector_to_block(&sb, 128), 1ULL);
	KUNIT_EXPECT_EQ(test, fvd_sector_to_block(&sb, 10 * 128 + 63), 10ULL);
	KUNIT_EXPECT_EQ(test, fvd_block_start(&sb, 10), 1280ULL);
	KUNIT_EXPECT_EQ(test, fvd_block_len(&sb, 0), 128U);
	KUNIT_EXPECT_EQ(test, fvd_block_len(&sb, 9), 128U);
	KUNIT_EXPECT_EQ(test, fvd_block_len(&sb, 10), 64U);	/* partial last */
	KUNIT_EXPECT_EQ(test, fvd_block_len(&sb, 11), 0U);	/* past the end */
}

static void fvd_test_origin_edges(struct kunit *test)
{
	struct fvd_sb_info sb;

	fvd_test_partial_geometry(test, &sb);
	KUNIT_EXPECT_EQ(test, fvd_block_origin_len(&sb, 0), 128U);
	KUNIT_EXPECT_EQ(test, fvd_block_origin_len(&sb, 3), 128U);
	KUNIT_EXPECT_EQ(test, fvd_block_origin_len(&sb, 4), 24U);	/* straddles */
	KUNIT_EXPECT_EQ(test, fvd_block_origin_len(&sb, 5), 0U);	/* past origin */
	KUNIT_EXPECT_EQ(test, fvd_block_origin_len(&sb, 10), 0U);

	/* origin as large as the disk, partial last block */
	KUNIT_ASSERT_EQ(test, 0, fvd_layout_init(&sb, 10 * 128 + 64,
						 10 * 128 + 64, 128, 0, 0, true));
	KUNIT_EXPECT_EQ(test, fvd_block_origin_len(&sb, 10), 64U);
	/* no origin */
	KUNIT_ASSERT_EQ(test, 0, fvd_layout_init(&sb, 1280, 0, 128, 0, 0, true));
	KUNIT_EXPECT_EQ(test, fvd_block_origin_len(&sb, 0), 0U);
}

/*
 * An image without a chunk table: the chunk helpers stay defined.  The KUnit
 * build enables UBSAN, which fails the test on an out-of-range shift.
 */
static void fvd_test_chunk_helpers_without_chunks(struct kunit *test)
{
	struct fvd_sb_info sb;
	u64 first, end;

	/* 64 KiB blocks: chunk_shift (0) is below block_shift (7) */
	KUNIT_ASSERT_EQ(test, 0, fvd_layout_init(&sb, 1024 * MiB_SECTORS, 0, 128,
						 0, 64, true));
	KUNIT_EXPECT_EQ(test, fvd_block_chunk(&sb, 1000), 1000ULL);
	fvd_chunk_blocks(&sb, 7, &first, &end);
	KUNIT_EXPECT_EQ(test, first, 7ULL);
	KUNIT_EXPECT_EQ(test, end, 8ULL);
}

static void fvd_test_bit_order(struct kunit *test)
{
	u8 map[4] = { 0 };

	fvd_bit_set(map, 0);
	fvd_bit_set(map, 9);
	fvd_bit_set(map, 31);
	/* LSB first within each byte, as the FVD bitmap */
	KUNIT_EXPECT_EQ(test, map[0], 0x01);
	KUNIT_EXPECT_EQ(test, map[1], 0x02);
	KUNIT_EXPECT_EQ(test, map[2], 0x00);
	KUNIT_EXPECT_EQ(test, map[3], 0x80);
	KUNIT_EXPECT_TRUE(test, fvd_bit_test(map, 9));
	KUNIT_EXPECT_FALSE(test, fvd_bit_test(map, 8));
}

static struct kunit_case fvd_geometry_cases[] = {
	KUNIT_CASE(fvd_test_layout_shared),
	KUNIT_CASE(fvd_test_layout_separate_and_large_blocks),
	KUNIT_CASE(fvd_test_layout_rejects),
	KUNIT_CASE(fvd_test_bitmap_region_edges),
	KUNIT_CASE(fvd_test_block_edges),
	KUNIT_CASE(fvd_test_origin_edges),
	KUNIT_CASE(fvd_test_chunk_helpers_without_chunks),
	KUNIT_CASE(fvd_test_bit_order),
	{}
};

static struct kunit_suite fvd_geometry_suite = {
	.name = "dm-fvd-geometry",
	.test_cases = fvd_geometry_cases,
};

/* ---- commit bookkeeping ---- */

/* Journal records as a replay hands them out. */
struct fvd_jrec_log {
	int nr;
	struct fvd_jrec recs[8];
};

static int fvd_test_collect(void *context, const struct fvd_jrec *rec)
{
	struct fvd_jrec_log *log = context;

	if (log->nr == ARRAY_SIZE(log->recs))
		return -E2BIG;
	log->recs[log->nr++] = *rec;
	return 0;
}

/* Two bitmap metadata blocks' worth of blocks: 65536 + 10. */
static struct fvd_meta *fvd_test_meta(struct kunit *test)
{
	struct fvd_meta *meta = kunit_kzalloc(test, sizeof(*meta), GFP_KERNEL);

	KUNIT_ASSERT_NOT_NULL(test, meta);
	KUNIT_ASSERT_EQ(test, 0, fvd_layout_init(&meta->sb, (65536 + 10) * 8ULL,
						 0, 8, 0, 0, true));
	KUNIT_ASSERT_EQ(test, 0, fvd_meta_alloc(meta));
	KUNIT_EXPECT_EQ(test, meta->bits.nr_mblocks, 3UL);
	return meta;
}

static void fvd_test_meta_free(struct fvd_meta *meta)
{
	fvd_meta_close(meta);
}

/* The first half of a commit of an image without a journal. */
static void fvd_test_freeze(struct fvd_meta *meta)
{
	fvd_meta_sweep_start(meta);
	while (!fvd_meta_freeze_step(meta))
		;
}

/* Describe steps into @jb until the commit is described or @jb is full. */
static enum fvd_describe fvd_test_describe(struct fvd_meta *meta,
					   struct fvd_jbuilder *jb)
{
	enum fvd_describe step;

	fvd_jbuilder_reset(jb);
	while ((step = fvd_meta_describe_step(meta, jb)) == FVD_DESCRIBE_MORE)
		;
	return step;
}

/* A journal builder of @nr blocks. */
static struct fvd_jbuilder *fvd_test_builder(struct kunit *test, unsigned int nr)
{
	struct fvd_jbuilder *jb = kunit_kzalloc(test, sizeof(*jb), GFP_KERNEL);

	KUNIT_ASSERT_NOT_NULL(test, jb);
	jb->max_blocks = nr;
	jb->buf = kunit_kzalloc(test, nr * FVD_JOURNAL_BLOCK_SIZE, GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, jb->buf);
	return jb;
}

/* A journal replayed in memory: records applied as a load applies them. */
struct fvd_replay_state {
	const struct fvd_sb_info *sb;
	u8 *bits;
	u8 *table;
};

static int fvd_test_replay_rec(void *context, const struct fvd_jrec *rec)
{
	struct fvd_replay_state *rs = context;

	return fvd_jrec_apply(rs->sb, rec, rs->bits, rs->table);
}

/* Seal what @jb holds as one journal commit and replay it onto @rs. */
static void fvd_test_replay_builder(struct kunit *test, struct fvd_jbuilder *jb,
				    struct fvd_replay_state *rs)
{
	unsigned int i;
	u8 *block;

	fvd_jbuilder_seal(jb, 1);
	for (i = 0; i < jb->nr_blocks; i++) {
		block = jb->buf + i * FVD_JOURNAL_BLOCK_SIZE;
		KUNIT_ASSERT_EQ(test, FVD_JB_OK, fvd_jblock_check(block, 1, rs->sb));
		KUNIT_ASSERT_EQ(test, 0, fvd_jblock_for_each(block, fvd_test_replay_rec,
							     rs));
	}
}

/* A whole journaled commit, into one round of @jb; its records in @log. */
static void fvd_test_commit(struct kunit *test, struct fvd_meta *meta,
			    struct fvd_jbuilder *jb, struct fvd_jrec_log *log)
{
	unsigned int i;

	fvd_meta_sweep_start(meta);
	KUNIT_ASSERT_EQ(test, fvd_test_describe(meta, jb), FVD_DESCRIBE_DONE);
	fvd_meta_round_freeze(meta);
	fvd_meta_sweep_done(meta, false);
	if (!log)
		return;
	memset(log, 0, sizeof(*log));
	fvd_jbuilder_seal(jb, 1);
	for (i = 0; i < jb->nr_blocks; i++)
		KUNIT_ASSERT_EQ(test, 0,
				fvd_jblock_for_each(jb->buf + i * FVD_JOURNAL_BLOCK_SIZE,
						    fvd_test_collect, log));
}

static void fvd_test_commit_staging(struct kunit *test)
{
	struct fvd_meta *meta = fvd_test_meta(test);

	KUNIT_EXPECT_TRUE(test, fvd_meta_clean(meta));
	KUNIT_EXPECT_TRUE(test, fvd_meta_mark_local(meta, 5));
	KUNIT_EXPECT_FALSE(test, fvd_meta_mark_local(meta, 5));
	KUNIT_EXPECT_TRUE(test, fvd_meta_mark_local(meta, 65536 + 3));
	KUNIT_EXPECT_EQ(test, meta->nr_local, 2ULL);
	KUNIT_EXPECT_EQ(test, meta->bits.nr_dirty, 2UL);
	KUNIT_EXPECT_FALSE(test, fvd_meta_block_durable(meta, 5));
	KUNIT_EXPECT_FALSE(test, fvd_meta_clean(meta));

	fvd_test_freeze(meta);
	KUNIT_EXPECT_TRUE(test, fvd_bit_test(meta->bits.staged, 5));
	KUNIT_EXPECT_FALSE(test, fvd_meta_block_durable(meta, 5));
	KUNIT_EXPECT_EQ(test, meta->bits.nr_dirty, 0UL);

	/*
	 * A block that completes after the freeze (and so possibly after
	 * the data flush) must not be written by this commit.
	 */
	KUNIT_EXPECT_TRUE(test, fvd_meta_mark_local(meta, 6));
	KUNIT_EXPECT_FALSE(test, fvd_bit_test(meta->bits.staged, 6));
	KUNIT_EXPECT_EQ(test, meta->bits.nr_dirty, 1UL);

	fvd_meta_sweep_done(meta, false);
	KUNIT_EXPECT_TRUE(test, fvd_meta_block_durable(meta, 65536 + 3));
	KUNIT_EXPECT_FALSE(test, fvd_meta_block_durable(meta, 6));
	KUNIT_EXPECT_FALSE(test, fvd_meta_clean(meta));

	fvd_test_freeze(meta);
	KUNIT_EXPECT_TRUE(test, fvd_bit_test(meta->bits.staged, 6));
	fvd_meta_sweep_done(meta, false);
	KUNIT_EXPECT_TRUE(test, fvd_meta_clean(meta));
	KUNIT_EXPECT_TRUE(test, fvd_meta_block_durable(meta, 6));
	fvd_test_meta_free(meta);
}

static void fvd_test_commit_failure_keeps_dirty(struct kunit *test)
{
	struct fvd_meta *meta = fvd_test_meta(test);

	fvd_meta_mark_local(meta, 65536 + 9);
	fvd_test_freeze(meta);
	fvd_meta_sweep_done(meta, true);
	KUNIT_EXPECT_EQ(test, meta->bits.nr_dirty, 1UL);
	KUNIT_EXPECT_FALSE(test, fvd_meta_block_durable(meta, 65536 + 9));
	fvd_test_freeze(meta);
	fvd_meta_sweep_done(meta, false);
	KUNIT_EXPECT_TRUE(test, fvd_meta_clean(meta));
	fvd_test_meta_free(meta);
}

/*
 * One describe step covers one bitmap block's worth of blocks: the work
 * done in one hold of the target's lock is bounded, however much changed.
 */
static void fvd_test_describe_step_bounded(struct kunit *test)
{
	struct fvd_meta *meta = fvd_test_meta(test);
	struct fvd_jbuilder *jb = fvd_test_builder(test, 4);

	fvd_meta_mark_local(meta, 7);
	fvd_meta_mark_local(meta, 32768 + 7);
	fvd_meta_mark_local(meta, 65536 + 7);
	fvd_meta_sweep_start(meta);
	fvd_jbuilder_reset(jb);
	KUNIT_EXPECT_EQ(test, fvd_meta_describe_step(meta, jb), FVD_DESCRIBE_MORE);
	KUNIT_EXPECT_EQ(test, meta->sweep_block, 32768ULL);
	KUNIT_EXPECT_EQ(test, jb->nr_records, 1ULL);
	KUNIT_EXPECT_EQ(test, fvd_meta_describe_step(meta, jb), FVD_DESCRIBE_MORE);
	KUNIT_EXPECT_EQ(test, jb->nr_records, 2ULL);
	KUNIT_EXPECT_EQ(test, fvd_meta_describe_step(meta, jb), FVD_DESCRIBE_DONE);
	KUNIT_EXPECT_EQ(test, jb->nr_records, 3ULL);
	fvd_meta_sweep_done(meta, false);
	/* what did not change is skipped: one step to the end */
	fvd_meta_mark_local(meta, 65536 + 8);
	fvd_meta_sweep_start(meta);
	fvd_jbuilder_reset(jb);
	KUNIT_EXPECT_EQ(test, fvd_meta_describe_step(meta, jb), FVD_DESCRIBE_DONE);
	KUNIT_EXPECT_EQ(test, jb->nr_records, 1ULL);
	fvd_meta_sweep_done(meta, false);
	fvd_test_meta_free(meta);
}

/*
 * Copy-on-read: a fresh block is present but not local and never dirties
 * the bitmap; a write makes it local; promotion before a checkpoint turns
 * the fresh blocks of a bitmap block into local ones that the next commit
 * journals.
 */
static void fvd_test_fresh_blocks(struct kunit *test)
{
	struct fvd_meta *meta = fvd_test_meta(test);
	struct fvd_jbuilder jb = { .max_blocks = 1 };
	struct fvd_jrec_log log = { 0 };

	jb.buf = kunit_kzalloc(test, FVD_JOURNAL_BLOCK_SIZE, GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, jb.buf);
	KUNIT_EXPECT_TRUE(test, fvd_meta_mark_fresh(meta, 3));
	KUNIT_EXPECT_TRUE(test, fvd_meta_mark_fresh(meta, 4));
	KUNIT_EXPECT_TRUE(test, fvd_meta_mark_fresh(meta, 65536 + 1));
	KUNIT_EXPECT_FALSE(test, fvd_meta_mark_fresh(meta, 3));
	KUNIT_EXPECT_EQ(test, meta->nr_fresh, 3ULL);
	KUNIT_EXPECT_TRUE(test, fvd_meta_present(meta, 3));
	KUNIT_EXPECT_FALSE(test, fvd_bit_test(meta->bits.live, 3));
	KUNIT_EXPECT_TRUE(test, fvd_meta_clean(meta));

	/* a write to a fresh block makes it local, and only local */
	KUNIT_EXPECT_TRUE(test, fvd_meta_mark_local(meta, 4));
	KUNIT_EXPECT_EQ(test, meta->nr_fresh, 2ULL);
	KUNIT_EXPECT_FALSE(test, fvd_meta_mark_fresh(meta, 4));
	fvd_test_commit(test, meta, &jb, NULL);

	/* promotion, one bitmap block at a time */
	KUNIT_EXPECT_EQ(test, fvd_meta_promote_fresh(meta, 0), 1UL);
	KUNIT_EXPECT_EQ(test, fvd_meta_promote_fresh(meta, 0), 0UL);
	KUNIT_EXPECT_EQ(test, meta->nr_fresh, 1ULL);
	KUNIT_EXPECT_EQ(test, meta->nr_local, 2ULL);
	KUNIT_EXPECT_TRUE(test, fvd_bit_test(meta->bits.live, 3));
	KUNIT_EXPECT_FALSE(test, fvd_meta_clean(meta));
	fvd_test_commit(test, meta, &jb, &log);
	KUNIT_ASSERT_EQ(test, log.nr, 1);
	KUNIT_EXPECT_EQ(test, log.recs[0].start, 3ULL);
	KUNIT_EXPECT_EQ(test, log.recs[0].count, 1U);

	/* forgotten (as a load does): read from the origin again */
	fvd_meta_forget_fresh(meta);
	KUNIT_EXPECT_EQ(test, meta->nr_fresh, 0ULL);
	KUNIT_EXPECT_FALSE(test, fvd_meta_present(meta, 65536 + 1));
	KUNIT_EXPECT_TRUE(test, fvd_meta_present(meta, 3));
	fvd_test_meta_free(meta);
}

static struct kunit_case fvd_commit_cases[] = {
	KUNIT_CASE(fvd_test_commit_staging),
	KUNIT_CASE(fvd_test_commit_failure_keeps_dirty),
	KUNIT_CASE(fvd_test_describe_step_bounded),
	KUNIT_CASE(fvd_test_fresh_blocks),
	{}
};

static struct kunit_suite fvd_commit_suite = {
	.name = "dm-fvd-commit",
	.test_cases = fvd_commit_cases,
};

/* ---- journal blocks ---- */

/* A sealed block with three runs, commit 9, block 1 of 2. */
static void *fvd_test_jblock(struct kunit *test, struct fvd_sb_info *sb)
{
	void *block = kunit_kzalloc(test, FVD_JOURNAL_BLOCK_SIZE, GFP_KERNEL);

	KUNIT_ASSERT_NOT_NULL(test, block);
	fvd_test_layout(test, sb);
	fvd_jblock_init(block);
	KUNIT_ASSERT_EQ(test, 0, fvd_jblock_add_bitmap_run(block, 0, 1));
	KUNIT_ASSERT_EQ(test, 0, fvd_jblock_add_bitmap_run(block, 100, 28));
	KUNIT_ASSERT_EQ(test, 0, fvd_jblock_add_bitmap_run(block, 16383, 1));
	fvd_jblock_seal(block, 9, 1, 2);
	return block;
}

static void fvd_test_jblock_roundtrip(struct kunit *test)
{
	struct fvd_sb_info sb;
	void *block = fvd_test_jblock(test, &sb);
	struct fvd_disk_jheader *h = block;
	struct fvd_jrec_log log = { 0 };

	KUNIT_EXPECT_EQ(test, FVD_JB_OK, fvd_jblock_check(block, 9, &sb));
	KUNIT_EXPECT_EQ(test, le64_to_cpu(h->seq), 9ULL);
	KUNIT_EXPECT_EQ(test, le16_to_cpu(h->index), 1);
	KUNIT_EXPECT_EQ(test, le16_to_cpu(h->count), 2);
	KUNIT_ASSERT_EQ(test, 0, fvd_jblock_for_each(block, fvd_test_collect, &log));
	KUNIT_ASSERT_EQ(test, log.nr, 3);
	KUNIT_EXPECT_EQ(test, log.recs[1].type, FVD_JREC_BITMAP_SET);
	KUNIT_EXPECT_EQ(test, log.recs[1].start, 100ULL);
	KUNIT_EXPECT_EQ(test, log.recs[1].count, 28U);
	KUNIT_EXPECT_EQ(test, log.recs[2].start, 16383ULL);
}

static void fvd_test_jblock_torn_and_stale(struct kunit *test)
{
	struct fvd_sb_info sb;
	u8 *block = fvd_test_jblock(test, &sb);

	/* a block from before the last checkpoint */
	KUNIT_EXPECT_EQ(test, FVD_JB_STALE, fvd_jblock_check(block, 10, &sb));
	/* a torn write: the tail of the block is from an older write */
	block[FVD_JOURNAL_BLOCK_SIZE - 1] ^= 0xff;
	KUNIT_EXPECT_EQ(test, FVD_JB_BAD_CSUM, fvd_jblock_check(block, 0, &sb));
	/* never written */
	memset(block, 0, FVD_JOURNAL_BLOCK_SIZE);
	KUNIT_EXPECT_EQ(test, FVD_JB_BAD_MAGIC, fvd_jblock_check(block, 0, &sb));
}

static void fvd_test_jblock_bad_fields(struct kunit *test)
{
	struct fvd_sb_info sb;
	u8 *block = fvd_test_jblock(test, &sb);
	struct fvd_disk_jheader *h = (struct fvd_disk_jheader *)block;

	fvd_jblock_seal(block, 9, 2, 2);		/* index past count */
	KUNIT_EXPECT_EQ(test, FVD_JB_BAD_INDEX, fvd_jblock_check(block, 0, &sb));
	fvd_jblock_seal(block, 9, 0, 0);		/* empty commit */
	KUNIT_EXPECT_EQ(test, FVD_JB_BAD_INDEX, fvd_jblock_check(block, 0, &sb));

	h->nr_records = cpu_to_le32(4);			/* more than written */
	fvd_jblock_seal(block, 9, 0, 1);
	KUNIT_EXPECT_EQ(test, FVD_JB_BAD_RECORD, fvd_jblock_check(block, 0, &sb));
	h->nr_records = cpu_to_le32(3);
	h->used_bytes = cpu_to_le32(FVD_JOURNAL_BLOCK_SIZE);	/* past the block */
	fvd_jblock_seal(block, 9, 0, 1);
	KUNIT_EXPECT_EQ(test, FVD_JB_BAD_RECORD, fvd_jblock_check(block, 0, &sb));
}

static void fvd_test_jblock_bad_records(struct kunit *test)
{
	struct fvd_sb_info sb;
	u8 *block = fvd_test_jblock(test, &sb);
	struct fvd_disk_jrecord *rec;

	fvd_jblock_init(block);
	fvd_jblock_add_bitmap_run(block, 16380, 5);	/* runs past the disk */
	fvd_jblock_seal(block, 1, 0, 1);
	KUNIT_EXPECT_EQ(test, FVD_JB_BAD_RECORD, fvd_jblock_check(block, 0, &sb));

	fvd_jblock_init(block);
	fvd_jblock_add_bitmap_run(block, 5, 0);		/* empty run */
	fvd_jblock_seal(block, 1, 0, 1);
	KUNIT_EXPECT_EQ(test, FVD_JB_BAD_RECORD, fvd_jblock_check(block, 0, &sb));

	fvd_jblock_init(block);
	fvd_jblock_add_bitmap_run(block, 16384, 1);	/* starts past the disk */
	fvd_jblock_seal(block, 1, 0, 1);
	KUNIT_EXPECT_EQ(test, FVD_JB_BAD_RECORD, fvd_jblock_check(block, 0, &sb));

	fvd_jblock_init(block);
	fvd_jblock_add_bitmap_run(block, 16383, U32_MAX);	/* huge count */
	fvd_jblock_seal(block, 1, 0, 1);
	KUNIT_EXPECT_EQ(test, FVD_JB_BAD_RECORD, fvd_jblock_check(block, 0, &sb));

	fvd_jblock_init(block);
	fvd_jblock_add_bitmap_run(block, 5, 1);
	rec = (struct fvd_disk_jrecord *)(block + sizeof(struct fvd_disk_jheader));
	rec->type = cpu_to_le16(7);			/* unknown record type */
	fvd_jblock_seal(block, 1, 0, 1);
	KUNIT_EXPECT_EQ(test, FVD_JB_BAD_RECORD, fvd_jblock_check(block, 0, &sb));

	rec->type = cpu_to_le16(FVD_JREC_TABLE);	/* no table in version 1 */
	rec->count = cpu_to_le32(1);
	fvd_jblock_seal(block, 1, 0, 1);
	KUNIT_EXPECT_EQ(test, FVD_JB_BAD_RECORD, fvd_jblock_check(block, 0, &sb));
}

static void fvd_test_jblock_full(struct kunit *test)
{
	struct fvd_sb_info sb;
	void *block = fvd_test_jblock(test, &sb);
	int i, added = 0;

	fvd_jblock_init(block);
	for (i = 0; i < 1000; i++)
		if (!fvd_jblock_add_bitmap_run(block, 2 * i, 1))
			added++;
	KUNIT_EXPECT_EQ(test, added, (int)(FVD_JOURNAL_PAYLOAD /
					   sizeof(struct fvd_disk_jrecord)));
	KUNIT_EXPECT_EQ(test, -ENOSPC, fvd_jblock_add_bitmap_run(block, 1, 1));
	fvd_jblock_seal(block, 3, 0, 1);
	KUNIT_EXPECT_EQ(test, FVD_JB_OK, fvd_jblock_check(block, 3, &sb));
}

static struct kunit_case fvd_journal_format_cases[] = {
	KUNIT_CASE(fvd_test_jblock_roundtrip),
	KUNIT_CASE(fvd_test_jblock_torn_and_stale),
	KUNIT_CASE(fvd_test_jblock_bad_fields),
	KUNIT_CASE(fvd_test_jblock_bad_records),
	KUNIT_CASE(fvd_test_jblock_full),
	{}
};

static struct kunit_suite fvd_journal_format_suite = {
	.name = "dm-fvd-journal-format",
	.test_cases = fvd_journal_format_cases,
};

/* ---- journal commits and replay ---- */

#define FVD_TEST_JBLOCKS	8

/* An in-memory journal region of FVD_TEST_JBLOCKS blocks. */
struct fvd_test_journal {
	struct kunit *test;
	struct fvd_sb_info sb;
	u8 *blocks;
	int reads;
	/* replayed runs, in order */
	int nr_runs;
	u64 starts[32];
	u32 counts[32];
};

static struct fvd_test_journal *fvd_test_journal(struct kunit *test, u64 ckpt)
{
	struct fvd_test_journal *tj = kunit_kzalloc(test, sizeof(*tj), GFP_KERNEL);

	KUNIT_ASSERT_NOT_NULL(test, tj);
	tj->test = test;
	KUNIT_ASSERT_EQ(test, 0, fvd_layout_init(&tj->sb, 1024 * MiB_SECTORS,
						 0, 128, 0, FVD_TEST_JBLOCKS * 8,
						 true));
	KUNIT_EXPECT_TRUE(test, tj->sb.incompat_features & FVD_INCOMPAT_JOURNAL);
	KUNIT_EXPECT_EQ(test, fvd_journal_blocks(&tj->sb), (u64)FVD_TEST_JBLOCKS);
	tj->sb.checkpoint_seq = ckpt;
	tj->blocks = kunit_kzalloc(test, FVD_TEST_JBLOCKS * FVD_JOURNAL_BLOCK_SIZE,
				   GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, tj->blocks);
	return tj;
}

static u8 *fvd_test_jslot(struct fvd_test_journal *tj, u64 index)
{
	return tj->blocks + index * FVD_JOURNAL_BLOCK_SIZE;
}

/*
 * Write a commit of @nr_blocks blocks at @index with sequence @seq; block i
 * holds the single run [first + i * 10, + i + 1).
 */
static void fvd_test_jcommit(struct fvd_test_journal *tj, u64 index, u64 seq,
			     u16 nr_blocks, u64 first)
{
	u16 i;

	for (i = 0; i < nr_blocks; i++) {
		u8 *block = fvd_test_jslot(tj, index + i);

		fvd_jblock_init(block);
		KUNIT_ASSERT_EQ(tj->test, 0,
				fvd_jblock_add_bitmap_run(block, first + i * 10,
							  i + 1));
		fvd_jblock_seal(block, seq, i, nr_blocks);
	}
}

static int fvd_test_jread(void *context, u64 index, const void **block)
{
	struct fvd_test_journal *tj = context;

	KUNIT_EXPECT_LT(tj->test, index, (u64)FVD_TEST_JBLOCKS);
	if (index >= FVD_TEST_JBLOCKS)
		return -EIO;
	tj->reads++;
	*block = fvd_test_jslot(tj, index);
	return 0;
}

static int fvd_test_japply(void *context, const struct fvd_jrec *rec)
{
	struct fvd_test_journal *tj = context;

	if (tj->nr_runs == ARRAY_SIZE(tj->starts))
		return -E2BIG;
	tj->starts[tj->nr_runs] = rec->start;
	tj->counts[tj->nr_runs++] = rec->count;
	return 0;
}

/* Replay the test journal; the return value is the replay's. */
static int fvd_test_replay(struct fvd_test_journal *tj, struct fvd_replay *replay)
{
	return fvd_journal_replay(&tj->sb, fvd_test_jread, fvd_test_japply, tj,
				  replay);
}

static void fvd_test_replay_order(struct kunit *test)
{
	struct fvd_test_journal *tj = fvd_test_journal(test, 41);
	struct fvd_replay replay;

	fvd_test_jcommit(tj, 0, 42, 1, 100);
	fvd_test_jcommit(tj, 1, 43, 2, 200);
	fvd_test_jcommit(tj, 3, 44, 1, 300);
	KUNIT_ASSERT_EQ(test, 0, fvd_test_replay(tj, &replay));
	KUNIT_EXPECT_EQ(test, replay.nr_commits, 3ULL);
	KUNIT_EXPECT_EQ(test, replay.head, 4ULL);
	KUNIT_EXPECT_EQ(test, replay.nr_records, 4ULL);
	KUNIT_EXPECT_EQ(test, replay.next_seq, 45ULL);
	KUNIT_EXPECT_EQ(test, replay.stop, FVD_JB_BAD_MAGIC);
	KUNIT_EXPECT_FALSE(test, replay.full);
	KUNIT_ASSERT_EQ(test, tj->nr_runs, 4);
	KUNIT_EXPECT_EQ(test, tj->starts[0], 100ULL);
	KUNIT_EXPECT_EQ(test, tj->starts[1], 200ULL);
	KUNIT_EXPECT_EQ(test, tj->starts[2], 210ULL);
	KUNIT_EXPECT_EQ(test, tj->counts[2], 2U);
	KUNIT_EXPECT_EQ(test, tj->starts[3], 300ULL);
}

/* A commit counts only when every one of its blocks made it. */
static void fvd_test_replay_torn_commit(struct kunit *test)
{
	struct fvd_test_journal *tj = fvd_test_journal(test, 0);
	struct fvd_replay replay;
	u8 *saved;

	fvd_test_jcommit(tj, 0, 1, 1, 100);
	fvd_test_jcommit(tj, 1, 2, 3, 200);
	fvd_test_jslot(tj, 3)[100] ^= 1;		/* last block torn */
	KUNIT_ASSERT_EQ(test, 0, fvd_test_replay(tj, &replay));
	KUNIT_EXPECT_EQ(test, replay.nr_commits, 1ULL);
	KUNIT_EXPECT_EQ(test, replay.head, 1ULL);
	KUNIT_EXPECT_EQ(test, replay.next_seq, 2ULL);
	KUNIT_EXPECT_EQ(test, replay.stop, FVD_JB_TORN);
	KUNIT_ASSERT_EQ(test, tj->nr_runs, 1);
	KUNIT_EXPECT_EQ(test, tj->starts[0], 100ULL);

	/*
	 * The last block is left over from an earlier, longer commit with the
	 * same sequence number and index (a torn commit before a crash whose
	 * load did not checkpoint): its block count gives it away.
	 */
	saved = kunit_kzalloc(test, FVD_JOURNAL_BLOCK_SIZE, GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, saved);
	fvd_test_jcommit(tj, 1, 2, 4, 200);
	memcpy(saved, fvd_test_jslot(tj, 3), FVD_JOURNAL_BLOCK_SIZE);
	fvd_test_jcommit(tj, 1, 2, 3, 200);
	memcpy(fvd_test_jslot(tj, 3), saved, FVD_JOURNAL_BLOCK_SIZE);
	tj->nr_runs = 0;
	KUNIT_ASSERT_EQ(test, 0, fvd_test_replay(tj, &replay));
	KUNIT_EXPECT_EQ(test, replay.nr_commits, 1ULL);
	KUNIT_EXPECT_EQ(test, replay.stop, FVD_JB_TORN);
	KUNIT_EXPECT_EQ(test, tj->nr_runs, 1);

	/* with the right block in place the commit replays whole */
	fvd_test_jcommit(tj, 1, 2, 3, 200);
	tj->nr_runs = 0;
	KUNIT_ASSERT_EQ(test, 0, fvd_test_replay(tj, &replay));
	KUNIT_EXPECT_EQ(test, replay.nr_commits, 2ULL);
	KUNIT_EXPECT_EQ(test, tj->nr_runs, 4);
}

/*
 * A journal damaged in the middle: the replay stops at the damage and
 * reports the valid blocks of later commits behind it, which a load must
 * not drop; the other blocks of a commit a crash tore are not such blocks.
 */
static void fvd_test_replay_damage_before_later_commits(struct kunit *test)
{
	struct fvd_test_journal *tj = fvd_test_journal(test, 10);
	struct fvd_replay replay;

	fvd_test_jcommit(tj, 0, 11, 1, 100);
	fvd_test_jcommit(tj, 1, 12, 2, 200);
	fvd_test_jcommit(tj, 3, 13, 1, 300);
	fvd_test_jcommit(tj, 4, 14, 2, 400);
	fvd_test_jslot(tj, 1)[100] ^= 1;		/* commit 12 damaged */
	KUNIT_ASSERT_EQ(test, 0, fvd_test_replay(tj, &replay));
	KUNIT_EXPECT_EQ(test, replay.nr_commits, 1ULL);
	KUNIT_EXPECT_EQ(test, replay.head, 1ULL);
	KUNIT_EXPECT_EQ(test, replay.stop, FVD_JB_BAD_CSUM);
	KUNIT_EXPECT_EQ(test, replay.nr_newer, 3ULL);
	KUNIT_EXPECT_EQ(test, replay.first_newer, 3ULL);
	KUNIT_EXPECT_EQ(test, replay.max_seq, 14ULL);

	/* commit 12 torn by a crash (its last block), nothing after it */
	tj = fvd_test_journal(test, 10);
	fvd_test_jcommit(tj, 0, 11, 1, 100);
	fvd_test_jcommit(tj, 1, 12, 3, 200);
	fvd_test_jslot(tj, 3)[100] ^= 1;
	KUNIT_ASSERT_EQ(test, 0, fvd_test_replay(tj, &replay));
	KUNIT_EXPECT_EQ(test, replay.stop, FVD_JB_TORN);
	KUNIT_EXPECT_EQ(test, replay.nr_newer, 0ULL);
	KUNIT_EXPECT_EQ(test, replay.max_seq, 12ULL);

	/* a commit missing entirely: the one after it is newer */
	tj = fvd_test_journal(test, 10);
	fvd_test_jcommit(tj, 0, 11, 1, 100);
	fvd_test_jcommit(tj, 1, 13, 1, 300);
	KUNIT_ASSERT_EQ(test, 0, fvd_test_replay(tj, &replay));
	KUNIT_EXPECT_EQ(test, replay.stop, FVD_JB_BAD_SEQ);
	KUNIT_EXPECT_EQ(test, replay.nr_newer, 1ULL);
	KUNIT_EXPECT_EQ(test, replay.first_newer, 1ULL);

	/* a full region: nothing behind it */
	tj = fvd_test_journal(test, 10);
	fvd_test_jcommit(tj, 0, 11, 4, 100);
	fvd_test_jcommit(tj, 4, 12, 4, 200);
	KUNIT_ASSERT_EQ(test, 0, fvd_test_replay(tj, &replay));
	KUNIT_EXPECT_TRUE(test, replay.full);
	KUNIT_EXPECT_EQ(test, replay.nr_newer, 0ULL);
	KUNIT_EXPECT_EQ(test, replay.max_seq, 12ULL);
}

/* Blocks from before the checkpoint, and commits out of order, end it. */
static void fvd_test_replay_stale_and_gaps(struct kunit *test)
{
	struct fvd_test_journal *tj = fvd_test_journal(test, 10);
	struct fvd_replay replay;

	/* what a journal looks like right after checkpoint 10 */
	fvd_test_jcommit(tj, 0, 8, 2, 100);
	fvd_test_jcommit(tj, 2, 9, 1, 200);
	KUNIT_ASSERT_EQ(test, 0, fvd_test_replay(tj, &replay));
	KUNIT_EXPECT_EQ(test, replay.nr_commits, 0ULL);
	KUNIT_EXPECT_EQ(test, replay.next_seq, 11ULL);
	KUNIT_EXPECT_EQ(test, replay.head, 0ULL);
	KUNIT_EXPECT_EQ(test, replay.stop, FVD_JB_STALE);
	KUNIT_EXPECT_EQ(test, tj->nr_runs, 0);

	/* commit 11 overwrote block 0; block 1 is a leftover of commit 8 */
	fvd_test_jcommit(tj, 0, 11, 1, 300);
	KUNIT_ASSERT_EQ(test, 0, fvd_test_replay(tj, &replay));
	KUNIT_EXPECT_EQ(test, replay.nr_commits, 1ULL);
	KUNIT_EXPECT_EQ(test, replay.stop, FVD_JB_STALE);

	/* a valid block that skips a sequence number is not replayed */
	fvd_test_jcommit(tj, 1, 13, 1, 400);
	tj->nr_runs = 0;
	KUNIT_ASSERT_EQ(test, 0, fvd_test_replay(tj, &replay));
	KUNIT_EXPECT_EQ(test, replay.nr_commits, 1ULL);
	KUNIT_EXPECT_EQ(test, replay.stop, FVD_JB_BAD_SEQ);
	KUNIT_EXPECT_EQ(test, tj->nr_runs, 1);
	KUNIT_EXPECT_EQ(test, tj->starts[0], 300ULL);
}

/*
 * A checkpoint takes a sequence number of its own: after a crash that tore
 * commit 6, the load checkpoints at 6, and the torn blocks of commit 6 are
 * stale from then on even where the next commits do not overwrite them.
 */
static void fvd_test_replay_checkpoint_rules(struct kunit *test)
{
	struct fvd_test_journal *tj = fvd_test_journal(test, 3);
	struct fvd_replay replay;

	fvd_test_jcommit(tj, 0, 4, 1, 100);
	fvd_test_jcommit(tj, 1, 5, 1, 200);
	fvd_test_jcommit(tj, 2, 6, 3, 300);
	fvd_test_jslot(tj, 4)[4000] ^= 1;
	KUNIT_ASSERT_EQ(test, 0, fvd_test_replay(tj, &replay));
	KUNIT_EXPECT_EQ(test, replay.nr_commits, 2ULL);
	KUNIT_EXPECT_EQ(test, replay.next_seq, 6ULL);

	/* the load's checkpoint, then the first new commit, one block */
	tj->sb.checkpoint_seq = replay.next_seq;
	fvd_test_jcommit(tj, 0, 7, 1, 500);
	tj->nr_runs = 0;
	KUNIT_ASSERT_EQ(test, 0, fvd_test_replay(tj, &replay));
	KUNIT_EXPECT_EQ(test, replay.nr_commits, 1ULL);
	KUNIT_EXPECT_EQ(test, replay.next_seq, 8ULL);
	KUNIT_EXPECT_EQ(test, replay.stop, FVD_JB_STALE);
	KUNIT_ASSERT_EQ(test, tj->nr_runs, 1);
	KUNIT_EXPECT_EQ(test, tj->starts[0], 500ULL);
}

static void fvd_test_replay_region_edges(struct kunit *test)
{
	struct fvd_test_journal *tj = fvd_test_journal(test, 0);
	struct fvd_replay replay;

	/* commits filling the region exactly */
	fvd_test_jcommit(tj, 0, 1, 4, 100);
	fvd_test_jcommit(tj, 4, 2, 4, 200);
	KUNIT_ASSERT_EQ(test, 0, fvd_test_replay(tj, &replay));
	KUNIT_EXPECT_EQ(test, replay.nr_commits, 2ULL);
	KUNIT_EXPECT_TRUE(test, replay.full);
	KUNIT_EXPECT_EQ(test, replay.head, (u64)FVD_TEST_JBLOCKS);

	/* a commit claiming to run past the end of the region */
	fvd_test_jcommit(tj, 4, 2, 5, 200);
	tj->reads = 0;
	KUNIT_ASSERT_EQ(test, 0, fvd_test_replay(tj, &replay));
	KUNIT_EXPECT_EQ(test, replay.nr_commits, 1ULL);
	KUNIT_EXPECT_EQ(test, replay.stop, FVD_JB_BAD_INDEX);
	KUNIT_EXPECT_FALSE(test, replay.full);

	/* a commit whose first block is not index 0 */
	fvd_test_jcommit(tj, 3, 2, 2, 200);
	memcpy(fvd_test_jslot(tj, 0), fvd_test_jslot(tj, 4), FVD_JOURNAL_BLOCK_SIZE);
	tj->sb.checkpoint_seq = 1;
	KUNIT_ASSERT_EQ(test, 0, fvd_test_replay(tj, &replay));
	KUNIT_EXPECT_EQ(test, replay.nr_commits, 0ULL);
	KUNIT_EXPECT_EQ(test, replay.stop, FVD_JB_BAD_INDEX);
}

static int fvd_test_jread_fail(void *context, u64 index, const void **block)
{
	return index ? -EIO : fvd_test_jread(context, index, block);
}

static void fvd_test_replay_read_error(struct kunit *test)
{
	struct fvd_test_journal *tj = fvd_test_journal(test, 0);
	struct fvd_replay replay;

	fvd_test_jcommit(tj, 0, 1, 2, 100);
	KUNIT_EXPECT_EQ(test, -EIO,
			fvd_journal_replay(&tj->sb, fvd_test_jread_fail,
					   fvd_test_japply, tj, &replay));
	KUNIT_EXPECT_EQ(test, tj->nr_runs, 0);
}

/* What a commit writes to the journal rebuilds exactly the new bits. */
static void fvd_test_commit_runs_replay(struct kunit *test)
{
	struct fvd_meta *meta = fvd_test_meta(test);
	struct fvd_jbuilder *jb = fvd_test_builder(test, 4);
	struct fvd_sb_info sb = meta->sb;
	u8 *rebuilt = kunit_kzalloc(test, meta->bits.bytes, GFP_KERNEL);
	u64 blocks[] = { 0, 1, 2, 63, 64, 65, 1000, 32767, 32768, 65535, 65536,
			 65545 };
	struct fvd_jrec_log log = { 0 };
	unsigned int i;

	KUNIT_ASSERT_NOT_NULL(test, rebuilt);

	/* block 500 is committed already: not part of the next commit */
	fvd_meta_mark_local(meta, 500);
	fvd_test_commit(test, meta, jb, NULL);
	for (i = 0; i < ARRAY_SIZE(blocks); i++)
		fvd_meta_mark_local(meta, blocks[i]);
	fvd_meta_sweep_start(meta);
	KUNIT_EXPECT_EQ(test, fvd_test_describe(meta, jb), FVD_DESCRIBE_DONE);
	KUNIT_EXPECT_EQ(test, jb->nr_blocks, 1U);
	/*
	 * Runs never cross a bitmap block (32768 blocks): 0-2, 63-65, 1000,
	 * 32767 | 32768, 65535 | 65536, 65545.
	 */
	KUNIT_EXPECT_EQ(test, jb->nr_records, 8ULL);
	fvd_jbuilder_seal(jb, 1);

	sb.checkpoint_seq = 0;
	KUNIT_ASSERT_EQ(test, FVD_JB_OK, fvd_jblock_check(jb->buf, 1, &sb));
	KUNIT_ASSERT_EQ(test, 0, fvd_jblock_for_each(jb->buf, fvd_test_collect, &log));
	for (i = 0; i < log.nr; i++) {
		u64 b;

		for (b = log.recs[i].start;
		     b < log.recs[i].start + log.recs[i].count; b++)
			fvd_bit_set(rebuilt, b);
	}
	fvd_bit_set(rebuilt, 500);
	KUNIT_EXPECT_EQ(test, 0, memcmp(rebuilt, meta->bits.live, meta->bits.bytes));
	KUNIT_EXPECT_EQ(test, 0, memcmp(rebuilt, meta->bits.staged, meta->bits.bytes));
	fvd_meta_sweep_done(meta, false);
	fvd_test_meta_free(meta);
}

/* More runs than the buffer holds: refused, the buffer stays as it was. */
static void fvd_test_builder_full(struct kunit *test)
{
	struct fvd_jbuilder *jb = fvd_test_builder(test, 2);
	const unsigned int per_block = FVD_JOURNAL_PAYLOAD /
				       sizeof(struct fvd_disk_jrecord);
	__le32 entry = cpu_to_le32(1);
	unsigned int i;

	fvd_jbuilder_reset(jb);
	for (i = 0; i < 2 * per_block; i++)
		KUNIT_EXPECT_TRUE(test, fvd_jbuilder_add_run(jb, 2 * i, 1));
	KUNIT_EXPECT_EQ(test, jb->nr_blocks, 2U);
	KUNIT_EXPECT_FALSE(test, fvd_jbuilder_add_run(jb, 10 * per_block, 1));
	KUNIT_EXPECT_EQ(test, fvd_jbuilder_add_table(jb, 0, 1, &entry), 0U);
	KUNIT_EXPECT_EQ(test, jb->nr_records, 2ULL * per_block);
	KUNIT_EXPECT_EQ(test, jb->nr_blocks, 2U);
	fvd_jbuilder_reset(jb);
	KUNIT_EXPECT_EQ(test, jb->nr_blocks, 0U);
	KUNIT_EXPECT_TRUE(test, fvd_jbuilder_add_run(jb, 0, 1));
}

/*
 * Bits only set (no table): a commit larger than one journal write goes
 * out in rounds; after each, the staged copy is exactly what the journal
 * replays to, and the last leaves it equal to the live bitmap.  A bit set
 * behind the point a round reached waits for the next commit.
 */
static void fvd_test_commit_in_rounds(struct kunit *test)
{
	struct fvd_meta *meta = fvd_test_meta(test);
	struct fvd_jbuilder *jb = fvd_test_builder(test, 1);
	u8 *disk = kunit_kzalloc(test, meta->bits.bytes, GFP_KERNEL);
	struct fvd_replay_state rs = { .sb = &meta->sb, .bits = disk };
	enum fvd_describe step;
	unsigned int rounds = 0;
	u64 b;

	KUNIT_ASSERT_NOT_NULL(test, disk);
	/* 1000 runs in the first bitmap block, 100 in the last */
	for (b = 0; b < 2000; b += 2)
		fvd_meta_mark_local(meta, b);
	for (b = 65536; b < 65546; b += 2)
		fvd_meta_mark_local(meta, b);
	fvd_meta_sweep_start(meta);
	do {
		step = fvd_test_describe(meta, jb);
		fvd_test_replay_builder(test, jb, &rs);
		KUNIT_EXPECT_EQ(test, 0, memcmp(disk, meta->bits.staged, meta->bits.bytes));
		if (!rounds++)
			KUNIT_EXPECT_TRUE(test, fvd_meta_mark_local(meta, 1));
	} while (step == FVD_DESCRIBE_FULL && rounds < 100);
	KUNIT_EXPECT_EQ(test, step, FVD_DESCRIBE_DONE);
	/* 1005 runs, 254 to a block */
	KUNIT_EXPECT_EQ(test, rounds, 4U);
	fvd_meta_round_freeze(meta);
	fvd_meta_sweep_done(meta, false);
	KUNIT_EXPECT_FALSE(test, fvd_bit_test(meta->bits.staged, 1));
	KUNIT_EXPECT_FALSE(test, fvd_meta_clean(meta));
	KUNIT_EXPECT_FALSE(test, fvd_meta_block_durable(meta, 1));
	KUNIT_EXPECT_TRUE(test, fvd_meta_block_durable(meta, 65536));
	fvd_test_commit(test, meta, jb, NULL);
	KUNIT_EXPECT_EQ(test, 0, memcmp(meta->bits.live, meta->bits.staged, meta->bits.bytes));
	fvd_test_meta_free(meta);
}

static struct kunit_case fvd_journal_replay_cases[] = {
	KUNIT_CASE(fvd_test_replay_order),
	KUNIT_CASE(fvd_test_replay_torn_commit),
	KUNIT_CASE(fvd_test_replay_stale_and_gaps),
	KUNIT_CASE(fvd_test_replay_damage_before_later_commits),
	KUNIT_CASE(fvd_test_replay_checkpoint_rules),
	KUNIT_CASE(fvd_test_replay_region_edges),
	KUNIT_CASE(fvd_test_replay_read_error),
	KUNIT_CASE(fvd_test_commit_runs_replay),
	KUNIT_CASE(fvd_test_builder_full),
	KUNIT_CASE(fvd_test_commit_in_rounds),
	{}
};

static struct kunit_suite fvd_journal_replay_suite = {
	.name = "dm-fvd-journal-replay",
	.test_cases = fvd_journal_replay_cases,
};

/* ---- compact images: layout, table records, chunk allocation ---- */

static void fvd_test_compact_layout(struct kunit *test)
{
	struct fvd_sb_info sb;

	/* 1 GiB, 64K blocks, 1M chunks: 1024 chunks, a 4 KiB table */
	KUNIT_ASSERT_EQ(test, 0, fvd_layout_init(&sb, 1024 * MiB_SECTORS, 0, 128,
						 2048, 16 * MiB_SECTORS, true));
	KUNIT_EXPECT_EQ(test, sb.incompat_features,
			FVD_INCOMPAT_JOURNAL | FVD_INCOMPAT_COMPACT);
	KUNIT_EXPECT_EQ(test, sb.nr_chunks, 1024ULL);
	KUNIT_EXPECT_EQ(test, sb.chunk_shift, 11U);
	KUNIT_EXPECT_EQ(test, sb.table_offset, sb.bitmap_offset + sb.bitmap_sectors);
	KUNIT_EXPECT_EQ(test, sb.table_sectors, 8ULL);
	KUNIT_EXPECT_EQ(test, sb.journal_offset, sb.table_offset + sb.table_sectors);
	KUNIT_EXPECT_EQ(test, fvd_block_chunk(&sb, 15), 0ULL);
	KUNIT_EXPECT_EQ(test, fvd_block_chunk(&sb, 16), 1ULL);

	/* a partial last chunk still gets a table entry */
	KUNIT_ASSERT_EQ(test, 0, fvd_layout_init(&sb, 2048 * 3 + 128, 0, 128,
						 2048, 64, true));
	KUNIT_EXPECT_EQ(test, sb.nr_chunks, 4ULL);

	/* chunks smaller than a block, not a power of two, over 1 GiB */
	KUNIT_EXPECT_EQ(test, -EINVAL, fvd_layout_init(&sb, 1024 * MiB_SECTORS, 0,
						       128, 64, 64, true));
	KUNIT_EXPECT_EQ(test, -EINVAL, fvd_layout_init(&sb, 1024 * MiB_SECTORS, 0,
						       128, 3 * 128, 64, true));
	KUNIT_EXPECT_EQ(test, -EINVAL, fvd_layout_init(&sb, 4096 * MiB_SECTORS, 0,
						       128, 4 << 20, 64, true));
	/* a compact image cannot do without the journal */
	KUNIT_EXPECT_EQ(test, -EINVAL, fvd_layout_init(&sb, 1024 * MiB_SECTORS, 0,
						       128, 2048, 0, true));
	sb.incompat_features = FVD_INCOMPAT_COMPACT;
}

static void fvd_test_compact_sb_rejects(struct kunit *test)
{
	struct fvd_sb_info sb, bad;

	KUNIT_ASSERT_EQ(test, 0, fvd_layout_init(&sb, 1024 * MiB_SECTORS, 0, 128,
						 2048, 64, true));
	bad = sb;
	bad.incompat_features &= ~FVD_INCOMPAT_JOURNAL;
	bad.journal_sectors = 0;
	bad.journal_offset = 0;
	KUNIT_EXPECT_EQ(test, FVD_SB_COMPACT_NO_JOURNAL, fvd_sb_check(&bad));
	bad = sb;
	bad.table_sectors = 0;
	KUNIT_EXPECT_EQ(test, FVD_SB_BAD_TABLE, fvd_sb_check(&bad));
	bad = sb;
	bad.chunk_sectors = 64;
	KUNIT_EXPECT_EQ(test, FVD_SB_BAD_CHUNK_SIZE, fvd_sb_check(&bad));
	bad = sb;
	bad.incompat_features &= ~FVD_INCOMPAT_COMPACT;
	KUNIT_EXPECT_EQ(test, FVD_SB_BAD_CHUNK_SIZE, fvd_sb_check(&bad));
	bad = sb;
	bad.table_offset = sb.bitmap_offset;
	KUNIT_EXPECT_EQ(test, FVD_SB_REGIONS_OVERLAP, fvd_sb_check(&bad));
	KUNIT_EXPECT_EQ(test, FVD_SB_OK, fvd_sb_check(&sb));
}

/* Table runs longer than a journal block continue in the next one. */
static void fvd_test_table_records(struct kunit *test)
{
	struct fvd_jbuilder jb = { .max_blocks = 3 };
	struct fvd_jrec_log log = { 0 };
	struct fvd_sb_info sb, plain;
	__le32 *entries;
	unsigned int i;

	KUNIT_ASSERT_EQ(test, 0, fvd_layout_init(&sb, 8192 * MiB_SECTORS, 0, 8,
						 8, 64, true));
	KUNIT_ASSERT_EQ(test, 0, fvd_layout_init(&plain, 8192 * MiB_SECTORS, 0,
						 8, 0, 64, true));
	jb.buf = kunit_kzalloc(test, 3 * FVD_JOURNAL_BLOCK_SIZE, GFP_KERNEL);
	entries = kunit_kcalloc(test, 2100, sizeof(*entries), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, jb.buf);
	KUNIT_ASSERT_NOT_NULL(test, entries);
	for (i = 0; i < 2100; i++)
		entries[i] = cpu_to_le32(i + 1);
	fvd_jbuilder_reset(&jb);
	KUNIT_EXPECT_TRUE(test, fvd_jbuilder_add_run(&jb, 7, 1));
	KUNIT_EXPECT_EQ(test, fvd_jbuilder_add_table(&jb, 100, 2100, entries), 2100U);
	KUNIT_EXPECT_EQ(test, jb.nr_blocks, 3U);
	KUNIT_EXPECT_EQ(test, jb.nr_records, 4ULL);
	fvd_jbuilder_seal(&jb, 5);
	for (i = 0; i < jb.nr_blocks; i++) {
		u8 *block = jb.buf + i * FVD_JOURNAL_BLOCK_SIZE;

		KUNIT_EXPECT_EQ(test, FVD_JB_OK, fvd_jblock_check(block, 5, &sb));
		/* table records are refused on an image without a table */
		if (i)
			KUNIT_EXPECT_EQ(test, FVD_JB_BAD_RECORD,
					fvd_jblock_check(block, 5, &plain));
		KUNIT_ASSERT_EQ(test, 0, fvd_jblock_for_each(block, fvd_test_collect,
							     &log));
	}
	KUNIT_ASSERT_EQ(test, log.nr, 4);
	KUNIT_EXPECT_EQ(test, log.recs[1].type, FVD_JREC_TABLE);
	KUNIT_EXPECT_EQ(test, log.recs[1].start, 100ULL);
	KUNIT_EXPECT_EQ(test, log.recs[1].count + log.recs[2].count +
			log.recs[3].count, 2100U);
	KUNIT_EXPECT_EQ(test, log.recs[2].start, 100ULL + log.recs[1].count);
	KUNIT_EXPECT_EQ(test, le32_to_cpu(log.recs[3].entries[log.recs[3].count - 1]),
			2100U);

	/* a table run past the last chunk */
	fvd_jbuilder_reset(&jb);
	fvd_jbuilder_add_table(&jb, sb.nr_chunks - 1, 2, entries);
	fvd_jbuilder_seal(&jb, 5);
	KUNIT_EXPECT_EQ(test, FVD_JB_BAD_RECORD, fvd_jblock_check(jb.buf, 5, &sb));
}

/* 40 blocks of 4K in chunks of 4 blocks: 10 chunks. */
static struct fvd_meta *fvd_test_compact_meta(struct kunit *test,
					      spinlock_t *lock, u64 nr_phys)
{
	struct fvd_meta *meta = kunit_kzalloc(test, sizeof(*meta), GFP_KERNEL);

	KUNIT_ASSERT_NOT_NULL(test, meta);
	spin_lock_init(lock);
	KUNIT_ASSERT_EQ(test, 0, fvd_layout_init(&meta->sb, 40 * 8, 0, 8, 32,
						 64, true));
	KUNIT_ASSERT_EQ(test, 0, fvd_meta_alloc(meta));
	KUNIT_ASSERT_EQ(test, 0, fvd_meta_set_capacity(meta, nr_phys, lock));
	return meta;
}

static void fvd_test_chunk_alloc(struct kunit *test)
{
	spinlock_t lock;
	struct fvd_meta *meta = fvd_test_compact_meta(test, &lock, 3);

	KUNIT_EXPECT_EQ(test, meta->nr_free, 3ULL);
	KUNIT_EXPECT_EQ(test, fvd_meta_map_chunk(meta, 9), 0LL);
	KUNIT_EXPECT_EQ(test, fvd_meta_map_chunk(meta, 2), 1LL);
	KUNIT_EXPECT_EQ(test, fvd_table_get(meta->table.live, 9), 1U);
	KUNIT_EXPECT_EQ(test, fvd_table_get(meta->table.live, 2), 2U);
	KUNIT_EXPECT_EQ(test, fvd_meta_map_chunk(meta, 0), 2LL);
	KUNIT_EXPECT_EQ(test, fvd_meta_map_chunk(meta, 1), (s64)-ENOSPC);
	KUNIT_EXPECT_EQ(test, meta->nr_free, 0ULL);
	KUNIT_EXPECT_FALSE(test, fvd_meta_clean(meta));

	/* growth keeps the chunks in use and adds free ones */
	KUNIT_ASSERT_EQ(test, 0, fvd_meta_set_capacity(meta, 5, &lock));
	KUNIT_EXPECT_EQ(test, meta->nr_free, 2ULL);
	KUNIT_EXPECT_EQ(test, fvd_meta_map_chunk(meta, 1), 3LL);
	/* shrinking below a chunk in use is refused */
	KUNIT_EXPECT_EQ(test, -ENOSPC, fvd_meta_set_capacity(meta, 3, &lock));
	KUNIT_EXPECT_EQ(test, meta->nr_phys, 5ULL);
	fvd_test_meta_free(meta);
}

/*
 * A block written in a new chunk is durable only once both its bit and the
 * chunk's table entry are committed; a commit lists the table first.
 */
static void fvd_test_chunk_commit(struct kunit *test)
{
	spinlock_t lock;
	struct fvd_meta *meta = fvd_test_compact_meta(test, &lock, 10);
	struct fvd_jbuilder jb = { .max_blocks = 2 };
	struct fvd_jrec_log log = { 0 };

	jb.buf = kunit_kzalloc(test, 2 * FVD_JOURNAL_BLOCK_SIZE, GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, jb.buf);
	KUNIT_EXPECT_EQ(test, fvd_meta_map_chunk(meta, 3), 0LL);
	fvd_meta_mark_local(meta, 13);
	KUNIT_EXPECT_FALSE(test, fvd_meta_block_durable(meta, 13));
	fvd_meta_sweep_start(meta);
	KUNIT_EXPECT_EQ(test, fvd_test_describe(meta, &jb), FVD_DESCRIBE_DONE);
	fvd_jbuilder_seal(&jb, 1);
	KUNIT_ASSERT_EQ(test, 0, fvd_jblock_for_each(jb.buf, fvd_test_collect, &log));
	KUNIT_ASSERT_EQ(test, log.nr, 2);
	KUNIT_EXPECT_EQ(test, log.recs[0].type, FVD_JREC_TABLE);
	KUNIT_EXPECT_EQ(test, log.recs[0].start, 3ULL);
	KUNIT_EXPECT_EQ(test, le32_to_cpu(log.recs[0].entries[0]), 1U);
	KUNIT_EXPECT_EQ(test, log.recs[1].type, FVD_JREC_BITMAP_SET);
	KUNIT_EXPECT_EQ(test, log.recs[1].start, 13ULL);
	KUNIT_EXPECT_FALSE(test, fvd_meta_block_durable(meta, 13));
	fvd_meta_round_freeze(meta);
	fvd_meta_sweep_done(meta, false);
	KUNIT_EXPECT_TRUE(test, fvd_meta_block_durable(meta, 13));
	KUNIT_EXPECT_TRUE(test, fvd_meta_clean(meta));

	/* a new chunk alone makes a block of another chunk in it not durable */
	KUNIT_EXPECT_EQ(test, fvd_meta_map_chunk(meta, 4), 1LL);
	KUNIT_EXPECT_FALSE(test, fvd_meta_block_durable(meta, 13));
	fvd_test_meta_free(meta);
}

/*
 * After a crash the committed table is all there is: chunks allocated since
 * are free again, and a corrupt table is refused.
 */
static void fvd_test_chunk_leak_recovery(struct kunit *test)
{
	spinlock_t lock;
	struct fvd_meta *meta = fvd_test_compact_meta(test, &lock, 4);

	fvd_meta_map_chunk(meta, 0);
	fvd_meta_mark_local(meta, 1);
	fvd_test_commit(test, meta, fvd_test_builder(test, 1), NULL);
	fvd_meta_map_chunk(meta, 5);	/* never committed */
	fvd_meta_mark_local(meta, 21);
	KUNIT_EXPECT_EQ(test, meta->nr_free, 2ULL);

	/* what a load after a crash sees: the committed (staged) state */
	memcpy(meta->table.live, meta->table.staged, meta->table.bytes);
	memcpy(meta->bits.live, meta->bits.staged, meta->bits.bytes);
	KUNIT_EXPECT_EQ(test, 0, fvd_meta_rebuild_chunks(meta));
	KUNIT_EXPECT_EQ(test, meta->nr_free, 3ULL);
	KUNIT_EXPECT_EQ(test, fvd_meta_map_chunk(meta, 7), 1LL);

	/* physical chunk 0 mapped twice */
	fvd_table_set(meta->table.live, 7, 1);
	KUNIT_EXPECT_EQ(test, -EEXIST, fvd_meta_rebuild_chunks(meta));
	/* past the data device */
	fvd_table_set(meta->table.live, 7, 5);
	KUNIT_EXPECT_EQ(test, -ERANGE, fvd_meta_rebuild_chunks(meta));
	/* a local block in an unmapped chunk */
	fvd_table_set(meta->table.live, 7, FVD_CHUNK_UNMAPPED);
	fvd_bit_set(meta->bits.live, 29);
	KUNIT_EXPECT_EQ(test, -EUCLEAN, fvd_meta_rebuild_chunks(meta));
	fvd_test_meta_free(meta);
}

/*
 * A discarded chunk's blocks are absent at once, but its physical chunk is
 * allocated again only once the commit that journals the unmapping has
 * switched I/O epochs (freeing -> unmapped -> draining) and the target
 * released it.  A chunk mapped and unmapped between two commits was never
 * committed: it only waits for the next epoch switch.
 */
static void fvd_test_chunk_discard_reuse(struct kunit *test)
{
	spinlock_t lock;
	struct fvd_meta *meta = fvd_test_compact_meta(test, &lock, 3);
	struct fvd_jbuilder *jb = fvd_test_builder(test, 1);

	KUNIT_EXPECT_EQ(test, fvd_meta_map_chunk(meta, 3), 0LL);
	fvd_meta_mark_local(meta, 12);
	fvd_meta_mark_local(meta, 13);
	fvd_test_commit(test, meta, jb, NULL);

	KUNIT_EXPECT_TRUE(test, fvd_meta_unmap_chunk(meta, 3));
	KUNIT_EXPECT_FALSE(test, fvd_meta_unmap_chunk(meta, 3));
	KUNIT_EXPECT_FALSE(test, fvd_meta_unmap_chunk(meta, 4));
	KUNIT_EXPECT_FALSE(test, fvd_bit_test(meta->bits.live, 12));
	KUNIT_EXPECT_FALSE(test, fvd_bit_test(meta->bits.live, 13));
	KUNIT_EXPECT_EQ(test, meta->nr_local, 0ULL);
	KUNIT_EXPECT_EQ(test, fvd_table_get(meta->table.live, 3), FVD_CHUNK_UNMAPPED);
	KUNIT_EXPECT_FALSE(test, fvd_meta_clean(meta));
	KUNIT_EXPECT_EQ(test, meta->nr_freeing, 1ULL);
	KUNIT_EXPECT_EQ(test, meta->nr_free, 2ULL);

	/* not before the commit: the chunk is neither reused nor counted free */
	KUNIT_EXPECT_EQ(test, fvd_meta_map_chunk(meta, 5), 1LL);
	KUNIT_EXPECT_EQ(test, fvd_meta_map_chunk(meta, 6), 2LL);
	KUNIT_EXPECT_EQ(test, fvd_meta_map_chunk(meta, 7), (s64)-ENOSPC);
	/* nor during it */
	fvd_meta_sweep_start(meta);
	KUNIT_EXPECT_EQ(test, fvd_test_describe(meta, jb), FVD_DESCRIBE_DONE);
	KUNIT_EXPECT_EQ(test, meta->nr_freeing, 0ULL);
	KUNIT_EXPECT_EQ(test, meta->nr_unmapped, 1ULL);
	KUNIT_EXPECT_TRUE(test, fvd_meta_round_freeze(meta));
	KUNIT_EXPECT_EQ(test, meta->nr_unmapped, 0ULL);
	KUNIT_EXPECT_EQ(test, meta->nr_draining, 1ULL);
	KUNIT_EXPECT_EQ(test, fvd_meta_map_chunk(meta, 7), (s64)-ENOSPC);
	fvd_meta_sweep_done(meta, false);
	KUNIT_EXPECT_EQ(test, fvd_meta_release_chunks(meta, &lock), 1ULL);
	KUNIT_EXPECT_EQ(test, fvd_meta_release_chunks(meta, &lock), 0ULL);
	KUNIT_EXPECT_EQ(test, meta->nr_free, 1ULL);
	KUNIT_EXPECT_EQ(test, fvd_meta_map_chunk(meta, 7), 0LL);
	KUNIT_EXPECT_EQ(test, meta->nr_free, 0ULL);
	/* a commit without unmappings drains nothing */
	fvd_meta_sweep_start(meta);
	KUNIT_EXPECT_EQ(test, fvd_test_describe(meta, jb), FVD_DESCRIBE_DONE);
	KUNIT_EXPECT_FALSE(test, fvd_meta_round_freeze(meta));
	fvd_meta_sweep_done(meta, false);

	/* mapped and unmapped between two commits: drains at the next one */
	KUNIT_EXPECT_TRUE(test, fvd_meta_unmap_chunk(meta, 7));
	KUNIT_EXPECT_EQ(test, fvd_meta_map_chunk(meta, 8), (s64)-ENOSPC);
	fvd_test_commit(test, meta, jb, NULL);
	KUNIT_EXPECT_EQ(test, fvd_meta_release_chunks(meta, &lock), 1ULL);
	KUNIT_EXPECT_EQ(test, fvd_meta_map_chunk(meta, 8), 0LL);
	KUNIT_EXPECT_TRUE(test, fvd_meta_unmap_chunk(meta, 8));
	KUNIT_EXPECT_EQ(test, meta->nr_unmapped, 1ULL);
	KUNIT_EXPECT_EQ(test, meta->nr_freeing, 0ULL);
	fvd_meta_sweep_start(meta);
	KUNIT_EXPECT_EQ(test, fvd_test_describe(meta, jb), FVD_DESCRIBE_DONE);
	KUNIT_EXPECT_EQ(test, jb->nr_blocks, 0U);
	KUNIT_EXPECT_TRUE(test, fvd_meta_round_freeze(meta));
	fvd_meta_sweep_done(meta, false);
	KUNIT_EXPECT_EQ(test, fvd_meta_release_chunks(meta, &lock), 1ULL);

	/* a load forgets chunks on their way to being free */
	KUNIT_EXPECT_TRUE(test, fvd_meta_unmap_chunk(meta, 5));
	KUNIT_EXPECT_EQ(test, 0, fvd_meta_rebuild_chunks(meta));
	KUNIT_EXPECT_EQ(test, meta->nr_freeing, 0ULL);
	KUNIT_EXPECT_EQ(test, meta->nr_free, 2ULL);
	fvd_test_meta_free(meta);
}

/* Build the journal records of the next commit into @log. */
static void fvd_test_commit_records(struct kunit *test, struct fvd_meta *meta,
				    struct fvd_jbuilder *jb,
				    struct fvd_jrec_log *log)
{
	fvd_test_commit(test, meta, jb, log);
	KUNIT_ASSERT_LE(test, jb->nr_blocks, 1U);
}

/* Replay @log onto @bits and @table, as a load does. */
static void fvd_test_apply_log(struct kunit *test, struct fvd_meta *meta,
			       const struct fvd_jrec_log *log, u8 *bits,
			       u8 *table)
{
	int i;

	for (i = 0; i < log->nr; i++)
		KUNIT_EXPECT_EQ(test, 0, fvd_jrec_apply(&meta->sb, &log->recs[i],
							bits, table));
}

/*
 * A chunk whose entry changed is journaled with all its local blocks, and
 * replay of its table record drops the bits of the old mapping: replaying
 * the commits onto the committed state gives exactly the live state.
 */
static void fvd_test_chunk_unmap_replay(struct kunit *test)
{
	spinlock_t lock;
	struct fvd_meta *meta = fvd_test_compact_meta(test, &lock, 10);
	struct fvd_jbuilder jb = { .max_blocks = 1 };
	struct fvd_jrec_log log;
	u8 *bits, *table;

	jb.buf = kunit_kzalloc(test, FVD_JOURNAL_BLOCK_SIZE, GFP_KERNEL);
	bits = kunit_kzalloc(test, meta->bits.bytes, GFP_KERNEL);
	table = kunit_kzalloc(test, meta->table.bytes, GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, jb.buf);
	KUNIT_ASSERT_NOT_NULL(test, bits);
	KUNIT_ASSERT_NOT_NULL(test, table);

	fvd_meta_map_chunk(meta, 3);
	fvd_meta_mark_local(meta, 12);
	fvd_meta_mark_local(meta, 13);
	fvd_test_commit_records(test, meta, &jb, &log);
	fvd_test_apply_log(test, meta, &log, bits, table);
	KUNIT_EXPECT_EQ(test, 0, memcmp(bits, meta->bits.live, meta->bits.bytes));

	/* remapped in one commit interval: block 13 was local before too */
	KUNIT_EXPECT_TRUE(test, fvd_meta_unmap_chunk(meta, 3));
	KUNIT_EXPECT_EQ(test, fvd_meta_map_chunk(meta, 3), 1LL);
	fvd_meta_mark_local(meta, 13);
	fvd_meta_mark_local(meta, 14);
	fvd_test_commit_records(test, meta, &jb, &log);
	KUNIT_ASSERT_EQ(test, log.nr, 2);
	KUNIT_EXPECT_EQ(test, log.recs[0].type, FVD_JREC_TABLE);
	KUNIT_EXPECT_EQ(test, le32_to_cpu(log.recs[0].entries[0]), 2U);
	KUNIT_EXPECT_EQ(test, log.recs[1].type, FVD_JREC_BITMAP_SET);
	KUNIT_EXPECT_EQ(test, log.recs[1].start, 13ULL);
	KUNIT_EXPECT_EQ(test, log.recs[1].count, 2U);
	fvd_test_apply_log(test, meta, &log, bits, table);
	KUNIT_EXPECT_FALSE(test, fvd_bit_test(bits, 12));
	KUNIT_EXPECT_EQ(test, 0, memcmp(bits, meta->bits.live, meta->bits.bytes));
	KUNIT_EXPECT_EQ(test, 0, memcmp(table, meta->table.live, meta->table.bytes));

	/* unmapped: the table record alone clears the chunk */
	KUNIT_EXPECT_TRUE(test, fvd_meta_unmap_chunk(meta, 3));
	fvd_test_commit_records(test, meta, &jb, &log);
	KUNIT_ASSERT_EQ(test, log.nr, 1);
	KUNIT_EXPECT_EQ(test, log.recs[0].type, FVD_JREC_TABLE);
	KUNIT_EXPECT_EQ(test, le32_to_cpu(log.recs[0].entries[0]), FVD_CHUNK_UNMAPPED);
	fvd_test_apply_log(test, meta, &log, bits, table);
	KUNIT_EXPECT_EQ(test, 0, memcmp(bits, meta->bits.live, meta->bits.bytes));
	KUNIT_EXPECT_EQ(test, 0, memcmp(table, meta->table.live, meta->table.bytes));

	/* mapped and unmapped between two commits: nothing to journal */
	fvd_meta_map_chunk(meta, 9);
	fvd_meta_mark_local(meta, 37);
	KUNIT_EXPECT_TRUE(test, fvd_meta_unmap_chunk(meta, 9));
	fvd_test_commit_records(test, meta, &jb, &log);
	KUNIT_EXPECT_EQ(test, jb.nr_blocks, 0U);
	KUNIT_EXPECT_EQ(test, 0, memcmp(bits, meta->bits.live, meta->bits.bytes));

	/* the shared apply refuses records outside the image */
	log.recs[0].start = meta->sb.nr_chunks;
	KUNIT_EXPECT_EQ(test, -EINVAL, fvd_jrec_apply(&meta->sb, &log.recs[0],
						      bits, table));
	log.recs[0].start = 0;
	KUNIT_EXPECT_EQ(test, -EINVAL, fvd_jrec_apply(&meta->sb, &log.recs[0],
						      bits, NULL));
	fvd_test_meta_free(meta);
}

/* A compact meta of @blocks 4K blocks in chunks of @chunk_blocks. */
static struct fvd_meta *fvd_test_big_compact_meta(struct kunit *test,
						  spinlock_t *lock, u64 blocks,
						  u32 chunk_blocks, u64 nr_phys)
{
	struct fvd_meta *meta = kunit_kzalloc(test, sizeof(*meta), GFP_KERNEL);

	KUNIT_ASSERT_NOT_NULL(test, meta);
	spin_lock_init(lock);
	KUNIT_ASSERT_EQ(test, 0, fvd_layout_init(&meta->sb, blocks * 8, 0, 8,
						 chunk_blocks * 8, 64, true));
	KUNIT_ASSERT_EQ(test, 0, fvd_meta_alloc(meta));
	KUNIT_ASSERT_EQ(test, 0, fvd_meta_set_capacity(meta, nr_phys, lock));
	return meta;
}

static u8 *fvd_test_copy(struct kunit *test, const u8 *map, size_t bytes)
{
	u8 *copy = kunit_kmalloc(test, bytes, GFP_KERNEL);

	KUNIT_ASSERT_NOT_NULL(test, copy);
	memcpy(copy, map, bytes);
	return copy;
}

/*
 * Is the image @bits/@table, which a prefix of a commit's journal writes
 * replays to, one a crash may leave?  Every chunk holds its mapping of
 * before the commit with exactly the bits it had then, or its new mapping
 * with some of its new bits (and all of the old ones if the mapping did
 * not change); no physical chunk is named twice.
 */
static void fvd_test_check_prefix(struct kunit *test, const struct fvd_meta *meta,
				  const u8 *old_bits, const u8 *old_table,
				  const u8 *new_bits, const u8 *new_table,
				  const u8 *bits, const u8 *table)
{
	unsigned long *named = kunit_kzalloc(test, BITS_TO_LONGS(meta->nr_phys) *
					     sizeof(long), GFP_KERNEL);
	u64 c, b, first, end;
	u32 e, eo, en;
	bool now, before, after;

	KUNIT_ASSERT_NOT_NULL(test, named);
	for (c = 0; c < meta->sb.nr_chunks; c++) {
		e = fvd_table_get(table, c);
		eo = fvd_table_get(old_table, c);
		en = fvd_table_get(new_table, c);
		KUNIT_ASSERT_TRUE_MSG(test, e == eo || e == en,
				      "chunk %llu maps %u: neither %u nor %u", c, e, eo, en);
		if (e) {
			KUNIT_ASSERT_FALSE_MSG(test, __test_and_set_bit(e - 1, named),
					       "physical chunk %u named twice", e - 1);
		}
		fvd_chunk_blocks(&meta->sb, c, &first, &end);
		for (b = first; b < end; b++) {
			now = fvd_bit_test(bits, b);
			before = fvd_bit_test(old_bits, b);
			after = fvd_bit_test(new_bits, b);
			if (e != en)
				KUNIT_ASSERT_EQ_MSG(test, now, before,
						    "block %llu of chunk %llu, old mapping", b, c);
			else if (e == eo)
				KUNIT_ASSERT_TRUE_MSG(test, (!before || now) && (!now || after),
						      "block %llu of chunk %llu", b, c);
			else
				KUNIT_ASSERT_TRUE_MSG(test, !now || after,
						      "block %llu of chunk %llu, new mapping", b, c);
		}
	}
}

/*
 * A compact image's commit larger than one journal write, with chunks
 * unmapped, remapped and newly mapped in its interval: every round leaves
 * the staged copy equal to what the journal replays to, and each prefix
 * of the rounds replays to an image a crash may leave; all of them, to the
 * live one.  (Before, such a commit went home as a whole, past the
 * journal: a torn write of it left bits of one mapping with the other.)
 */
static void fvd_test_commit_in_rounds_compact(struct kunit *test)
{
	spinlock_t lock;
	struct fvd_meta *meta = fvd_test_big_compact_meta(test, &lock, 4096, 4, 2048);
	struct fvd_jbuilder *big = fvd_test_builder(test, 16);
	struct fvd_jbuilder *jb = fvd_test_builder(test, 1);
	struct fvd_replay_state rs = { .sb = &meta->sb };
	u8 *old_bits, *old_table, *new_bits, *new_table;
	enum fvd_describe step;
	unsigned int rounds = 0;
	u64 c;

	for (c = 0; c < 600; c++) {
		KUNIT_ASSERT_GE(test, fvd_meta_map_chunk(meta, c), 0LL);
		fvd_meta_mark_local(meta, 4 * c);
		fvd_meta_mark_local(meta, 4 * c + 2);
	}
	fvd_test_commit(test, meta, big, NULL);
	KUNIT_ASSERT_EQ(test, fvd_meta_release_chunks(meta, &lock), 0ULL);
	old_bits = fvd_test_copy(test, meta->bits.staged, meta->bits.bytes);
	old_table = fvd_test_copy(test, meta->table.staged, meta->table.bytes);
	rs.bits = fvd_test_copy(test, old_bits, meta->bits.bytes);
	rs.table = fvd_test_copy(test, old_table, meta->table.bytes);

	/* discards, remappings with bits of their own, new chunks, new bits */
	for (c = 0; c < 200; c++)
		KUNIT_ASSERT_TRUE(test, fvd_meta_unmap_chunk(meta, c));
	for (c = 100; c < 200; c++) {
		KUNIT_ASSERT_GE(test, fvd_meta_map_chunk(meta, c), 600LL);
		fvd_meta_mark_local(meta, 4 * c + 2);
		fvd_meta_mark_local(meta, 4 * c + 3);
	}
	for (c = 700; c < 900; c++) {
		KUNIT_ASSERT_GE(test, fvd_meta_map_chunk(meta, c), 0LL);
		fvd_meta_mark_local(meta, 4 * c + 1);
		fvd_meta_mark_local(meta, 4 * c + 3);
	}
	for (c = 300; c < 400; c++)
		fvd_meta_mark_local(meta, 4 * c + 1);
	new_bits = fvd_test_copy(test, meta->bits.live, meta->bits.bytes);
	new_table = fvd_test_copy(test, meta->table.live, meta->table.bytes);

	fvd_meta_sweep_start(meta);
	do {
		step = fvd_test_describe(meta, jb);
		fvd_test_replay_builder(test, jb, &rs);
		KUNIT_ASSERT_EQ(test, 0, memcmp(rs.bits, meta->bits.staged, meta->bits.bytes));
		KUNIT_ASSERT_EQ(test, 0, memcmp(rs.table, meta->table.staged,
						meta->table.bytes));
		fvd_test_check_prefix(test, meta, old_bits, old_table, new_bits,
				      new_table, rs.bits, rs.table);
		rounds++;
	} while (step == FVD_DESCRIBE_FULL && rounds < 100);
	KUNIT_EXPECT_EQ(test, step, FVD_DESCRIBE_DONE);
	KUNIT_EXPECT_GT(test, rounds, 2U);
	KUNIT_EXPECT_TRUE(test, fvd_meta_round_freeze(meta));
	fvd_meta_sweep_done(meta, false);
	KUNIT_EXPECT_EQ(test, 0, memcmp(rs.bits, meta->bits.live, meta->bits.bytes));
	KUNIT_EXPECT_EQ(test, 0, memcmp(rs.table, meta->table.live, meta->table.bytes));
	/* the 200 chunks discarded are free once the commit is done */
	KUNIT_EXPECT_EQ(test, fvd_meta_release_chunks(meta, &lock), 200ULL);
	KUNIT_EXPECT_TRUE(test, fvd_meta_clean(meta));
	fvd_test_meta_free(meta);
}

/*
 * A chunk with more runs than one journal write holds goes out over two;
 * remapped between them, it is described again from its start, its table
 * entry first: the bits of the first round were of the old mapping.
 */
static void fvd_test_chunk_remapped_between_rounds(struct kunit *test)
{
	spinlock_t lock;
	struct fvd_meta *meta = fvd_test_big_compact_meta(test, &lock, 1024, 512, 4);
	struct fvd_jbuilder *jb = fvd_test_builder(test, 1);
	struct fvd_replay_state rs = { .sb = &meta->sb };
	u64 b;

	rs.bits = fvd_test_copy(test, meta->bits.staged, meta->bits.bytes);
	rs.table = fvd_test_copy(test, meta->table.staged, meta->table.bytes);
	KUNIT_ASSERT_EQ(test, fvd_meta_map_chunk(meta, 1), 0LL);
	for (b = 512; b < 1024; b += 2)
		fvd_meta_mark_local(meta, b);
	fvd_meta_sweep_start(meta);
	KUNIT_ASSERT_EQ(test, fvd_test_describe(meta, jb), FVD_DESCRIBE_FULL);
	fvd_test_replay_builder(test, jb, &rs);
	KUNIT_EXPECT_EQ(test, fvd_table_get(rs.table, 1), 1U);
	KUNIT_EXPECT_TRUE(test, fvd_bit_test(rs.bits, 512));
	KUNIT_EXPECT_FALSE(test, fvd_bit_test(rs.bits, 1022));

	/* discarded and written again between the rounds */
	KUNIT_EXPECT_TRUE(test, fvd_meta_unmap_chunk(meta, 1));
	KUNIT_ASSERT_EQ(test, fvd_meta_map_chunk(meta, 1), 1LL);
	fvd_meta_mark_local(meta, 1023);
	KUNIT_EXPECT_EQ(test, fvd_test_describe(meta, jb), FVD_DESCRIBE_DONE);
	fvd_test_replay_builder(test, jb, &rs);
	KUNIT_EXPECT_EQ(test, fvd_table_get(rs.table, 1), 2U);
	for (b = 512; b < 1024; b++)
		KUNIT_EXPECT_EQ(test, fvd_bit_test(rs.bits, b), b == 1023);
	KUNIT_EXPECT_EQ(test, 0, memcmp(rs.bits, meta->bits.staged, meta->bits.bytes));
	KUNIT_EXPECT_EQ(test, 0, memcmp(rs.table, meta->table.staged, meta->table.bytes));
	KUNIT_EXPECT_TRUE(test, fvd_meta_round_freeze(meta));
	fvd_meta_sweep_done(meta, false);
	KUNIT_EXPECT_EQ(test, 0, memcmp(rs.bits, meta->bits.live, meta->bits.bytes));
	KUNIT_EXPECT_EQ(test, fvd_meta_release_chunks(meta, &lock), 1ULL);
	fvd_test_meta_free(meta);
}

/*
 * The same with a chunk larger than a bitmap block (65536 blocks): the
 * sweep goes back to the chunk's start, in an earlier bitmap block.
 */
static void fvd_test_large_chunk_remapped_between_rounds(struct kunit *test)
{
	spinlock_t lock;
	struct fvd_meta *meta = fvd_test_big_compact_meta(test, &lock, 4 * 65536,
							  65536, 4);
	struct fvd_jbuilder *jb = fvd_test_builder(test, 1);
	struct fvd_replay_state rs = { .sb = &meta->sb };
	u64 b;

	rs.bits = fvd_test_copy(test, meta->bits.staged, meta->bits.bytes);
	rs.table = fvd_test_copy(test, meta->table.staged, meta->table.bytes);
	KUNIT_ASSERT_EQ(test, fvd_meta_map_chunk(meta, 1), 0LL);
	for (b = 98304; b < 98304 + 600; b += 2)
		fvd_meta_mark_local(meta, b);
	fvd_meta_sweep_start(meta);
	KUNIT_ASSERT_EQ(test, fvd_test_describe(meta, jb), FVD_DESCRIBE_FULL);
	KUNIT_EXPECT_GT(test, meta->sweep_block, 98304ULL);
	fvd_test_replay_builder(test, jb, &rs);
	KUNIT_EXPECT_EQ(test, fvd_table_get(rs.table, 1), 1U);
	KUNIT_EXPECT_TRUE(test, fvd_bit_test(rs.bits, 98304));

	KUNIT_EXPECT_TRUE(test, fvd_meta_unmap_chunk(meta, 1));
	KUNIT_ASSERT_EQ(test, fvd_meta_map_chunk(meta, 1), 1LL);
	fvd_meta_mark_local(meta, 65536 + 5);
	KUNIT_EXPECT_EQ(test, fvd_test_describe(meta, jb), FVD_DESCRIBE_DONE);
	fvd_test_replay_builder(test, jb, &rs);
	KUNIT_EXPECT_EQ(test, fvd_table_get(rs.table, 1), 2U);
	for (b = 65536; b < 131072; b++)
		if (fvd_bit_test(rs.bits, b) != (b == 65536 + 5))
			KUNIT_FAIL(test, "block %llu after the rewind", b);
	KUNIT_EXPECT_EQ(test, 0, memcmp(rs.bits, meta->bits.staged, meta->bits.bytes));
	KUNIT_EXPECT_TRUE(test, fvd_meta_round_freeze(meta));
	fvd_meta_sweep_done(meta, false);
	KUNIT_EXPECT_EQ(test, 0, memcmp(rs.bits, meta->bits.live, meta->bits.bytes));
	KUNIT_EXPECT_EQ(test, fvd_meta_release_chunks(meta, &lock), 1ULL);
	fvd_test_meta_free(meta);
}

static struct kunit_case fvd_compact_cases[] = {
	KUNIT_CASE(fvd_test_compact_layout),
	KUNIT_CASE(fvd_test_compact_sb_rejects),
	KUNIT_CASE(fvd_test_table_records),
	KUNIT_CASE(fvd_test_chunk_alloc),
	KUNIT_CASE(fvd_test_chunk_commit),
	KUNIT_CASE(fvd_test_chunk_leak_recovery),
	KUNIT_CASE(fvd_test_chunk_discard_reuse),
	KUNIT_CASE(fvd_test_chunk_unmap_replay),
	KUNIT_CASE(fvd_test_commit_in_rounds_compact),
	KUNIT_CASE(fvd_test_chunk_remapped_between_rounds),
	KUNIT_CASE(fvd_test_large_chunk_remapped_between_rounds),
	{}
};

static struct kunit_suite fvd_compact_suite = {
	.name = "dm-fvd-compact",
	.test_cases = fvd_compact_cases,
};

/* ---- table line ---- */

struct fvd_table_case {
	const char *name;
	const char *line;
	const char *error;	/* NULL: accepted */
};

static const struct fvd_table_case fvd_table_cases[] = {
	{ "minimal", "/dev/m /dev/d /dev/o", NULL },
	{ "no origin", "/dev/m /dev/m -", NULL },
	{ "zero features", "/dev/m /dev/d /dev/o 0", NULL },
	{ "read_only", "/dev/m /dev/d /dev/o 1 read_only", NULL },
	{ "read_only any case", "/dev/m /dev/d - 1 READ_ONLY", NULL },
	{ "no arguments", "", "Not enough arguments" },
	{ "two arguments", "/dev/m /dev/d", "Not enough arguments" },
	{ "count not a number", "/dev/m /dev/d /dev/o one", "Invalid number of feature" },
	{ "count negative", "/dev/m /dev/d /dev/o -1", "Invalid number of feature" },
	{ "count too large", "/dev/m /dev/d /dev/o 26 a", "Invalid number of feature" },
	{ "copy-on-read features", "/dev/m /dev/d /dev/o 3 no_copy_on_read max_cor_inflight 64", NULL },
	{ "max_cor_inflight zero", "/dev/m /dev/d /dev/o 2 max_cor_inflight 0", "Invalid max_cor_inflight" },
	{ "max_cor_inflight too large", "/dev/m /dev/d /dev/o 2 max_cor_inflight 1048577", "Invalid max_cor_inflight" },
	{ "max_cor_inflight without value", "/dev/m /dev/d /dev/o 1 max_cor_inflight", "missing its value" },
	{ "repeated feature", "/dev/m /dev/d /dev/o 2 read_only read_only", "Repeated feature argument" },
	{ "space features", "/dev/m /dev/d - 5 error_if_no_space low_water_mark 10 no_space_timeout 0", NULL },
	{ "low_water_mark without value", "/dev/m /dev/d - 1 low_water_mark", "missing its value" },
	{ "low_water_mark not a number", "/dev/m /dev/d - 2 low_water_mark ten", "Invalid low_water_mark" },
	{ "no_space_timeout over a day", "/dev/m /dev/d - 2 no_space_timeout 86401", "Invalid no_space_timeout" },
	{ "no_space_timeout negative", "/dev/m /dev/d - 2 no_space_timeout -1", "Invalid no_space_timeout" },
	{ "prefetch features", "/dev/m /dev/d /dev/o 5 no_prefetch prefetch_delay 0 PREFETCH_BATCH 4", NULL },
	{ "every tunable at its maximum", "/dev/m /dev/d /dev/o 16 prefetch_delay 86400 prefetch_batch 65536 prefetch_writes 64 prefetch_window 60000 prefetch_min_read 16777216 prefetch_min_write 16777216 prefetch_max_pause 600000 prefetch_max_rate 16777216", NULL },
	{ "skip_origin_check", "/dev/m /dev/d /dev/o 1 skip_origin_check", NULL },
	{ "origin_error_mode queue", "/dev/m /dev/d /dev/o 4 origin_error_mode queue origin_queue_timeout 1", NULL },
	{ "origin_error_mode unknown", "/dev/m /dev/d /dev/o 2 origin_error_mode retry", "Invalid origin_error_mode" },
	{ "origin_error_mode twice", "/dev/m /dev/d /dev/o 4 origin_error_mode fail origin_error_mode queue", "Repeated feature argument" },
	{ "origin_error_mode without value", "/dev/m /dev/d /dev/o 1 origin_error_mode", "missing its value" },
	{ "origin_queue_timeout without queue", "/dev/m /dev/d /dev/o 2 origin_queue_timeout 5", "origin_queue_timeout needs origin_error_mode queue" },
	{ "origin_queue_timeout with fail", "/dev/m /dev/d /dev/o 4 origin_queue_timeout 5 origin_error_mode fail", "origin_queue_timeout needs origin_error_mode queue" },
	{ "origin_queue_timeout zero", "/dev/m /dev/d /dev/o 4 origin_error_mode queue origin_queue_timeout 0", "Invalid origin_queue_timeout" },
	{ "origin_queue_timeout over a day", "/dev/m /dev/d /dev/o 4 origin_error_mode queue origin_queue_timeout 86401", "Invalid origin_queue_timeout" },
	{ "skip_origin_check twice", "/dev/m /dev/d /dev/o 2 skip_origin_check skip_origin_check", "Repeated feature argument" },
	{ "every feature", "/dev/m /dev/d /dev/o 33 read_only no_copy_on_read max_cor_inflight 1 error_if_no_space low_water_mark 1 no_space_timeout 1 no_prefetch skip_origin_check origin_error_mode queue origin_queue_timeout 9 prefetch_delay 1 prefetch_batch 4 prefetch_writes 1 prefetch_window 10 prefetch_min_read 0 prefetch_min_write 0 prefetch_max_pause 1 prefetch_max_rate 0 profile_seconds 1", NULL },
	{ "every feature and one more", "/dev/m /dev/d /dev/o 34 read_only no_copy_on_read max_cor_inflight 1 error_if_no_space low_water_mark 1 no_space_timeout 1 no_prefetch skip_origin_check origin_error_mode queue origin_queue_timeout 9 prefetch_delay 1 prefetch_batch 4 prefetch_writes 1 prefetch_window 10 prefetch_min_read 0 prefetch_min_write 0 prefetch_max_pause 1 prefetch_max_rate 0 profile_seconds 1 read_only", "Invalid number of feature" },
	{ "prefetch_batch below 4 KiB", "/dev/m /dev/d /dev/o 2 prefetch_batch 3", "Invalid prefetch_batch" },
	{ "prefetch_writes too many", "/dev/m /dev/d /dev/o 2 prefetch_writes 65", "Invalid prefetch_writes" },
	{ "prefetch_window too short", "/dev/m /dev/d /dev/o 2 prefetch_window 9", "Invalid prefetch_window" },
	{ "prefetch_min_read not a number", "/dev/m /dev/d /dev/o 2 prefetch_min_read fast", "Invalid prefetch_min_read" },
	{ "prefetch_min_write too large", "/dev/m /dev/d /dev/o 2 prefetch_min_write 16777217", "Invalid prefetch_min_write" },
	{ "prefetch_max_pause zero", "/dev/m /dev/d /dev/o 2 prefetch_max_pause 0", "Invalid prefetch_max_pause" },
	{ "prefetch_delay over a day", "/dev/m /dev/d /dev/o 2 prefetch_delay 86401", "Invalid prefetch_delay" },
	{ "prefetch_max_rate too large", "/dev/m /dev/d /dev/o 2 prefetch_max_rate 16777217", "Invalid prefetch_max_rate" },
	{ "prefetch_max_rate with a unit", "/dev/m /dev/d /dev/o 2 prefetch_max_rate 10M", "Invalid prefetch_max_rate" },
	{ "prefetch tunable repeated", "/dev/m /dev/d /dev/o 4 prefetch_batch 8 prefetch_batch 8", "Repeated feature argument" },
	{ "prefetch tunable without value", "/dev/m /dev/d /dev/o 1 prefetch_window", "missing its value" },
	{ "count beyond args", "/dev/m /dev/d /dev/o 1", "Invalid number of feature" },
	{ "unknown feature", "/dev/m /dev/d /dev/o 1 discard", "Unknown feature argument" },
	{ "unknown feature with a value", "/dev/m /dev/d /dev/o 2 frobnicate 1", "Unknown feature argument" },
	{ "valueless feature twice", "/dev/m /dev/d /dev/o 2 no_prefetch no_prefetch", "Repeated feature argument" },
	{ "repeated feature without its value", "/dev/m /dev/d - 3 low_water_mark 5 low_water_mark", "Repeated feature argument" },
	{ "trailing argument", "/dev/m /dev/d /dev/o 0 x", "Unexpected arguments" },
	{ "trailing after feature", "/dev/m /dev/d /dev/o 1 read_only x", "Unexpected arguments" },
};

static void fvd_table_case_desc(const struct fvd_table_case *c, char *desc)
{
	strscpy(desc, c->name, KUNIT_PARAM_DESC_SIZE);
}

KUNIT_ARRAY_PARAM(fvd_table, fvd_table_cases, fvd_table_case_desc);

static void fvd_test_table_parse(struct kunit *test)
{
	const struct fvd_table_case *c = test->param_value;
	struct fvd_table_args args;
	char *line, *argv[48], *error = NULL, *word;
	unsigned int argc = 0;
	int r;

	line = kunit_kzalloc(test, strlen(c->line) + 1, GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, line);
	strcpy(line, c->line);
	while (argc < ARRAY_SIZE(argv) && (word = strsep(&line, " ")))
		if (*word)
			argv[argc++] = word;
	/* every word taken: a longer case needs a larger argv */
	KUNIT_ASSERT_NULL(test, line);

	r = fvd_parse_table_args(argc, argv, &args, &error);
	if (!c->error) {
		KUNIT_EXPECT_EQ(test, r, 0);
		return;
	}
	KUNIT_EXPECT_EQ(test, r, -EINVAL);
	KUNIT_ASSERT_NOT_NULL(test, error);
	KUNIT_EXPECT_NOT_NULL_MSG(test, strstr(error, c->error),
				  "error was \"%s\"", error);
}

static void fvd_test_table_values(struct kunit *test)
{
	char a[] = "/dev/meta", b[] = "/dev/data", c[] = "-", d[] = "1";
	char e[sizeof("skip_origin_check")] = "read_only";
	struct fvd_table_args args;
	char *error = NULL;
	char *argv[5];

	argv[0] = a;
	argv[1] = b;
	argv[2] = c;
	argv[3] = d;
	argv[4] = e;

	KUNIT_ASSERT_EQ(test, 0, fvd_parse_table_args(5, argv, &args, &error));
	KUNIT_EXPECT_STREQ(test, args.meta_path, "/dev/meta");
	KUNIT_EXPECT_STREQ(test, args.data_path, "/dev/data");
	KUNIT_EXPECT_NULL(test, args.origin_path);
	KUNIT_EXPECT_TRUE(test, args.read_only);
	KUNIT_EXPECT_FALSE(test, args.skip_origin_check);
	strscpy(e, "skip_origin_check", sizeof(e));
	KUNIT_ASSERT_EQ(test, 0, fvd_parse_table_args(5, argv, &args, &error));
	KUNIT_EXPECT_TRUE(test, args.skip_origin_check);
	KUNIT_EXPECT_FALSE(test, args.read_only);
	KUNIT_ASSERT_EQ(test, 0, fvd_parse_table_args(3, argv, &args, &error));
	KUNIT_EXPECT_FALSE(test, args.read_only);
	KUNIT_EXPECT_FALSE(test, args.skip_origin_check);
	KUNIT_EXPECT_EQ(test, args.no_space_timeout, 60U);
	KUNIT_EXPECT_FALSE(test, args.error_if_no_space);
	KUNIT_EXPECT_FALSE(test, args.no_prefetch);
	KUNIT_EXPECT_EQ(test, args.given_tunables, 0UL);
	KUNIT_EXPECT_EQ(test, args.tunables[FVD_PREFETCH_DELAY], 30U);
	KUNIT_EXPECT_EQ(test, args.tunables[FVD_PREFETCH_BATCH], 1024U);
}

static void fvd_test_table_prefetch_values(struct kunit *test)
{
	char a[] = "/dev/meta", b[] = "/dev/data", c[] = "/dev/o", d[] = "5";
	char e[] = "prefetch_window", f[] = "250", g[] = "no_prefetch";
	char h[] = "prefetch_min_write", i[] = "0";
	struct fvd_table_args args;
	char *error = NULL;
	char *argv[9] = { a, b, c, d, e, f, g, h, i };

	KUNIT_ASSERT_EQ(test, 0, fvd_parse_table_args(ARRAY_SIZE(argv), argv,
						      &args, &error));
	KUNIT_EXPECT_TRUE(test, args.no_prefetch);
	KUNIT_EXPECT_EQ(test, args.tunables[FVD_PREFETCH_WINDOW], 250U);
	KUNIT_EXPECT_EQ(test, args.tunables[FVD_PREFETCH_MIN_WRITE], 0U);
	KUNIT_EXPECT_EQ(test, args.given_tunables,
			BIT(FVD_PREFETCH_WINDOW) | BIT(FVD_PREFETCH_MIN_WRITE));
	/* the others keep their defaults */
	KUNIT_EXPECT_EQ(test, args.tunables[FVD_PREFETCH_MIN_READ],
			fvd_tunables[FVD_PREFETCH_MIN_READ].def);
}

static void fvd_test_table_origin_error_values(struct kunit *test)
{
	char a[] = "/dev/meta", b[] = "/dev/data", c[] = "/dev/o", d[] = "4";
	char e[] = "origin_error_mode", f[] = "QUEUE", g[] = "origin_queue_timeout";
	char h[] = "86400";
	struct fvd_table_args args;
	char *error = NULL;
	char *argv[8] = { a, b, c, d, e, f, g, h };

	KUNIT_ASSERT_EQ(test, 0, fvd_parse_table_args(ARRAY_SIZE(argv), argv,
						      &args, &error));
	KUNIT_EXPECT_TRUE(test, args.have_origin_error_mode);
	KUNIT_EXPECT_TRUE(test, args.origin_queue);
	KUNIT_EXPECT_TRUE(test, args.have_origin_queue_timeout);
	KUNIT_EXPECT_EQ(test, args.origin_queue_timeout, 86400U);
	/* queue without a timeout waits the default; fail is today's EIO */
	d[0] = '2';
	KUNIT_ASSERT_EQ(test, 0, fvd_parse_table_args(6, argv, &args, &error));
	KUNIT_EXPECT_TRUE(test, args.origin_queue);
	KUNIT_EXPECT_FALSE(test, args.have_origin_queue_timeout);
	KUNIT_EXPECT_EQ(test, args.origin_queue_timeout, 60U);
	strscpy(f, "fail", sizeof(f));
	KUNIT_ASSERT_EQ(test, 0, fvd_parse_table_args(6, argv, &args, &error));
	KUNIT_EXPECT_TRUE(test, args.have_origin_error_mode);
	KUNIT_EXPECT_FALSE(test, args.origin_queue);
	KUNIT_ASSERT_EQ(test, 0, fvd_parse_table_args(3, argv, &args, &error));
	KUNIT_EXPECT_FALSE(test, args.have_origin_error_mode);
	KUNIT_EXPECT_FALSE(test, args.origin_queue);
}

static void fvd_test_table_space_values(struct kunit *test)
{
	char a[] = "/dev/meta", b[] = "/dev/data", c[] = "-", d[] = "5";
	char e[] = "low_water_mark", f[] = "12", g[] = "no_space_timeout";
	char h[] = "7", i[] = "error_if_no_space";
	struct fvd_table_args args;
	char *error = NULL;
	char *argv[9];

	argv[0] = a;
	argv[1] = b;
	argv[2] = c;
	argv[3] = d;
	argv[4] = e;
	argv[5] = f;
	argv[6] = g;
	argv[7] = h;
	argv[8] = i;

	KUNIT_ASSERT_EQ(test, 0, fvd_parse_table_args(ARRAY_SIZE(argv), argv,
						      &args, &error));
	KUNIT_EXPECT_TRUE(test, args.have_low_water_mark);
	KUNIT_EXPECT_EQ(test, args.low_water_mark, 12ULL);
	KUNIT_EXPECT_TRUE(test, args.have_no_space_timeout);
	KUNIT_EXPECT_EQ(test, args.no_space_timeout, 7U);
	KUNIT_EXPECT_TRUE(test, args.error_if_no_space);
	KUNIT_EXPECT_FALSE(test, args.read_only);
}

static struct kunit_case fvd_table_cases_list[] = {
	KUNIT_CASE_PARAM(fvd_test_table_parse, fvd_table_gen_params),
	KUNIT_CASE(fvd_test_table_values),
	KUNIT_CASE(fvd_test_table_space_values),
	KUNIT_CASE(fvd_test_table_origin_error_values),
	KUNIT_CASE(fvd_test_table_prefetch_values),
	{}
};

static struct kunit_suite fvd_table_suite = {
	.name = "dm-fvd-table",
	.test_cases = fvd_table_cases_list,
};

/* ---- prefetch ---- */

#define KiB_PER_S(x)	((u64)(x) << 10)

/* Each window's figure is averaged with the ones before, the newest by half. */
static void fvd_test_rate_average(struct kunit *test)
{
	struct fvd_rate rate = {};
	u64 window = NSEC_PER_SEC;

	fvd_rate_reset(&rate, 0);
	KUNIT_EXPECT_FALSE(test, fvd_rate_add(&rate, 1 << 20, NSEC_PER_SEC / 2, window));
	KUNIT_EXPECT_EQ(test, rate.nr_windows, 0U);
	/* 2 MiB in the first second */
	KUNIT_EXPECT_TRUE(test, fvd_rate_add(&rate, 1 << 20, NSEC_PER_SEC, window));
	KUNIT_EXPECT_EQ(test, rate.avg, 2ULL << 20);
	/* 4 MiB/s in the next: the average is 3 MiB/s */
	KUNIT_EXPECT_TRUE(test, fvd_rate_add(&rate, 4 << 20, 2 * NSEC_PER_SEC, window));
	KUNIT_EXPECT_EQ(test, rate.avg, 3ULL << 20);
	/* a window lasts until a completion at least @window after its start */
	KUNIT_EXPECT_FALSE(test, fvd_rate_add(&rate, 0, 2 * NSEC_PER_SEC + 1, window));
	KUNIT_EXPECT_TRUE(test, fvd_rate_add(&rate, 1 << 20, 4 * NSEC_PER_SEC, window));
	/* 1 MiB over 2 s: 0.5 MiB/s, averaged with 3 MiB/s */
	KUNIT_EXPECT_EQ(test, rate.avg, 1792ULL << 10);
	KUNIT_EXPECT_EQ(test, rate.nr_windows, 3U);
	KUNIT_EXPECT_EQ(test, rate.bytes, 0ULL);
	KUNIT_EXPECT_EQ(test, rate.start_ns, 4 * NSEC_PER_SEC);
	/* measuring afresh: the old average is shown, never averaged in */
	fvd_rate_reset(&rate, 5 * NSEC_PER_SEC);
	KUNIT_EXPECT_EQ(test, rate.nr_windows, 0U);
	KUNIT_EXPECT_EQ(test, rate.avg, 1792ULL << 10);
	KUNIT_EXPECT_FALSE(test, fvd_rate_too_slow(&rate, 4096));
	KUNIT_EXPECT_TRUE(test, fvd_rate_add(&rate, 8 << 20, 6 * NSEC_PER_SEC, window));
	KUNIT_EXPECT_EQ(test, rate.avg, 8ULL << 20);
}

static void fvd_test_rate_large(struct kunit *test)
{
	struct fvd_rate rate = {};

	/* 1 TiB in 1 ms: no overflow in bytes * 10^9 */
	fvd_rate_reset(&rate, 0);
	KUNIT_EXPECT_TRUE(test, fvd_rate_add(&rate, 1ULL << 40, NSEC_PER_MSEC,
					     NSEC_PER_MSEC));
	KUNIT_EXPECT_EQ(test, rate.avg, (1ULL << 40) * 1000);
	/* a window much longer than asked for still gives the true rate */
	fvd_rate_reset(&rate, 0);
	KUNIT_EXPECT_TRUE(test, fvd_rate_add(&rate, 3 << 20, 3 * NSEC_PER_SEC,
					     NSEC_PER_MSEC));
	KUNIT_EXPECT_EQ(test, rate.avg, 1ULL << 20);
}

static void fvd_test_pause_decision(struct kunit *test)
{
	struct fvd_rate rate;

	memset(&rate, 0, sizeof(rate));
	fvd_rate_reset(&rate, 0);
	/* nothing measured yet: never too slow */
	KUNIT_EXPECT_FALSE(test, fvd_rate_too_slow(&rate, 1));
	fvd_rate_add(&rate, KiB_PER_S(1792), NSEC_PER_SEC, NSEC_PER_SEC);
	KUNIT_EXPECT_EQ(test, rate.avg, KiB_PER_S(1792));
	/* a minimum of 0 never pauses */
	KUNIT_EXPECT_FALSE(test, fvd_rate_too_slow(&rate, 0));
	/* at the minimum is not below it */
	KUNIT_EXPECT_FALSE(test, fvd_rate_too_slow(&rate, 1792));
	KUNIT_EXPECT_TRUE(test, fvd_rate_too_slow(&rate, 1793));
	/* a window with nothing completed counts as zero throughput */
	fvd_rate_add(&rate, 0, 3 * NSEC_PER_SEC, NSEC_PER_SEC);
	KUNIT_EXPECT_EQ(test, rate.avg, KiB_PER_S(896));
	KUNIT_EXPECT_TRUE(test, fvd_rate_too_slow(&rate, 1024));
}

/* Waiting for the rate cap is left out of the throughput windows. */
static void fvd_test_rate_idle(struct kunit *test)
{
	struct fvd_rate rate = {};
	u64 window = NSEC_PER_SEC;

	fvd_rate_reset(&rate, 0);
	/* 1 MiB read in 0.25 s, then 2.75 s held by the cap */
	KUNIT_EXPECT_FALSE(test, fvd_rate_add(&rate, 1 << 20, NSEC_PER_SEC / 4, window));
	fvd_rate_idle(&rate, NSEC_PER_SEC / 4, 3 * NSEC_PER_SEC);
	KUNIT_EXPECT_EQ(test, rate.start_ns, 11 * NSEC_PER_SEC / 4);
	/* the next MiB in 0.75 s: 2 MiB in 1 s of reading, not in 3.75 s */
	KUNIT_EXPECT_TRUE(test, fvd_rate_add(&rate, 1 << 20, 15 * NSEC_PER_SEC / 4, window));
	KUNIT_EXPECT_EQ(test, rate.avg, 2ULL << 20);
	/* a hold that began before the window counts from its start only */
	fvd_rate_idle(&rate, NSEC_PER_SEC, 4 * NSEC_PER_SEC);
	KUNIT_EXPECT_EQ(test, rate.start_ns, 4 * NSEC_PER_SEC);
	/* nothing held, or time going backwards: no change */
	fvd_rate_idle(&rate, 5 * NSEC_PER_SEC, 5 * NSEC_PER_SEC);
	fvd_rate_idle(&rate, 6 * NSEC_PER_SEC, 5 * NSEC_PER_SEC);
	KUNIT_EXPECT_EQ(test, rate.start_ns, 4 * NSEC_PER_SEC);
}

/* prefetch_max_rate: cap * T plus one batch in any span of T. */
static void fvd_test_pace(struct kunit *test)
{
	u64 next = 0, now, bytes = 0, first = 0;
	unsigned int i;

	/* no cap: never wait */
	KUNIT_EXPECT_EQ(test, fvd_pace_wait_ns(U64_MAX, 0, 0), 0ULL);
	KUNIT_EXPECT_EQ(test, fvd_pace_next_ns(5, 7, 1 << 20, 0), 7ULL);
	/* 1 MiB at 1024 KiB/s: the next batch a second later */
	next = fvd_pace_next_ns(0, NSEC_PER_SEC, 1 << 20, 1024);
	KUNIT_EXPECT_EQ(test, next, 2 * NSEC_PER_SEC);
	KUNIT_EXPECT_EQ(test, fvd_pace_wait_ns(next, NSEC_PER_SEC, 1024), NSEC_PER_SEC);
	KUNIT_EXPECT_EQ(test, fvd_pace_wait_ns(next, 2 * NSEC_PER_SEC, 1024), 0ULL);
	/* idle for a minute: no credit, the next batch counts from now */
	KUNIT_EXPECT_EQ(test, fvd_pace_next_ns(next, 62 * NSEC_PER_SEC, 1 << 19, 1024),
			62 * NSEC_PER_SEC + NSEC_PER_SEC / 2);
	/* late starts (work queued late) never let more through */
	next = 0;
	now = 0;
	for (i = 0; i < 1000; i++) {
		now += fvd_pace_wait_ns(next, now, 4096) + (i % 7) * NSEC_PER_MSEC;
		if (!i)
			first = now;
		next = fvd_pace_next_ns(next, now, 256 << 10, 4096);
		bytes += 256 << 10;
	}
	/* 999 batches after the first, at 4 MiB/s: at least 999/16 s */
	KUNIT_EXPECT_LE(test, bytes - (256 << 10),
			mul_u64_u64_div_u64(now - first, 4096ULL << 10, NSEC_PER_SEC));
	/* the largest batch at the lowest cap: 65536 s, no overflow */
	KUNIT_EXPECT_EQ(test, fvd_pace_next_ns(0, 0, 64ULL << 20, 1), 65536 * NSEC_PER_SEC);
	KUNIT_EXPECT_EQ(test, fvd_pace_next_ns(0, 0, 64ULL << 20, 1U << 24),
			NSEC_PER_SEC / 256);
}

static void fvd_test_pause_random(struct kunit *test)
{
	u32 first = fvd_prefetch_pause_ms(1000), ms, i;
	bool differ = false;

	for (i = 0; i < 200; i++) {
		ms = fvd_prefetch_pause_ms(1000);
		KUNIT_EXPECT_GE(test, ms, 1U);
		KUNIT_EXPECT_LE(test, ms, 1000U);
		differ |= ms != first;
	}
	/* 200 equal draws out of 1000: hosts pausing in lock step */
	KUNIT_EXPECT_TRUE(test, differ);
	KUNIT_EXPECT_EQ(test, fvd_prefetch_pause_ms(1), 1U);
}

static void fvd_test_tunables(struct kunit *test)
{
	unsigned int id;
	u32 v = 0;

	for (id = 0; id < FVD_NR_TUNABLES; id++) {
		const struct fvd_tunable *t = &fvd_tunables[id];
		char text[16];

		KUNIT_EXPECT_EQ(test, fvd_tunable_lookup(t->name), (int)id);
		KUNIT_EXPECT_NOT_NULL(test, strstr(t->error, t->name));
		KUNIT_EXPECT_GE(test, t->def, t->min);
		KUNIT_EXPECT_LE(test, t->def, t->max);
		snprintf(text, sizeof(text), "%u", t->max);
		KUNIT_EXPECT_EQ(test, fvd_tunable_parse(id, text, &v), 0);
		KUNIT_EXPECT_EQ(test, v, t->max);
		snprintf(text, sizeof(text), "%llu", (u64)t->max + 1);
		KUNIT_EXPECT_EQ(test, fvd_tunable_parse(id, text, &v), -EINVAL);
		if (t->min) {
			snprintf(text, sizeof(text), "%u", t->min - 1);
			KUNIT_EXPECT_EQ(test, fvd_tunable_parse(id, text, &v), -EINVAL);
		}
		KUNIT_EXPECT_EQ(test, fvd_tunable_parse(id, "-1", &v), -EINVAL);
		KUNIT_EXPECT_EQ(test, fvd_tunable_parse(id, "", &v), -EINVAL);
		KUNIT_EXPECT_EQ(test, fvd_tunable_parse(id, NULL, &v), -EINVAL);
	}
	KUNIT_EXPECT_EQ(test, fvd_tunable_lookup("PREFETCH_BATCH"), FVD_PREFETCH_BATCH);
	KUNIT_EXPECT_EQ(test, fvd_tunable_lookup("prefetch"), -1);
	KUNIT_EXPECT_EQ(test, fvd_tunable_lookup("no_prefetch"), -1);
}

/* All-local is about the blocks holding origin data, and only those. */
static void fvd_test_origin_blocks(struct kunit *test)
{
	struct fvd_sb_info sb;
	u8 map[4] = { 0xff, 0xff, 0x07, 0 };

	fvd_test_layout(test, &sb);
	KUNIT_EXPECT_EQ(test, fvd_origin_blocks(&sb), 9600ULL);
	sb.origin_sectors = 600 * MiB_SECTORS + 1;
	KUNIT_EXPECT_EQ(test, fvd_origin_blocks(&sb), 9601ULL);
	sb.origin_sectors = 0;
	KUNIT_EXPECT_EQ(test, fvd_origin_blocks(&sb), 0ULL);
	KUNIT_EXPECT_TRUE(test, fvd_bits_all_set(map, 0));
	KUNIT_EXPECT_TRUE(test, fvd_bits_all_set(map, 19));
	KUNIT_EXPECT_FALSE(test, fvd_bits_all_set(map, 20));
	map[1] = 0xfe;
	KUNIT_EXPECT_TRUE(test, fvd_bits_all_set(map, 8));
	KUNIT_EXPECT_FALSE(test, fvd_bits_all_set(map, 9));
}

/* A profile keeps the order of first need and merges what touches the last run. */
static void fvd_test_profile_runs(struct kunit *test)
{
	struct fvd_profile_list list = { };
	unsigned int i;

	list.runs = kunit_kcalloc(test, FVD_PROFILE_MAX_RUNS, sizeof(*list.runs), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, list.runs);
	KUNIT_EXPECT_TRUE(test, fvd_profile_append(&list, 10, 2));
	/* adjacent, overlapping and inside: the same run */
	KUNIT_EXPECT_TRUE(test, fvd_profile_append(&list, 12, 1));
	KUNIT_EXPECT_TRUE(test, fvd_profile_append(&list, 11, 4));
	KUNIT_EXPECT_TRUE(test, fvd_profile_append(&list, 10, 1));
	KUNIT_EXPECT_EQ(test, list.nr, 1U);
	KUNIT_EXPECT_EQ(test, list.runs[0].first, 10ULL);
	KUNIT_EXPECT_EQ(test, list.runs[0].nr, 5ULL);
	/* a gap, or a block before the run: a new run, in order */
	KUNIT_EXPECT_TRUE(test, fvd_profile_append(&list, 16, 1));
	KUNIT_EXPECT_TRUE(test, fvd_profile_append(&list, 3, 1));
	KUNIT_EXPECT_TRUE(test, fvd_profile_append(&list, 0, 0));
	KUNIT_EXPECT_EQ(test, list.nr, 3U);
	KUNIT_EXPECT_EQ(test, list.runs[1].first, 16ULL);
	KUNIT_EXPECT_EQ(test, list.runs[2].first, 3ULL);
	KUNIT_EXPECT_EQ(test, list.runs[2].nr, 1ULL);
	/* full: a new run is refused, growing the last is not */
	for (i = list.nr; i < FVD_PROFILE_MAX_RUNS; i++)
		KUNIT_ASSERT_TRUE(test, fvd_profile_append(&list, 1000 + 2 * i, 1));
	KUNIT_EXPECT_FALSE(test, fvd_profile_append(&list, 1, 1));
	KUNIT_EXPECT_TRUE(test, fvd_profile_append(&list, 1000 + 2 * (i - 1) + 1, 1));
	KUNIT_EXPECT_EQ(test, list.nr, (unsigned int)FVD_PROFILE_MAX_RUNS);
	KUNIT_EXPECT_EQ(test, list.runs[i - 1].nr, 2ULL);
}

static void fvd_test_profile_range(struct kunit *test)
{
	u64 start = 0, len = 0;

	KUNIT_EXPECT_EQ(test, fvd_profile_parse_range("0+8", 100, &start, &len), 0);
	KUNIT_EXPECT_EQ(test, start, 0ULL);
	KUNIT_EXPECT_EQ(test, len, 8ULL);
	KUNIT_EXPECT_EQ(test, fvd_profile_parse_range("92+8", 100, &start, &len), 0);
	KUNIT_EXPECT_EQ(test, start, 92ULL);
	/* past the origin's end, empty, or not START+LEN */
	KUNIT_EXPECT_EQ(test, fvd_profile_parse_range("93+8", 100, &start, &len), -EINVAL);
	KUNIT_EXPECT_EQ(test, fvd_profile_parse_range("100+1", 100, &start, &len), -EINVAL);
	KUNIT_EXPECT_EQ(test, fvd_profile_parse_range("5+0", 100, &start, &len), -EINVAL);
	KUNIT_EXPECT_EQ(test, fvd_profile_parse_range("5", 100, &start, &len), -EINVAL);
	KUNIT_EXPECT_EQ(test, fvd_profile_parse_range("+5", 100, &start, &len), -EINVAL);
	KUNIT_EXPECT_EQ(test, fvd_profile_parse_range("5+", 100, &start, &len), -EINVAL);
	KUNIT_EXPECT_EQ(test, fvd_profile_parse_range("-1+5", 100, &start, &len), -EINVAL);
	KUNIT_EXPECT_EQ(test, fvd_profile_parse_range("1+2+3", 100, &start, &len), -EINVAL);
	KUNIT_EXPECT_EQ(test, fvd_profile_parse_range("12345678901234567890123+1",
						      100, &start, &len), -EINVAL);
	/* no overflow at the top of u64 */
	KUNIT_EXPECT_EQ(test, fvd_profile_parse_range("18446744073709551615+1", U64_MAX,
						      &start, &len), -EINVAL);
	KUNIT_EXPECT_EQ(test, fvd_profile_parse_range("1+18446744073709551615", U64_MAX,
						      &start, &len), -EINVAL);
	KUNIT_EXPECT_EQ(test, fvd_profile_parse_range("1+18446744073709551614", U64_MAX,
						      &start, &len), 0);
}

/*
 * The profile region comes after the journal, in the room before the data
 * when there is some, else the data sharing the metadata device moves past
 * it to the next boundary; only images over an origin get one, and a
 * region of another size, or over another, fails the superblock check.
 */
static void fvd_test_profile_layout(struct kunit *test)
{
	/* superblock, backup and a 1-block bitmap before the journal */
	const u64 before_journal = 3 * FVD_META_BLOCK_SECTORS;
	struct fvd_sb_info sb;

	KUNIT_ASSERT_EQ(test, 0, fvd_layout_init(&sb, 1024 * MiB_SECTORS, 512 * MiB_SECTORS,
						 128, 0, 16 * MiB_SECTORS - before_journal,
						 true));
	KUNIT_EXPECT_EQ(test, sb.journal_offset, before_journal);
	KUNIT_EXPECT_EQ(test, sb.data_offset, 16 * MiB_SECTORS);
	KUNIT_ASSERT_EQ(test, 0, fvd_layout_add_profile(&sb));
	KUNIT_EXPECT_TRUE(test, sb.compat_features & FVD_COMPAT_PROFILE);
	KUNIT_EXPECT_EQ(test, sb.profile_offset, sb.journal_offset + sb.journal_sectors);
	KUNIT_EXPECT_EQ(test, sb.profile_sectors, (u64)FVD_PROFILE_REGION_SECTORS);
	KUNIT_EXPECT_EQ(test, sb.metadata_sectors, sb.profile_offset + sb.profile_sectors);
	KUNIT_EXPECT_EQ(test, sb.data_offset, 17 * MiB_SECTORS);

	/* a 16 MiB journal leaves room before the data's 1 MiB boundary */
	KUNIT_ASSERT_EQ(test, 0, fvd_layout_init(&sb, 1024 * MiB_SECTORS, 512 * MiB_SECTORS,
						 128, 0, 16 * MiB_SECTORS, true));
	KUNIT_ASSERT_EQ(test, 0, fvd_layout_add_profile(&sb));
	KUNIT_EXPECT_EQ(test, sb.profile_offset, sb.journal_offset + sb.journal_sectors);
	KUNIT_EXPECT_EQ(test, sb.data_offset, 17 * MiB_SECTORS);

	sb.profile_sectors -= FVD_META_BLOCK_SECTORS;
	KUNIT_EXPECT_EQ(test, fvd_sb_check(&sb), FVD_SB_BAD_PROFILE);
	sb.profile_sectors = FVD_PROFILE_REGION_SECTORS;
	sb.profile_offset = sb.journal_offset;
	KUNIT_EXPECT_EQ(test, fvd_sb_check(&sb), FVD_SB_REGIONS_OVERLAP);
	/* without the feature bit the fields are not looked at */
	sb.compat_features &= ~FVD_COMPAT_PROFILE;
	KUNIT_EXPECT_EQ(test, fvd_sb_check(&sb), FVD_SB_OK);

	/* separate data device: no data offset to move */
	KUNIT_ASSERT_EQ(test, 0, fvd_layout_init(&sb, 1024 * MiB_SECTORS, 512 * MiB_SECTORS,
						 128, 0, 0, false));
	KUNIT_ASSERT_EQ(test, 0, fvd_layout_add_profile(&sb));
	KUNIT_EXPECT_EQ(test, sb.profile_offset, sb.bitmap_offset + sb.bitmap_sectors);
	KUNIT_EXPECT_EQ(test, sb.data_offset, 0ULL);
	KUNIT_ASSERT_EQ(test, 0, fvd_layout_init(&sb, 1024 * MiB_SECTORS, 0, 128, 0, 0, true));
	KUNIT_EXPECT_EQ(test, fvd_layout_add_profile(&sb), -EINVAL);
}

/* A sealed region reads back whole; any damage, or a bad run, is found. */
static void fvd_test_profile_region(struct kunit *test)
{
	u8 *region = kunit_kzalloc(test, FVD_PROFILE_REGION_BYTES, GFP_KERNEL);
	struct fvd_disk_profile_header *h = (void *)region;
	struct fvd_disk_profile_run *run;
	u32 nr = 99, i;

	KUNIT_ASSERT_NOT_NULL(test, region);
	KUNIT_EXPECT_EQ(test, fvd_profile_region_check(region, 1000, &nr), FVD_PROFILE_NONE);
	KUNIT_EXPECT_EQ(test, nr, 0U);
	for (i = 0; i < 3; i++) {
		run = fvd_profile_region_run(region, i);
		run->start = cpu_to_le64(100 * i);
		run->len = cpu_to_le64(i + 1);
	}
	fvd_profile_region_seal(region, 3, 1000, 7, FVD_PROFILE_FULL);
	KUNIT_EXPECT_EQ(test, fvd_profile_region_check(region, 1000, &nr), FVD_PROFILE_OK);
	KUNIT_EXPECT_EQ(test, nr, 3U);
	KUNIT_EXPECT_EQ(test, le64_to_cpu(h->seq), 7ULL);
	KUNIT_EXPECT_EQ(test, le32_to_cpu(h->flags), FVD_PROFILE_FULL);
	KUNIT_EXPECT_EQ(test, fvd_profile_region_check(region, 1001, &nr),
			FVD_PROFILE_OTHER_ORIGIN);
	/* a run after the last is not covered: it may be an older save's */
	fvd_profile_region_run(region, 3)->len = cpu_to_le64(5);
	KUNIT_EXPECT_EQ(test, fvd_profile_region_check(region, 1000, &nr), FVD_PROFILE_OK);
	/* a run's byte, a header byte past the fields */
	fvd_profile_region_run(region, 2)->start ^= cpu_to_le64(1);
	KUNIT_EXPECT_EQ(test, fvd_profile_region_check(region, 1000, &nr),
			FVD_PROFILE_BAD_CSUM);
	fvd_profile_region_run(region, 2)->start ^= cpu_to_le64(1);
	region[FVD_PROFILE_HEADER_SIZE - 1] ^= 1;
	KUNIT_EXPECT_EQ(test, fvd_profile_region_check(region, 1000, &nr),
			FVD_PROFILE_BAD_CSUM);
	region[FVD_PROFILE_HEADER_SIZE - 1] ^= 1;
	KUNIT_EXPECT_EQ(test, fvd_profile_region_check(region, 1000, &nr), FVD_PROFILE_OK);

	/* runs past the origin's end, empty runs: checked after the checksum */
	fvd_profile_region_run(region, 2)->len = cpu_to_le64(801);
	fvd_profile_region_seal(region, 3, 1000, 8, 0);
	KUNIT_EXPECT_EQ(test, fvd_profile_region_check(region, 1000, &nr), FVD_PROFILE_BAD_RUN);
	KUNIT_EXPECT_EQ(test, nr, 0U);
	fvd_profile_region_run(region, 2)->len = cpu_to_le64(800);
	fvd_profile_region_seal(region, 3, 1000, 8, 0);
	KUNIT_EXPECT_EQ(test, fvd_profile_region_check(region, 1000, &nr), FVD_PROFILE_OK);
	fvd_profile_region_run(region, 0)->len = 0;
	fvd_profile_region_seal(region, 3, 1000, 8, 0);
	KUNIT_EXPECT_EQ(test, fvd_profile_region_check(region, 1000, &nr), FVD_PROFILE_BAD_RUN);
	fvd_profile_region_run(region, 0)->len = cpu_to_le64(1);

	/* more runs than the region holds, unknown flags */
	fvd_profile_region_seal(region, FVD_PROFILE_REGION_RUNS + 1, 1000, 8, 0);
	KUNIT_EXPECT_EQ(test, fvd_profile_region_check(region, 1000, &nr),
			FVD_PROFILE_BAD_HEADER);
	fvd_profile_region_seal(region, 3, 1000, 8, 1U << 5);
	KUNIT_EXPECT_EQ(test, fvd_profile_region_check(region, 1000, &nr),
			FVD_PROFILE_BAD_HEADER);
	/* an empty profile is a profile: nothing was needed */
	fvd_profile_region_seal(region, 0, 1000, 9, 0);
	KUNIT_EXPECT_EQ(test, fvd_profile_region_check(region, 1000, &nr), FVD_PROFILE_OK);
	KUNIT_EXPECT_EQ(test, nr, 0U);
	KUNIT_EXPECT_STREQ(test, fvd_profile_status_str(FVD_PROFILE_BAD_CSUM),
			   "profile checksum mismatch");
	KUNIT_EXPECT_STREQ(test, fvd_profile_status_str(FVD_PROFILE_NR_STATUS), "unknown error");
}

static struct kunit_case fvd_prefetch_cases[] = {
	KUNIT_CASE(fvd_test_rate_average),
	KUNIT_CASE(fvd_test_rate_large),
	KUNIT_CASE(fvd_test_pause_decision),
	KUNIT_CASE(fvd_test_pause_random),
	KUNIT_CASE(fvd_test_rate_idle),
	KUNIT_CASE(fvd_test_pace),
	KUNIT_CASE(fvd_test_tunables),
	KUNIT_CASE(fvd_test_origin_blocks),
	KUNIT_CASE(fvd_test_profile_runs),
	KUNIT_CASE(fvd_test_profile_range),
	KUNIT_CASE(fvd_test_profile_layout),
	KUNIT_CASE(fvd_test_profile_region),
	{}
};

static struct kunit_suite fvd_prefetch_suite = {
	.name = "dm-fvd-prefetch",
	.test_cases = fvd_prefetch_cases,
};

kunit_test_suites(&fvd_format_suite, &fvd_geometry_suite, &fvd_commit_suite,
		  &fvd_journal_format_suite, &fvd_journal_replay_suite,
		  &fvd_compact_suite, &fvd_table_suite, &fvd_prefetch_suite);
