/* SPDX-License-Identifier: GPL-2.0 */
/*
 * dm-fvd metadata: the superblock, the block bitmap and (compact images) the
 * chunk table, read and written through dm-bufio.  Only process context may
 * call the functions that do I/O.
 */
#ifndef FVD_META_H
#define FVD_META_H

#include <linux/types.h>
#include <linux/spinlock.h>
#include "fvd-format.h"

struct dm_bufio_client;
struct block_device;

/*
 * A metadata region kept in memory: the bitmap, or the chunk table.  Two
 * copies, in on-disk format:
 *  - live:   the truth the I/O path uses (a bit is set once the data write
 *            of its block completed; a table entry once its chunk is
 *            allocated);
 *  - staged: what the current or last commit made durable; changes are
 *            copied from live only when a commit starts, so a commit never
 *            persists a bit whose data completed after the data device
 *            flush that commit issued.
 * Both are protected by the target's lock.
 */
struct fvd_mregion {
	u8 *live;
	u8 *staged;
	size_t bytes;			/* whole 4 KiB metadata blocks */
	unsigned long nr_mblocks;
	sector_t first_mblock;		/* on the metadata device, 4 KiB units */

	/*
	 * Metadata blocks changed since the last snapshot / in the commit
	 * under way / committed to the journal but not written home.
	 */
	unsigned long *dirty;
	unsigned long *committing;
	unsigned long *home_stale;
	unsigned long nr_dirty;
};

struct fvd_meta {
	struct dm_bufio_client *bufio;
	struct fvd_sb_info sb;

	struct fvd_mregion bits;
	u64 nr_local;

	/*
	 * Blocks copied from the origin by copy-on-read and not local: the
	 * data device holds the origin's data for them.  Memory only, never
	 * journaled (losing a bit costs a second copy, not data); made local
	 * bits by fvd_meta_promote_fresh() before a checkpoint.
	 */
	u8 *fresh;
	u64 nr_fresh;

	/*
	 * Compact images: the table, and which physical chunks it uses.  A
	 * chunk unmapped by a discard stays in use until the commit that
	 * journals the unmapping is done and the I/O issued to it before has
	 * ended: first "freeing", then, from the start of that commit,
	 * "draining".
	 */
	struct fvd_mregion table;
	unsigned long *chunk_used;
	unsigned long *chunk_freeing;
	unsigned long *chunk_draining;
	u64 nr_phys;			/* chunks the data device holds */
	u64 nr_free;
	u64 nr_freeing;
	u64 nr_draining;

	bool commit_active;
};

static inline bool fvd_bit_test(const u8 *map, u64 nr)
{
	return (READ_ONCE(map[nr >> 3]) >> (nr & 7)) & 1;
}

static inline void fvd_bit_set(u8 *map, u64 nr)
{
	WRITE_ONCE(map[nr >> 3], map[nr >> 3] | (1U << (nr & 7)));
}

static inline void fvd_bit_clear(u8 *map, u64 nr)
{
	WRITE_ONCE(map[nr >> 3], map[nr >> 3] & ~(1U << (nr & 7)));
}

/* Is the data of @block on the data device: local, or copied on read? */
static inline bool fvd_meta_present(const struct fvd_meta *meta, u64 block)
{
	return fvd_bit_test(meta->bits.live, block) ||
	       fvd_bit_test(meta->fresh, block);
}

/* The bitmap metadata block holding the bit of @block. */
static inline unsigned long fvd_meta_mblock_of(u64 block)
{
	return block / (FVD_META_BLOCK_SIZE * 8);
}

/* The table metadata block holding the entry of @chunk. */
static inline unsigned long fvd_meta_tblock_of(u64 chunk)
{
	return chunk / (FVD_META_BLOCK_SIZE / sizeof(__le32));
}

/* Table entry of @chunk: 0 when unmapped, else physical chunk + 1. */
static inline u32 fvd_table_get(const u8 *table, u64 chunk)
{
	return le32_to_cpu(READ_ONCE(((const __le32 *)table)[chunk]));
}

static inline void fvd_table_set(u8 *table, u64 chunk, u32 entry)
{
	WRITE_ONCE(((__le32 *)table)[chunk], cpu_to_le32(entry));
}

int fvd_meta_open(struct fvd_meta *meta, struct block_device *bdev,
		  enum fvd_sb_status *status);
void fvd_meta_close(struct fvd_meta *meta);
int fvd_meta_read_sb(struct fvd_meta *meta, struct fvd_sb_info *sb,
		     enum fvd_sb_status *status);
int fvd_meta_alloc(struct fvd_meta *meta);
int fvd_meta_load(struct fvd_meta *meta, struct fvd_replay *replay);
int fvd_meta_write_sb(struct fvd_meta *meta);
int fvd_meta_set_capacity(struct fvd_meta *meta, u64 nr_phys,
			  spinlock_t *lock);
int fvd_meta_rebuild_chunks(struct fvd_meta *meta);

/* Under the target's lock. */
bool fvd_meta_mark_local(struct fvd_meta *meta, u64 block);
bool fvd_meta_mark_fresh(struct fvd_meta *meta, u64 block);
unsigned long fvd_meta_promote_fresh(struct fvd_meta *meta,
				     unsigned long mblock);
void fvd_meta_forget_fresh(struct fvd_meta *meta);
bool fvd_meta_block_durable(const struct fvd_meta *meta, u64 block);
s64 fvd_meta_map_chunk(struct fvd_meta *meta, u64 chunk);
bool fvd_meta_unmap_chunk(struct fvd_meta *meta, u64 chunk);
unsigned long fvd_meta_describe(const struct fvd_meta *meta,
				struct fvd_jbuilder *jb);
bool fvd_meta_freeze(struct fvd_meta *meta);
unsigned long fvd_meta_snapshot(struct fvd_meta *meta, struct fvd_jbuilder *jb);
u64 fvd_meta_release_chunks(struct fvd_meta *meta);
void fvd_meta_commit_done(struct fvd_meta *meta, bool failed);

/* Nothing to commit, and no chunk waits for a commit to be free. */
static inline bool fvd_meta_clean(const struct fvd_meta *meta)
{
	return !meta->bits.nr_dirty && !meta->table.nr_dirty &&
	       !meta->commit_active && !meta->nr_freeing && !meta->nr_draining;
}

/* Process context, no lock. */
int fvd_meta_write_home(struct fvd_meta *meta);
bool fvd_meta_home_stale(const struct fvd_meta *meta);
void fvd_meta_journaled(struct fvd_meta *meta);
int fvd_meta_rollback(struct fvd_meta *meta, const struct fvd_sb_info *sb,
		      spinlock_t *lock);

#endif /* FVD_META_H */
