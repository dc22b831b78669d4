// SPDX-License-Identifier: GPL-2.0
/*
 * dm-fvd metadata I/O: superblock and bitmap through dm-bufio.
 *
 * The bitmap only ever gains bits in this format version, and a commit
 * writes a bitmap block only after the data device was flushed.  So a torn
 * bitmap block write after a crash leaves each bit either at its old value
 * (block read from the origin again, never acknowledged by a flush) or at
 * its new value (data already durable): no commit record is needed.
 */
#include <linux/bitmap.h>
#include <linux/dm-bufio.h>
#include <linux/err.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/vmalloc.h>

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
	if (!meta->local || !meta->staged || !meta->dirty || !meta->committing)
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
	memset(meta, 0, sizeof(*meta));
}

static sector_t fvd_meta_bitmap_block(const struct fvd_meta *meta,
				      unsigned long mblock)
{
	return meta->sb.bitmap_offset / FVD_META_BLOCK_SECTORS + mblock;
}

/* Bits past the last block of the disk are ignored, whatever the disk says. */
static void fvd_meta_clear_tail(struct fvd_meta *meta)
{
	u64 nr = meta->sb.nr_blocks;
	size_t first_byte = nr / 8;

	if (nr % 8) {
		meta->local[first_byte] &= (1U << (nr % 8)) - 1;
		first_byte++;
	}
	memset(meta->local + first_byte, 0, meta->bitmap_bytes - first_byte);
}

/* Read the whole bitmap from disk into both in-memory copies. */
int fvd_meta_load_bitmap(struct fvd_meta *meta)
{
	struct dm_buffer *buf;
	unsigned long i;
	const u64 *words;
	size_t w;
	void *data;

	dm_bufio_forget_buffers(meta->bufio, fvd_meta_bitmap_block(meta, 0),
				meta->nr_mblocks);
	dm_bufio_prefetch(meta->bufio, fvd_meta_bitmap_block(meta, 0),
			  meta->nr_mblocks);
	for (i = 0; i < meta->nr_mblocks; i++) {
		data = dm_bufio_read(meta->bufio, fvd_meta_bitmap_block(meta, i),
				     &buf);
		if (IS_ERR(data))
			return PTR_ERR(data);
		memcpy(meta->local + i * FVD_META_BLOCK_SIZE, data,
		       FVD_META_BLOCK_SIZE);
		dm_bufio_release(buf);
		cond_resched();
	}
	fvd_meta_clear_tail(meta);
	memcpy(meta->staged, meta->local, meta->bitmap_bytes);

	meta->nr_local = 0;
	words = (const u64 *)meta->local;
	for (w = 0; w < meta->bitmap_bytes / sizeof(u64); w++)
		meta->nr_local += hweight64(words[w]);
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
 * Start a commit: freeze the current bits of every dirty bitmap block into
 * the staged copy.  Returns the number of blocks to write.
 */
unsigned long fvd_meta_snapshot(struct fvd_meta *meta)
{
	unsigned long mblock, n = 0;
	size_t off;

	for_each_set_bit(mblock, meta->dirty, meta->nr_mblocks) {
		off = (size_t)mblock * FVD_META_BLOCK_SIZE;
		memcpy(meta->staged + off, meta->local + off, FVD_META_BLOCK_SIZE);
		__set_bit(mblock, meta->committing);
		n++;
	}
	bitmap_zero(meta->dirty, meta->nr_mblocks);
	meta->nr_dirty = 0;
	meta->commit_active = n > 0;
	return n;
}

int fvd_meta_write_staged(struct fvd_meta *meta)
{
	struct dm_buffer *buf;
	unsigned long mblock;
	void *data;

	for_each_set_bit(mblock, meta->committing, meta->nr_mblocks) {
		data = dm_bufio_new(meta->bufio, fvd_meta_bitmap_block(meta, mblock),
				    &buf);
		if (IS_ERR(data))
			return PTR_ERR(data);
		memcpy(data, meta->staged + (size_t)mblock * FVD_META_BLOCK_SIZE,
		       FVD_META_BLOCK_SIZE);
		dm_bufio_mark_buffer_dirty(buf);
		dm_bufio_release(buf);
	}
	return fvd_meta_write_out(meta);
}

/*
 * After a failed commit: make the in-memory bitmap what the disk holds, so
 * that the target serves exactly the committed state from now on.  Blocks
 * whose bits are dropped were never covered by a successful flush.  The
 * caller guarantees that no bit is set meanwhile; @lock is the target's.
 */
int fvd_meta_rollback(struct fvd_meta *meta, spinlock_t *lock)
{
	struct dm_buffer *buf;
	unsigned long mblock;
	u8 *disk_copy;
	size_t off, i;
	void *data;
	int r = 0;

	disk_copy = kmalloc(FVD_META_BLOCK_SIZE, GFP_NOIO);
	if (!disk_copy)
		return -ENOMEM;
	for_each_set_bit(mblock, meta->dirty, meta->nr_mblocks) {
		dm_bufio_forget(meta->bufio, fvd_meta_bitmap_block(meta, mblock));
		data = dm_bufio_read(meta->bufio, fvd_meta_bitmap_block(meta, mblock),
				     &buf);
		if (IS_ERR(data)) {
			r = PTR_ERR(data);
			break;
		}
		memcpy(disk_copy, data, FVD_META_BLOCK_SIZE);
		dm_bufio_release(buf);

		off = (size_t)mblock * FVD_META_BLOCK_SIZE;
		spin_lock_irq(lock);
		for (i = 0; i < FVD_META_BLOCK_SIZE; i++)
			meta->nr_local -= hweight8(meta->local[off + i]) -
					  hweight8(disk_copy[i]);
		memcpy(meta->local + off, disk_copy, FVD_META_BLOCK_SIZE);
		memcpy(meta->staged + off, disk_copy, FVD_META_BLOCK_SIZE);
		__clear_bit(mblock, meta->dirty);
		meta->nr_dirty--;
		spin_unlock_irq(lock);
	}
	kfree(disk_copy);
	return r;
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
