/* SPDX-License-Identifier: GPL-2.0 */
/*
 * dm-fvd on-disk format, version 1.
 *
 * This header is shared by the kernel target and the userspace tools, so it
 * uses only fixed-width little-endian fields and a handful of helpers that
 * both sides provide (see fvd-user.h for the userspace side).
 *
 * Metadata device layout (all offsets in 512-byte sectors):
 *
 *   0                superblock, 4 KiB
 *   8                backup superblock, 4 KiB (images with BACKUP_SB)
 *   bitmap_offset    bitmap, one bit per block, LSB first within a byte,
 *                    padded to a 4 KiB multiple
 *   table_offset     chunk table (compact images only): one __le32 per
 *                    virtual chunk, 0 for unmapped, else physical chunk + 1
 *   journal_offset   journal region: commits since the last checkpoint
 *   profile_offset   access profile (images with PROFILE): a header block
 *                    and up to FVD_PROFILE_REGION_RUNS origin ranges
 *
 * The data device holds block N of the virtual disk at
 * data_offset + N * block_sectors; in a compact image, virtual chunk C at
 * data_offset + (table[C] - 1) * chunk_sectors.  data_offset is non-zero
 * when the data shares the metadata device.
 */
#ifndef FVD_FORMAT_H
#define FVD_FORMAT_H

#ifdef __KERNEL__
#include <linux/types.h>
#include <linux/kernel.h>
#include <linux/build_bug.h>
#else
#include "fvd-user.h"
#endif

/* "FVD-DM1" followed by a NUL, read as a little-endian 64-bit word. */
#define FVD_MAGIC			0x00314d442d445646ULL
#define FVD_FORMAT_VERSION		1

#define FVD_SECTOR_SHIFT		9
#define FVD_SB_SIZE			4096
#define FVD_META_BLOCK_SIZE		4096
#define FVD_META_BLOCK_SECTORS		(FVD_META_BLOCK_SIZE >> FVD_SECTOR_SHIFT)

#define FVD_MIN_BLOCK_SHIFT		12	/* 4 KiB */
#define FVD_MAX_BLOCK_SHIFT		21	/* 2 MiB */
#define FVD_DEFAULT_BLOCK_SIZE		(64 * 1024)
#define FVD_DEFAULT_JOURNAL_SIZE	(16 * 1024 * 1024)
/* Data placed after the metadata starts on a 1 MiB boundary (or a block). */
#define FVD_DATA_ALIGN_SECTORS		2048

/* Superblock flags. */
#define FVD_FLAG_CLEAN			(1ULL << 0)	/* last shutdown was clean */
#define FVD_FLAG_ALL_LOCAL		(1ULL << 1)	/* origin no longer needed */
/*
 * NEEDS_CHECK: the target met a metadata error and went read-only or to
 * fail mode.  A read-write load is refused until fvd-check --repair clears
 * it; code that does not know the flag refuses the image altogether.
 */
#define FVD_FLAG_NEEDS_CHECK		(1ULL << 2)
#define FVD_FLAGS_KNOWN			(FVD_FLAG_CLEAN | FVD_FLAG_ALL_LOCAL | \
					 FVD_FLAG_NEEDS_CHECK)

/*
 * Feature words.  An image carrying an unknown incompatible bit must not be
 * loaded, an unknown read-only-compatible bit allows a read-only load,
 * unknown compatible bits are ignored.
 *
 * JOURNAL: commits are appended to the journal region and the bitmap at home
 * is only brought up to date by checkpoints, so the image is the home bitmap
 * plus every valid journal commit newer than checkpoint_seq.  Code that does
 * not replay the journal would see an out-of-date bitmap: incompatible.
 */
#define FVD_INCOMPAT_JOURNAL		(1ULL << 0)
/*
 * COMPACT: data is allocated chunk by chunk through the chunk table, whose
 * updates go through the journal (so COMPACT needs JOURNAL).
 */
#define FVD_INCOMPAT_COMPACT		(1ULL << 1)
#define FVD_INCOMPAT_SUPPORTED		(FVD_INCOMPAT_JOURNAL | FVD_INCOMPAT_COMPACT)

#define FVD_DEFAULT_CHUNK_SIZE		(1024 * 1024)
#define FVD_MAX_CHUNK_SHIFT		30	/* 1 GiB */

/*
 * The largest geometry supported.  The target keeps the bitmap (three
 * copies) and the chunk table (two) in memory: each copy is at most 512
 * MiB.  2^32 blocks are 16 TiB of 4 KiB blocks, 256 TiB of 64 KiB ones, and
 * the largest virtual size (8 PiB) of 2 MiB ones; 2^27 chunks are 128 TiB of
 * 1 MiB chunks.
 */
#define FVD_MAX_VIRTUAL_SECTORS		(1ULL << 44)	/* 8 PiB */
#define FVD_MAX_BLOCKS			(1ULL << 32)
#define FVD_MAX_CHUNKS			(1ULL << 27)

/*
 * BACKUP_SB (read-only compatible): a copy of the superblock sits in the
 * second 4 KiB block, written after every write of the primary has reached
 * the disk, so a torn or damaged primary can be restored from it
 * (fvd-check --repair).  Code that does not keep the copy up to date may
 * only load the image read-only: a stale copy restored later would name an
 * older checkpoint.  The metadata regions start after it.
 */
#define FVD_RO_COMPAT_BACKUP_SB		(1ULL << 0)
#define FVD_RO_COMPAT_SUPPORTED		FVD_RO_COMPAT_BACKUP_SB
#define FVD_BACKUP_SB_SECTOR		FVD_META_BLOCK_SECTORS

/*
 * ORIGIN_ID (compatible): the superblock records which origin the image was
 * made over, beyond its size: a fingerprint, the CRC-32C of the origin's
 * bytes in the ranges fvd_origin_fp_ranges() gives (its first and last MiB
 * and FVD_FP_NR_SAMPLES blocks of 4 KiB spread over it, in that order), and
 * the path it was given by, as a hint for people and tools.  Code that does
 * not know the feature loads the image without checking its origin.
 */
#define FVD_COMPAT_ORIGIN_ID		(1ULL << 0)
#define FVD_ORIGIN_HINT_SIZE		256
#define FVD_FP_EDGE_SECTORS		2048	/* 1 MiB at each end */
#define FVD_FP_NR_SAMPLES		16
#define FVD_FP_SAMPLE_SECTORS		8	/* 4 KiB */
#define FVD_FP_MAX_RANGES		(2 + FVD_FP_NR_SAMPLES)

/*
 * PROFILE (compatible): a region after the journal keeps the last access
 * profile the target recorded (see fvd-profile.h): which origin ranges the
 * guest needed, in order, so that another image over the same origin can
 * have them copied first.  The record is advisory and written in place
 * outside the journal, whole and checksummed: a torn or damaged one reads
 * as no profile, never as data.  Code that does not know the feature
 * leaves the region alone.
 */
#define FVD_COMPAT_PROFILE		(1ULL << 1)
#define FVD_PROFILE_MAGIC		0x00464f5250445646ULL	/* "FVDPROF" */
#define FVD_PROFILE_REGION_RUNS		8192

struct fvd_disk_superblock {
	__le64 magic;
	__le32 version;
	__le32 csum;		/* crc32c of the 4 KiB block, this field zero */
	__le64 incompat_features;
	__le64 ro_compat_features;
	__le64 compat_features;
	__le64 flags;
	__u8 uuid[16];
	__le64 virtual_sectors;
	__le64 origin_sectors;	/* 0: no origin */
	__le32 block_sectors;
	__le32 chunk_sectors;	/* compact images only, else 0 */
	__le64 bitmap_offset;
	__le64 bitmap_sectors;
	__le64 table_offset;
	__le64 table_sectors;
	__le64 journal_offset;
	__le64 journal_sectors;
	__le64 data_offset;	/* on the data device */
	__le64 checkpoint_seq;	/* last journal commit in the home bitmap */
	__le32 origin_fingerprint;	/* ORIGIN_ID */
	__le32 reserved;
	__u8 origin_hint[FVD_ORIGIN_HINT_SIZE];	/* ORIGIN_ID: NUL-padded path */
	__le64 profile_offset;	/* PROFILE */
	__le64 profile_sectors;	/* PROFILE */
	__u8 padding[3664];
} __packed;

static_assert(sizeof(struct fvd_disk_superblock) == FVD_SB_SIZE);

/* The superblock in CPU byte order, with values derived from it. */
struct fvd_sb_info {
	u32 version;
	u64 incompat_features;
	u64 ro_compat_features;
	u64 compat_features;
	u64 flags;
	u8 uuid[16];
	u64 virtual_sectors;
	u64 origin_sectors;
	u32 block_sectors;
	u32 chunk_sectors;
	u64 bitmap_offset;
	u64 bitmap_sectors;
	u64 table_offset;
	u64 table_sectors;
	u64 journal_offset;
	u64 journal_sectors;
	u64 data_offset;
	u64 checkpoint_seq;
	u32 origin_fingerprint;
	char origin_hint[FVD_ORIGIN_HINT_SIZE];	/* always NUL-terminated */
	u64 profile_offset;
	u64 profile_sectors;

	/* derived by fvd_sb_decode() and fvd_layout_init() */
	u32 block_shift;
	u64 nr_blocks;
	u32 chunk_shift;	/* compact images */
	u32 chunk_block_shift;	/* log2 of blocks per chunk; 0 without chunks */
	u64 nr_chunks;
	u64 metadata_sectors;	/* end of the last metadata region */
};

enum fvd_sb_status {
	FVD_SB_OK = 0,
	FVD_SB_BAD_MAGIC,
	FVD_SB_BAD_CSUM,
	FVD_SB_BAD_VERSION,
	FVD_SB_UNKNOWN_INCOMPAT,
	FVD_SB_UNKNOWN_FLAGS,
	FVD_SB_BAD_BLOCK_SIZE,
	FVD_SB_BAD_VIRTUAL_SIZE,
	FVD_SB_BAD_ORIGIN_SIZE,
	FVD_SB_BAD_CHUNK_SIZE,
	FVD_SB_COMPACT_NO_JOURNAL,
	FVD_SB_BAD_BITMAP,
	FVD_SB_BAD_TABLE,
	FVD_SB_BAD_JOURNAL,
	FVD_SB_BAD_PROFILE,
	FVD_SB_REGIONS_OVERLAP,
	FVD_SB_BAD_DATA_OFFSET,
	FVD_SB_TOO_MANY_BLOCKS,
	FVD_SB_TOO_MANY_CHUNKS,
	FVD_SB_NR_STATUS
};

/*
 * CRC-32C (Castagnoli) register update, without pre- or post-inversion:
 * lib/crc32c in the kernel, a table in the tools.
 */
u32 fvd_crc32c_update(u32 crc, const void *buf, size_t len);
/* Standard CRC-32C of @len bytes (check value of "123456789": 0xe3069283). */
u32 fvd_crc32c(const void *buf, size_t len);
u32 fvd_sb_csum(const struct fvd_disk_superblock *disk);

const char *fvd_sb_status_str(enum fvd_sb_status status);
enum fvd_sb_status fvd_sb_decode(const void *block, struct fvd_sb_info *sb);
void fvd_sb_encode(const struct fvd_sb_info *sb, void *block);
enum fvd_sb_status fvd_sb_check(struct fvd_sb_info *sb);
const char *fvd_sb_layout_change(const struct fvd_sb_info *a,
				 const struct fvd_sb_info *b, u64 *was, u64 *now);
int fvd_layout_init(struct fvd_sb_info *sb, u64 virtual_sectors,
		    u64 origin_sectors, u32 block_sectors, u32 chunk_sectors,
		    u64 journal_sectors, bool data_shares_metadata);
int fvd_layout_add_profile(struct fvd_sb_info *sb);

/* Sectors [start, start + len) of the origin that its fingerprint covers. */
struct fvd_fp_range {
	u64 start;
	u64 len;
};

unsigned int fvd_origin_fp_ranges(u64 origin_sectors,
				  struct fvd_fp_range ranges[FVD_FP_MAX_RANGES]);

static inline bool fvd_compact(const struct fvd_sb_info *sb)
{
	return sb->incompat_features & FVD_INCOMPAT_COMPACT;
}

/* The chunk table region: one __le32 per chunk, whole 4 KiB blocks. */
static inline u64 fvd_table_region_sectors(u64 nr_chunks)
{
	u64 blocks = (nr_chunks * 4 + FVD_META_BLOCK_SIZE - 1) / FVD_META_BLOCK_SIZE;

	return blocks * FVD_META_BLOCK_SECTORS;
}

/*
 * The chunk holding @block.  Defined for every valid geometry: an image
 * without chunks has chunk_block_shift 0, and callers only ask on compact
 * images.
 */
static inline u64 fvd_block_chunk(const struct fvd_sb_info *sb, u64 block)
{
	return block >> sb->chunk_block_shift;
}

/* Table entries: 0 is unmapped, otherwise physical chunk + 1. */
#define FVD_CHUNK_UNMAPPED	0U
/* Physical chunks a table entry can name; a larger data device is not used. */
#define FVD_MAX_PHYS_CHUNKS	(0xffffffffULL - 1)

/* Blocks [*first, *end) of virtual @chunk; the last chunk may be short. */
static inline void fvd_chunk_blocks(const struct fvd_sb_info *sb, u64 chunk,
				    u64 *first, u64 *end)
{
	u64 per_chunk = 1ULL << sb->chunk_block_shift;

	*first = chunk * per_chunk;
	*end = *first + per_chunk;
	if (*end > sb->nr_blocks)
		*end = sb->nr_blocks;
}

static inline bool fvd_block_size_valid(u64 bytes)
{
	return bytes >= (1ULL << FVD_MIN_BLOCK_SHIFT) &&
	       bytes <= (1ULL << FVD_MAX_BLOCK_SHIFT) &&
	       (bytes & (bytes - 1)) == 0;
}

/* First virtual sector of @block. */
static inline u64 fvd_block_start(const struct fvd_sb_info *sb, u64 block)
{
	return block << sb->block_shift;
}

static inline u64 fvd_sector_to_block(const struct fvd_sb_info *sb, u64 sector)
{
	return sector >> sb->block_shift;
}

/* Sectors of @block inside the virtual disk: short for a partial last block. */
static inline u32 fvd_block_len(const struct fvd_sb_info *sb, u64 block)
{
	u64 start = fvd_block_start(sb, block);

	if (start >= sb->virtual_sectors)
		return 0;
	if (sb->virtual_sectors - start < sb->block_sectors)
		return sb->virtual_sectors - start;
	return sb->block_sectors;
}

/* Sectors at the start of @block that the origin holds; the rest are zero. */
static inline u32 fvd_block_origin_len(const struct fvd_sb_info *sb, u64 block)
{
	u64 start = fvd_block_start(sb, block);
	u32 len = fvd_block_len(sb, block);

	if (start >= sb->origin_sectors)
		return 0;
	if (sb->origin_sectors - start < len)
		return sb->origin_sectors - start;
	return len;
}

/*
 * Blocks holding some of the origin's data.  The image is all-local when
 * these are: the blocks past the origin's end read as zeroes without it.
 */
static inline u64 fvd_origin_blocks(const struct fvd_sb_info *sb)
{
	u64 sectors = sb->origin_sectors < sb->virtual_sectors ?
		      sb->origin_sectors : sb->virtual_sectors;

	return (sectors + sb->block_sectors - 1) >> sb->block_shift;
}

/* Chunks of a compact image holding some of the origin's data. */
static inline u64 fvd_origin_chunks(const struct fvd_sb_info *sb)
{
	return (fvd_origin_blocks(sb) * sb->block_sectors + sb->chunk_sectors - 1) >>
	       sb->chunk_shift;
}

/* Bytes of bitmap needed for @nr_blocks, before padding. */
static inline u64 fvd_bitmap_bytes(u64 nr_blocks)
{
	return (nr_blocks + 7) / 8;
}

/* The bitmap region: whole 4 KiB metadata blocks. */
static inline u64 fvd_bitmap_region_sectors(u64 nr_blocks)
{
	u64 blocks = (fvd_bitmap_bytes(nr_blocks) + FVD_META_BLOCK_SIZE - 1) /
		     FVD_META_BLOCK_SIZE;

	return blocks * FVD_META_BLOCK_SECTORS;
}

/*
 * Journal blocks.  A commit appends one or more 4 KiB blocks carrying the same
 * sequence number, written as one sequential write; each block is
 * self-contained and checksummed, so a torn or stale block is recognised on
 * replay.  Commits follow each other from the start of the region, with
 * consecutive sequence numbers starting at checkpoint_seq + 1; a checkpoint
 * writes the bitmap home, records its sequence number in the superblock and
 * starts the journal again from its first block.
 */
#define FVD_JOURNAL_MAX_COMMIT_BLOCKS	16
#define FVD_JOURNAL_MAGIC		0x004c4e524a445646ULL	/* "FVDJRNL" */
#define FVD_JOURNAL_BLOCK_SIZE		4096

/*
 * A TABLE record also clears the bitmap bits of every chunk it names: a
 * commit that changes a chunk's entry lists the table first, then every
 * block local in that chunk.  So a chunk unmapped by a discard, or mapped
 * anew, never keeps a bit of its previous mapping on replay.
 */
enum fvd_jrec_type {
	FVD_JREC_BITMAP_SET = 1,	/* blocks [start, start + count) are local */
	FVD_JREC_TABLE = 2,		/* table[start, start + count) = entries */
};

struct fvd_disk_jheader {
	__le64 magic;
	__le64 seq;		/* commit sequence number */
	__le32 csum;		/* crc32c of the whole block, this field zero */
	__le16 index;		/* this block's place in its commit */
	__le16 count;		/* blocks in the commit */
	__le32 nr_records;
	__le32 used_bytes;	/* bytes of records after the header */
} __packed;

struct fvd_disk_jrecord {
	__le16 type;
	__le16 reserved;
	__le32 count;
	__le64 start;
} __packed;

static_assert(sizeof(struct fvd_disk_jheader) == 32);
static_assert(sizeof(struct fvd_disk_jrecord) == 16);

#define FVD_JOURNAL_PAYLOAD	(FVD_JOURNAL_BLOCK_SIZE - sizeof(struct fvd_disk_jheader))

enum fvd_jblock_status {
	FVD_JB_OK = 0,
	FVD_JB_BAD_MAGIC,	/* never written, or not a journal block */
	FVD_JB_BAD_CSUM,	/* torn or corrupted */
	FVD_JB_STALE,		/* older than the last checkpoint */
	FVD_JB_BAD_INDEX,
	FVD_JB_BAD_RECORD,
	FVD_JB_BAD_SEQ,		/* valid, but not the commit expected next */
	FVD_JB_TORN,		/* a later block of the commit is missing */
	FVD_JB_NR_STATUS
};

/* A decoded journal record; @entries points into the block (TABLE only). */
struct fvd_jrec {
	enum fvd_jrec_type type;
	u64 start;
	u32 count;
	const __le32 *entries;
};

typedef int (*fvd_jrec_fn)(void *context, const struct fvd_jrec *rec);

void fvd_jblock_init(void *block);
int fvd_jblock_add_bitmap_run(void *block, u64 start, u32 count);
int fvd_jblock_add_table_run(void *block, u64 start, u32 count,
			     const __le32 *entries);
void fvd_jblock_seal(void *block, u64 seq, u16 index, u16 count);
enum fvd_jblock_status fvd_jblock_check(const void *block, u64 min_seq,
					const struct fvd_sb_info *sb);
int fvd_jblock_for_each(const void *block, fvd_jrec_fn fn, void *context);
const char *fvd_jblock_status_str(enum fvd_jblock_status status);

/*
 * Builds the journal blocks of one commit in a caller-provided buffer of
 * @max_blocks blocks (at most FVD_JOURNAL_MAX_COMMIT_BLOCKS).  What does not
 * fit is refused, and the caller describes it in the next commit.
 */
struct fvd_jbuilder {
	u8 *buf;
	unsigned int max_blocks;
	unsigned int nr_blocks;
	u64 nr_records;
};

void fvd_jbuilder_reset(struct fvd_jbuilder *jb);
bool fvd_jbuilder_add_run(struct fvd_jbuilder *jb, u64 start, u32 count);
u32 fvd_jbuilder_add_table(struct fvd_jbuilder *jb, u64 start, u32 count,
			   const __le32 *entries);
void fvd_jbuilder_seal(struct fvd_jbuilder *jb, u64 seq);

/*
 * Replay.  @read returns journal block @index (0-based in the region) in
 * *@block, valid until the next call, or a negative errno.  @apply is called
 * for every record of every complete commit newer than sb->checkpoint_seq,
 * in order; a non-zero return stops the replay and is returned.  The rest
 * of the region is then read for blocks of later commits (nr_newer).
 */
typedef int (*fvd_jread_fn)(void *context, u64 index, const void **block);

struct fvd_replay {
	u64 next_seq;		/* first sequence number not in the image */
	u64 head;		/* journal block after the last commit: blocks replayed */
	u64 nr_commits;
	u64 nr_records;
	enum fvd_jblock_status stop;	/* why the replay ended at @head */
	bool full;		/* it ended at the end of the region */
	/*
	 * Valid blocks past @head of commits after next_seq: a commit was
	 * completed after the one the replay stopped at, so the journal is
	 * damaged and stopping drops acknowledged commits.  No crash leaves
	 * one: commits are written one after the other, each complete before
	 * the next, and a load checkpoints past any number a torn one holds.
	 */
	u64 nr_newer;
	u64 first_newer;	/* journal block of the first of them */
	u64 max_seq;		/* newest sequence number seen, replayed or not */
};

static inline u64 fvd_journal_blocks(const struct fvd_sb_info *sb)
{
	return sb->journal_sectors / (FVD_JOURNAL_BLOCK_SIZE >> FVD_SECTOR_SHIFT);
}

int fvd_journal_replay(const struct fvd_sb_info *sb, fvd_jread_fn read,
		       fvd_jrec_fn apply, void *context,
		       struct fvd_replay *replay);

/* Are bits 0 to @nr - 1 of @map all set? */
bool fvd_bits_all_set(const u8 *map, u64 nr);

int fvd_jrec_apply(const struct fvd_sb_info *sb, const struct fvd_jrec *rec,
		   u8 *bits, u8 *table);

/*
 * The profile region: a 4 KiB header, then the runs, FVD_PROFILE_REGION_RUNS
 * of room.  A region whose header has no magic holds no profile (a new
 * image's).  The checksum covers the header block, its own field as zero,
 * and the nr_runs runs after it.
 */
struct fvd_disk_profile_header {
	__le64 magic;
	__le32 csum;
	__le32 nr_runs;
	__le64 origin_sectors;	/* the image's, when it was recorded */
	__le64 seq;		/* saves by the table that saved it, from 1 */
	__le32 flags;
	__le32 reserved;
} __packed;

/* The recording ended because it was full: later reads are missing. */
#define FVD_PROFILE_FULL		(1U << 0)
#define FVD_PROFILE_FLAGS_KNOWN		FVD_PROFILE_FULL

/* Sectors [start, start + len) of the origin. */
struct fvd_disk_profile_run {
	__le64 start;
	__le64 len;
} __packed;

static_assert(sizeof(struct fvd_disk_profile_header) == 40);
static_assert(sizeof(struct fvd_disk_profile_run) == 16);

#define FVD_PROFILE_HEADER_SIZE		4096
#define FVD_PROFILE_REGION_BYTES	(FVD_PROFILE_HEADER_SIZE + \
					 FVD_PROFILE_REGION_RUNS * \
					 sizeof(struct fvd_disk_profile_run))
#define FVD_PROFILE_REGION_SECTORS	(FVD_PROFILE_REGION_BYTES >> FVD_SECTOR_SHIFT)

enum fvd_profile_status {
	FVD_PROFILE_OK = 0,
	FVD_PROFILE_NONE,		/* no magic: never saved */
	FVD_PROFILE_BAD_CSUM,		/* torn or damaged */
	FVD_PROFILE_BAD_HEADER,		/* unknown flags, too many runs */
	FVD_PROFILE_OTHER_ORIGIN,	/* recorded over another origin size */
	FVD_PROFILE_BAD_RUN,		/* a run empty or past the origin */
	FVD_PROFILE_NR_STATUS
};

/* Run @index of a profile region (a buffer of FVD_PROFILE_REGION_BYTES). */
static inline struct fvd_disk_profile_run *fvd_profile_region_run(void *region,
								  u32 index)
{
	return (struct fvd_disk_profile_run *)((u8 *)region + FVD_PROFILE_HEADER_SIZE) +
	       index;
}

void fvd_profile_region_seal(void *region, u32 nr_runs, u64 origin_sectors,
			     u64 seq, u32 flags);
enum fvd_profile_status fvd_profile_region_check(const void *region,
						 u64 origin_sectors,
						 u32 *nr_runs);
const char *fvd_profile_status_str(enum fvd_profile_status status);

#endif /* FVD_FORMAT_H */
