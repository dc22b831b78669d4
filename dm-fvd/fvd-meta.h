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
 *  - staged: what the disk holds, as a replay of the journal would
 *            rebuild it, plus what the commit under way described so far
 *            (copied from live when described, before the data device
 *            flush that goes with it, so a commit never persists a bit
 *            whose data completed after that flush).  Without a journal:
 *            what the last commit wrote home, or the one under way writes.
 * Both are protected by the target's lock.
 */
struct fvd_mregion {
	u8 *live;
	u8 *staged;
	size_t bytes;			/* whole 4 KiB metadata blocks */
	unsigned long nr_mblocks;
	sector_t first_mblock;		/* on the metadata device, 4 KiB units */

	/*
	 * Metadata blocks changed since the commit under way began / that
	 * it visits / whose journaled changes are not written home yet.
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
	 * chunk unmapped by a discard stays in use until nothing refers to
	 * it: while the staged table names it, "freeing"; then, until a
	 * commit switches I/O epochs, "unmapped"; then, until the I/O issued
	 * to it before the switch has ended, "draining".
	 */
	struct fvd_mregion table;
	unsigned long *chunk_used;
	unsigned long *chunk_freeing;
	unsigned long *chunk_unmapped;
	unsigned long *chunk_draining;
	u64 nr_phys;			/* chunks the data device holds */
	u64 nr_free;
	u64 nr_freeing;
	u64 nr_unmapped;
	u64 nr_draining;

	/* The commit under way (commit path only, under the target's lock). */
	bool commit_active;
	u64 sweep_block;		/* journaled: next block to describe */
	unsigned long sweep_mblock;	/* no journal: next block to freeze */
};

/* Blocks whose bits one bitmap metadata block holds. */
#define FVD_META_MBLOCK_BLOCKS		(FVD_META_BLOCK_SIZE * 8)
/* Chunks whose entries one table metadata block holds. */
#define FVD_META_TBLOCK_CHUNKS		(FVD_META_BLOCK_SIZE / sizeof(__le32))
/* Bounds on the work done per hold of the target's lock. */
#define FVD_MAP_WORDS_PER_HOLD		4096
#define FVD_FREEZE_MBLOCKS_PER_HOLD	16

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
	return block / FVD_META_MBLOCK_BLOCKS;
}

/* The table metadata block holding the entry of @chunk. */
static inline unsigned long fvd_meta_tblock_of(u64 chunk)
{
	return chunk / FVD_META_TBLOCK_CHUNKS;
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
bool fvd_meta_backup_sb_valid(struct fvd_meta *meta);
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

/*
 * A commit, under the target's lock step by step (it may be dropped in
 * between): fvd_meta_sweep_start(); then, with a journal, describe steps
 * until DONE, the description journaled in rounds (each ended by
 * fvd_meta_round_freeze()); without one, freeze steps; then
 * fvd_meta_sweep_done().
 */
enum fvd_describe {
	FVD_DESCRIBE_MORE,	/* step again */
	FVD_DESCRIBE_FULL,	/* the builder is full: journal it first */
	FVD_DESCRIBE_DONE,	/* everything the commit visits is described */
};

void fvd_meta_sweep_start(struct fvd_meta *meta);
enum fvd_describe fvd_meta_describe_step(struct fvd_meta *meta,
					 struct fvd_jbuilder *jb);
bool fvd_meta_freeze_step(struct fvd_meta *meta);
bool fvd_meta_round_freeze(struct fvd_meta *meta);
void fvd_meta_sweep_done(struct fvd_meta *meta, bool failed);

/* Nothing to commit, and no chunk waits for a commit to be free. */
static inline bool fvd_meta_clean(const struct fvd_meta *meta)
{
	return !meta->bits.nr_dirty && !meta->table.nr_dirty &&
	       !meta->commit_active && !meta->nr_freeing &&
	       !meta->nr_unmapped && !meta->nr_draining;
}

/* Process context; the lock is @lock, the target's. */
u64 fvd_meta_release_chunks(struct fvd_meta *meta, spinlock_t *lock);

/* Process context, commit path, no lock. */
int fvd_meta_write_home(struct fvd_meta *meta);
bool fvd_meta_home_stale(const struct fvd_meta *meta);

#endif /* FVD_META_H */
