/* SPDX-License-Identifier: GPL-2.0 */
/*
 * dm-fvd metadata: the superblock and the block bitmap, read and written
 * through dm-bufio.  Only process context may call the functions that do I/O.
 */
#ifndef FVD_META_H
#define FVD_META_H

#include <linux/types.h>
#include <linux/spinlock.h>
#include "fvd-format.h"

struct dm_bufio_client;
struct block_device;

struct fvd_meta {
	struct dm_bufio_client *bufio;
	struct fvd_sb_info sb;

	/*
	 * Two copies of the bitmap, on-disk bit order:
	 *  - local:  the truth the I/O path uses; a bit is set once the data
	 *            write of that block has completed;
	 *  - staged: what the current or last commit writes home; bits are
	 *            copied from local only when a commit starts, so a commit
	 *            never persists a bit whose data completed after the data
	 *            device flush that commit issued.
	 * Both are protected by the target's lock (set bits only under it).
	 */
	u8 *local;
	u8 *staged;
	size_t bitmap_bytes;	/* whole 4 KiB metadata blocks */
	u64 nr_local;

	/*
	 * Bitmap metadata blocks changed since the last snapshot / in the
	 * commit under way / committed to the journal but not written home.
	 */
	unsigned long *dirty;
	unsigned long *committing;
	unsigned long *home_stale;
	unsigned long nr_mblocks;
	unsigned long nr_dirty;
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

/* The bitmap metadata block holding the bit of @block. */
static inline unsigned long fvd_meta_mblock_of(u64 block)
{
	return block / (FVD_META_BLOCK_SIZE * 8);
}

int fvd_meta_open(struct fvd_meta *meta, struct block_device *bdev,
		  enum fvd_sb_status *status);
void fvd_meta_close(struct fvd_meta *meta);
int fvd_meta_read_sb(struct fvd_meta *meta, struct fvd_sb_info *sb,
		     enum fvd_sb_status *status);
int fvd_meta_alloc_bitmap(struct fvd_meta *meta);
int fvd_meta_load_bitmap(struct fvd_meta *meta, struct fvd_replay *replay);
int fvd_meta_write_sb(struct fvd_meta *meta);

/* Under the target's lock. */
bool fvd_meta_mark_local(struct fvd_meta *meta, u64 block);
bool fvd_meta_block_durable(const struct fvd_meta *meta, u64 block);
unsigned long fvd_meta_snapshot(struct fvd_meta *meta, struct fvd_jbuilder *jb);
void fvd_meta_commit_done(struct fvd_meta *meta, bool failed);

static inline bool fvd_meta_clean(const struct fvd_meta *meta)
{
	return !meta->nr_dirty && !meta->commit_active;
}

/* Process context, no lock. */
int fvd_meta_write_home(struct fvd_meta *meta);
void fvd_meta_journaled(struct fvd_meta *meta);
int fvd_meta_rollback(struct fvd_meta *meta, const struct fvd_sb_info *sb,
		      spinlock_t *lock);

#endif /* FVD_META_H */
