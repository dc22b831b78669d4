// SPDX-License-Identifier: GPL-2.0
/*
 * dm-fvd metadata I/O: superblock, bitmap and chunk table through dm-bufio.
 *
 * A bitmap block is written home only after the data device was flushed.
 * Without a table, bits are only ever set, so a torn bitmap block write
 * after a crash leaves each bit either at its old value (block read from
 * the origin again, never acknowledged by a flush) or at its new value (data
 * already durable).  That is what lets an image without a journal commit by
 * writing bitmap blocks home directly.
 *
 * Compact images always have a journal.  Their bits are also cleared, when a
 * discard unmaps a chunk, and a chunk's entry must never be home without the
 * bits that go with it or the other way round; so every change reaches the
 * journal before any home block is written (a checkpoint writes home only
 * what the journal already holds), and replay repairs a torn checkpoint.  A
 * TABLE record clears the bits of its chunks on replay, and a commit lists
 * every bit of a chunk whose entry changed after the entry.
 */
#include <linux/bitmap.h>
#include <linux/dm-bufio.h>
#include <linux/err.h>
#include <linux/minmax.h>
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

static int fvd_mregion_alloc(struct fvd_mregion *r, u64 sectors, u64 offset)
{
	u64 bytes = sectors << FVD_SECTOR_SHIFT;
	u64 mblocks = bytes / FVD_META_BLOCK_SIZE;

	if (bytes > SIZE_MAX || mblocks > UINT_MAX)
		return -ENOMEM;
	r->bytes = bytes;
	r->nr_mblocks = mblocks;
	r->first_mblock = offset / FVD_META_BLOCK_SECTORS;
	if (!mblocks)
		return 0;
	r->live = kvzalloc(bytes, GFP_KERNEL | __GFP_NOWARN);
	r->staged = kvzalloc(bytes, GFP_KERNEL | __GFP_NOWARN);
	r->dirty = bitmap_zalloc(mblocks, GFP_KERNEL | __GFP_NOWARN);
	r->committing = bitmap_zalloc(mblocks, GFP_KERNEL | __GFP_NOWARN);
	r->home_stale = bitmap_zalloc(mblocks, GFP_KERNEL | __GFP_NOWARN);
	if (!r->live || !r->staged || !r->dirty || !r->committing ||
	    !r->home_stale)
		return -ENOMEM;
	return 0;
}

static void fvd_mregion_free(struct fvd_mregion *r)
{
	kvfree(r->live);
	kvfree(r->staged);
	bitmap_free(r->dirty);
	bitmap_free(r->committing);
	bitmap_free(r->home_stale);
}

/* Allocate the in-memory bitmap and table for the geometry in meta->sb. */
int fvd_meta_alloc(struct fvd_meta *meta)
{
	int r = fvd_mregion_alloc(&meta->bits, meta->sb.bitmap_sectors,
				  meta->sb.bitmap_offset);

	if (r)
		return r;
	meta->fresh = kvzalloc(meta->bits.bytes, GFP_KERNEL | __GFP_NOWARN);
	if (!meta->fresh)
		return -ENOMEM;
	return fvd_mregion_alloc(&meta->table, meta->sb.table_sectors,
				 meta->sb.table_offset);
}

void fvd_meta_close(struct fvd_meta *meta)
{
	if (meta->bufio)
		dm_bufio_client_destroy(meta->bufio);
	fvd_mregion_free(&meta->bits);
	fvd_mregion_free(&meta->table);
	kvfree(meta->fresh);
	bitmap_free(meta->chunk_used);
	bitmap_free(meta->chunk_freeing);
	bitmap_free(meta->chunk_draining);
	memset(meta, 0, sizeof(*meta));
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
	memset(map + first_byte, 0, meta->bits.bytes - first_byte);
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

/* Read the home copy of region @r into @map. */
static int fvd_mregion_read(struct fvd_meta *meta, struct fvd_mregion *r,
			    u8 *map)
{
	struct dm_buffer *buf;
	unsigned long i;
	void *data;

	if (!r->nr_mblocks)
		return 0;
	dm_bufio_forget_buffers(meta->bufio, r->first_mblock, r->nr_mblocks);
	dm_bufio_prefetch(meta->bufio, r->first_mblock, r->nr_mblocks);
	for (i = 0; i < r->nr_mblocks; i++) {
		data = dm_bufio_read(meta->bufio, r->first_mblock + i, &buf);
		if (IS_ERR(data))
			return PTR_ERR(data);
		memcpy(map + i * FVD_META_BLOCK_SIZE, data, FVD_META_BLOCK_SIZE);
		dm_bufio_release(buf);
		cond_resched();
	}
	bitmap_zero(r->home_stale, r->nr_mblocks);
	return 0;
}

/*
 * Read the committed bitmap and table into @bits and @table: the home
 * copies, then the journal commits newer than @sb's checkpoint.  Metadata
 * blocks the journal changed are marked home_stale.
 */
static int fvd_meta_read_committed(struct fvd_meta *meta,
				   const struct fvd_sb_info *sb, u8 *bits,
				   u8 *table, struct fvd_replay *replay)
{
	int r;

	memset(replay, 0, sizeof(*replay));
	r = fvd_mregion_read(meta, &meta->bits, bits);
	if (!r)
		r = fvd_mregion_read(meta, &meta->table, table);
	if (!r && (sb->incompat_features & FVD_INCOMPAT_JOURNAL))
		r = fvd_journal_replay_meta(meta, sb, bits, table, replay);
	if (r)
		return r;
	fvd_meta_clear_tail(meta, bits);
	return 0;
}

/*
 * Rebuild which physical chunks are in use from the live table.  A table
 * that maps past the data device or maps a chunk twice, or a local block
 * in an unmapped chunk, is corrupt.
 */
int fvd_meta_rebuild_chunks(struct fvd_meta *meta)
{
	u64 chunk, block, end, used = 0;
	u32 entry;

	if (!fvd_compact(&meta->sb))
		return 0;
	bitmap_zero(meta->chunk_used, meta->nr_phys);
	bitmap_zero(meta->chunk_freeing, meta->nr_phys);
	bitmap_zero(meta->chunk_draining, meta->nr_phys);
	meta->nr_freeing = 0;
	meta->nr_draining = 0;
	for (chunk = 0; chunk < meta->sb.nr_chunks; chunk++) {
		entry = fvd_table_get(meta->table.live, chunk);
		if (entry == FVD_CHUNK_UNMAPPED) {
			fvd_chunk_blocks(&meta->sb, chunk, &block, &end);
			for (; block < end; block++)
				if (fvd_bit_test(meta->bits.live, block))
					return -EUCLEAN;
			continue;
		}
		if (entry - 1 >= meta->nr_phys)
			return -ERANGE;
		if (__test_and_set_bit(entry - 1, meta->chunk_used))
			return -EEXIST;
		used++;
		if (!(chunk % 4096))
			cond_resched();
	}
	meta->nr_free = meta->nr_phys - used;
	return 0;
}

/*
 * Size the physical chunk map for a data device holding @nr_phys chunks.
 * Growing keeps the chunks in use; shrinking below a chunk in use fails.
 */
int fvd_meta_set_capacity(struct fvd_meta *meta, u64 nr_phys, spinlock_t *lock)
{
	unsigned long **maps[] = {
		&meta->chunk_used, &meta->chunk_freeing, &meta->chunk_draining
	};
	unsigned long *new[ARRAY_SIZE(maps)], *old;
	unsigned int i;
	u64 last;
	int r = 0;

	if (!fvd_compact(&meta->sb))
		return 0;
	nr_phys = min_t(u64, nr_phys, U32_MAX - 1);
	for (i = 0; i < ARRAY_SIZE(maps); i++)
		new[i] = bitmap_zalloc(max_t(u64, nr_phys, 1),
				       GFP_KERNEL | __GFP_NOWARN);
	for (i = 0; i < ARRAY_SIZE(maps); i++)
		if (!new[i])
			r = -ENOMEM;
	spin_lock_irq(lock);
	old = meta->chunk_used;
	/* Chunks freeing or draining are still in chunk_used. */
	if (!r && old) {
		last = find_last_bit(old, meta->nr_phys);
		if (last < meta->nr_phys && last >= nr_phys)
			r = -ENOSPC;
	}
	if (!r) {
		for (i = 0; i < ARRAY_SIZE(maps); i++) {
			if (old)
				bitmap_copy(new[i], *maps[i],
					    min(meta->nr_phys, nr_phys));
			swap(new[i], *maps[i]);
		}
		meta->nr_free = old ? nr_phys - (meta->nr_phys - meta->nr_free) :
				nr_phys;
		meta->nr_phys = nr_phys;
	}
	spin_unlock_irq(lock);
	for (i = 0; i < ARRAY_SIZE(maps); i++)
		bitmap_free(new[i]);
	return r;
}

/* Load the committed bitmap and table into both in-memory copies. */
int fvd_meta_load(struct fvd_meta *meta, struct fvd_replay *replay)
{
	struct fvd_mregion *regions[] = { &meta->bits, &meta->table };
	unsigned int i;
	int r;

	r = fvd_meta_read_committed(meta, &meta->sb, meta->bits.live,
				    meta->table.live, replay);
	if (r)
		return r;
	for (i = 0; i < ARRAY_SIZE(regions); i++) {
		if (!regions[i]->nr_mblocks)
			continue;
		memcpy(regions[i]->staged, regions[i]->live, regions[i]->bytes);
		bitmap_zero(regions[i]->dirty, regions[i]->nr_mblocks);
		bitmap_zero(regions[i]->committing, regions[i]->nr_mblocks);
		regions[i]->nr_dirty = 0;
	}
	meta->nr_local = fvd_meta_count(meta->bits.live, meta->bits.bytes);
	fvd_meta_forget_fresh(meta);
	meta->commit_active = false;
	return fvd_meta_rebuild_chunks(meta);
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

static void fvd_mregion_mark_dirty(struct fvd_mregion *r, unsigned long mblock)
{
	if (!test_and_set_bit(mblock, r->dirty))
		r->nr_dirty++;
}

/* Returns true when @block was not local before; it is no longer fresh. */
bool fvd_meta_mark_local(struct fvd_meta *meta, u64 block)
{
	if (fvd_bit_test(meta->bits.live, block))
		return false;
	/* Local first: a lockless reader never sees the block absent. */
	fvd_bit_set(meta->bits.live, block);
	if (fvd_bit_test(meta->fresh, block)) {
		fvd_bit_clear(meta->fresh, block);
		meta->nr_fresh--;
	}
	meta->nr_local++;
	fvd_mregion_mark_dirty(&meta->bits, fvd_meta_mblock_of(block));
	return true;
}

/* A copy-on-read of @block reached the data device.  False if not needed. */
bool fvd_meta_mark_fresh(struct fvd_meta *meta, u64 block)
{
	if (fvd_meta_present(meta, block))
		return false;
	fvd_bit_set(meta->fresh, block);
	meta->nr_fresh++;
	return true;
}

/*
 * Make the fresh blocks of bitmap block @mblock local, so that the next
 * commit persists them (their copies completed, so that commit's data
 * flush covers them).  Returns how many.
 */
unsigned long fvd_meta_promote_fresh(struct fvd_meta *meta,
				     unsigned long mblock)
{
	const size_t words = FVD_META_BLOCK_SIZE / sizeof(u64);
	const __le64 *fresh = (const __le64 *)(meta->fresh +
					       (size_t)mblock * FVD_META_BLOCK_SIZE);
	u64 first = (u64)mblock * FVD_META_BLOCK_SIZE * 8, word;
	unsigned long n = 0;
	size_t w;

	for (w = 0; w < words; w++) {
		word = le64_to_cpu(fresh[w]);
		while (word) {
			fvd_meta_mark_local(meta, first + w * 64 + __ffs64(word));
			word &= word - 1;
			n++;
		}
	}
	return n;
}

/* Drop every fresh bit: the blocks are read from the origin again. */
void fvd_meta_forget_fresh(struct fvd_meta *meta)
{
	memset(meta->fresh, 0, meta->bits.bytes);
	meta->nr_fresh = 0;
}

static bool fvd_mregion_durable(const struct fvd_mregion *r,
				unsigned long mblock)
{
	return !test_bit(mblock, r->dirty) && !test_bit(mblock, r->committing);
}

/* Is the local bit of @block (known to be set), and its chunk, on disk? */
bool fvd_meta_block_durable(const struct fvd_meta *meta, u64 block)
{
	if (!fvd_mregion_durable(&meta->bits, fvd_meta_mblock_of(block)))
		return false;
	return !fvd_compact(&meta->sb) ||
	       fvd_mregion_durable(&meta->table,
				   fvd_meta_tblock_of(fvd_block_chunk(&meta->sb,
								      block)));
}

/*
 * Give virtual @chunk the lowest free physical chunk; -ENOSPC when the data
 * device is full.  The mapping is live at once and committed with the next
 * commit, which also carries the bits of the blocks written there.
 */
s64 fvd_meta_map_chunk(struct fvd_meta *meta, u64 chunk)
{
	u64 phys = find_first_zero_bit(meta->chunk_used, meta->nr_phys);

	if (phys >= meta->nr_phys)
		return -ENOSPC;
	__set_bit(phys, meta->chunk_used);
	meta->nr_free--;
	fvd_table_set(meta->table.live, chunk, phys + 1);
	fvd_mregion_mark_dirty(&meta->table, fvd_meta_tblock_of(chunk));
	return phys;
}

/*
 * Discard: unmap virtual @chunk.  Its blocks are absent at once; its
 * physical chunk waits in chunk_freeing until a commit journals the
 * unmapping.  The caller made sure no write to the chunk is in progress.
 * Returns false when the chunk was not mapped.
 */
bool fvd_meta_unmap_chunk(struct fvd_meta *meta, u64 chunk)
{
	u32 entry = fvd_table_get(meta->table.live, chunk);
	u64 block, end;

	if (entry == FVD_CHUNK_UNMAPPED)
		return false;
	fvd_chunk_blocks(&meta->sb, chunk, &block, &end);
	for (; block < end; block++) {
		if (fvd_bit_test(meta->fresh, block)) {
			fvd_bit_clear(meta->fresh, block);
			meta->nr_fresh--;
		}
		if (!fvd_bit_test(meta->bits.live, block))
			continue;
		fvd_bit_clear(meta->bits.live, block);
		meta->nr_local--;
		fvd_mregion_mark_dirty(&meta->bits, fvd_meta_mblock_of(block));
	}
	fvd_table_set(meta->table.live, chunk, FVD_CHUNK_UNMAPPED);
	fvd_mregion_mark_dirty(&meta->table, fvd_meta_tblock_of(chunk));
	__set_bit(entry - 1, meta->chunk_freeing);
	meta->nr_freeing++;
	return true;
}

/*
 * The commit that journaled the unmappings is done and no I/O issued
 * before it is in flight: the draining chunks can be allocated again.
 * Returns how many were freed.
 */
u64 fvd_meta_release_chunks(struct fvd_meta *meta)
{
	u64 n = meta->nr_draining;

	if (!n)
		return 0;
	bitmap_andnot(meta->chunk_used, meta->chunk_used, meta->chunk_draining,
		      meta->nr_phys);
	bitmap_zero(meta->chunk_draining, meta->nr_phys);
	meta->nr_free += n;
	meta->nr_draining = 0;
	return n;
}

static bool fvd_meta_entry_changed(const struct fvd_meta *meta, u64 chunk)
{
	return fvd_table_get(meta->table.live, chunk) !=
	       fvd_table_get(meta->table.staged, chunk);
}

/*
 * Which of the live bits @live of blocks [@first, @first + 64) a commit
 * lists: those set since the last snapshot, and all of those in a chunk
 * whose entry changed (replay clears such a chunk's bits first).
 */
static u64 fvd_meta_word_runs(const struct fvd_meta *meta, u64 first,
			      u64 live, u64 staged)
{
	unsigned int shift, i, per_chunk;
	u64 mask = live & ~staged, chunk_mask;

	if (!fvd_compact(&meta->sb) || !live)
		return mask;
	shift = meta->sb.chunk_shift - meta->sb.block_shift;
	if (shift >= 6)
		return fvd_meta_entry_changed(meta, first >> shift) ? live : mask;
	per_chunk = 1U << shift;
	for (i = 0; i < 64; i += per_chunk) {
		chunk_mask = GENMASK_ULL(i + per_chunk - 1, i);
		/* Live bits only exist inside the disk: the chunk does too. */
		if ((live & chunk_mask) &&
		    fvd_meta_entry_changed(meta, (first + i) >> shift))
			mask |= live & chunk_mask;
	}
	return mask;
}

/*
 * Append to @jb the runs of bits of bitmap block @mblock that the commit
 * lists (see fvd_meta_word_runs()).
 */
static void fvd_meta_add_runs(const struct fvd_meta *meta, unsigned long mblock,
			      struct fvd_jbuilder *jb)
{
	const size_t words = FVD_META_BLOCK_SIZE / sizeof(u64);
	size_t off = (size_t)mblock * FVD_META_BLOCK_SIZE;
	const __le64 *live = (const __le64 *)(meta->bits.live + off);
	const __le64 *staged = (const __le64 *)(meta->bits.staged + off);
	u64 first = (u64)mblock * FVD_META_BLOCK_SIZE * 8;
	u64 run_start = 0, run_end = 0, bit;
	size_t w;
	u64 added;

	for (w = 0; w < words; w++) {
		added = fvd_meta_word_runs(meta, first + w * 64,
					   le64_to_cpu(live[w]),
					   le64_to_cpu(staged[w]));
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

/* Append to @jb the runs of table entries changed within table block @tblock. */
static void fvd_meta_add_table(const struct fvd_meta *meta,
			       unsigned long tblock, struct fvd_jbuilder *jb)
{
	const u64 per_block = FVD_META_BLOCK_SIZE / sizeof(__le32);
	const __le32 *live = (const __le32 *)meta->table.live;
	const __le32 *staged = (const __le32 *)meta->table.staged;
	u64 chunk = tblock * per_block;
	u64 end = min(chunk + per_block, meta->sb.nr_chunks), run;

	while (chunk < end) {
		if (live[chunk] == staged[chunk]) {
			chunk++;
			continue;
		}
		for (run = chunk + 1; run < end && live[run] != staged[run]; run++)
			;
		fvd_jbuilder_add_table(jb, chunk, run - chunk, live + chunk);
		chunk = run;
	}
}

/* Freeze the dirty blocks of @r into its staged copy. */
static void fvd_mregion_freeze(struct fvd_mregion *r)
{
	unsigned long mblock;
	size_t off;

	if (!r->nr_mblocks)
		return;
	for_each_set_bit(mblock, r->dirty, r->nr_mblocks) {
		off = (size_t)mblock * FVD_META_BLOCK_SIZE;
		memcpy(r->staged + off, r->live + off, FVD_META_BLOCK_SIZE);
		__set_bit(mblock, r->committing);
	}
	bitmap_zero(r->dirty, r->nr_mblocks);
	r->nr_dirty = 0;
}

/*
 * Describe in @jb, when given, what changed since the last snapshot: table
 * entries first, then the bits (see fvd_meta_word_runs()).  Changes
 * nothing, so the caller may make room in the journal and describe again.
 * Returns the number of dirty metadata blocks.
 */
unsigned long fvd_meta_describe(const struct fvd_meta *meta,
				struct fvd_jbuilder *jb)
{
	unsigned long mblock;

	if (!jb)
		return meta->table.nr_dirty + meta->bits.nr_dirty;
	fvd_jbuilder_reset(jb);
	if (meta->table.nr_mblocks)
		for_each_set_bit(mblock, meta->table.dirty, meta->table.nr_mblocks)
			fvd_meta_add_table(meta, mblock, jb);
	for_each_set_bit(mblock, meta->bits.dirty, meta->bits.nr_mblocks)
		fvd_meta_add_runs(meta, mblock, jb);
	return meta->table.nr_dirty + meta->bits.nr_dirty;
}

/*
 * Start the commit described last: freeze every dirty metadata block into
 * the staged copies, and start draining the chunks unmapped so far.
 * Returns true when chunks started draining.
 */
bool fvd_meta_freeze(struct fvd_meta *meta)
{
	bool draining = meta->nr_freeing > 0;

	meta->commit_active = meta->table.nr_dirty + meta->bits.nr_dirty > 0;
	fvd_mregion_freeze(&meta->table);
	fvd_mregion_freeze(&meta->bits);
	if (draining) {
		bitmap_or(meta->chunk_draining, meta->chunk_draining,
			  meta->chunk_freeing, meta->nr_phys);
		bitmap_zero(meta->chunk_freeing, meta->nr_phys);
		meta->nr_draining += meta->nr_freeing;
		meta->nr_freeing = 0;
	}
	return draining;
}

/* Describe and freeze in one step; returns the number of metadata blocks. */
unsigned long fvd_meta_snapshot(struct fvd_meta *meta, struct fvd_jbuilder *jb)
{
	unsigned long n = fvd_meta_describe(meta, jb);

	fvd_meta_freeze(meta);
	return n;
}

static int fvd_mregion_write_home(struct fvd_meta *meta, struct fvd_mregion *r)
{
	struct dm_buffer *buf;
	unsigned long mblock;
	void *data;

	if (!r->nr_mblocks)
		return 0;
	bitmap_or(r->home_stale, r->home_stale, r->committing, r->nr_mblocks);
	for_each_set_bit(mblock, r->home_stale, r->nr_mblocks) {
		data = dm_bufio_new(meta->bufio, r->first_mblock + mblock, &buf);
		if (IS_ERR(data))
			return PTR_ERR(data);
		memcpy(data, r->staged + (size_t)mblock * FVD_META_BLOCK_SIZE,
		       FVD_META_BLOCK_SIZE);
		dm_bufio_mark_buffer_dirty(buf);
		dm_bufio_release(buf);
	}
	return 0;
}

/*
 * Write home the staged copy of the metadata blocks of the commit under way
 * and of those only the journal holds, then flush: after this the home
 * copies alone are the committed state.
 */
int fvd_meta_write_home(struct fvd_meta *meta)
{
	int r = fvd_mregion_write_home(meta, &meta->table);

	if (!r)
		r = fvd_mregion_write_home(meta, &meta->bits);
	if (!r)
		r = fvd_meta_write_out(meta);
	if (r)
		return r;
	if (meta->table.nr_mblocks)
		bitmap_zero(meta->table.home_stale, meta->table.nr_mblocks);
	bitmap_zero(meta->bits.home_stale, meta->bits.nr_mblocks);
	return 0;
}

/* Does the home copy lag behind the journal? */
bool fvd_meta_home_stale(const struct fvd_meta *meta)
{
	return !bitmap_empty(meta->bits.home_stale, meta->bits.nr_mblocks) ||
	       (meta->table.nr_mblocks &&
		!bitmap_empty(meta->table.home_stale, meta->table.nr_mblocks));
}

/* The commit under way reached the journal: its blocks are stale at home. */
void fvd_meta_journaled(struct fvd_meta *meta)
{
	bitmap_or(meta->bits.home_stale, meta->bits.home_stale,
		  meta->bits.committing, meta->bits.nr_mblocks);
	if (meta->table.nr_mblocks)
		bitmap_or(meta->table.home_stale, meta->table.home_stale,
			  meta->table.committing, meta->table.nr_mblocks);
}

/*
 * After a failed commit: make the in-memory bitmap and table what the disk
 * holds (home copies plus the journal, as the superblock @sb read back
 * describes it), so that the target serves exactly the committed state from
 * now on.  Blocks whose bits are dropped were never covered by a successful
 * flush; chunks allocated since the last commit are free again.  The caller
 * guarantees that no bit or entry is set and no commit runs meanwhile;
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

	r = fvd_meta_read_committed(meta, sb, meta->bits.staged,
				    meta->table.staged, &replay);
	if (r)
		return r;
	/* A copy may lie in a chunk whose mapping goes away now. */
	spin_lock_irq(lock);
	fvd_meta_forget_fresh(meta);
	spin_unlock_irq(lock);
	if (meta->table.nr_mblocks) {
		spin_lock_irq(lock);
		memcpy(meta->table.live, meta->table.staged, meta->table.bytes);
		bitmap_zero(meta->table.dirty, meta->table.nr_mblocks);
		meta->table.nr_dirty = 0;
		spin_unlock_irq(lock);
	}
	for (mblock = 0; mblock < meta->bits.nr_mblocks; mblock++) {
		off = (size_t)mblock * FVD_META_BLOCK_SIZE;
		delta = fvd_meta_count(meta->bits.staged + off, FVD_META_BLOCK_SIZE);
		spin_lock_irq(lock);
		meta->nr_local -= fvd_meta_count(meta->bits.live + off,
						 FVD_META_BLOCK_SIZE);
		meta->nr_local += delta;
		memcpy(meta->bits.live + off, meta->bits.staged + off,
		       FVD_META_BLOCK_SIZE);
		spin_unlock_irq(lock);
		cond_resched();
	}
	spin_lock_irq(lock);
	bitmap_zero(meta->bits.dirty, meta->bits.nr_mblocks);
	meta->bits.nr_dirty = 0;
	spin_unlock_irq(lock);
	return fvd_meta_rebuild_chunks(meta);
}

static void fvd_mregion_commit_done(struct fvd_mregion *r, bool failed)
{
	if (!r->nr_mblocks)
		return;
	if (failed) {
		bitmap_or(r->dirty, r->dirty, r->committing, r->nr_mblocks);
		r->nr_dirty = bitmap_weight(r->dirty, r->nr_mblocks);
	}
	bitmap_zero(r->committing, r->nr_mblocks);
}

/* End a commit; a failed one leaves its blocks dirty (not durable). */
void fvd_meta_commit_done(struct fvd_meta *meta, bool failed)
{
	fvd_mregion_commit_done(&meta->table, failed);
	fvd_mregion_commit_done(&meta->bits, failed);
	meta->commit_active = false;
}
