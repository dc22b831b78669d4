// SPDX-License-Identifier: GPL-2.0
/*
 * Superblock encoding, decoding and validation for dm-fvd, shared by the
 * kernel target and the userspace tools.  Nothing here does I/O: callers hand
 * in the 4 KiB superblock block and get a verdict, so a hostile image can at
 * worst be rejected.
 */
#include "fvd-format.h"

#ifdef __KERNEL__
#include <linux/crc32c.h>
#include <linux/errno.h>
#include <linux/string.h>

u32 fvd_crc32c_update(u32 crc, const void *buf, size_t len)
{
	return crc32c(crc, buf, len);
}
#endif

u32 fvd_crc32c(const void *buf, size_t len)
{
	return ~fvd_crc32c_update(~0U, buf, len);
}

/* The checksum of the superblock block, taken with its csum field as zero. */
u32 fvd_sb_csum(const struct fvd_disk_superblock *disk)
{
	static const u8 zero_csum[sizeof(disk->csum)];
	size_t before = offsetof(struct fvd_disk_superblock, csum);
	size_t after = before + sizeof(disk->csum);
	u32 crc = ~0U;

	crc = fvd_crc32c_update(crc, disk, before);
	crc = fvd_crc32c_update(crc, zero_csum, sizeof(zero_csum));
	crc = fvd_crc32c_update(crc, (const u8 *)disk + after,
				sizeof(*disk) - after);
	return ~crc;
}

/* Virtual disks up to 8 PiB: the bitmap of the smallest blocks stays < 256 MiB. */
#define FVD_MAX_VIRTUAL_SECTORS		(1ULL << 44)

static const char * const fvd_sb_status_names[FVD_SB_NR_STATUS] = {
	[FVD_SB_OK]			= "valid",
	[FVD_SB_BAD_MAGIC]		= "bad magic: not an FVD image",
	[FVD_SB_BAD_CSUM]		= "superblock checksum mismatch",
	[FVD_SB_BAD_VERSION]		= "unsupported format version",
	[FVD_SB_UNKNOWN_INCOMPAT]	= "unknown incompatible feature",
	[FVD_SB_UNKNOWN_FLAGS]		= "unknown superblock flags",
	[FVD_SB_BAD_BLOCK_SIZE]		= "invalid block size",
	[FVD_SB_BAD_VIRTUAL_SIZE]	= "invalid virtual size",
	[FVD_SB_BAD_ORIGIN_SIZE]	= "origin larger than the virtual size",
	[FVD_SB_BAD_CHUNK_SIZE]		= "chunk size set on a non-compact image",
	[FVD_SB_BAD_BITMAP]		= "invalid bitmap region",
	[FVD_SB_BAD_TABLE]		= "invalid chunk table region",
	[FVD_SB_BAD_JOURNAL]		= "invalid journal region",
	[FVD_SB_REGIONS_OVERLAP]	= "metadata regions overlap",
	[FVD_SB_BAD_DATA_OFFSET]	= "data offset inside the metadata",
};

const char *fvd_sb_status_str(enum fvd_sb_status status)
{
	if (status >= FVD_SB_NR_STATUS)
		return "unknown error";
	return fvd_sb_status_names[status];
}

struct fvd_region {
	u64 start;
	u64 len;
};

static bool fvd_region_valid(const struct fvd_region *r)
{
	if (!r->len)
		return true;
	return r->start >= FVD_META_BLOCK_SECTORS &&
	       !(r->start % FVD_META_BLOCK_SECTORS) &&
	       !(r->len % FVD_META_BLOCK_SECTORS) &&
	       r->start + r->len > r->start &&
	       r->start + r->len <= FVD_MAX_VIRTUAL_SECTORS;
}

static bool fvd_regions_overlap(const struct fvd_region *a,
				const struct fvd_region *b)
{
	if (!a->len || !b->len)
		return false;
	return a->start < b->start + b->len && b->start < a->start + a->len;
}

/*
 * Validate the CPU-order fields of @sb and fill in the derived ones.  The
 * checks are ordered so that every later check may rely on the earlier ones
 * (for instance the bitmap size check needs a valid block size).
 */
enum fvd_sb_status fvd_sb_check(struct fvd_sb_info *sb)
{
	struct fvd_region regions[3];
	unsigned int i, j;
	u64 end = FVD_META_BLOCK_SECTORS;

	if (sb->version != FVD_FORMAT_VERSION)
		return FVD_SB_BAD_VERSION;
	if (sb->incompat_features & ~FVD_INCOMPAT_SUPPORTED)
		return FVD_SB_UNKNOWN_INCOMPAT;
	if (sb->flags & ~FVD_FLAGS_KNOWN)
		return FVD_SB_UNKNOWN_FLAGS;
	if (!fvd_block_size_valid((u64)sb->block_sectors << FVD_SECTOR_SHIFT))
		return FVD_SB_BAD_BLOCK_SIZE;
	sb->block_shift = 0;
	while ((1U << sb->block_shift) < sb->block_sectors)
		sb->block_shift++;
	if (!sb->virtual_sectors || sb->virtual_sectors > FVD_MAX_VIRTUAL_SECTORS)
		return FVD_SB_BAD_VIRTUAL_SIZE;
	sb->nr_blocks = (sb->virtual_sectors + sb->block_sectors - 1) >>
			sb->block_shift;
	if (sb->origin_sectors > sb->virtual_sectors)
		return FVD_SB_BAD_ORIGIN_SIZE;
	if (sb->chunk_sectors)
		return FVD_SB_BAD_CHUNK_SIZE;

	regions[0] = (struct fvd_region){ sb->bitmap_offset, sb->bitmap_sectors };
	regions[1] = (struct fvd_region){ sb->table_offset, sb->table_sectors };
	regions[2] = (struct fvd_region){ sb->journal_offset, sb->journal_sectors };
	if (!fvd_region_valid(&regions[0]) ||
	    sb->bitmap_sectors != fvd_bitmap_region_sectors(sb->nr_blocks))
		return FVD_SB_BAD_BITMAP;
	/* Version 1 images are never compact, so they carry no chunk table. */
	if (sb->table_sectors || sb->table_offset)
		return FVD_SB_BAD_TABLE;
	if (!fvd_region_valid(&regions[2]))
		return FVD_SB_BAD_JOURNAL;
	for (i = 0; i < 3; i++) {
		for (j = i + 1; j < 3; j++)
			if (fvd_regions_overlap(&regions[i], &regions[j]))
				return FVD_SB_REGIONS_OVERLAP;
		if (regions[i].len && regions[i].start + regions[i].len > end)
			end = regions[i].start + regions[i].len;
	}
	sb->metadata_sectors = end;
	if (sb->data_offset &&
	    (sb->data_offset < end || sb->data_offset % FVD_META_BLOCK_SECTORS ||
	     sb->data_offset > FVD_MAX_VIRTUAL_SECTORS))
		return FVD_SB_BAD_DATA_OFFSET;
	return FVD_SB_OK;
}

enum fvd_sb_status fvd_sb_decode(const void *block, struct fvd_sb_info *sb)
{
	const struct fvd_disk_superblock *disk = block;

	if (le64_to_cpu(disk->magic) != FVD_MAGIC)
		return FVD_SB_BAD_MAGIC;
	if (fvd_sb_csum(disk) != le32_to_cpu(disk->csum))
		return FVD_SB_BAD_CSUM;

	memset(sb, 0, sizeof(*sb));
	sb->version = le32_to_cpu(disk->version);
	sb->incompat_features = le64_to_cpu(disk->incompat_features);
	sb->ro_compat_features = le64_to_cpu(disk->ro_compat_features);
	sb->compat_features = le64_to_cpu(disk->compat_features);
	sb->flags = le64_to_cpu(disk->flags);
	memcpy(sb->uuid, disk->uuid, sizeof(sb->uuid));
	sb->virtual_sectors = le64_to_cpu(disk->virtual_sectors);
	sb->origin_sectors = le64_to_cpu(disk->origin_sectors);
	sb->block_sectors = le32_to_cpu(disk->block_sectors);
	sb->chunk_sectors = le32_to_cpu(disk->chunk_sectors);
	sb->bitmap_offset = le64_to_cpu(disk->bitmap_offset);
	sb->bitmap_sectors = le64_to_cpu(disk->bitmap_sectors);
	sb->table_offset = le64_to_cpu(disk->table_offset);
	sb->table_sectors = le64_to_cpu(disk->table_sectors);
	sb->journal_offset = le64_to_cpu(disk->journal_offset);
	sb->journal_sectors = le64_to_cpu(disk->journal_sectors);
	sb->data_offset = le64_to_cpu(disk->data_offset);
	sb->checkpoint_seq = le64_to_cpu(disk->checkpoint_seq);
	return fvd_sb_check(sb);
}

void fvd_sb_encode(const struct fvd_sb_info *sb, void *block)
{
	struct fvd_disk_superblock *disk = block;

	memset(disk, 0, sizeof(*disk));
	disk->magic = cpu_to_le64(FVD_MAGIC);
	disk->version = cpu_to_le32(sb->version);
	disk->incompat_features = cpu_to_le64(sb->incompat_features);
	disk->ro_compat_features = cpu_to_le64(sb->ro_compat_features);
	disk->compat_features = cpu_to_le64(sb->compat_features);
	disk->flags = cpu_to_le64(sb->flags);
	memcpy(disk->uuid, sb->uuid, sizeof(disk->uuid));
	disk->virtual_sectors = cpu_to_le64(sb->virtual_sectors);
	disk->origin_sectors = cpu_to_le64(sb->origin_sectors);
	disk->block_sectors = cpu_to_le32(sb->block_sectors);
	disk->chunk_sectors = cpu_to_le32(sb->chunk_sectors);
	disk->bitmap_offset = cpu_to_le64(sb->bitmap_offset);
	disk->bitmap_sectors = cpu_to_le64(sb->bitmap_sectors);
	disk->table_offset = cpu_to_le64(sb->table_offset);
	disk->table_sectors = cpu_to_le64(sb->table_sectors);
	disk->journal_offset = cpu_to_le64(sb->journal_offset);
	disk->journal_sectors = cpu_to_le64(sb->journal_sectors);
	disk->data_offset = cpu_to_le64(sb->data_offset);
	disk->checkpoint_seq = cpu_to_le64(sb->checkpoint_seq);
	disk->csum = cpu_to_le32(fvd_sb_csum(disk));
}

static u64 fvd_round_up(u64 value, u64 align)
{
	return (value + align - 1) / align * align;
}

/*
 * Lay out a new image: superblock, bitmap, journal, then (when the data
 * shares the metadata device) the data, aligned to 1 MiB or a block.
 */
int fvd_layout_init(struct fvd_sb_info *sb, u64 virtual_sectors,
		    u64 origin_sectors, u32 block_sectors,
		    u64 journal_sectors, bool data_shares_metadata)
{
	u64 align;

	memset(sb, 0, sizeof(*sb));
	sb->version = FVD_FORMAT_VERSION;
	sb->virtual_sectors = virtual_sectors;
	sb->origin_sectors = origin_sectors;
	sb->block_sectors = block_sectors;
	if (!fvd_block_size_valid((u64)block_sectors << FVD_SECTOR_SHIFT) ||
	    !virtual_sectors || virtual_sectors > FVD_MAX_VIRTUAL_SECTORS ||
	    origin_sectors > virtual_sectors ||
	    journal_sectors > FVD_MAX_VIRTUAL_SECTORS)
		return -EINVAL;

	sb->nr_blocks = (virtual_sectors + block_sectors - 1) / block_sectors;
	sb->bitmap_offset = FVD_META_BLOCK_SECTORS;
	sb->bitmap_sectors = fvd_bitmap_region_sectors(sb->nr_blocks);
	sb->journal_sectors = fvd_round_up(journal_sectors, FVD_META_BLOCK_SECTORS);
	if (sb->journal_sectors)
		sb->journal_offset = sb->bitmap_offset + sb->bitmap_sectors;
	if (data_shares_metadata) {
		align = block_sectors > FVD_DATA_ALIGN_SECTORS ?
			block_sectors : FVD_DATA_ALIGN_SECTORS;
		sb->data_offset = fvd_round_up(sb->bitmap_offset +
					       sb->bitmap_sectors +
					       sb->journal_sectors, align);
	}
	return fvd_sb_check(sb) == FVD_SB_OK ? 0 : -EINVAL;
}
