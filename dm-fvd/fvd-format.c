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

/* CRC-32C of @len bytes with the 4-byte checksum field at @csum_offset as 0. */
static u32 fvd_csum_except(const void *buf, size_t len, size_t csum_offset)
{
	static const u8 zero_csum[4];
	size_t after = csum_offset + sizeof(zero_csum);
	u32 crc = ~0U;

	crc = fvd_crc32c_update(crc, buf, csum_offset);
	crc = fvd_crc32c_update(crc, zero_csum, sizeof(zero_csum));
	crc = fvd_crc32c_update(crc, (const u8 *)buf + after, len - after);
	return ~crc;
}

u32 fvd_sb_csum(const struct fvd_disk_superblock *disk)
{
	return fvd_csum_except(disk, sizeof(*disk),
			       offsetof(struct fvd_disk_superblock, csum));
}

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
	[FVD_SB_BAD_CHUNK_SIZE]		= "invalid chunk size",
	[FVD_SB_COMPACT_NO_JOURNAL]	= "compact image without a journal",
	[FVD_SB_BAD_BITMAP]		= "invalid bitmap region",
	[FVD_SB_BAD_TABLE]		= "invalid chunk table region",
	[FVD_SB_BAD_JOURNAL]		= "invalid journal region",
	[FVD_SB_BAD_PROFILE]		= "invalid profile region",
	[FVD_SB_REGIONS_OVERLAP]	= "metadata regions overlap",
	[FVD_SB_BAD_DATA_OFFSET]	= "data offset inside the metadata",
	[FVD_SB_TOO_MANY_BLOCKS]	= "more than 2^32 blocks: a larger block size is needed",
	[FVD_SB_TOO_MANY_CHUNKS]	= "more than 2^27 chunks: a larger chunk size is needed",
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

/* Regions start after the superblock and its backup, when it has one. */
static u64 fvd_first_region_sector(const struct fvd_sb_info *sb)
{
	if (sb->ro_compat_features & FVD_RO_COMPAT_BACKUP_SB)
		return FVD_BACKUP_SB_SECTOR + FVD_META_BLOCK_SECTORS;
	return FVD_META_BLOCK_SECTORS;
}

static bool fvd_region_valid(const struct fvd_region *r, u64 first)
{
	if (!r->len)
		return true;
	return r->start >= first &&
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
	struct fvd_region regions[4];
	unsigned int i, j;
	u64 first = fvd_first_region_sector(sb), end = first;

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
	if (sb->nr_blocks > FVD_MAX_BLOCKS)
		return FVD_SB_TOO_MANY_BLOCKS;
	if (sb->origin_sectors > sb->virtual_sectors)
		return FVD_SB_BAD_ORIGIN_SIZE;
	sb->chunk_shift = 0;
	sb->chunk_block_shift = 0;
	sb->nr_chunks = 0;
	if (fvd_compact(sb)) {
		/* a power of two, from one block to 1 GiB */
		if (sb->chunk_sectors < sb->block_sectors ||
		    sb->chunk_sectors > (1U << (FVD_MAX_CHUNK_SHIFT - FVD_SECTOR_SHIFT)) ||
		    (sb->chunk_sectors & (sb->chunk_sectors - 1)))
			return FVD_SB_BAD_CHUNK_SIZE;
		while ((1U << sb->chunk_shift) < sb->chunk_sectors)
			sb->chunk_shift++;
		sb->chunk_block_shift = sb->chunk_shift - sb->block_shift;
		sb->nr_chunks = (sb->virtual_sectors + sb->chunk_sectors - 1) >>
				sb->chunk_shift;
		if (sb->nr_chunks > FVD_MAX_CHUNKS)
			return FVD_SB_TOO_MANY_CHUNKS;
		if (!(sb->incompat_features & FVD_INCOMPAT_JOURNAL))
			return FVD_SB_COMPACT_NO_JOURNAL;
	} else if (sb->chunk_sectors) {
		return FVD_SB_BAD_CHUNK_SIZE;
	}

	regions[0] = (struct fvd_region){ sb->bitmap_offset, sb->bitmap_sectors };
	regions[1] = (struct fvd_region){ sb->table_offset, sb->table_sectors };
	regions[2] = (struct fvd_region){ sb->journal_offset, sb->journal_sectors };
	if (!fvd_region_valid(&regions[0], first) ||
	    sb->bitmap_sectors != fvd_bitmap_region_sectors(sb->nr_blocks))
		return FVD_SB_BAD_BITMAP;
	if (fvd_compact(sb) ?
	    !fvd_region_valid(&regions[1], first) ||
	    sb->table_sectors != fvd_table_region_sectors(sb->nr_chunks) :
	    sb->table_sectors || sb->table_offset)
		return FVD_SB_BAD_TABLE;
	if (!fvd_region_valid(&regions[2], first) ||
	    ((sb->incompat_features & FVD_INCOMPAT_JOURNAL) &&
	     !fvd_journal_blocks(sb)))
		return FVD_SB_BAD_JOURNAL;
	/* Without the feature the fields mean nothing: old code left them 0. */
	regions[3] = (struct fvd_region){ 0, 0 };
	if (sb->compat_features & FVD_COMPAT_PROFILE) {
		regions[3] = (struct fvd_region){ sb->profile_offset, sb->profile_sectors };
		if (!sb->origin_sectors || !fvd_region_valid(&regions[3], first) ||
		    sb->profile_sectors != FVD_PROFILE_REGION_SECTORS)
			return FVD_SB_BAD_PROFILE;
	}
	for (i = 0; i < ARRAY_SIZE(regions); i++) {
		for (j = i + 1; j < ARRAY_SIZE(regions); j++)
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
	sb->origin_fingerprint = le32_to_cpu(disk->origin_fingerprint);
	memcpy(sb->origin_hint, disk->origin_hint, sizeof(sb->origin_hint));
	sb->origin_hint[sizeof(sb->origin_hint) - 1] = '\0';
	sb->profile_offset = le64_to_cpu(disk->profile_offset);
	sb->profile_sectors = le64_to_cpu(disk->profile_sectors);
	/*
	 * Code before the feature keeps the compat bits it does not know but
	 * zeroes the padding the two fields came from: the region is gone,
	 * not damaged.  The next superblock write clears the bit.
	 */
	if ((sb->compat_features & FVD_COMPAT_PROFILE) &&
	    !sb->profile_offset && !sb->profile_sectors)
		sb->compat_features &= ~FVD_COMPAT_PROFILE;
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
	disk->origin_fingerprint = cpu_to_le32(sb->origin_fingerprint);
	memcpy(disk->origin_hint, sb->origin_hint, sizeof(disk->origin_hint));
	disk->origin_hint[sizeof(disk->origin_hint) - 1] = '\0';
	disk->profile_offset = cpu_to_le64(sb->profile_offset);
	disk->profile_sectors = cpu_to_le64(sb->profile_sectors);
	disk->csum = cpu_to_le32(fvd_sb_csum(disk));
}

/*
 * The first field of the layout that differs between @a and @b: its name,
 * with both values, or NULL when the layouts are the same.  The layout is
 * everything a loaded table sized its buffers and checked its devices by:
 * every field but the flags, the checkpoint and the compatible features.
 */
const char *fvd_sb_layout_change(const struct fvd_sb_info *a,
				 const struct fvd_sb_info *b, u64 *was, u64 *now)
{
#define FVD_LAYOUT_FIELD(f)	{ #f, a->f, b->f }
	const struct {
		const char *name;
		u64 a, b;
	} fields[] = {
		FVD_LAYOUT_FIELD(version),
		FVD_LAYOUT_FIELD(incompat_features),
		FVD_LAYOUT_FIELD(ro_compat_features),
		FVD_LAYOUT_FIELD(virtual_sectors),
		FVD_LAYOUT_FIELD(origin_sectors),
		FVD_LAYOUT_FIELD(block_sectors),
		FVD_LAYOUT_FIELD(chunk_sectors),
		FVD_LAYOUT_FIELD(bitmap_offset),
		FVD_LAYOUT_FIELD(bitmap_sectors),
		FVD_LAYOUT_FIELD(table_offset),
		FVD_LAYOUT_FIELD(table_sectors),
		FVD_LAYOUT_FIELD(journal_offset),
		FVD_LAYOUT_FIELD(journal_sectors),
		FVD_LAYOUT_FIELD(data_offset),
	};
#undef FVD_LAYOUT_FIELD
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(fields); i++) {
		if (fields[i].a != fields[i].b) {
			*was = fields[i].a;
			*now = fields[i].b;
			return fields[i].name;
		}
	}
	*was = 0;
	*now = 0;
	return memcmp(a->uuid, b->uuid, sizeof(a->uuid)) ? "uuid" : NULL;
}

static u64 fvd_round_up(u64 value, u64 align)
{
	return (value + align - 1) / align * align;
}

/*
 * The origin's first and last FVD_FP_EDGE_SECTORS (all of it when it is
 * smaller than both), then FVD_FP_NR_SAMPLES blocks at i/17 of its size for
 * i = 1..16, 4 KiB aligned; a sample may overlap an edge.  Returns the
 * number of ranges; none for an empty origin.
 */
unsigned int fvd_origin_fp_ranges(u64 origin_sectors,
				  struct fvd_fp_range ranges[FVD_FP_MAX_RANGES])
{
	u64 head = origin_sectors < FVD_FP_EDGE_SECTORS ?
		   origin_sectors : FVD_FP_EDGE_SECTORS;
	u64 tail_start, start;
	unsigned int n = 0, i;

	if (!origin_sectors)
		return 0;
	ranges[n++] = (struct fvd_fp_range){ 0, head };
	/* the last MiB, or what the first one left of it */
	tail_start = head;
	if (origin_sectors - head > FVD_FP_EDGE_SECTORS)
		tail_start = origin_sectors - FVD_FP_EDGE_SECTORS;
	if (tail_start < origin_sectors)
		ranges[n++] = (struct fvd_fp_range){ tail_start,
						     origin_sectors - tail_start };
	for (i = 1; i <= FVD_FP_NR_SAMPLES; i++) {
		start = origin_sectors * i / (FVD_FP_NR_SAMPLES + 1);
		start -= start % FVD_FP_SAMPLE_SECTORS;
		ranges[n].start = start;
		ranges[n].len = origin_sectors - start < FVD_FP_SAMPLE_SECTORS ?
				origin_sectors - start : FVD_FP_SAMPLE_SECTORS;
		n++;
	}
	return n;
}

/*
 * Data sharing the metadata device starts after the last region (as
 * fvd_sb_check() found it), on a 1 MiB boundary or a block or a chunk,
 * whichever is largest.
 */
static void fvd_layout_place_data(struct fvd_sb_info *sb)
{
	u64 align = sb->block_sectors > FVD_DATA_ALIGN_SECTORS ?
		    sb->block_sectors : FVD_DATA_ALIGN_SECTORS;

	if (sb->chunk_sectors > align)
		align = sb->chunk_sectors;
	sb->data_offset = fvd_round_up(sb->metadata_sectors, align);
}

/*
 * Lay out a new image: superblock, its backup, bitmap, journal, then (when the data
 * shares the metadata device) the data, aligned to 1 MiB or a block.
 */
int fvd_layout_init(struct fvd_sb_info *sb, u64 virtual_sectors,
		    u64 origin_sectors, u32 block_sectors, u32 chunk_sectors,
		    u64 journal_sectors, bool data_shares_metadata)
{
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
	sb->ro_compat_features = FVD_RO_COMPAT_BACKUP_SB;
	sb->bitmap_offset = fvd_first_region_sector(sb);
	sb->bitmap_sectors = fvd_bitmap_region_sectors(sb->nr_blocks);
	if (chunk_sectors) {
		sb->incompat_features |= FVD_INCOMPAT_COMPACT;
		sb->chunk_sectors = chunk_sectors;
		sb->table_offset = sb->bitmap_offset + sb->bitmap_sectors;
		sb->table_sectors = fvd_table_region_sectors((virtual_sectors +
			chunk_sectors - 1) / chunk_sectors);
	}
	sb->journal_sectors = fvd_round_up(journal_sectors, FVD_META_BLOCK_SECTORS);
	if (sb->journal_sectors) {
		sb->journal_offset = sb->bitmap_offset + sb->bitmap_sectors +
				     sb->table_sectors;
		sb->incompat_features |= FVD_INCOMPAT_JOURNAL;
	}
	if (fvd_sb_check(sb) != FVD_SB_OK)
		return -EINVAL;
	if (data_shares_metadata)
		fvd_layout_place_data(sb);
	return fvd_sb_check(sb) == FVD_SB_OK ? 0 : -EINVAL;
}

/*
 * Give a new image over an origin (laid out by fvd_layout_init()) the
 * profile region, after the last region; data that shares the metadata
 * device moves past it.
 */
int fvd_layout_add_profile(struct fvd_sb_info *sb)
{
	if (!sb->origin_sectors || fvd_sb_check(sb) != FVD_SB_OK)
		return -EINVAL;
	sb->compat_features |= FVD_COMPAT_PROFILE;
	sb->profile_offset = sb->metadata_sectors;
	sb->profile_sectors = FVD_PROFILE_REGION_SECTORS;
	if (sb->data_offset) {
		sb->data_offset = 0;
		if (fvd_sb_check(sb) != FVD_SB_OK)
			return -EINVAL;
		fvd_layout_place_data(sb);
	}
	return fvd_sb_check(sb) == FVD_SB_OK ? 0 : -EINVAL;
}

/* ---- journal blocks ---- */

void fvd_jblock_init(void *block)
{
	struct fvd_disk_jheader *h = block;

	memset(block, 0, FVD_JOURNAL_BLOCK_SIZE);
	h->magic = cpu_to_le64(FVD_JOURNAL_MAGIC);
}

/* Append a run of local blocks; -ENOSPC when the block is full. */
int fvd_jblock_add_bitmap_run(void *block, u64 start, u32 count)
{
	struct fvd_disk_jheader *h = block;
	u32 used = le32_to_cpu(h->used_bytes);
	struct fvd_disk_jrecord *rec;

	if (used + sizeof(*rec) > FVD_JOURNAL_PAYLOAD)
		return -ENOSPC;
	rec = (struct fvd_disk_jrecord *)((u8 *)(h + 1) + used);
	rec->type = cpu_to_le16(FVD_JREC_BITMAP_SET);
	rec->reserved = 0;
	rec->count = cpu_to_le32(count);
	rec->start = cpu_to_le64(start);
	h->used_bytes = cpu_to_le32(used + sizeof(*rec));
	h->nr_records = cpu_to_le32(le32_to_cpu(h->nr_records) + 1);
	return 0;
}

/* Bytes of @count table entries, padded so the next record is 8-aligned. */
static u32 fvd_table_entries_bytes(u32 count)
{
	return (count * sizeof(__le32) + 7) & ~7U;
}

/*
 * Append up to @count table entries starting at chunk @start; returns how
 * many fit (0 when not even one does).
 */
int fvd_jblock_add_table_run(void *block, u64 start, u32 count,
			     const __le32 *entries)
{
	struct fvd_disk_jheader *h = block;
	u32 used = le32_to_cpu(h->used_bytes);
	struct fvd_disk_jrecord *rec;
	u32 room;

	if (used + sizeof(*rec) + fvd_table_entries_bytes(1) > FVD_JOURNAL_PAYLOAD)
		return 0;
	/* whole pairs of entries: the payload is a multiple of 8 bytes */
	room = (FVD_JOURNAL_PAYLOAD - used - sizeof(*rec)) / sizeof(__le32);
	if (count > room)
		count = room;
	rec = (struct fvd_disk_jrecord *)((u8 *)(h + 1) + used);
	rec->type = cpu_to_le16(FVD_JREC_TABLE);
	rec->reserved = 0;
	rec->count = cpu_to_le32(count);
	rec->start = cpu_to_le64(start);
	memset(rec + 1, 0, fvd_table_entries_bytes(count));
	memcpy(rec + 1, entries, count * sizeof(__le32));
	h->used_bytes = cpu_to_le32(used + sizeof(*rec) +
				    fvd_table_entries_bytes(count));
	h->nr_records = cpu_to_le32(le32_to_cpu(h->nr_records) + 1);
	return count;
}

static u32 fvd_jblock_csum(const struct fvd_disk_jheader *h)
{
	return fvd_csum_except(h, FVD_JOURNAL_BLOCK_SIZE,
			       offsetof(struct fvd_disk_jheader, csum));
}

void fvd_jblock_seal(void *block, u64 seq, u16 index, u16 count)
{
	struct fvd_disk_jheader *h = block;

	h->seq = cpu_to_le64(seq);
	h->index = cpu_to_le16(index);
	h->count = cpu_to_le16(count);
	h->csum = cpu_to_le32(fvd_jblock_csum(h));
}

/*
 * Walk the records of a block whose header was checked.  Stops at the first
 * record that does not fit and returns -EINVAL, or at the first non-zero
 * return of @fn, which it returns.
 */
int fvd_jblock_for_each(const void *block, fvd_jrec_fn fn, void *context)
{
	const struct fvd_disk_jheader *h = block;
	const u8 *p = (const u8 *)(h + 1);
	u32 used = le32_to_cpu(h->used_bytes);
	u32 nr = le32_to_cpu(h->nr_records);
	const struct fvd_disk_jrecord *rec;
	struct fvd_jrec out;
	u32 off = 0, i, size;
	int r;

	if (used > FVD_JOURNAL_PAYLOAD)
		return -EINVAL;
	for (i = 0; i < nr; i++) {
		if (used - off < sizeof(*rec))
			return -EINVAL;
		rec = (const struct fvd_disk_jrecord *)(p + off);
		out.type = le16_to_cpu(rec->type);
		out.count = le32_to_cpu(rec->count);
		out.start = le64_to_cpu(rec->start);
		out.entries = NULL;
		size = sizeof(*rec);
		if (out.type == FVD_JREC_TABLE) {
			if (out.count > (used - off - sizeof(*rec)) / sizeof(__le32) ||
			    fvd_table_entries_bytes(out.count) > used - off - sizeof(*rec))
				return -EINVAL;
			size += fvd_table_entries_bytes(out.count);
			out.entries = (const __le32 *)(rec + 1);
		} else if (out.type != FVD_JREC_BITMAP_SET) {
			return -EINVAL;
		}
		r = fn(context, &out);
		if (r)
			return r;
		off += size;
	}
	return off == used ? 0 : -EINVAL;
}

static int fvd_jrec_check(void *context, const struct fvd_jrec *rec)
{
	const struct fvd_sb_info *sb = context;

	u64 limit = rec->type == FVD_JREC_TABLE ? sb->nr_chunks : sb->nr_blocks;

	if (!rec->count)
		return -EINVAL;
	/* Only compact images have a chunk table to log. */
	if (rec->type == FVD_JREC_TABLE && !fvd_compact(sb))
		return -EINVAL;
	if (rec->start >= limit || rec->count > limit - rec->start)
		return -EINVAL;
	return 0;
}

/*
 * Is @block a valid journal block of a commit at or after @min_seq, whose
 * records all make sense for the image described by @sb?
 */
enum fvd_jblock_status fvd_jblock_check(const void *block, u64 min_seq,
					const struct fvd_sb_info *sb)
{
	const struct fvd_disk_jheader *h = block;

	if (le64_to_cpu(h->magic) != FVD_JOURNAL_MAGIC)
		return FVD_JB_BAD_MAGIC;
	if (fvd_jblock_csum(h) != le32_to_cpu(h->csum))
		return FVD_JB_BAD_CSUM;
	if (le64_to_cpu(h->seq) < min_seq)
		return FVD_JB_STALE;
	if (!le16_to_cpu(h->count) || le16_to_cpu(h->index) >= le16_to_cpu(h->count))
		return FVD_JB_BAD_INDEX;
	if (fvd_jblock_for_each(block, fvd_jrec_check, (void *)sb))
		return FVD_JB_BAD_RECORD;
	return FVD_JB_OK;
}

static const char * const fvd_jblock_status_names[FVD_JB_NR_STATUS] = {
	[FVD_JB_OK]		= "valid",
	[FVD_JB_BAD_MAGIC]	= "not a journal block",
	[FVD_JB_BAD_CSUM]	= "checksum mismatch (torn or corrupt)",
	[FVD_JB_STALE]		= "stale (older than the checkpoint)",
	[FVD_JB_BAD_INDEX]	= "invalid block index or count",
	[FVD_JB_BAD_RECORD]	= "invalid record",
	[FVD_JB_BAD_SEQ]	= "out-of-order sequence number",
	[FVD_JB_TORN]		= "incomplete commit",
};

const char *fvd_jblock_status_str(enum fvd_jblock_status status)
{
	if (status >= FVD_JB_NR_STATUS)
		return "unknown error";
	return fvd_jblock_status_names[status];
}

/* ---- building commits ---- */

static void *fvd_jbuilder_block(const struct fvd_jbuilder *jb, unsigned int i)
{
	return jb->buf + (size_t)i * FVD_JOURNAL_BLOCK_SIZE;
}

void fvd_jbuilder_reset(struct fvd_jbuilder *jb)
{
	jb->nr_blocks = 0;
	jb->nr_records = 0;
}

/* Append a run of local blocks; false when no room is left for it. */
bool fvd_jbuilder_add_run(struct fvd_jbuilder *jb, u64 start, u32 count)
{
	if (!jb->nr_blocks ||
	    fvd_jblock_add_bitmap_run(fvd_jbuilder_block(jb, jb->nr_blocks - 1),
				      start, count)) {
		if (jb->nr_blocks == jb->max_blocks)
			return false;
		fvd_jblock_init(fvd_jbuilder_block(jb, jb->nr_blocks));
		fvd_jblock_add_bitmap_run(fvd_jbuilder_block(jb, jb->nr_blocks++),
					  start, count);
	}
	jb->nr_records++;
	return true;
}

/*
 * Append table entries [@start, @start + @count), over several journal
 * blocks if need be; returns how many fit.
 */
u32 fvd_jbuilder_add_table(struct fvd_jbuilder *jb, u64 start, u32 count,
			   const __le32 *entries)
{
	u32 done = 0;
	int added;

	while (done < count) {
		added = jb->nr_blocks ?
			fvd_jblock_add_table_run(fvd_jbuilder_block(jb, jb->nr_blocks - 1),
						 start + done, count - done,
						 entries + done) : 0;
		if (!added) {
			if (jb->nr_blocks == jb->max_blocks)
				break;
			fvd_jblock_init(fvd_jbuilder_block(jb, jb->nr_blocks++));
			continue;
		}
		jb->nr_records++;
		done += added;
	}
	return done;
}

void fvd_jbuilder_seal(struct fvd_jbuilder *jb, u64 seq)
{
	unsigned int i;

	for (i = 0; i < jb->nr_blocks; i++)
		fvd_jblock_seal(fvd_jbuilder_block(jb, i), seq, i, jb->nr_blocks);
}

/* ---- replay ---- */

/*
 * Check block @index of the journal as block @nr of the commit @seq whose
 * first block said it has @count blocks.
 */
static int fvd_replay_check(const struct fvd_sb_info *sb, fvd_jread_fn read,
			    void *context, u64 index, u64 seq, u16 nr,
			    u16 *count, enum fvd_jblock_status *status)
{
	const struct fvd_disk_jheader *h;
	const void *block;
	int r;

	r = read(context, index, &block);
	if (r)
		return r;
	h = block;
	*status = fvd_jblock_check(block, seq, sb);
	if (*status != FVD_JB_OK)
		return 0;
	if (le64_to_cpu(h->seq) != seq) {
		*status = FVD_JB_BAD_SEQ;
	} else if (le16_to_cpu(h->index) != nr) {
		*status = FVD_JB_BAD_INDEX;
	} else if (!nr) {
		*count = le16_to_cpu(h->count);
		if (*count > FVD_JOURNAL_MAX_COMMIT_BLOCKS ||
		    *count > fvd_journal_blocks(sb) - index)
			*status = FVD_JB_BAD_INDEX;
	} else if (le16_to_cpu(h->count) != *count) {
		*status = FVD_JB_BAD_INDEX;
	}
	return 0;
}

/*
 * Blocks @index onwards: count the valid ones of commits after the one the
 * replay stopped at, and note the newest sequence number.
 */
static int fvd_replay_scan_tail(const struct fvd_sb_info *sb, fvd_jread_fn read,
				void *context, u64 index,
				struct fvd_replay *replay)
{
	const struct fvd_disk_jheader *h;
	const void *block;
	u64 seq;
	int r;

	for (; index < fvd_journal_blocks(sb); index++) {
		r = read(context, index, &block);
		if (r)
			return r;
		if (fvd_jblock_check(block, replay->next_seq, sb) != FVD_JB_OK)
			continue;
		h = block;
		seq = le64_to_cpu(h->seq);
		if (seq > replay->max_seq)
			replay->max_seq = seq;
		if (seq == replay->next_seq)
			continue;	/* of the torn commit itself */
		if (!replay->nr_newer++)
			replay->first_newer = index;
	}
	return 0;
}

/*
 * Apply every complete commit from the start of the journal whose sequence
 * numbers follow on from the checkpoint.  A commit counts only when all its
 * blocks are valid: its first block said how many there are, each carries its
 * own index, sequence number and checksum.
 */
int fvd_journal_replay(const struct fvd_sb_info *sb, fvd_jread_fn read,
		       fvd_jrec_fn apply, void *context,
		       struct fvd_replay *replay)
{
	u64 nr_blocks = fvd_journal_blocks(sb);
	const void *block;
	u16 count = 0, i;
	int r;

	memset(replay, 0, sizeof(*replay));
	replay->next_seq = sb->checkpoint_seq + 1;
	replay->max_seq = sb->checkpoint_seq;
	replay->stop = FVD_JB_OK;
	while (replay->head < nr_blocks) {
		for (i = 0; i == 0 || i < count; i++) {
			r = fvd_replay_check(sb, read, context, replay->head + i,
					     replay->next_seq, i, &count,
					     &replay->stop);
			if (r)
				return r;
			if (replay->stop != FVD_JB_OK) {
				if (i)
					replay->stop = FVD_JB_TORN;
				return fvd_replay_scan_tail(sb, read, context,
							    replay->head, replay);
			}
		}
		for (i = 0; i < count; i++) {
			r = read(context, replay->head + i, &block);
			if (!r)
				r = fvd_jblock_for_each(block, apply, context);
			if (r)
				return r;
			replay->nr_records +=
				le32_to_cpu(((const struct fvd_disk_jheader *)block)->nr_records);
		}
		replay->head += count;
		replay->nr_commits++;
		replay->max_seq = replay->next_seq++;
	}
	replay->full = true;
	return 0;
}

/*
 * Apply replayed record @rec to @bits and @table, both in on-disk format
 * (@table is NULL for an image without one).  A TABLE record clears the
 * bits of its chunks: the commit lists their local blocks after it.
 * -EINVAL for a record outside the image.
 */
int fvd_jrec_apply(const struct fvd_sb_info *sb, const struct fvd_jrec *rec,
		   u8 *bits, u8 *table)
{
	u64 block, end, unused;

	if (rec->type == FVD_JREC_TABLE) {
		if (!table || rec->start >= sb->nr_chunks || !rec->count ||
		    rec->count > sb->nr_chunks - rec->start)
			return -EINVAL;
		memcpy(table + rec->start * sizeof(__le32), rec->entries,
		       (size_t)rec->count * sizeof(__le32));
		fvd_chunk_blocks(sb, rec->start, &block, &unused);
		fvd_chunk_blocks(sb, rec->start + rec->count - 1, &unused, &end);
		for (; block < end; block++)
			bits[block >> 3] &= ~(1U << (block & 7));
		return 0;
	}
	if (rec->type != FVD_JREC_BITMAP_SET || rec->start >= sb->nr_blocks ||
	    rec->count > sb->nr_blocks - rec->start)
		return -EINVAL;
	for (block = rec->start; block < rec->start + rec->count; block++)
		bits[block >> 3] |= 1U << (block & 7);
	return 0;
}

bool fvd_bits_all_set(const u8 *map, u64 nr)
{
	u64 i;

	for (i = 0; i < nr / 8; i++)
		if (map[i] != 0xff)
			return false;
	for (i = nr & ~7ULL; i < nr; i++)
		if (!((map[i / 8] >> (i & 7)) & 1))
			return false;
	return true;
}

/* ---- the access profile region ---- */

static const char * const fvd_profile_status_names[FVD_PROFILE_NR_STATUS] = {
	[FVD_PROFILE_OK]		= "valid",
	[FVD_PROFILE_NONE]		= "no profile saved",
	[FVD_PROFILE_BAD_CSUM]		= "profile checksum mismatch",
	[FVD_PROFILE_BAD_HEADER]	= "invalid profile header",
	[FVD_PROFILE_OTHER_ORIGIN]	= "profile recorded over another origin size",
	[FVD_PROFILE_BAD_RUN]		= "profile run empty or past the origin",
};

const char *fvd_profile_status_str(enum fvd_profile_status status)
{
	if (status >= FVD_PROFILE_NR_STATUS)
		return "unknown error";
	return fvd_profile_status_names[status];
}

static u32 fvd_profile_region_csum(const void *region, u32 nr_runs)
{
	u32 crc = ~fvd_csum_except(region, FVD_PROFILE_HEADER_SIZE,
				   offsetof(struct fvd_disk_profile_header, csum));

	crc = fvd_crc32c_update(crc, (const u8 *)region + FVD_PROFILE_HEADER_SIZE,
				(size_t)nr_runs * sizeof(struct fvd_disk_profile_run));
	return ~crc;
}

/*
 * Fill in the header of @region, whose first @nr_runs runs the caller has
 * written: the header block is cleared first, the runs after it are kept.
 */
void fvd_profile_region_seal(void *region, u32 nr_runs, u64 origin_sectors,
			     u64 seq, u32 flags)
{
	struct fvd_disk_profile_header *h = region;

	memset(region, 0, FVD_PROFILE_HEADER_SIZE);
	h->magic = cpu_to_le64(FVD_PROFILE_MAGIC);
	h->nr_runs = cpu_to_le32(nr_runs);
	h->origin_sectors = cpu_to_le64(origin_sectors);
	h->seq = cpu_to_le64(seq);
	h->flags = cpu_to_le32(flags);
	h->csum = cpu_to_le32(fvd_profile_region_csum(region, nr_runs));
}

/*
 * Is @region (FVD_PROFILE_REGION_BYTES) a whole profile of an image over
 * an origin of @origin_sectors?  Every run is checked, so a caller may
 * queue them as they are.
 */
enum fvd_profile_status fvd_profile_region_check(const void *region,
						 u64 origin_sectors,
						 u32 *nr_runs)
{
	const struct fvd_disk_profile_header *h = region;
	const struct fvd_disk_profile_run *run;
	u64 start, len;
	u32 nr, i;

	*nr_runs = 0;
	if (le64_to_cpu(h->magic) != FVD_PROFILE_MAGIC)
		return FVD_PROFILE_NONE;
	nr = le32_to_cpu(h->nr_runs);
	if (nr > FVD_PROFILE_REGION_RUNS ||
	    le32_to_cpu(h->flags) & ~FVD_PROFILE_FLAGS_KNOWN)
		return FVD_PROFILE_BAD_HEADER;
	if (fvd_profile_region_csum(region, nr) != le32_to_cpu(h->csum))
		return FVD_PROFILE_BAD_CSUM;
	if (le64_to_cpu(h->origin_sectors) != origin_sectors)
		return FVD_PROFILE_OTHER_ORIGIN;
	run = (const struct fvd_disk_profile_run *)((const u8 *)region +
						    FVD_PROFILE_HEADER_SIZE);
	for (i = 0; i < nr; i++) {
		start = le64_to_cpu(run[i].start);
		len = le64_to_cpu(run[i].len);
		if (!len || start >= origin_sectors || len > origin_sectors - start)
			return FVD_PROFILE_BAD_RUN;
	}
	*nr_runs = nr;
	return FVD_PROFILE_OK;
}
