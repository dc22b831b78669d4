// SPDX-License-Identifier: GPL-2.0
/*
 * dm-fvd adaptive prefetch.
 *
 * A delayed work walks the blocks from a cursor and copies the ones still
 * absent from the origin to the data device, in batches of consecutive
 * blocks: one origin read and one data write per batch, a bounded number of
 * batches in flight.  Every block of a batch is registered as a block op,
 * like a copy-on-read, so guest writes to it wait and discards park until
 * the batch is done; blocks that are local, fresh or busy are skipped.  A
 * copied block becomes local (journaled like a written one).
 *
 * Guest I/O goes first: the throughput of the origin reads and of the data
 * writes is measured per window, and when either average falls below its
 * minimum the prefetch pauses for a random time (hosts sharing an origin
 * must not pause in lock step), then measures afresh.  prefetch_max_rate
 * caps the origin reads for an origin or link shared with others: a batch
 * starts only once the cap allows its bytes.
 *
 * When a pass ends with every block local, the image is marked all-local
 * and the origin is never read again.  Suspend stops the prefetch between
 * batches; resume continues from the cursor.
 */

#define DM_MSG_PREFIX "fvd"

#include <linux/device-mapper.h>
#include <linux/dm-io.h>
#include <linux/math64.h>
#include <linux/random.h>
#include <linux/sched/mm.h>
#include <linux/slab.h>
#include <linux/vmalloc.h>

#include "fvd-compat.h"
#include "fvd-target.h"

#define FVD_PREFETCH_MAX_BATCH_BLOCKS	256	/* ops in the hash per batch */
#define FVD_PREFETCH_SCAN_BLOCKS	4096	/* blocks looked at per lock hold */
#define FVD_PREFETCH_RETRY		(HZ / 10)
#define FVD_PREFETCH_RESERVE_SHARE	32	/* of the data chunks kept free */

const struct fvd_tunable fvd_tunables[FVD_NR_TUNABLES] = {
	[FVD_PREFETCH_DELAY] = {
		"prefetch_delay", 0, 24 * 3600, 30,
		"Invalid prefetch_delay: seconds, at most a day" },
	[FVD_PREFETCH_BATCH] = {
		"prefetch_batch", 4, 65536, 1024,
		"Invalid prefetch_batch: KiB, 4 to 65536" },
	[FVD_PREFETCH_WRITES] = {
		"prefetch_writes", 1, 64, 2,
		"Invalid prefetch_writes: batches in flight, 1 to 64" },
	[FVD_PREFETCH_WINDOW] = {
		"prefetch_window", 10, 60000, 1000,
		"Invalid prefetch_window: ms, 10 to 60000" },
	[FVD_PREFETCH_MIN_READ] = {
		"prefetch_min_read", 0, 1U << 24, 1024,
		"Invalid prefetch_min_read: KiB/s, 0 to 16777216" },
	[FVD_PREFETCH_MIN_WRITE] = {
		"prefetch_min_write", 0, 1U << 24, 1024,
		"Invalid prefetch_min_write: KiB/s, 0 to 16777216" },
	[FVD_PREFETCH_MAX_PAUSE] = {
		"prefetch_max_pause", 1, 600000, 5000,
		"Invalid prefetch_max_pause: ms, 1 to 600000" },
	[FVD_PREFETCH_MAX_RATE] = {
		"prefetch_max_rate", 0, 1U << 24, 0,
		"Invalid prefetch_max_rate: KiB/s, 0 to 16777216" },
	[FVD_PROFILE_SECONDS] = {
		"profile_seconds", 0, 24 * 3600, 0,
		"Invalid profile_seconds: seconds, at most a day" },
};

int fvd_tunable_lookup(const char *name)
{
	int id;

	for (id = 0; id < FVD_NR_TUNABLES; id++)
		if (!strcasecmp(name, fvd_tunables[id].name))
			return id;
	return -1;
}

int fvd_tunable_parse(unsigned int id, const char *value, u32 *result)
{
	u32 v;

	if (!value || kstrtou32(value, 10, &v) ||
	    v < fvd_tunables[id].min || v > fvd_tunables[id].max)
		return -EINVAL;
	*result = v;
	return 0;
}

/* Measure afresh; the last average stays for the status until replaced. */
void fvd_rate_reset(struct fvd_rate *rate, u64 now_ns)
{
	rate->start_ns = now_ns;
	rate->bytes = 0;
	rate->nr_windows = 0;
}

/* Count @bytes completed at @now_ns; true when a window ended. */
bool fvd_rate_add(struct fvd_rate *rate, u64 bytes, u64 now_ns, u64 window_ns)
{
	u64 elapsed, sample;

	rate->bytes += bytes;
	if (now_ns < rate->start_ns + window_ns)
		return false;
	elapsed = now_ns - rate->start_ns;
	sample = mul_u64_u64_div_u64(rate->bytes, NSEC_PER_SEC, elapsed);
	rate->avg = rate->nr_windows ? (rate->avg + sample) / 2 : sample;
	rate->nr_windows++;
	rate->start_ns = now_ns;
	rate->bytes = 0;
	return true;
}

/* Measured, and below a minimum that is set. */
bool fvd_rate_too_slow(const struct fvd_rate *rate, u32 min_kib_per_s)
{
	return min_kib_per_s && rate->nr_windows &&
	       rate->avg < (u64)min_kib_per_s << 10;
}

/*
 * The span from @since_ns to @now_ns was spent waiting for the rate cap:
 * leave it out of the window, which measures how fast the origin and the
 * data device are, not how fast the cap lets the prefetch go.
 */
void fvd_rate_idle(struct fvd_rate *rate, u64 since_ns, u64 now_ns)
{
	since_ns = max(since_ns, rate->start_ns);
	if (now_ns > since_ns)
		rate->start_ns += now_ns - since_ns;
}

u64 fvd_pace_wait_ns(u64 next_ns, u64 now_ns, u32 max_kib_per_s)
{
	return max_kib_per_s && next_ns > now_ns ? next_ns - now_ns : 0;
}

u64 fvd_pace_next_ns(u64 next_ns, u64 now_ns, u64 bytes, u32 max_kib_per_s)
{
	if (!max_kib_per_s)
		return now_ns;
	return max(next_ns, now_ns) +
	       mul_u64_u64_div_u64(bytes, NSEC_PER_SEC, (u64)max_kib_per_s << 10);
}

u32 fvd_prefetch_pause_ms(u32 max_pause_ms)
{
	return get_random_u32_inclusive(1, max(max_pause_ms, 1U));
}

const char *fvd_prefetch_state_name(enum fvd_prefetch_state state)
{
	static const char * const names[] = {
		[FVD_PREFETCH_OFF] = "off",
		[FVD_PREFETCH_WAITING] = "waiting",
		[FVD_PREFETCH_RUNNING] = "running",
		[FVD_PREFETCH_PAUSED] = "paused",
		[FVD_PREFETCH_STOPPED] = "stopped",
		[FVD_PREFETCH_DONE] = "done",
		[FVD_PREFETCH_ERROR] = "error",
	};

	return names[state];
}

const char *fvd_prefetch_cause_name(enum fvd_prefetch_cause cause)
{
	static const char * const names[] = {
		[FVD_PREFETCH_NO_CAUSE] = "-",
		[FVD_PREFETCH_BY_TABLE] = "no_prefetch",
		[FVD_PREFETCH_BY_MESSAGE] = "message",
		[FVD_PREFETCH_BY_SPACE] = "no_space",
		[FVD_PREFETCH_BY_ORIGIN] = "origin_slow",
		[FVD_PREFETCH_BY_DATA] = "data_slow",
		[FVD_PREFETCH_BY_RATE] = "max_rate",
	};

	return names[cause];
}

/* ---- the copy ---- */

struct fvd_prefetch_batch {
	struct fvd_target *fvd;
	u64 first;			/* block */
	unsigned int nr_blocks;
	sector_t sectors;		/* of all its blocks */
	void *buffer;
	blk_status_t status;
	struct work_struct work;
	struct fvd_op ops[];
};

static u32 fvd_tunable(struct fvd_target *fvd, enum fvd_tunable_id id)
{
	return READ_ONCE(fvd->prefetch.tunables[id]);
}

static void fvd_prefetch_kick(struct fvd_target *fvd, unsigned long delay)
{
	mod_delayed_work(fvd->wq, &fvd->prefetch.work, delay);
}

/*
 * Enter @state for @cause; under the lock.  Returns true when userspace
 * should hear of it (a new state, or a stop for another cause): the caller
 * raises the dm event once the lock is dropped.
 */
static bool fvd_prefetch_enter(struct fvd_target *fvd,
			       enum fvd_prefetch_state state,
			       enum fvd_prefetch_cause cause)
{
	struct fvd_prefetch *pf = &fvd->prefetch;
	u64 now = ktime_get_ns();

	lockdep_assert_held(&fvd->lock);
	if (pf->state == state) {
		/* Held by the cap or not changes with every batch: no event. */
		if (pf->cause == cause ||
		    (state == FVD_PREFETCH_RUNNING &&
		     (pf->cause == FVD_PREFETCH_BY_RATE || cause == FVD_PREFETCH_BY_RATE))) {
			pf->cause = cause;
			return false;
		}
		pf->cause = cause;
		return true;
	}
	pf->cause = cause;
	if (state == FVD_PREFETCH_RUNNING) {
		/* Measure afresh: the old figures describe another load. */
		fvd_rate_reset(&pf->read_rate, now);
		fvd_rate_reset(&pf->write_rate, now);
		pf->held_since_ns = 0;
	}
	pf->state = state;
	return true;
}

static void fvd_prefetch_event(struct fvd_target *fvd, bool raise)
{
	if (raise)
		dm_table_event(fvd->ti->table);
}

/*
 * Guest writes come first: on a compact image the prefetch takes a free
 * chunk only while more than a reserve stay free (low_water_mark, and at
 * least 1/32 of the data chunks), unless the free chunks suffice for every
 * chunk not mapped yet.  Under the lock.
 */
static bool fvd_prefetch_may_allocate(struct fvd_target *fvd)
{
	const struct fvd_meta *meta = &fvd->meta;
	u64 held = meta->nr_phys - meta->nr_free;
	u64 mapped = held - meta->nr_freeing - meta->nr_unmapped - meta->nr_draining;
	u64 reserve = max_t(u64, fvd->args.low_water_mark,
			    DIV_ROUND_UP_ULL(meta->nr_phys, FVD_PREFETCH_RESERVE_SHARE));

	return meta->nr_free >= meta->sb.nr_chunks - mapped ||
	       meta->nr_free > reserve;
}

/* Can @block go into a batch?  Maps its chunk if it must.  Under the lock. */
static bool fvd_prefetch_wanted(struct fvd_target *fvd, u64 block)
{
	struct fvd_prefetch *pf = &fvd->prefetch;
	struct fvd_meta *meta = &fvd->meta;
	u64 chunk;

	if (fvd_meta_present(meta, block))
		return false;
	if (fvd_find_op(fvd, block)) {
		pf->busy_skipped = true;
		return false;
	}
	if (!fvd->compact)
		return true;
	chunk = fvd_block_chunk(&meta->sb, block);
	if (fvd_table_get(meta->table.live, chunk) != FVD_CHUNK_UNMAPPED)
		return true;
	if (fvd_prefetch_may_allocate(fvd) && fvd_meta_map_chunk(meta, chunk) >= 0)
		return true;
	pf->space_skipped = true;
	return false;
}

/*
 * Make @batch the run of wanted blocks from @first (wanted itself), at most
 * @max_blocks and not past @end.  Under the lock.
 */
static unsigned int fvd_prefetch_take(struct fvd_target *fvd,
				      struct fvd_prefetch_batch *batch,
				      u64 first, u64 end, unsigned int max_blocks)
{
	const struct fvd_sb_info *sb = &fvd->meta.sb;
	u64 chunk = fvd->compact ? fvd_block_chunk(sb, first) : 0;
	unsigned int n;

	/* One data write: on a compact image, only within one chunk. */
	for (n = 1; n < max_blocks && first + n < end; n++)
		if ((fvd->compact && fvd_block_chunk(sb, first + n) != chunk) ||
		    !fvd_prefetch_wanted(fvd, first + n))
			break;

	batch->first = first;
	batch->nr_blocks = n;
	batch->sectors = 0;
	for (n = 0; n < batch->nr_blocks; n++) {
		fvd_op_start(fvd, &batch->ops[n], first + n);
		batch->sectors += fvd_block_len(sb, first + n);
	}
	fvd->prefetch.nr_inflight++;
	return batch->nr_blocks;
}

/* Seeded profile runs not copied yet?  Under the lock. */
static bool fvd_prefetch_profile_pending(struct fvd_target *fvd)
{
	return fvd->profile.head < fvd->profile.queue.nr;
}

/*
 * The seeded profile first: the next wanted blocks of the run at the
 * queue's head, a batch never reaching past the run (the rest of the disk
 * comes later, in the cursor's order).  Like the cursor's scan, looks at
 * a bounded number of blocks per call.
 */
static unsigned int fvd_prefetch_fill_profile(struct fvd_target *fvd,
					      struct fvd_prefetch_batch *batch,
					      unsigned int max_blocks)
{
	struct fvd_profile *prof = &fvd->profile;
	u64 nr_blocks = fvd_origin_blocks(&fvd->meta.sb);
	const struct fvd_profile_run *run;
	unsigned int looked = 0, n;
	u64 block, end;

	while (fvd_prefetch_profile_pending(fvd) && looked < FVD_PREFETCH_SCAN_BLOCKS) {
		run = &prof->queue.runs[prof->head];
		block = run->first + prof->pos;
		end = min(run->first + run->nr, nr_blocks);
		if (block >= end) {
			prof->head++;
			prof->pos = 0;
			continue;
		}
		if (!fvd_prefetch_wanted(fvd, block)) {
			prof->pos++;
			looked++;
			continue;
		}
		n = fvd_prefetch_take(fvd, batch, block, end, max_blocks);
		prof->pos += n;
		return n;
	}
	return 0;
}

/*
 * Find the next run of blocks to copy, the seeded profile's first, then
 * from the cursor, and make them busy with the ops of @batch.  Looks at a
 * bounded number of blocks per call; returns the number of blocks in the
 * run, 0 if none was found yet.  Under the lock.
 */
static unsigned int fvd_prefetch_fill(struct fvd_target *fvd,
				      struct fvd_prefetch_batch *batch,
				      unsigned int max_blocks)
{
	struct fvd_prefetch *pf = &fvd->prefetch;
	u64 nr_blocks = fvd_origin_blocks(&fvd->meta.sb);
	u64 end = min(pf->cursor + FVD_PREFETCH_SCAN_BLOCKS, nr_blocks);
	unsigned int n;

	if (fvd_prefetch_profile_pending(fvd))
		return fvd_prefetch_fill_profile(fvd, batch, max_blocks);

	while (pf->cursor < end && !fvd_prefetch_wanted(fvd, pf->cursor))
		pf->cursor++;
	if (pf->cursor >= end)
		return 0;
	n = fvd_prefetch_take(fvd, batch, pf->cursor, nr_blocks, max_blocks);
	pf->cursor += n;
	return n;
}

static void fvd_prefetch_free(struct fvd_prefetch_batch *batch)
{
	if (batch) {
		kvfree(batch->buffer);
		kvfree(batch);
	}
}

/*
 * A batch for up to the configured size, allocated before its blocks are
 * made busy.  The prefetch may wait for memory, but never with a block
 * held, and never recursing into I/O (writeback could target this disk).
 */
static struct fvd_prefetch_batch *fvd_prefetch_alloc(struct fvd_target *fvd,
						     unsigned int *max_blocks)
{
	u32 block_bytes = fvd->meta.sb.block_sectors << SECTOR_SHIFT;
	u64 batch_bytes = (u64)fvd_tunable(fvd, FVD_PREFETCH_BATCH) << 10;
	struct fvd_prefetch_batch *batch;
	unsigned int noio, n;

	n = clamp_t(u64, div_u64(batch_bytes, block_bytes), 1,
		    FVD_PREFETCH_MAX_BATCH_BLOCKS);
	noio = memalloc_noio_save();
	batch = kvzalloc(struct_size(batch, ops, n), GFP_KERNEL | __GFP_NOWARN);
	if (batch)
		batch->buffer = kvmalloc((size_t)n * block_bytes,
					 GFP_KERNEL | __GFP_NOWARN);
	memalloc_noio_restore(noio);
	if (batch && !batch->buffer) {
		kvfree(batch);
		batch = NULL;
	}
	if (batch)
		batch->fvd = fvd;
	*max_blocks = n;
	return batch;
}

/* The batch is on the data device, or failed: its blocks are free again. */
static void fvd_prefetch_end(struct work_struct *ws)
{
	struct fvd_prefetch_batch *batch =
		container_of(ws, struct fvd_prefetch_batch, work);
	struct fvd_target *fvd = batch->fvd;
	struct fvd_prefetch *pf = &fvd->prefetch;
	blk_status_t status = batch->status;
	u64 bytes = (u64)batch->sectors << SECTOR_SHIFT;
	bool event = false, new_window, origin_slow;
	unsigned int i;
	u32 pause_ms;

	/* Marks the blocks local, unless the target can no longer commit. */
	for (i = 0; i < batch->nr_blocks; i++)
		if (fvd_op_release(fvd, &batch->ops[i], status))
			status = BLK_STS_IOERR;

	spin_lock_irq(&fvd->lock);
	pf->nr_inflight--;
	if (status) {
		/* Retried by "prefetch start", from these blocks on. */
		pf->cursor = min(pf->cursor, batch->first);
		event = fvd_prefetch_enter(fvd, FVD_PREFETCH_ERROR, FVD_PREFETCH_NO_CAUSE);
	} else {
		atomic64_add(bytes, &pf->nr_bytes);
		new_window = fvd_rate_add(&pf->write_rate, bytes, ktime_get_ns(),
					  (u64)fvd_tunable(fvd, FVD_PREFETCH_WINDOW) *
					  NSEC_PER_MSEC);
		origin_slow = fvd_rate_too_slow(&pf->read_rate,
						fvd_tunable(fvd, FVD_PREFETCH_MIN_READ));
		if (new_window && pf->state == FVD_PREFETCH_RUNNING &&
		    (origin_slow ||
		     fvd_rate_too_slow(&pf->write_rate,
				       fvd_tunable(fvd, FVD_PREFETCH_MIN_WRITE)))) {
			pause_ms = fvd_prefetch_pause_ms(fvd_tunable(fvd, FVD_PREFETCH_MAX_PAUSE));
			pf->pause_end = jiffies + msecs_to_jiffies(pause_ms);
			pf->nr_pauses++;
			event = fvd_prefetch_enter(fvd, FVD_PREFETCH_PAUSED,
						   origin_slow ? FVD_PREFETCH_BY_ORIGIN :
								 FVD_PREFETCH_BY_DATA);
		}
	}
	if (pf->state == FVD_PREFETCH_RUNNING && !pf->suspended)
		fvd_prefetch_kick(fvd, 0);
	else if (pf->state == FVD_PREFETCH_PAUSED && !pf->suspended && event)
		fvd_prefetch_kick(fvd, pf->pause_end - jiffies);
	spin_unlock_irq(&fvd->lock);

	if (status)
		DMERR_LIMIT("%s: prefetch of blocks %llu-%llu failed: prefetch stopped",
			    dm_table_device_name(fvd->ti->table), batch->first,
			    batch->first + batch->nr_blocks - 1);
	fvd_prefetch_free(batch);
	fvd_prefetch_event(fvd, event);
	/* Last: a suspend waits for this (and then flushes copy_wq). */
	wake_up_var(&pf->nr_inflight);
}

static void fvd_prefetch_io_complete(unsigned long error, void *context)
{
	struct fvd_prefetch_batch *batch = context;

	if (error)
		batch->status = BLK_STS_IOERR;
	queue_work(batch->fvd->copy_wq, &batch->work);
}

FVD_DEFINE_IO_NOTIFY(fvd_prefetch_io_done, fvd_prefetch_io_complete)

/* The batch is in the buffer: store it on the data device. */
static void fvd_prefetch_read_done(struct work_struct *ws)
{
	struct fvd_prefetch_batch *batch =
		container_of(ws, struct fvd_prefetch_batch, work);
	struct fvd_target *fvd = batch->fvd;
	struct fvd_prefetch *pf = &fvd->prefetch;

	if (batch->status) {
		fvd_prefetch_end(ws);
		return;
	}
	spin_lock_irq(&fvd->lock);
	fvd_rate_add(&pf->read_rate, (u64)batch->sectors << SECTOR_SHIFT,
		     ktime_get_ns(),
		     (u64)fvd_tunable(fvd, FVD_PREFETCH_WINDOW) * NSEC_PER_MSEC);
	spin_unlock_irq(&fvd->lock);
	INIT_WORK(&batch->work, fvd_prefetch_end);
	fvd_buffer_io_async(fvd, REQ_OP_WRITE, fvd->data_dev->bdev,
			    batch->ops[0].data_sector, batch->sectors,
			    batch->buffer, fvd_prefetch_io_done, batch);
}

/* Sectors of the batch the origin holds; past its end blocks are zeroes. */
static sector_t fvd_prefetch_origin_sectors(struct fvd_target *fvd,
					    const struct fvd_prefetch_batch *batch)
{
	const struct fvd_sb_info *sb = &fvd->meta.sb;
	sector_t start = fvd_block_start(sb, batch->first);

	if (start >= sb->origin_sectors)
		return 0;
	return min_t(sector_t, batch->sectors, sb->origin_sectors - start);
}

/* Read the batch from the origin. */
static void fvd_prefetch_submit(struct fvd_prefetch_batch *batch)
{
	struct fvd_target *fvd = batch->fvd;
	sector_t start = fvd_block_start(&fvd->meta.sb, batch->first);
	sector_t count = fvd_prefetch_origin_sectors(fvd, batch);

	memset(batch->buffer + ((size_t)count << SECTOR_SHIFT), 0,
	       (size_t)(batch->sectors - count) << SECTOR_SHIFT);
	INIT_WORK(&batch->work, fvd_prefetch_read_done);
	if (!count) {
		fvd_prefetch_read_done(&batch->work);
		return;
	}
	atomic64_add((u64)count << SECTOR_SHIFT, &fvd->nr_origin_bytes);
	fvd_buffer_io_async(fvd, REQ_OP_READ, fvd->origin_dev->bdev, start,
			    count, batch->buffer, fvd_prefetch_io_done, batch);
}

/*
 * Every block holding origin data is local: make that durable, then mark
 * the image all-local so the origin is never needed again.  True if done.
 */
static bool fvd_prefetch_finish(struct fvd_target *fvd)
{
	struct fvd_meta *meta = &fvd->meta;
	u64 nr_blocks = fvd_origin_blocks(&meta->sb);
	bool all_local;
	int r = 0;

	/* Copied-on-read blocks become local bits too. */
	fvd_commit(fvd, true, true);
	mutex_lock(&fvd->commit_lock);
	/* From here on, discards leave the blocks with origin data alone. */
	spin_lock_irq(&fvd->lock);
	fvd->all_local = fvd->mode == FVD_MODE_WRITE;
	spin_unlock_irq(&fvd->lock);
	/*
	 * No commit runs: the staged bits are the durable ones.  A discard
	 * before the flag was set shows in the live bits.
	 */
	all_local = fvd->all_local &&
		    fvd_bits_all_set(meta->bits.live, nr_blocks) &&
		    fvd_bits_all_set(meta->bits.staged, nr_blocks);
	if (all_local) {
		meta->sb.flags |= FVD_FLAG_ALL_LOCAL;
		r = fvd_meta_write_sb(meta);
		if (r) {
			meta->sb.flags &= ~FVD_FLAG_ALL_LOCAL;
			fvd_metadata_error(fvd, "superblock write", r);
		}
	}
	if (!all_local || r) {
		spin_lock_irq(&fvd->lock);
		fvd->all_local = false;
		spin_unlock_irq(&fvd->lock);
	}
	mutex_unlock(&fvd->commit_lock);
	if (all_local && !r)
		DMINFO("%s: every block is local: the origin is no longer needed",
		       dm_table_device_name(fvd->ti->table));
	return all_local && !r;
}

/* The cursor reached the end and no batch is in flight. */
static void fvd_prefetch_pass_done(struct fvd_target *fvd)
{
	struct fvd_prefetch *pf = &fvd->prefetch;
	enum fvd_prefetch_state next = FVD_PREFETCH_RUNNING;
	bool event, finished = false;
	unsigned long retry = FVD_PREFETCH_RETRY;

	spin_lock_irq(&fvd->lock);
	if (!pf->busy_skipped && !pf->space_skipped) {
		spin_unlock_irq(&fvd->lock);
		finished = fvd_prefetch_finish(fvd);
		spin_lock_irq(&fvd->lock);
		if (finished)
			next = FVD_PREFETCH_DONE;
		else if (fvd->mode != FVD_MODE_WRITE)
			next = FVD_PREFETCH_ERROR;
	} else if (pf->space_skipped) {
		DMWARN_LIMIT("%s: prefetch stopped: the free chunks left are kept for guest writes",
			     dm_table_device_name(fvd->ti->table));
		next = FVD_PREFETCH_STOPPED;
	}
	/* Blocks that were busy: look again shortly. */
	pf->cursor = 0;
	pf->busy_skipped = false;
	pf->space_skipped = false;
	/* A message may have stopped the prefetch meanwhile. */
	if (pf->state != FVD_PREFETCH_RUNNING && !finished) {
		spin_unlock_irq(&fvd->lock);
		return;
	}
	event = fvd_prefetch_enter(fvd, next, next == FVD_PREFETCH_STOPPED ?
				   FVD_PREFETCH_BY_SPACE : FVD_PREFETCH_NO_CAUSE);
	if (next == FVD_PREFETCH_RUNNING && !pf->suspended)
		fvd_prefetch_kick(fvd, retry);
	spin_unlock_irq(&fvd->lock);
	fvd_prefetch_event(fvd, event);
}

/*
 * prefetch_max_rate: true when the next batch must wait for the cap; the
 * work is then queued for the time it ends, and the time nothing is in
 * flight is left out of the throughput windows.  Under the lock.
 */
static bool fvd_prefetch_held(struct fvd_target *fvd)
{
	struct fvd_prefetch *pf = &fvd->prefetch;
	u64 now = ktime_get_ns();
	u64 wait_ns = fvd_pace_wait_ns(pf->pace_next_ns, now,
				       fvd_tunable(fvd, FVD_PREFETCH_MAX_RATE));

	if (!wait_ns) {
		if (pf->cause == FVD_PREFETCH_BY_RATE)
			pf->cause = FVD_PREFETCH_NO_CAUSE;
		return false;
	}
	if (!pf->nr_inflight && !pf->held_since_ns)
		pf->held_since_ns = now;
	/* No dm event: this changes with every batch while the cap holds. */
	pf->cause = FVD_PREFETCH_BY_RATE;
	fvd_prefetch_kick(fvd, nsecs_to_jiffies(wait_ns) + 1);
	return true;
}

/* @batch starts now: count it against the cap.  Under the lock. */
static void fvd_prefetch_pace(struct fvd_target *fvd,
			      const struct fvd_prefetch_batch *batch)
{
	struct fvd_prefetch *pf = &fvd->prefetch;
	u64 now = ktime_get_ns();

	pf->pace_last_ns = max(pf->pace_next_ns, now);
	pf->pace_last_bytes = (u64)fvd_prefetch_origin_sectors(fvd, batch) << SECTOR_SHIFT;
	pf->pace_next_ns = fvd_pace_next_ns(pf->pace_next_ns, now, pf->pace_last_bytes,
					    fvd_tunable(fvd, FVD_PREFETCH_MAX_RATE));
	if (pf->held_since_ns) {
		fvd_rate_idle(&pf->read_rate, pf->held_since_ns, now);
		fvd_rate_idle(&pf->write_rate, pf->held_since_ns, now);
		pf->held_since_ns = 0;
	}
	if (pf->cause == FVD_PREFETCH_BY_RATE)
		pf->cause = FVD_PREFETCH_NO_CAUSE;
}

/* The delayed work: start batches while the bound and the cap allow. */
static void fvd_prefetch_step(struct work_struct *ws)
{
	struct fvd_target *fvd = container_of(to_delayed_work(ws),
					      struct fvd_target, prefetch.work);
	struct fvd_prefetch *pf = &fvd->prefetch;
	struct fvd_prefetch_batch *batch = NULL;
	unsigned int max_blocks = 0;
	bool event = false, pass_done = false;

	for (;;) {
		spin_lock_irq(&fvd->lock);
		if (pf->state == FVD_PREFETCH_WAITING ||
		    (pf->state == FVD_PREFETCH_PAUSED &&
		     time_after_eq(jiffies, pf->pause_end)))
			event |= fvd_prefetch_enter(fvd, FVD_PREFETCH_RUNNING,
						    FVD_PREFETCH_NO_CAUSE);
		if (pf->state == FVD_PREFETCH_RUNNING &&
		    fvd->mode != FVD_MODE_WRITE)
			event |= fvd_prefetch_enter(fvd, FVD_PREFETCH_ERROR,
						    FVD_PREFETCH_NO_CAUSE);
		if (pf->state == FVD_PREFETCH_PAUSED && !pf->suspended)
			fvd_prefetch_kick(fvd, pf->pause_end - jiffies);
		if (pf->state != FVD_PREFETCH_RUNNING || pf->suspended ||
		    pf->nr_inflight >= fvd_tunable(fvd, FVD_PREFETCH_WRITES)) {
			spin_unlock_irq(&fvd->lock);
			break;
		}
		/*
		 * A profile started the prefetch early: once it is copied, the
		 * rest of the disk waits for prefetch_delay as it would have.
		 */
		if (pf->early && !fvd_prefetch_profile_pending(fvd)) {
			if (pf->nr_inflight) {
				spin_unlock_irq(&fvd->lock);
				break;	/* the last batch's end comes back here */
			}
			pf->early = false;
			if (time_before(jiffies, pf->delay_end)) {
				event |= fvd_prefetch_enter(fvd, FVD_PREFETCH_WAITING,
							    FVD_PREFETCH_NO_CAUSE);
				fvd_prefetch_kick(fvd, pf->delay_end - jiffies);
				spin_unlock_irq(&fvd->lock);
				break;
			}
		}
		if (pf->cursor >= fvd_origin_blocks(&fvd->meta.sb) &&
		    !fvd_prefetch_profile_pending(fvd)) {
			pass_done = !pf->nr_inflight;
			spin_unlock_irq(&fvd->lock);
			break;
		}
		if (fvd_prefetch_held(fvd)) {
			spin_unlock_irq(&fvd->lock);
			break;
		}
		if (!batch) {
			spin_unlock_irq(&fvd->lock);
			batch = fvd_prefetch_alloc(fvd, &max_blocks);
			if (!batch) {
				fvd_prefetch_kick(fvd, FVD_PREFETCH_RETRY);
				break;
			}
			continue;
		}
		if (!fvd_prefetch_fill(fvd, batch, max_blocks)) {
			spin_unlock_irq(&fvd->lock);
			cond_resched();
			continue;
		}
		fvd_prefetch_pace(fvd, batch);
		spin_unlock_irq(&fvd->lock);
		fvd_prefetch_submit(batch);
		batch = NULL;
	}
	fvd_prefetch_free(batch);
	fvd_prefetch_event(fvd, event);
	if (pass_done)
		fvd_prefetch_pass_done(fvd);
}

/* ---- control ---- */

/* Early in the ctr: fvd_prefetch_cancel() may follow at once. */
void fvd_prefetch_setup(struct fvd_target *fvd)
{
	INIT_DELAYED_WORK(&fvd->prefetch.work, fvd_prefetch_step);
	atomic64_set(&fvd->prefetch.nr_bytes, 0);
	fvd->prefetch.suspended = true;
}

void fvd_prefetch_cancel(struct fvd_target *fvd)
{
	cancel_delayed_work_sync(&fvd->prefetch.work);
}

/* Once the table is parsed and the image known. */
void fvd_prefetch_init(struct fvd_target *fvd)
{
	struct fvd_prefetch *pf = &fvd->prefetch;

	memcpy(pf->tunables, fvd->args.tunables, sizeof(pf->tunables));
	pf->given = fvd->args.given_tunables;
	pf->cause = FVD_PREFETCH_NO_CAUSE;
	if (!fvd->writable || !fvd->origin_dev) {
		pf->state = FVD_PREFETCH_OFF;
	} else if (fvd->args.no_prefetch) {
		pf->state = FVD_PREFETCH_STOPPED;
		pf->cause = FVD_PREFETCH_BY_TABLE;
	} else {
		pf->state = FVD_PREFETCH_WAITING;
	}
}

/* Resume: wait for the delay the first time, else go on from the cursor. */
void fvd_prefetch_resume(struct fvd_target *fvd)
{
	struct fvd_prefetch *pf = &fvd->prefetch;

	spin_lock_irq(&fvd->lock);
	if (fvd->all_local) {
		pf->state = FVD_PREFETCH_DONE;
		pf->cause = FVD_PREFETCH_NO_CAUSE;
	}
	pf->suspended = false;
	if (pf->state == FVD_PREFETCH_WAITING) {
		pf->delay_end = jiffies + fvd_tunable(fvd, FVD_PREFETCH_DELAY) * HZ;
		pf->early = fvd_prefetch_profile_pending(fvd);
		fvd_prefetch_kick(fvd, pf->early ? 0 : pf->delay_end - jiffies);
	} else if (pf->state == FVD_PREFETCH_RUNNING ||
		 pf->state == FVD_PREFETCH_PAUSED)
		fvd_prefetch_kick(fvd, 0);
	spin_unlock_irq(&fvd->lock);
}

/* Suspend: start no batch, and wait for those in flight. */
void fvd_prefetch_suspend(struct fvd_target *fvd)
{
	struct fvd_prefetch *pf = &fvd->prefetch;

	spin_lock_irq(&fvd->lock);
	pf->suspended = true;
	spin_unlock_irq(&fvd->lock);
	cancel_delayed_work_sync(&pf->work);
	wait_var_event(&pf->nr_inflight, !READ_ONCE(pf->nr_inflight));
	/* The last batch's end may have queued the work again. */
	cancel_delayed_work_sync(&pf->work);
}

/*
 * "profile add" queued runs; under the lock.  They are what the guest will
 * read next: a prefetch still waiting for prefetch_delay copies them now,
 * and then waits for the rest of the delay.
 */
void fvd_prefetch_profile_queued(struct fvd_target *fvd)
{
	struct fvd_prefetch *pf = &fvd->prefetch;

	lockdep_assert_held(&fvd->lock);
	if (pf->suspended)
		return;
	if (pf->state == FVD_PREFETCH_WAITING)
		pf->early = true;
	if (pf->state == FVD_PREFETCH_WAITING || pf->state == FVD_PREFETCH_RUNNING)
		fvd_prefetch_kick(fvd, 0);
}

static int fvd_prefetch_control(struct fvd_target *fvd, bool start)
{
	struct fvd_prefetch *pf = &fvd->prefetch;
	bool event = false;
	int r = 0;

	spin_lock_irq(&fvd->lock);
	switch (pf->state) {
	case FVD_PREFETCH_OFF:
		r = -EOPNOTSUPP;
		break;
	case FVD_PREFETCH_DONE:
		break;
	default:
		if (start && fvd->mode != FVD_MODE_WRITE) {
			r = -EROFS;
			break;
		}
		if (start) {
			pf->early = false;
			event = fvd_prefetch_enter(fvd, FVD_PREFETCH_RUNNING,
						   FVD_PREFETCH_NO_CAUSE);
		} else {
			event = fvd_prefetch_enter(fvd, FVD_PREFETCH_STOPPED,
						   FVD_PREFETCH_BY_MESSAGE);
		}
		if (start && !pf->suspended)
			fvd_prefetch_kick(fvd, 0);
	}
	spin_unlock_irq(&fvd->lock);
	if (r == -EOPNOTSUPP)
		DMERR("%s: no prefetch: the table is read-only or has no origin",
		      dm_table_device_name(fvd->ti->table));
	else if (r)
		DMERR("%s: prefetch cannot start: metadata is read-only",
		      dm_table_device_name(fvd->ti->table));
	fvd_prefetch_event(fvd, event);
	return r;
}

/*
 * prefetch start|stop
 * set <tunable> <value>
 */
int fvd_prefetch_message(struct fvd_target *fvd, unsigned int argc,
			 char **argv)
{
	struct fvd_prefetch *pf = &fvd->prefetch;
	int id;
	u32 v;

	if (argc == 2 && !strcasecmp(argv[0], "prefetch")) {
		if (!strcasecmp(argv[1], "start"))
			return fvd_prefetch_control(fvd, true);
		if (!strcasecmp(argv[1], "stop"))
			return fvd_prefetch_control(fvd, false);
	} else if (argc == 3 && !strcasecmp(argv[0], "set")) {
		id = fvd_tunable_lookup(argv[1]);
		if (id < 0) {
			DMERR("%s: unknown tunable '%s'",
			      dm_table_device_name(fvd->ti->table), argv[1]);
			return -EINVAL;
		}
		if (fvd_tunable_parse(id, argv[2], &v)) {
			DMERR("%s: %s", dm_table_device_name(fvd->ti->table),
			      fvd_tunables[id].error);
			return -EINVAL;
		}
		/* Room for a recording first: a failed set changes nothing. */
		if (id == FVD_PROFILE_SECONDS && fvd_profile_reserve(fvd, v))
			return -ENOMEM;
		spin_lock_irq(&fvd->lock);
		WRITE_ONCE(pf->tunables[id], v);
		pf->given |= BIT(id);
		/* A shorter delay or pause takes effect now. */
		if (id == FVD_PREFETCH_DELAY)
			pf->delay_end = jiffies + v * HZ;
		if (!pf->suspended && id == FVD_PREFETCH_DELAY &&
		    pf->state == FVD_PREFETCH_WAITING)
			fvd_prefetch_kick(fvd, v * HZ);
		/* So does a new cap, counted from the last batch's start. */
		if (id == FVD_PREFETCH_MAX_RATE) {
			pf->pace_next_ns = v ? fvd_pace_next_ns(pf->pace_last_ns, pf->pace_last_ns,
								pf->pace_last_bytes, v) : 0;
			if (!pf->suspended && pf->state == FVD_PREFETCH_RUNNING)
				fvd_prefetch_kick(fvd, 0);
		}
		spin_unlock_irq(&fvd->lock);
		if (id == FVD_PROFILE_SECONDS)
			fvd_profile_set_seconds(fvd);
		return 0;
	}
	DMERR("%s: unknown message: expected 'prefetch start|stop', 'set <tunable> <value>' or 'profile ...'",
	      dm_table_device_name(fvd->ti->table));
	return -EINVAL;
}
