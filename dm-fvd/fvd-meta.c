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
 * bits that go with it or the other way round.  So a journaled commit only
 * ever writes the journal: it describes what changed in steps, in block
 * order, a chunk's table entry before its bits (a TABLE record clears the
 * bits of its chunks on replay), and stages each step as a replay would
 * apply it.  A commit too large for one journal write becomes several, each
 * leaving a consistent image on disk; between them the staged copy is
 * exactly what the journal holds, and checkpoints write home only that.
 * Replay repairs a torn checkpoint.
 */
#include <linux/bitmap.h>
#include <linux/dm-bufio.h>
#include <linux/err.h>
#include <linux/minmax.h>
#include <linux/sched/mm.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/vmalloc.h>

#include "fvd-journal.h"
#include "fvd-meta.h"

#define FVD_SB_BLOCK 0
#define FVD_BACKUP_SB_BLOCK (FVD_BACKUP_SB_SECTOR / FVD_META_BLOCK_SECTORS)

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
	kvfree(meta->chunk_used);
	kvfree(meta->chunk_freeing);
	kvfree(meta->chunk_unmapped);
	kvfree(meta->chunk_draining);
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
	bitmap_zero(meta->chunk_unmapped, meta->nr_phys);
	bitmap_zero(meta->chunk_draining, meta->nr_phys);
	meta->nr_freeing = 0;
	meta->nr_unmapped = 0;
	meta->nr_draining = 0;
	for (chunk = 0; chunk < meta->sb.nr_chunks; chunk++) {
		if (!(chunk % 4096))
			cond_resched();
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
	}
	meta->nr_free = meta->nr_phys - used;
	return 0;
}

static unsigned long *fvd_chunk_map_alloc(u64 nr_bits)
{
	return kvcalloc(BITS_TO_LONGS(max_t(u64, nr_bits, 1)),
			sizeof(unsigned long), GFP_KERNEL | __GFP_NOWARN);
}

/*
 * Size the physical chunk maps for a data device holding @nr_phys chunks.
 * Growing keeps the chunks in use; shrinking below a chunk in use fails.
 * Called at every resume: the maps are only replaced when the size
 * changed, and allocated without I/O (kvmalloc may fall back to vmalloc,
 * and reclaim must not write to a device that may be this one, suspended).
 */
int fvd_meta_set_capacity(struct fvd_meta *meta, u64 nr_phys, spinlock_t *lock)
{
	unsigned long **maps[] = {
		&meta->chunk_used, &meta->chunk_freeing, &meta->chunk_unmapped,
		&meta->chunk_draining
	};
	unsigned long *new[ARRAY_SIZE(maps)], *old;
	unsigned int i, noio;
	u64 last;
	int r = 0;

	if (!fvd_compact(&meta->sb))
		return 0;
	nr_phys = min_t(u64, nr_phys, FVD_MAX_PHYS_CHUNKS);
	if (meta->chunk_used && nr_phys == meta->nr_phys)
		return 0;
	noio = memalloc_noio_save();
	for (i = 0; i < ARRAY_SIZE(maps); i++)
		new[i] = fvd_chunk_map_alloc(nr_phys);
	memalloc_noio_restore(noio);
	for (i = 0; i < ARRAY_SIZE(maps); i++)
		if (!new[i])
			r = -ENOMEM;
	spin_lock_irq(lock);
	old = meta->chunk_used;
	/* Chunks freeing, unmapped or draining are still in chunk_used. */
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
		kvfree(new[i]);
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

/*
 * Write every dirty buffer and flush the metadata device's cache: the
 * flush is dm_bufio_write_dirty_buffers()'s own last step.
 */
static int fvd_meta_write_out(struct fvd_meta *meta)
{
	return dm_bufio_write_dirty_buffers(meta->bufio);
}

static int fvd_meta_put_sb(struct fvd_meta *meta, sector_t mblock)
{
	struct dm_buffer *buf;
	void *data;

	data = dm_bufio_new(meta->bufio, mblock, &buf);
	if (IS_ERR(data))
		return PTR_ERR(data);
	fvd_sb_encode(&meta->sb, data);
	dm_bufio_mark_buffer_dirty(buf);
	dm_bufio_release(buf);
	return fvd_meta_write_out(meta);
}

/*
 * Write the superblock and make it durable before returning, then its
 * backup: only once the primary is on disk, so a torn write leaves one of
 * the two whole, the primary new or the backup as it was before.
 */
int fvd_meta_write_sb(struct fvd_meta *meta)
{
	int r = fvd_meta_put_sb(meta, FVD_SB_BLOCK);

	if (r || !(meta->sb.ro_compat_features & FVD_RO_COMPAT_BACKUP_SB))
		return r;
	return fvd_meta_put_sb(meta, FVD_BACKUP_SB_BLOCK);
}

/* Is there a valid backup superblock?  To say so when the primary is not. */
bool fvd_meta_backup_sb_valid(struct fvd_meta *meta)
{
	struct fvd_sb_info backup;
	struct dm_buffer *buf;
	enum fvd_sb_status status;
	void *data;

	data = dm_bufio_read(meta->bufio, FVD_BACKUP_SB_BLOCK, &buf);
	if (IS_ERR(data))
		return false;
	status = fvd_sb_decode(data, &backup);
	dm_bufio_release(buf);
	dm_bufio_forget(meta->bufio, FVD_BACKUP_SB_BLOCK);
	return status == FVD_SB_OK &&
	       (backup.ro_compat_features & FVD_RO_COMPAT_BACKUP_SB);
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

/* Set or clear bits [@first, @end) of @map (on-disk bit order). */
static void fvd_map_fill(u8 *map, u64 first, u64 end, bool set)
{
	while (first < end && (first & 7)) {
		if (set)
			fvd_bit_set(map, first++);
		else
			fvd_bit_clear(map, first++);
	}
	if (end - first >= 8) {
		memset(map + first / 8, set ? 0xff : 0, (end - first) / 8);
		first += (end - first) & ~7ULL;
	}
	while (first < end) {
		if (set)
			fvd_bit_set(map, first++);
		else
			fvd_bit_clear(map, first++);
	}
}

/* Clear bits [@first, @end) of @map; returns how many were set. */
static u64 fvd_map_clear_count(u8 *map, u64 first, u64 end)
{
	u64 n = 0;

	for (; first < end && (first & 7); first++) {
		n += fvd_bit_test(map, first);
		fvd_bit_clear(map, first);
	}
	for (; end - first >= 8; first += 8) {
		n += hweight8(map[first / 8]);
		map[first / 8] = 0;
	}
	for (; first < end; first++) {
		n += fvd_bit_test(map, first);
		fvd_bit_clear(map, first);
	}
	return n;
}

/*
 * Discard: unmap virtual @chunk.  Its blocks are absent at once.  Its
 * physical chunk may be reused once nothing can refer to it any more: when
 * the staged table (what is committed, or being committed) names it, after
 * a commit journals the unmapping (chunk_freeing, then chunk_unmapped);
 * otherwise after the next commit switches I/O epochs and the bios issued
 * to it before have ended (chunk_unmapped, then chunk_draining).  The
 * caller made sure no write to the chunk is in progress.  Returns false
 * when the chunk was not mapped.
 */
bool fvd_meta_unmap_chunk(struct fvd_meta *meta, u64 chunk)
{
	u32 entry = fvd_table_get(meta->table.live, chunk);
	u64 block, end, next, cleared;

	if (entry == FVD_CHUNK_UNMAPPED)
		return false;
	fvd_chunk_blocks(&meta->sb, chunk, &block, &end);
	for (; block < end; block = next) {
		next = min(end, (u64)(fvd_meta_mblock_of(block) + 1) *
				FVD_META_MBLOCK_BLOCKS);
		meta->nr_fresh -= fvd_map_clear_count(meta->fresh, block, next);
		cleared = fvd_map_clear_count(meta->bits.live, block, next);
		if (cleared) {
			meta->nr_local -= cleared;
			fvd_mregion_mark_dirty(&meta->bits, fvd_meta_mblock_of(block));
		}
	}
	fvd_table_set(meta->table.live, chunk, FVD_CHUNK_UNMAPPED);
	fvd_mregion_mark_dirty(&meta->table, fvd_meta_tblock_of(chunk));
	if (fvd_table_get(meta->table.staged, chunk) == entry) {
		__set_bit(entry - 1, meta->chunk_freeing);
		meta->nr_freeing++;
	} else {
		__set_bit(entry - 1, meta->chunk_unmapped);
		meta->nr_unmapped++;
	}
	return true;
}

/*
 * The round that switched I/O epochs is on disk and every bio of the old
 * epoch has ended: the draining chunks can be allocated again.  A few
 * thousand words of the maps per hold of @lock, which allocation takes.
 * Returns how many were freed.
 */
u64 fvd_meta_release_chunks(struct fvd_meta *meta, spinlock_t *lock)
{
	const unsigned long words = BITS_TO_LONGS(meta->nr_phys);
	unsigned long w, end;
	u64 n = 0, freed;

	if (!meta->nr_draining)
		return 0;
	for (w = 0; w < words; w = end) {
		end = min(w + FVD_MAP_WORDS_PER_HOLD, words);
		spin_lock_irq(lock);
		for (freed = 0; w < end; w++) {
			freed += hweight_long(meta->chunk_draining[w]);
			meta->chunk_used[w] &= ~meta->chunk_draining[w];
			meta->chunk_draining[w] = 0;
		}
		meta->nr_free += freed;
		meta->nr_draining -= freed;
		spin_unlock_irq(lock);
		n += freed;
		cond_resched();
	}
	return n;
}

static bool fvd_meta_entry_changed(const struct fvd_meta *meta, u64 chunk)
{
	return fvd_table_get(meta->table.live, chunk) !=
	       fvd_table_get(meta->table.staged, chunk);
}

/*
 * A commit begins: it visits the metadata blocks changed so far.  Changes
 * made while it runs mark their blocks dirty again, for the next one.
 */
static void fvd_mregion_sweep_start(struct fvd_mregion *r)
{
	if (!r->nr_mblocks)
		return;
	bitmap_or(r->committing, r->committing, r->dirty, r->nr_mblocks);
	bitmap_zero(r->dirty, r->nr_mblocks);
	r->nr_dirty = 0;
}

void fvd_meta_sweep_start(struct fvd_meta *meta)
{
	fvd_mregion_sweep_start(&meta->bits);
	fvd_mregion_sweep_start(&meta->table);
	meta->sweep_block = 0;
	meta->sweep_mblock = 0;
	meta->commit_active = true;
}

/* The first block at or after @block in a block the commit visits. */
static u64 fvd_meta_sweep_next(const struct fvd_meta *meta, u64 block)
{
	const struct fvd_sb_info *sb = &meta->sb;
	unsigned long m;
	u64 next = sb->nr_blocks, first;

	m = find_next_bit(meta->bits.committing, meta->bits.nr_mblocks,
			  fvd_meta_mblock_of(block));
	if (m < meta->bits.nr_mblocks)
		next = max(block, (u64)m * FVD_META_MBLOCK_BLOCKS);
	if (!fvd_compact(sb))
		return next;
	m = find_next_bit(meta->table.committing, meta->table.nr_mblocks,
			  fvd_meta_tblock_of(fvd_block_chunk(sb, block)));
	if (m < meta->table.nr_mblocks) {
		first = ((u64)m * FVD_META_TBLOCK_CHUNKS) << sb->chunk_block_shift;
		next = min(next, max(block, first));
	}
	return next;
}

/*
 * Table entries [@chunk, @chunk + @n) went into the commit: stage them as
 * a replay applies them, clearing their chunks' bits.  The old physical
 * chunks are named by nothing durable once the commit is, so they wait
 * for its epoch switch only.
 */
static void fvd_meta_stage_entries(struct fvd_meta *meta, u64 chunk, u32 n)
{
	const struct fvd_sb_info *sb = &meta->sb;
	u64 c, first, end;
	u32 old;

	for (c = chunk; c < chunk + n; c++) {
		old = fvd_table_get(meta->table.staged, c);
		fvd_table_set(meta->table.staged, c,
			      fvd_table_get(meta->table.live, c));
		if (old != FVD_CHUNK_UNMAPPED &&
		    !WARN_ON_ONCE(!test_bit(old - 1, meta->chunk_freeing))) {
			__clear_bit(old - 1, meta->chunk_freeing);
			meta->nr_freeing--;
			__set_bit(old - 1, meta->chunk_unmapped);
			meta->nr_unmapped++;
		}
		fvd_chunk_blocks(sb, c, &first, &end);
		fvd_map_fill(meta->bits.staged, first, end, false);
		bitmap_set(meta->bits.home_stale, fvd_meta_mblock_of(first),
			   fvd_meta_mblock_of(end - 1) - fvd_meta_mblock_of(first) + 1);
	}
	bitmap_set(meta->table.home_stale, fvd_meta_tblock_of(chunk),
		   fvd_meta_tblock_of(chunk + n - 1) - fvd_meta_tblock_of(chunk) + 1);
}

/* A run of new bits went into the commit: staged as a replay sets them. */
static bool fvd_meta_add_run(struct fvd_meta *meta, struct fvd_jbuilder *jb,
			     u64 first, u64 end)
{
	if (!fvd_jbuilder_add_run(jb, first, end - first))
		return false;
	fvd_map_fill(meta->bits.staged, first, end, true);
	__set_bit(fvd_meta_mblock_of(first), meta->bits.home_stale);
	return true;
}

/*
 * Add to @jb the runs of bits live but not staged in blocks [@first,
 * *@end), all in one bitmap metadata block.  When a run does not fit,
 * *@end becomes its first block and false is returned.
 */
static bool fvd_meta_describe_bits(struct fvd_meta *meta,
				   struct fvd_jbuilder *jb, u64 first, u64 *end)
{
	const __le64 *live = (const __le64 *)meta->bits.live;
	const __le64 *staged = (const __le64 *)meta->bits.staged;
	u64 limit = *end, run_start = 0, run_end = 0, w, word, bit;

	for (w = first / 64; w * 64 < limit; w++) {
		word = le64_to_cpu(live[w]) & ~le64_to_cpu(staged[w]);
		if (w == first / 64)
			word &= ~0ULL << (first % 64);
		if ((w + 1) * 64 > limit)
			word &= ~0ULL >> (64 - limit % 64);
		while (word) {
			bit = w * 64 + __ffs64(word);
			word &= word - 1;
			if (bit == run_end && run_end > run_start) {
				run_end++;
				continue;
			}
			if (run_end > run_start &&
			    !fvd_meta_add_run(meta, jb, run_start, run_end)) {
				*end = run_start;
				return false;
			}
			run_start = bit;
			run_end = bit + 1;
		}
	}
	if (run_end > run_start && !fvd_meta_add_run(meta, jb, run_start, run_end)) {
		*end = run_start;
		return false;
	}
	return true;
}

/*
 * One step of the commit under way, for one hold of the target's lock:
 * describe in @jb what changed in at most one bitmap metadata block's
 * worth of blocks from where the last step stopped, and stage it.  On a
 * compact image the changed table entries of the chunks starting there
 * come first, then the bits (a replay of a table record clears its
 * chunks' bits).  Each step leaves the staged copy as a replay of what was
 * described would: what @jb describes, once journaled, is a consistent
 * image, however many journal commits the commit takes.  Returns FULL when
 * @jb has no room left (journal it, reset it, step on), DONE at the end.
 */
enum fvd_describe fvd_meta_describe_step(struct fvd_meta *meta,
					 struct fvd_jbuilder *jb)
{
	const struct fvd_sb_info *sb = &meta->sb;
	const u32 shift = sb->chunk_block_shift;
	u64 pos, end, chunk, chunk_end, run;
	bool full = false;
	u32 n;

	pos = fvd_meta_sweep_next(meta, meta->sweep_block);
	if (pos >= sb->nr_blocks) {
		meta->sweep_block = sb->nr_blocks;
		return FVD_DESCRIBE_DONE;
	}
	/* A chunk remapped since a step described part of it: from its start. */
	if (fvd_compact(sb) &&
	    fvd_meta_entry_changed(meta, fvd_block_chunk(sb, pos)))
		pos = fvd_block_chunk(sb, pos) << shift;
	end = min(round_down(pos, FVD_META_MBLOCK_BLOCKS) + FVD_META_MBLOCK_BLOCKS,
		  sb->nr_blocks);
	if (fvd_compact(sb)) {
		/* the chunks starting in [pos, end) */
		chunk = (pos + (1ULL << shift) - 1) >> shift;
		chunk_end = min((end + (1ULL << shift) - 1) >> shift, sb->nr_chunks);
		while (chunk < chunk_end) {
			if (!fvd_meta_entry_changed(meta, chunk)) {
				chunk++;
				continue;
			}
			for (run = chunk + 1; run < chunk_end &&
			     fvd_meta_entry_changed(meta, run); run++)
				;
			n = fvd_jbuilder_add_table(jb, chunk, run - chunk,
						   (const __le32 *)meta->table.live + chunk);
			if (n)
				fvd_meta_stage_entries(meta, chunk, n);
			if (n < run - chunk) {
				end = (chunk + n) << shift;
				full = true;
				break;
			}
			chunk = run;
		}
	}
	if (!fvd_meta_describe_bits(meta, jb, pos, &end))
		full = true;
	meta->sweep_block = end;
	if (full)
		return FVD_DESCRIBE_FULL;
	return end >= sb->nr_blocks ? FVD_DESCRIBE_DONE : FVD_DESCRIBE_MORE;
}

/*
 * Images without a journal: copy the live bitmap blocks the commit visits
 * into the staged copy, a few per call (bits are only ever set, so the
 * blocks need not be frozen at the same instant, only before the data
 * flush), and mark them for writing home.  True once all are.
 */
bool fvd_meta_freeze_step(struct fvd_meta *meta)
{
	struct fvd_mregion *r = &meta->bits;
	unsigned long m = meta->sweep_mblock, n;
	size_t off;

	for (n = 0; n < FVD_FREEZE_MBLOCKS_PER_HOLD; n++, m++) {
		m = find_next_bit(r->committing, r->nr_mblocks, m);
		if (m >= r->nr_mblocks)
			break;
		off = (size_t)m * FVD_META_BLOCK_SIZE;
		memcpy(r->staged + off, r->live + off, FVD_META_BLOCK_SIZE);
		__set_bit(m, r->home_stale);
	}
	meta->sweep_mblock = m;
	return m >= r->nr_mblocks;
}

/*
 * End of a round of the commit (what was described is about to be
 * written): the chunks no staged entry names any more drain with it.
 * Returns true when chunks drain: the caller switches I/O epochs now, and
 * once the round is on disk and the old epoch empty, releases them.
 */
bool fvd_meta_round_freeze(struct fvd_meta *meta)
{
	if (!meta->nr_unmapped)
		return false;
	if (likely(!meta->nr_draining)) {
		swap(meta->chunk_unmapped, meta->chunk_draining);
	} else {
		/* a round that failed left them: not released, never reused */
		bitmap_or(meta->chunk_draining, meta->chunk_draining,
			  meta->chunk_unmapped, meta->nr_phys);
		bitmap_zero(meta->chunk_unmapped, meta->nr_phys);
	}
	meta->nr_draining += meta->nr_unmapped;
	meta->nr_unmapped = 0;
	return true;
}

static int fvd_mregion_write_home(struct fvd_meta *meta, struct fvd_mregion *r)
{
	struct dm_buffer *buf;
	unsigned long mblock;
	void *data;

	if (!r->nr_mblocks)
		return 0;
	for_each_set_bit(mblock, r->home_stale, r->nr_mblocks) {
		data = dm_bufio_new(meta->bufio, r->first_mblock + mblock, &buf);
		if (IS_ERR(data))
			return PTR_ERR(data);
		memcpy(data, r->staged + (size_t)mblock * FVD_META_BLOCK_SIZE,
		       FVD_META_BLOCK_SIZE);
		dm_bufio_mark_buffer_dirty(buf);
		dm_bufio_release(buf);
		cond_resched();
	}
	return 0;
}

/*
 * Write home the staged copy of the metadata blocks that the home copy
 * lags behind in, then flush: after this the home copies alone are the
 * committed state.  Between commits, and between the rounds of one, the
 * staged copy is exactly what the journal holds, so home only ever gets
 * what a durable journal commit already holds.  No lock: only the commit
 * path touches the staged copy and home_stale.
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

static void fvd_mregion_sweep_done(struct fvd_mregion *r, bool failed)
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
void fvd_meta_sweep_done(struct fvd_meta *meta, bool failed)
{
	fvd_mregion_sweep_done(&meta->table, failed);
	fvd_mregion_sweep_done(&meta->bits, failed);
	meta->commit_active = false;
}
