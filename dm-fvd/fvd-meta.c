// SPDX-License-Identifier: GPL-2.0
/*
 * dm-fvd metadata I/O: superblock and bitmap through dm-bufio.
 *
 * The bitmap only ever gains bits in this format version, and a bitmap
 * block is written home only after the data device was flushed.  So a torn
 * bitmap block write after a crash leaves each bit either at its old value
 * (block read from the origin again, never acknowledged by a flush) or at
 * its new value (data already durable).  That is what lets a checkpoint
 * write home blocks in place, and an image without a journal commit by
 * writing them directly.
 */
#include <linux/bitmap.h>
#include <linux/dm-bufio.h>
#include <linux/err.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/vmalloc.h>

#include "fvd-journal.h"
#include "fvd-meta.h"

#define FVD_SB_BLOCK 0

/* Read and validate the superblock into @sb; @sb is untouched on failure. */
int fvd_meta_read_sb(struct fvd_meta *meta, struct fvd_sb_info *sb,
		     enum fvd_sb_status *status)
{
	struct fvd_sb_info decoded;
	struct dm_buffer *buf;
	void *data;

	/* Another table may have rewritten it: never trust a cached copy. */
	dm_bufio_forget(meta->bufio, FVD_SB_BLOCK);
	data = dm_bufio_read(meta->bufio, FVD_SB_BLOCK, &buf);
	if (IS_ERR(data))
		return PTR_ERR(data);
	*status = fvd_sb_decode(data, &decoded);
	dm_bufio_release(buf);
	if (*status != FVD_SB_OK)
		return -EINVAL;
	*sb = decoded;
	return 0;
}

int fvd_meta_open(struct fvd_meta *meta, struct block_device *bdev,
		  enum fvd_sb_status *status)
{
	int r;

	memset(meta, 0, sizeof(*meta));
	*status = FVD_SB_OK;
	meta->bufio = dm_bufio_client_create(bdev, FVD_META_BLOCK_SIZE, 1, 0,
					     NULL, NULL, 0);
	if (IS_ERR(meta->bufio)) {
		r = PTR_ERR(meta->bufio);
		meta->bufio = NULL;
		return r;
	}
	return fvd_meta_read_sb(meta, &meta->sb, status);
}

/* Allocate the in-memory bitmaps for the geometry in meta->sb. */
int fvd_meta_alloc_bitmap(struct fvd_meta *meta)
{
	u64 bytes = meta->sb.bitmap_sectors << FVD_SECTOR_SHIFT;
	u64 mblocks = bytes / FVD_META_BLOCK_SIZE;

	if (bytes > SIZE_MAX || mblocks > UINT_MAX)
		return -ENOMEM;
	meta->bitmap_bytes = bytes;
	meta->nr_mblocks = mblocks;
	meta->local = kvzalloc(bytes, GFP_KERNEL | __GFP_NOWARN);
	meta->staged = kvzalloc(bytes, GFP_KERNEL | __GFP_NOWARN);
	meta->dirty = bitmap_zalloc(mblocks, GFP_KERNEL | __GFP_NOWARN);
	meta->committing = bitmap_zalloc(mblocks, GFP_KERNEL | __GFP_NOWARN);
	meta->home_stale = bitmap_zalloc(mblocks, GFP_KERNEL | __GFP_NOWARN);
	if (!meta->local || !meta->staged || !meta->dirty || !meta->committing ||
	    !meta->home_stale)
		return -ENOMEM;
	return 0;
}

void fvd_meta_close(struct fvd_meta *meta)
{
	if (meta->bufio)
		dm_bufio_client_destroy(meta->bufio);
	kvfree(meta->local);
	kvfree(meta->staged);
	bitmap_free(meta->dirty);
	bitmap_free(meta->committing);
	bitmap_free(meta->home_stale);
	memset(meta, 0, sizeof(*meta));
}

static sector_t fvd_meta_bitmap_block(const struct fvd_meta *meta,
				      unsigned long mblock)
{
	return meta->sb.bitmap_offset / FVD_META_BLOCK_SECTORS + mblock;
}

/* Bits past the last block of the disk are ignored, whatever the disk says. */
static void fvd_meta_clear_tail(struct fvd_meta *meta, u8 *map)
{
	u64 nr = meta->sb.nr_blocks;
	size_t first_byte = nr / 8;

	if (nr % 8) {
		map[first_byte] &= (1U << (nr % 8)) - 1;
		first_byte++;
	}
	memset(map + first_byte, 0, meta->bitmap_bytes - first_byte);
}

static u64 fvd_meta_count(const u8 *map, size_t bytes)
{
	const u64 *words = (const u64 *)map;
	u64 count = 0;
	size_t w;

	for (w = 0; w < bytes / sizeof(u64); w++)
		count += hweight64(words[w]);
	return count;
}

/*
 * Read the committed bitmap into @map: the home copy, then the journal
 * commits newer than @sb's checkpoint.  Bitmap blocks the journal changed
 * are marked home_stale.
 */
static int fvd_meta_read_committed(struct fvd_meta *meta,
				   const struct fvd_sb_info *sb, u8 *map,
				   struct fvd_replay *replay)
{
	struct dm_buffer *buf;
	unsigned long i;
	void *data;
	int r;

	memset(replay, 0, sizeof(*replay));
	dm_bufio_forget_buffers(meta->bufio, fvd_meta_bitmap_block(meta, 0),
				meta->nr_mblocks);
	dm_bufio_prefetch(meta->bufio, fvd_meta_bitmap_block(meta, 0),
			  meta->nr_mblocks);
	for (i = 0; i < meta->nr_mblocks; i++) {
		data = dm_bufio_read(meta->bufio, fvd_meta_bitmap_block(meta, i),
				     &buf);
		if (IS_ERR(data))
			return PTR_ERR(data);
		memcpy(map + i * FVD_META_BLOCK_SIZE, data, FVD_META_BLOCK_SIZE);
		dm_bufio_release(buf);
		cond_resched();
	}
	bitmap_zero(meta->home_stale, meta->nr_mblocks);
	if (sb->incompat_features & FVD_INCOMPAT_JOURNAL) {
		r = fvd_journal_replay_bitmap(meta, sb, map, replay);
		if (r)
			return r;
	}
	fvd_meta_clear_tail(meta, map);
	return 0;
}

/* Load the committed bitmap into both in-memory copies. */
int fvd_meta_load_bitmap(struct fvd_meta *meta, struct fvd_replay *replay)
{
	int r = fvd_meta_read_committed(meta, &meta->sb, meta->local, replay);

	if (r)
		return r;
	memcpy(meta->staged, meta->local, meta->bitmap_bytes);
	meta->nr_local = fvd_meta_count(meta->local, meta->bitmap_bytes);
	bitmap_zero(meta->dirty, meta->nr_mblocks);
	bitmap_zero(meta->committing, meta->nr_mblocks);
	meta->nr_dirty = 0;
	meta->commit_active = false;
	return 0;
}

/* Write every dirty buffer and flush the metadata device's cache. */
static int fvd_meta_write_out(struct fvd_meta *meta)
{
	int r = dm_bufio_write_dirty_buffers(meta->bufio);

	return r ? r : dm_bufio_issue_flush(meta->bufio);
}

/* Write the superblock and make it durable before returning. */
int fvd_meta_write_sb(struct fvd_meta *meta)
{
	struct dm_buffer *buf;
	void *data;

	data = dm_bufio_new(meta->bufio, FVD_SB_BLOCK, &buf);
	if (IS_ERR(data))
		return PTR_ERR(data);
	fvd_sb_encode(&meta->sb, data);
	dm_bufio_mark_buffer_dirty(buf);
	dm_bufio_release(buf);
	return fvd_meta_write_out(meta);
}

/* Returns true when @block was absent before. */
bool fvd_meta_mark_local(struct fvd_meta *meta, u64 block)
{
	unsigned long mblock = fvd_meta_mblock_of(block);

	if (fvd_bit_test(meta->local, block))
		return false;
	fvd_bit_set(meta->local, block);
	meta->nr_local++;
	if (!test_and_set_bit(mblock, meta->dirty))
		meta->nr_dirty++;
	return true;
}

/* Is the local bit of @block (known to be set) already on disk? */
bool fvd_meta_block_durable(const struct fvd_meta *meta, u64 block)
{
	unsigned long mblock = fvd_meta_mblock_of(block);

	return !test_bit(mblock, meta->dirty) &&
	       !test_bit(mblock, meta->committing);
}

/*
 * Append to @jb the runs of bits set in local but not in staged within
 * bitmap block @mblock: exactly the blocks that became local since the
 * last snapshot.
 */
static void fvd_meta_add_runs(const struct fvd_meta *meta, unsigned long mblock,
			      struct fvd_jbuilder *jb)
{
	const size_t words = FVD_META_BLOCK_SIZE / sizeof(u64);
	size_t off = (size_t)mblock * FVD_META_BLOCK_SIZE;
	const __le64 *local = (const __le64 *)(meta->local + off);
	const __le64 *staged = (const __le64 *)(meta->staged + off);
	u64 first = (u64)mblock * FVD_META_BLOCK_SIZE * 8;
	u64 run_start = 0, run_end = 0, bit;
	size_t w;
	u64 added;

	for (w = 0; w < words; w++) {
		added = le64_to_cpu(local[w]) & ~le64_to_cpu(staged[w]);
		while (added) {
			bit = first + w * 64 + __ffs64(added);
			added &= added - 1;
			if (bit == run_end && run_end > run_start) {
				run_end++;
				continue;
			}
			if (run_end > run_start)
				fvd_jbuilder_add_run(jb, run_start,
						     run_end - run_start);
			run_start = bit;
			run_end = bit + 1;
		}
	}
	if (run_end > run_start)
		fvd_jbuilder_add_run(jb, run_start, run_end - run_start);
}

/*
 * Start a commit: freeze the current bits of every dirty bitmap block into
 * the staged copy, and describe the new bits in @jb when it is given.
 * Returns the number of bitmap blocks concerned.
 */
unsigned long fvd_meta_snapshot(struct fvd_meta *meta, struct fvd_jbuilder *jb)
{
	unsigned long mblock, n = 0;
	size_t off;

	if (jb)
		fvd_jbuilder_reset(jb);
	for_each_set_bit(mblock, meta->dirty, meta->nr_mblocks) {
		off = (size_t)mblock * FVD_META_BLOCK_SIZE;
		if (jb)
			fvd_meta_add_runs(meta, mblock, jb);
		memcpy(meta->staged + off, meta->local + off, FVD_META_BLOCK_SIZE);
		__set_bit(mblock, meta->committing);
		n++;
	}
	bitmap_zero(meta->dirty, meta->nr_mblocks);
	meta->nr_dirty = 0;
	meta->commit_active = n > 0;
	return n;
}

/*
 * Write home the staged copy of the bitmap blocks of the commit under way
 * and of those only the journal holds, then flush: after this the home
 * bitmap alone is the committed state.
 */
int fvd_meta_write_home(struct fvd_meta *meta)
{
	struct dm_buffer *buf;
	unsigned long mblock;
	void *data;
	int r;

	bitmap_or(meta->home_stale, meta->home_stale, meta->committing,
		  meta->nr_mblocks);
	for_each_set_bit(mblock, meta->home_stale, meta->nr_mblocks) {
		data = dm_bufio_new(meta->bufio, fvd_meta_bitmap_block(meta, mblock),
				    &buf);
		if (IS_ERR(data))
			return PTR_ERR(data);
		memcpy(data, meta->staged + (size_t)mblock * FVD_META_BLOCK_SIZE,
		       FVD_META_BLOCK_SIZE);
		dm_bufio_mark_buffer_dirty(buf);
		dm_bufio_release(buf);
	}
	r = fvd_meta_write_out(meta);
	if (!r)
		bitmap_zero(meta->home_stale, meta->nr_mblocks);
	return r;
}

/* The commit under way reached the journal: its blocks are stale at home. */
void fvd_meta_journaled(struct fvd_meta *meta)
{
	bitmap_or(meta->home_stale, meta->home_stale, meta->committing,
		  meta->nr_mblocks);
}

/*
 * After a failed commit: make the in-memory bitmap what the disk holds
 * (home bitmap plus the journal, as the superblock @sb read back describes
 * it), so that the target serves exactly the committed state from now on.
 * Blocks whose bits are dropped were never covered by a successful flush.
 * The caller guarantees that no bit is set and no commit runs meanwhile;
 * @lock is the target's.
 */
int fvd_meta_rollback(struct fvd_meta *meta, const struct fvd_sb_info *sb,
		      spinlock_t *lock)
{
	struct fvd_replay replay;
	unsigned long mblock;
	size_t off;
	u64 delta;
	int r;

	r = fvd_meta_read_committed(meta, sb, meta->staged, &replay);
	if (r)
		return r;
	for (mblock = 0; mblock < meta->nr_mblocks; mblock++) {
		off = (size_t)mblock * FVD_META_BLOCK_SIZE;
		delta = fvd_meta_count(meta->staged + off, FVD_META_BLOCK_SIZE);
		spin_lock_irq(lock);
		meta->nr_local -= fvd_meta_count(meta->local + off,
						 FVD_META_BLOCK_SIZE);
		meta->nr_local += delta;
		memcpy(meta->local + off, meta->staged + off, FVD_META_BLOCK_SIZE);
		spin_unlock_irq(lock);
		cond_resched();
	}
	spin_lock_irq(lock);
	bitmap_zero(meta->dirty, meta->nr_mblocks);
	meta->nr_dirty = 0;
	spin_unlock_irq(lock);
	return 0;
}

/* End a commit; a failed one leaves its blocks dirty (not durable). */
void fvd_meta_commit_done(struct fvd_meta *meta, bool failed)
{
	if (failed) {
		bitmap_or(meta->dirty, meta->dirty, meta->committing,
			  meta->nr_mblocks);
		meta->nr_dirty = bitmap_weight(meta->dirty, meta->nr_mblocks);
	}
	bitmap_zero(meta->committing, meta->nr_mblocks);
	meta->commit_active = false;
}
