// SPDX-License-Identifier: GPL-2.0
/*
 * dm-fvd: a writable virtual disk over a read-only origin (FVD, "Fast
 * Virtual Disk").  This file is the device-mapper interface: table line,
 * bio routing, commits, suspend/resume and status.  The on-disk format lives
 * in fvd-format.[ch], metadata I/O in fvd-meta.c.
 *
 * Bio routing:
 *  - reads of local blocks go to the data device, reads of absent blocks to
 *    the origin (zeroes past its end).  With copy-on-read, the worker reads
 *    the whole block from the origin into a buffer, completes the read from
 *    it and then writes the block to the data device, where it is "fresh":
 *    read from there, but not journaled (a crash costs a second copy);
 *    fresh blocks become local bits at checkpoints.  The block is
 *    busy meanwhile, like one being written, so a write to it waits and
 *    never lands under the copy;
 *  - writes to local blocks go to the data device;
 *  - writes to absent blocks are deferred to the worker, which serialises
 *    them per block: a write covering the whole block goes straight to the
 *    data device, a partial one is merged into a copy of the block read from
 *    the origin and written whole.  The block becomes local when that data
 *    write completes; later writes to the block wait until then;
 *  - a flush commits the bitmap: data device flush first, then one FUA
 *    journal write listing the blocks that became local (or, without a
 *    journal, the changed bitmap blocks written home, a metadata flush, the
 *    superblock).  A FUA write whose block bit is not durable yet completes
 *    after such a commit;
 *  - compact images: a discard unmaps the whole chunks it covers in the
 *    worker (their blocks read from the origin again).  A physical chunk so
 *    freed is allocated again only after the commit that journals the
 *    unmapping, and after every bio mapped to it before has ended: bios
 *    mapped to a compact image's data device are counted in one of two I/O
 *    epochs, and that commit switches epochs and waits for the old one.
 */

#define DM_MSG_PREFIX "fvd"

#include <linux/bio.h>
#include <linux/device-mapper.h>
#include <linux/dm-io.h>
#include <linux/hashtable.h>
#include <linux/mempool.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/slab.h>
#include <linux/vmalloc.h>
#include <linux/workqueue.h>

#include "fvd-compat.h"
#include "fvd-version.h"
#include "fvd-journal.h"
#include "fvd-meta.h"
#include "fvd-table.h"
#include "fvd-target.h"

#define FVD_COMMIT_PERIOD	HZ
#define FVD_RESERVED_OPS	16
#define FVD_RESERVED_BUFFERS	2
#define FVD_MAX_FEATURE_ARGS	(5 + 2 * 5 + 2 * FVD_NR_TUNABLES)
#define FVD_DISCARD_BLOCKS_PER_HOLD	16384ULL	/* bits a discard clears per lock hold */
#define FVD_MAX_DISCARD_SECTORS	(1U << 24)	/* 8 GiB */

struct fvd_bio_ctx {
	struct fvd_op *op;	/* this whole-block write makes op->block local */
	bool needs_commit;	/* FUA write: complete after the next commit */
	int epoch;		/* I/O epoch the bio is counted in, or -1 */
	u64 discard_next;	/* discard: first chunk not yet unmapped */
	/*
	 * origin_error_mode queue: set while the bio depends on an origin
	 * read, with what its resubmission needs restored; held once an
	 * origin read failed, until the bio completes for good.
	 */
	bool origin_read;
	bool origin_held;
	unsigned short origin_bi_flags;
	int origin_bi_remaining;
	struct bvec_iter origin_bi_iter;
	unsigned long origin_deadline;	/* jiffies */
};

static struct fvd_bio_ctx *fvd_bio_ctx(struct bio *bio)
{
	return dm_per_bio_data(bio, sizeof(struct fvd_bio_ctx));
}

/*
 * origin_error_mode queue: @bio depends on an origin read from now on.
 * Keep what a resubmission restores: a remapped bio comes back from below
 * advanced, possibly split and chained.
 */
static void fvd_origin_read_begins(struct fvd_target *fvd, struct bio *bio)
{
	struct fvd_bio_ctx *ctx = fvd_bio_ctx(bio);

	if (!fvd->args.origin_queue)
		return;
	ctx->origin_read = true;
	ctx->origin_bi_flags = bio->bi_flags;
	ctx->origin_bi_remaining = atomic_read(&bio->__bi_remaining);
	ctx->origin_bi_iter = bio->bi_iter;
}

static const char *fvd_mode_name(enum fvd_mode mode)
{
	switch (mode) {
	case FVD_MODE_WRITE:
		return "rw";
	case FVD_MODE_READ_ONLY:
		return "ro";
	default:
		return "fail";
	}
}

/* ---- table line ---- */

/*
 * Feature arguments other than the prefetch tunables: whether they take a
 * value, and the flag of struct fvd_table_args that says they were given.
 */
static const struct {
	const char *name;
	bool has_value;
	size_t given;
} fvd_features[] = {
	{ "read_only", false, offsetof(struct fvd_table_args, read_only) },
	{ "no_copy_on_read", false, offsetof(struct fvd_table_args, no_copy_on_read) },
	{ "max_cor_inflight", true, offsetof(struct fvd_table_args, have_max_cor_inflight) },
	{ "error_if_no_space", false, offsetof(struct fvd_table_args, error_if_no_space) },
	{ "low_water_mark", true, offsetof(struct fvd_table_args, have_low_water_mark) },
	{ "no_space_timeout", true, offsetof(struct fvd_table_args, have_no_space_timeout) },
	{ "no_prefetch", false, offsetof(struct fvd_table_args, no_prefetch) },
	{ "skip_origin_check", false, offsetof(struct fvd_table_args, skip_origin_check) },
	{ "origin_error_mode", true, offsetof(struct fvd_table_args, have_origin_error_mode) },
	{ "origin_queue_timeout", true,
	  offsetof(struct fvd_table_args, have_origin_queue_timeout) },
};

/*
 * @name could not be taken: say which of the three reasons it is, naming
 * the argument in the kernel log (ti->error has to be a fixed string).  A
 * repeated one is refused with or without its value, so that comes first.
 */
static int fvd_feature_error(const struct fvd_table_args *args, const char *name,
			     int tunable, unsigned int nr_features, char **error)
{
	bool known = tunable >= 0, has_value = tunable >= 0;
	bool given = tunable >= 0 && (args->given_tunables & BIT(tunable));
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(fvd_features); i++) {
		if (!strcasecmp(name, fvd_features[i].name)) {
			known = true;
			has_value = fvd_features[i].has_value;
			given = *(const bool *)((const char *)args + fvd_features[i].given);
		}
	}
	if (!known) {
		DMERR("feature argument '%s' is unknown", name);
		*error = "Unknown feature argument";
	} else if (given) {
		DMERR("feature argument '%s' is given twice", name);
		*error = "Repeated feature argument";
	} else if (has_value && !nr_features) {
		DMERR("feature argument '%s' needs a value, and the feature count ends there",
		      name);
		*error = "Feature argument missing its value";
	} else {
		/* every known argument is taken above unless repeated or valueless */
		DMERR("feature argument '%s' cannot be taken", name);
		*error = "Invalid feature argument";
	}
	return -EINVAL;
}

int fvd_parse_table_args(unsigned int argc, char **argv,
			 struct fvd_table_args *args, char **error)
{
	static const struct dm_arg feature_count = {
		0, FVD_MAX_FEATURE_ARGS, "Invalid number of feature arguments"
	};
	struct dm_arg_set as = { .argc = argc, .argv = argv };
	unsigned int nr_features, id;
	const char *name;
	int r, tunable;

	memset(args, 0, sizeof(*args));
	args->no_space_timeout = FVD_DEFAULT_NO_SPACE_TIMEOUT;
	args->max_cor_inflight = FVD_DEFAULT_MAX_COR_INFLIGHT;
	args->origin_queue_timeout = FVD_DEFAULT_ORIGIN_QUEUE_TIMEOUT;
	for (id = 0; id < FVD_NR_TUNABLES; id++)
		args->tunables[id] = fvd_tunables[id].def;
	if (argc < 3) {
		*error = "Not enough arguments: <metadata dev> <data dev> <origin dev|->";
		return -EINVAL;
	}
	args->meta_path = dm_shift_arg(&as);
	args->data_path = dm_shift_arg(&as);
	args->origin_path = dm_shift_arg(&as);
	if (!strcmp(args->origin_path, "-"))
		args->origin_path = NULL;
	if (!as.argc)
		return 0;

	r = dm_read_arg_group(&feature_count, &as, &nr_features, error);
	if (r)
		return r;
	while (nr_features--) {
		name = dm_shift_arg(&as);
		tunable = fvd_tunable_lookup(name);
		if (!strcasecmp(name, "read_only") && !args->read_only) {
			args->read_only = true;
		} else if (!strcasecmp(name, "no_copy_on_read") &&
			   !args->no_copy_on_read) {
			args->no_copy_on_read = true;
		} else if (!strcasecmp(name, "max_cor_inflight") &&
			   !args->have_max_cor_inflight && nr_features) {
			nr_features--;
			if (kstrtouint(dm_shift_arg(&as), 10, &args->max_cor_inflight) ||
			    !args->max_cor_inflight ||
			    args->max_cor_inflight > FVD_MAX_MAX_COR_INFLIGHT) {
				*error = "Invalid max_cor_inflight: KiB, 1 to 1048576";
				return -EINVAL;
			}
			args->have_max_cor_inflight = true;
		} else if (!strcasecmp(name, "error_if_no_space") &&
			   !args->error_if_no_space) {
			args->error_if_no_space = true;
		} else if (!strcasecmp(name, "low_water_mark") &&
			   !args->have_low_water_mark && nr_features) {
			nr_features--;
			if (kstrtou64(dm_shift_arg(&as), 10, &args->low_water_mark)) {
				*error = "Invalid low_water_mark: a number of chunks";
				return -EINVAL;
			}
			args->have_low_water_mark = true;
		} else if (!strcasecmp(name, "no_space_timeout") &&
			   !args->have_no_space_timeout && nr_features) {
			nr_features--;
			if (kstrtouint(dm_shift_arg(&as), 10, &args->no_space_timeout) ||
			    args->no_space_timeout > FVD_MAX_NO_SPACE_TIMEOUT) {
				*error = "Invalid no_space_timeout: seconds, at most a day";
				return -EINVAL;
			}
			args->have_no_space_timeout = true;
		} else if (!strcasecmp(name, "no_prefetch") && !args->no_prefetch) {
			args->no_prefetch = true;
		} else if (!strcasecmp(name, "skip_origin_check") &&
			   !args->skip_origin_check) {
			args->skip_origin_check = true;
		} else if (!strcasecmp(name, "origin_error_mode") &&
			   !args->have_origin_error_mode && nr_features) {
			nr_features--;
			name = dm_shift_arg(&as);
			if (!strcasecmp(name, "queue")) {
				args->origin_queue = true;
			} else if (strcasecmp(name, "fail")) {
				*error = "Invalid origin_error_mode: fail or queue";
				return -EINVAL;
			}
			args->have_origin_error_mode = true;
		} else if (!strcasecmp(name, "origin_queue_timeout") &&
			   !args->have_origin_queue_timeout && nr_features) {
			nr_features--;
			if (kstrtouint(dm_shift_arg(&as), 10, &args->origin_queue_timeout) ||
			    !args->origin_queue_timeout ||
			    args->origin_queue_timeout > FVD_MAX_ORIGIN_QUEUE_TIMEOUT) {
				*error = "Invalid origin_queue_timeout: seconds, 1 to 86400";
				return -EINVAL;
			}
			args->have_origin_queue_timeout = true;
		} else if (tunable >= 0 &&
			   !(args->given_tunables & BIT(tunable)) && nr_features) {
			nr_features--;
			if (fvd_tunable_parse(tunable, dm_shift_arg(&as),
					      &args->tunables[tunable])) {
				*error = (char *)fvd_tunables[tunable].error;
				return -EINVAL;
			}
			args->given_tunables |= BIT(tunable);
		} else {
			return fvd_feature_error(args, name, tunable, nr_features, error);
		}
	}
	if (as.argc) {
		*error = "Unexpected arguments after the feature arguments";
		return -EINVAL;
	}
	if (args->have_origin_queue_timeout && !args->origin_queue) {
		*error = "origin_queue_timeout needs origin_error_mode queue";
		return -EINVAL;
	}
	return 0;
}

/* ---- bio helpers ---- */

static sector_t fvd_bio_sector(struct fvd_target *fvd, struct bio *bio)
{
	return dm_target_offset(fvd->ti, bio->bi_iter.bi_sector);
}

static u64 fvd_bio_block(struct fvd_target *fvd, struct bio *bio)
{
	return fvd_sector_to_block(&fvd->meta.sb, fvd_bio_sector(fvd, bio));
}

/* Where the data of @block, known to be local or being made so, lives. */
sector_t fvd_block_data_sector(struct fvd_target *fvd, u64 block)
{
	const struct fvd_sb_info *sb = &fvd->meta.sb;
	sector_t start = fvd_block_start(sb, block);
	u32 entry;

	if (!fvd->compact)
		return sb->data_offset + start;
	/*
	 * The chunk was mapped before the block's first write was issued, so
	 * before its bit was set: read the entry after the caller's bit test.
	 */
	smp_rmb();
	entry = fvd_table_get(fvd->meta.table.live, fvd_block_chunk(sb, block));
	return sb->data_offset + ((sector_t)(entry - 1) << sb->chunk_shift) +
	       (start & (sb->chunk_sectors - 1));
}

static void fvd_remap_data(struct fvd_target *fvd, struct bio *bio)
{
	sector_t sector = fvd_bio_sector(fvd, bio);
	u64 block = fvd_sector_to_block(&fvd->meta.sb, sector);

	bio_set_dev(bio, fvd->data_dev->bdev);
	bio->bi_iter.bi_sector = fvd_block_data_sector(fvd, block) +
				 (sector - fvd_block_start(&fvd->meta.sb, block));
}

/*
 * Remap a bio to a local block, under the lock.  On a compact image the bio
 * is counted in the current I/O epoch in the same lock hold as the lookup,
 * so a discard unmapping the chunk comes either before the lookup or before
 * the epoch switch its commit waits on.
 */
static void fvd_remap_locked(struct fvd_target *fvd, struct bio *bio)
{
	struct fvd_bio_ctx *ctx = dm_per_bio_data(bio, sizeof(*ctx));

	lockdep_assert_held(&fvd->lock);
	if (fvd->compact) {
		ctx->epoch = fvd->io_epoch;
		atomic_inc(&fvd->io_count[ctx->epoch]);
	}
	fvd_remap_data(fvd, bio);
}

static bool fvd_bio_covers_block(struct fvd_target *fvd, struct bio *bio,
				 u64 block)
{
	const struct fvd_sb_info *sb = &fvd->meta.sb;

	return fvd_bio_sector(fvd, bio) == fvd_block_start(sb, block) &&
	       bio_sectors(bio) == fvd_block_len(sb, block);
}

static void fvd_wake_worker(struct fvd_target *fvd)
{
	queue_work(fvd->wq, &fvd->worker);
}

struct fvd_op *fvd_find_op(struct fvd_target *fvd, u64 block)
{
	struct fvd_op *op;

	hash_for_each_possible(fvd->ops, op, node, block)
		if (op->block == block)
			return op;
	return NULL;
}

/*
 * A FUA write to a local block whose bit is not on disk yet must not
 * complete before a commit.  Called under the lock.
 */
static bool fvd_fua_needs_commit(struct fvd_target *fvd, struct bio *bio,
				 u64 block)
{
	return (bio->bi_opf & REQ_FUA) &&
	       !fvd_meta_block_durable(&fvd->meta, block);
}

/* ---- metadata errors ---- */

static void fvd_complete_bios(struct bio_list *bios, blk_status_t status)
{
	struct bio *bio;

	while ((bio = bio_list_pop(bios))) {
		if (status)
			bio->bi_status = status;
		bio_endio(bio);
	}
}

/*
 * Leave rw mode for good (until the table is loaded again).  Writes held
 * for a free chunk and discards parked behind block writes would wait for
 * a commit that can no longer come: they fail now.
 */
static void fvd_enter_mode(struct fvd_target *fvd, enum fvd_mode mode,
			   const char *what, int r)
{
	struct bio_list held = BIO_EMPTY_LIST;

	DMERR("%s: %s failed (%d), switching to %s mode",
	      dm_table_device_name(fvd->ti->table), what, r,
	      mode == FVD_MODE_READ_ONLY ? "read-only" : "fail");
	spin_lock_irq(&fvd->lock);
	WRITE_ONCE(fvd->mode, mode);
	bio_list_merge(&held, &fvd->no_space);
	bio_list_init(&fvd->no_space);
	bio_list_merge(&held, &fvd->discard_wait);
	bio_list_init(&fvd->discard_wait);
	spin_unlock_irq(&fvd->lock);
	/* Nothing is held for space any more. */
	cancel_delayed_work(&fvd->no_space_timer);
	fvd_complete_bios(&held, BLK_STS_IOERR);
	dm_table_event(fvd->ti->table);
}

/*
 * Persist that the image needs fvd-check before it is written again, as
 * far as the metadata device still takes writes: a later read-write load
 * is refused while the flag is set.  Only over the image this table
 * loaded (@on_disk, just read back, has its uuid and layout): then the
 * superblock in memory is what the disk holds, or (a failed checkpoint)
 * what the home copies already on disk make true, so writing it loses
 * nothing.
 */
static void fvd_record_needs_check(struct fvd_target *fvd,
				   const struct fvd_sb_info *on_disk)
{
	const char *name = dm_table_device_name(fvd->ti->table);
	u64 was, now;
	int r;

	if (!fvd->writable || fvd->needs_check)
		return;
	if (!on_disk || fvd_sb_layout_change(&fvd->meta.sb, on_disk, &was, &now)) {
		DMERR("%s: needs_check not recorded: the superblock on disk is unreadable or another image's",
		      name);
		return;
	}
	fvd->meta.sb.flags |= FVD_FLAG_NEEDS_CHECK;
	fvd->meta.sb.flags &= ~FVD_FLAG_CLEAN;
	r = fvd_meta_write_sb(&fvd->meta);
	if (r) {
		/* as in memory as on disk: the status says what a load will find */
		fvd->meta.sb.flags &= ~FVD_FLAG_NEEDS_CHECK;
		DMERR("%s: cannot record needs_check in the superblock (%d)", name, r);
		return;
	}
	WRITE_ONCE(fvd->needs_check, true);
}

/*
 * A metadata update failed.  If the metadata can still be read, go
 * read-only, else to fail mode; either way userspace hears of it through a
 * dm event.  Nothing is rolled back: reads keep seeing every write that was
 * acknowledged, and what never reached the disk stays uncommitted, so every
 * flush fails from now on while some bit is not durable, and so does a FUA
 * write to such a block (see fvd_map_write()).  A write to a block that is
 * local stays possible in read-only mode; one that would make a block local
 * fails.  Process context; the caller holds commit_lock or runs when no
 * commit can.
 */
void fvd_metadata_error(struct fvd_target *fvd, const char *what, int r)
{
	struct fvd_sb_info sb;
	enum fvd_sb_status status;

	if (READ_ONCE(fvd->mode) == FVD_MODE_FAIL)
		return;
	if (fvd_meta_read_sb(&fvd->meta, &sb, &status)) {
		fvd_enter_mode(fvd, FVD_MODE_FAIL, what, r);
		fvd_record_needs_check(fvd, NULL);
		return;
	}
	if (READ_ONCE(fvd->mode) == FVD_MODE_WRITE)
		fvd_enter_mode(fvd, FVD_MODE_READ_ONLY, what, r);
	fvd_record_needs_check(fvd, &sb);
}

/* ---- commits ---- */

/*
 * Write the bitmap home and, for a journaled image, record in the superblock
 * that the journal is empty from now on.  The checkpoint takes a sequence
 * number of its own, so that no journal block written before it, even one
 * of a commit torn by a crash, can ever follow it on replay.
 */
static int fvd_checkpoint(struct fvd_target *fvd)
{
	struct fvd_journal *journal = &fvd->journal;
	int r;

	r = fvd_meta_write_home(&fvd->meta);
	if (r || !fvd->journaled)
		return r;
	fvd->meta.sb.checkpoint_seq = journal->next_seq;
	r = fvd_meta_write_sb(&fvd->meta);
	if (r)
		return r;
	journal->next_seq++;
	journal->head = 0;
	atomic64_inc(&journal->nr_checkpoints);
	return 0;
}

/*
 * The chunks a round of the commit let go of are free: it is on disk, and
 * every bio counted in the I/O epoch it ended has ended.  Writes held for
 * space are tried again.
 */
static void fvd_release_chunks(struct fvd_target *fvd)
{
	bool retry;

	fvd_meta_release_chunks(&fvd->meta, &fvd->lock);
	spin_lock_irq(&fvd->lock);
	retry = !bio_list_empty(&fvd->no_space);
	bio_list_merge(&fvd->deferred, &fvd->no_space);
	bio_list_init(&fvd->no_space);
	if (fvd->meta.nr_free) {
		retry |= fvd->out_of_space;
		fvd->out_of_space = false;
		fvd->no_space_expired = false;
	}
	if (fvd->meta.nr_free >= fvd->args.low_water_mark)
		fvd->low_water_raised = false;
	spin_unlock_irq(&fvd->lock);
	if (retry) {
		/* The timer would only fail bios that are no longer held. */
		cancel_delayed_work(&fvd->no_space_timer);
		fvd_wake_worker(fvd);
		dm_table_event(fvd->ti->table);
	}
}

/* Fresh blocks become local, to be persisted by the commit that follows. */
static void fvd_promote_fresh(struct fvd_target *fvd)
{
	unsigned long mblock;

	for (mblock = 0; mblock < fvd->meta.bits.nr_mblocks; mblock++) {
		spin_lock_irq(&fvd->lock);
		fvd_meta_promote_fresh(&fvd->meta, mblock);
		spin_unlock_irq(&fvd->lock);
		cond_resched();
	}
}

/*
 * A commit of a journaled image: rounds of (describe what changed, as much
 * as one journal write holds, a step per lock hold; flush the data device;
 * append it to the journal), until everything the commit visits is on
 * disk.  A full journal is checkpointed between rounds, when the staged
 * copy is exactly what the journal holds.  Sets *@wrote when a journal
 * write was made.
 */
static int fvd_commit_journal(struct fvd_target *fvd, bool flush, bool *wrote)
{
	struct fvd_journal *journal = &fvd->journal;
	struct fvd_jbuilder *jb = &journal->builder;
	enum fvd_describe step;
	unsigned int old_epoch;
	bool draining;
	int r = 0;

	do {
		if (journal->head == journal->nr_blocks) {
			r = fvd_checkpoint(fvd);
			if (r)
				return r;
		}
		jb->max_blocks = min_t(u64, FVD_JOURNAL_MAX_COMMIT_BLOCKS,
				       journal->nr_blocks - journal->head);
		fvd_jbuilder_reset(jb);
		spin_lock_irq(&fvd->lock);
		while ((step = fvd_meta_describe_step(&fvd->meta, jb)) ==
		       FVD_DESCRIBE_MORE) {
			spin_unlock_irq(&fvd->lock);
			cond_resched();
			spin_lock_irq(&fvd->lock);
		}
		draining = fvd_meta_round_freeze(&fvd->meta);
		old_epoch = fvd->io_epoch;
		if (draining)
			fvd->io_epoch ^= 1;
		spin_unlock_irq(&fvd->lock);

		/* Changes that cancelled out (a chunk mapped, then unmapped): no records. */
		if (jb->nr_blocks || flush) {
			r = fvd_flush_bdev(fvd->data_dev->bdev);
			flush = false;
		}
		if (!r && jb->nr_blocks) {
			r = fvd_journal_append(journal, fvd->io_client,
					       fvd->meta_dev->bdev, &fvd->meta.sb);
			*wrote |= !r;
		}
		/* Even after a failure: the next switch needs the old epoch empty. */
		if (draining) {
			wait_var_event(&fvd->io_count[old_epoch],
				       !atomic_read(&fvd->io_count[old_epoch]));
			if (!r)
				fvd_release_chunks(fvd);
		}
		if (WARN_ON_ONCE(step == FVD_DESCRIBE_FULL && !jb->nr_blocks))
			r = -EIO;
	} while (!r && step != FVD_DESCRIBE_DONE);
	return r;
}

/*
 * A commit of an image without a journal (and without a table): bits are
 * only ever set, so the changed bitmap blocks go home directly.
 */
static int fvd_commit_home(struct fvd_target *fvd, bool flush, bool *wrote)
{
	bool done;
	int r;

	do {
		spin_lock_irq(&fvd->lock);
		done = fvd_meta_freeze_step(&fvd->meta);
		spin_unlock_irq(&fvd->lock);
		cond_resched();
	} while (!done);
	if (!fvd_meta_home_stale(&fvd->meta) && !flush)
		return 0;
	r = fvd_flush_bdev(fvd->data_dev->bdev);
	if (!r && fvd_meta_home_stale(&fvd->meta)) {
		r = fvd_meta_write_home(&fvd->meta);
		*wrote |= !r;
	}
	return r;
}

/*
 * Make every bit set so far durable and complete the bios waiting for it;
 * with @checkpoint, also persist the fresh blocks and leave the journal
 * empty.  Data device flush first: a bit may only reach the disk once its
 * data has.  A journaled image writes home blocks only at a checkpoint,
 * and only with what the journal already holds.
 */
void fvd_commit(struct fvd_target *fvd, bool force_data_flush, bool checkpoint)
{
	struct bio_list waiters;
	blk_status_t status = BLK_STS_OK;
	bool flush, wrote = false;
	int r;

	mutex_lock(&fvd->commit_lock);
	/* Not once read-only: the blocks would wait for a commit for ever. */
	if (checkpoint && READ_ONCE(fvd->meta.nr_fresh) &&
	    READ_ONCE(fvd->mode) == FVD_MODE_WRITE)
		fvd_promote_fresh(fvd);
	spin_lock_irq(&fvd->lock);
	waiters = fvd->commit_waiters;
	bio_list_init(&fvd->commit_waiters);
	if (fvd->mode != FVD_MODE_WRITE) {
		spin_unlock_irq(&fvd->lock);
		fvd_complete_bios(&waiters, BLK_STS_IOERR);
		goto out;
	}
	fvd_meta_sweep_start(&fvd->meta);
	spin_unlock_irq(&fvd->lock);

	flush = force_data_flush || !bio_list_empty(&waiters);
	if (fvd->journaled)
		r = fvd_commit_journal(fvd, flush, &wrote);
	else
		r = fvd_commit_home(fvd, flush, &wrote);
	if (!r && checkpoint && fvd->journaled &&
	    (fvd->journal.head || fvd_meta_home_stale(&fvd->meta)))
		r = fvd_checkpoint(fvd);

	spin_lock_irq(&fvd->lock);
	fvd_meta_sweep_done(&fvd->meta, r != 0);
	spin_unlock_irq(&fvd->lock);
	if (r) {
		fvd_metadata_error(fvd, "metadata commit", r);
		status = BLK_STS_IOERR;
	} else if (wrote) {
		atomic64_inc(&fvd->nr_commits);
	}
	fvd_complete_bios(&waiters, status);
out:
	mutex_unlock(&fvd->commit_lock);
}

static void fvd_commit_timer_fn(struct work_struct *ws)
{
	struct fvd_target *fvd = container_of(to_delayed_work(ws),
					      struct fvd_target, commit_timer);

	fvd_commit(fvd, false, false);
	queue_delayed_work(fvd->wq, &fvd->commit_timer, FVD_COMMIT_PERIOD);
}

/* ---- absent blocks ---- */

/*
 * The data write of @op finished: the block is local unless it failed, or
 * unless the target lost the ability to commit meanwhile.  Later writes to
 * the block are handed back to the worker.  Any context.
 */
blk_status_t fvd_op_release(struct fvd_target *fvd, struct fvd_op *op,
				   blk_status_t status)
{
	unsigned long flags;

	spin_lock_irqsave(&fvd->lock, flags);
	if (!status && fvd->mode != FVD_MODE_WRITE)
		status = BLK_STS_IOERR;
	if (op->copy_on_read) {
		if (!status)
			fvd_meta_mark_fresh(&fvd->meta, op->block);
		fvd->cor_inflight -= fvd_block_len(&fvd->meta.sb, op->block)
				     << SECTOR_SHIFT;
	} else if (!status) {
		fvd_meta_mark_local(&fvd->meta, op->block);
	}
	hash_del(&op->node);
	if (fvd->compact)
		hash_del(&op->chunk_node);
	fvd->nr_ops--;
	bio_list_merge(&op->waiters, &fvd->discard_wait);
	bio_list_init(&fvd->discard_wait);
	bio_list_merge(&fvd->deferred, &op->waiters);
	spin_unlock_irqrestore(&fvd->lock, flags);
	if (!bio_list_empty(&op->waiters))
		fvd_wake_worker(fvd);
	return status;
}

static void fvd_copy_finish(struct fvd_op *op)
{
	struct fvd_target *fvd = op->fvd;
	struct bio *bio = op->bio;
	unsigned long flags;

	op->status = fvd_op_release(fvd, op, op->status);
	mempool_free(op->buffer, fvd->buffer_pool);
	if (op->status) {
		/* Unless an origin read failed and the write is to be held. */
		if (!fvd_bio_ctx(bio)->origin_read)
			DMERR_LIMIT("%s: copy of block %llu failed",
				    dm_table_device_name(fvd->ti->table), op->block);
		bio->bi_status = op->status;
		bio_endio(bio);
	} else if (op->fua) {
		spin_lock_irqsave(&fvd->lock, flags);
		bio_list_add(&fvd->commit_waiters, bio);
		spin_unlock_irqrestore(&fvd->lock, flags);
		fvd_wake_worker(fvd);
	} else {
		bio_endio(bio);
	}
	if (!op->status)
		atomic64_inc(&fvd->nr_copies);
	mempool_free(op, &fvd->op_pool);
}

static void fvd_copy_finish_work(struct work_struct *ws)
{
	fvd_copy_finish(container_of(ws, struct fvd_op, work));
}

static void fvd_copy_io_complete(unsigned long error, void *context)
{
	struct fvd_op *op = context;

	if (error)
		op->status = BLK_STS_IOERR;
	queue_work(op->fvd->copy_wq, &op->work);
}

FVD_DEFINE_IO_NOTIFY(fvd_copy_io_done, fvd_copy_io_complete)

/*
 * Read or write @count sectors at @sector of @bdev from or into @buffer;
 * @done(error, @context) is called when it completes.  Shared by the block
 * copies and the prefetch.
 */
void fvd_buffer_io_async(struct fvd_target *fvd, blk_opf_t opf,
			 struct block_device *bdev, sector_t sector,
			 sector_t count, void *buffer, io_notify_fn done,
			 void *context)
{
	struct dm_io_region region = {
		.bdev = bdev, .sector = sector, .count = count,
	};
	struct dm_io_request req = {
		.bi_opf = opf,
		.notify.fn = done,
		.notify.context = context,
		.client = fvd->io_client,
	};

	fvd_dm_io_buffer(&req, buffer);
	/* Asynchronous: errors arrive through @done. */
	fvd_dm_io(&req, 1, &region);
}

static void fvd_buffer_io(struct fvd_op *op, blk_opf_t opf,
			  struct block_device *bdev, sector_t sector,
			  sector_t count, work_func_t next)
{
	INIT_WORK(&op->work, next);
	fvd_buffer_io_async(op->fvd, opf, bdev, sector, count, op->buffer,
			    fvd_copy_io_done, op);
}

/* The block's old content is in the buffer: lay the write over it, store. */
static void fvd_copy_merge(struct fvd_op *op)
{
	struct fvd_target *fvd = op->fvd;
	const struct fvd_sb_info *sb = &fvd->meta.sb;
	sector_t start = fvd_block_start(sb, op->block);
	char *dst = op->buffer +
		    ((fvd_bio_sector(fvd, op->bio) - start) << SECTOR_SHIFT);
	struct bvec_iter iter;
	struct bio_vec bv;

	if (op->status) {
		fvd_copy_finish(op);
		return;
	}
	/* A failing data write is no origin error: it is not held. */
	fvd_bio_ctx(op->bio)->origin_read = false;
	bio_for_each_segment(bv, op->bio, iter) {
		memcpy_from_bvec(dst, &bv);
		dst += bv.bv_len;
	}
	fvd_buffer_io(op, REQ_OP_WRITE | (op->fua ? REQ_FUA : 0),
		      fvd->data_dev->bdev, op->data_sector,
		      fvd_block_len(sb, op->block), fvd_copy_finish_work);
}

static void fvd_copy_merge_work(struct work_struct *ws)
{
	fvd_copy_merge(container_of(ws, struct fvd_op, work));
}

/* A write covering part of an absent block: fetch the rest of the block. */
static void fvd_copy_start(struct fvd_op *op)
{
	struct fvd_target *fvd = op->fvd;
	const struct fvd_sb_info *sb = &fvd->meta.sb;
	u32 len = fvd_block_len(sb, op->block);
	u32 origin_len = fvd->origin_dev ? fvd_block_origin_len(sb, op->block) : 0;

	op->buffer = mempool_alloc(fvd->buffer_pool, GFP_NOIO);
	memset(op->buffer + ((size_t)origin_len << SECTOR_SHIFT), 0,
	       (size_t)(len - origin_len) << SECTOR_SHIFT);
	if (!origin_len) {
		fvd_copy_merge(op);
		return;
	}
	atomic64_add((u64)origin_len << SECTOR_SHIFT, &fvd->nr_origin_bytes);
	fvd_profile_note(fvd, fvd_block_start(sb, op->block), origin_len);
	fvd_origin_read_begins(fvd, op->bio);
	fvd_buffer_io(op, REQ_OP_READ, fvd->origin_dev->bdev,
		      fvd_block_start(sb, op->block), origin_len,
		      fvd_copy_merge_work);
}

/*
 * Make @block busy with the blank @op; under the lock.  On a compact image
 * the block's chunk is mapped already: where the op writes is fixed now,
 * whatever happens to the table while it reads the origin.
 */
void fvd_op_start(struct fvd_target *fvd, struct fvd_op *op, u64 block)
{
	memset(op, 0, sizeof(*op));
	op->fvd = fvd;
	op->block = block;
	op->data_sector = fvd_block_data_sector(fvd, block);
	bio_list_init(&op->waiters);
	hash_add(fvd->ops, &op->node, block);
	if (fvd->compact)
		hash_add(fvd->chunk_ops, &op->chunk_node,
			 fvd_block_chunk(&fvd->meta.sb, block));
	fvd->nr_ops++;
}

/* ---- copy-on-read ---- */

static void fvd_remap_origin(struct fvd_target *fvd, struct bio *bio)
{
	fvd_origin_read_begins(fvd, bio);
	bio_set_dev(bio, fvd->origin_dev->bdev);
	bio->bi_iter.bi_sector = fvd_bio_sector(fvd, bio);
	fvd_profile_note(fvd, bio->bi_iter.bi_sector, bio_sectors(bio));
	atomic64_add(bio->bi_iter.bi_size, &fvd->nr_origin_bytes);
}

/*
 * The copy reached the data device, or its origin read (@read_failed) or
 * data write failed: the block is fresh or absent.
 */
static void fvd_cor_finish(struct fvd_op *op, bool read_failed)
{
	struct fvd_target *fvd = op->fvd;
	size_t bytes = (size_t)fvd_block_len(&fvd->meta.sb, op->block) << SECTOR_SHIFT;

	/* With origin_error_mode queue a failed read is held: no failure yet. */
	if (op->status && !(read_failed && fvd->args.origin_queue))
		DMERR_LIMIT("%s: copy-on-read of block %llu failed",
			    dm_table_device_name(fvd->ti->table), op->block);
	if (!fvd_op_release(fvd, op, op->status))
		atomic64_add(bytes, &fvd->nr_cor_bytes);
	mempool_free(op->buffer, fvd->buffer_pool);
	mempool_free(op, &fvd->op_pool);
	/* Last: a suspend waits for this, then for the work to return. */
	if (atomic_dec_and_test(&fvd->nr_cor_ops))
		wake_up_var(&fvd->nr_cor_ops);
}

static void fvd_cor_finish_work(struct work_struct *ws)
{
	fvd_cor_finish(container_of(ws, struct fvd_op, work), false);
}

/* The block is in the buffer: complete the read, then store the block. */
static void fvd_cor_read_done(struct work_struct *ws)
{
	struct fvd_op *op = container_of(ws, struct fvd_op, work);
	struct fvd_target *fvd = op->fvd;
	const struct fvd_sb_info *sb = &fvd->meta.sb;
	struct bio *bio = op->bio;
	char *src = op->buffer + ((fvd_bio_sector(fvd, bio) -
				   fvd_block_start(sb, op->block)) << SECTOR_SHIFT);
	struct bvec_iter iter;
	struct bio_vec bv;

	op->bio = NULL;
	if (op->status) {
		bio->bi_status = op->status;
		bio_endio(bio);
		fvd_cor_finish(op, true);
		return;
	}
	bio_for_each_segment(bv, bio, iter) {
		memcpy_to_bvec(&bv, src);
		src += bv.bv_len;
	}
	bio_endio(bio);
	fvd_buffer_io(op, REQ_OP_WRITE, fvd->data_dev->bdev, op->data_sector,
		      fvd_block_len(sb, op->block), fvd_cor_finish_work);
}

/*
 * Worker: a read of an absent block.  Copy it on read unless it is busy
 * (being written or prefetched: the origin serves the read), over the
 * in-flight bound, or, in a compact image, in a chunk not allocated yet
 * (reads never take space).  A block being copied on read already has its
 * origin read done or under way, and that copy completed the read that
 * started it before storing the block: a later read waits for the store
 * and is then served by the data device, instead of reading the origin
 * again (a boot's small sequential reads meet this all the time).
 */
static void fvd_handle_absent_read(struct fvd_target *fvd, struct bio *bio)
{
	const struct fvd_sb_info *sb = &fvd->meta.sb;
	u64 block = fvd_bio_block(fvd, bio);
	u32 len = fvd_block_len(sb, block), origin_len;
	u64 bytes = (u64)len << SECTOR_SHIFT;
	bool copy = false, present;
	struct fvd_op *op, *busy;
	void *buffer;

	spin_lock_irq(&fvd->lock);
	present = fvd_meta_present(&fvd->meta, block);
	busy = present ? NULL : fvd_find_op(fvd, block);
	if (present) {
		fvd_remap_locked(fvd, bio);
	} else if (busy && busy->copy_on_read) {
		/* fvd_op_release() hands it back to the worker */
		bio_list_add(&busy->waiters, bio);
		spin_unlock_irq(&fvd->lock);
		return;
	} else if (fvd->mode != FVD_MODE_WRITE || busy ||
		   fvd->cor_inflight + bytes > fvd->max_cor_inflight ||
		   (fvd->compact &&
		    fvd_table_get(fvd->meta.table.live,
				  fvd_block_chunk(sb, block)) == FVD_CHUNK_UNMAPPED)) {
		fvd_remap_origin(fvd, bio);
	} else {
		fvd->cor_inflight += bytes;
		copy = true;
	}
	spin_unlock_irq(&fvd->lock);
	if (!copy) {
		dm_submit_bio_remap(bio, NULL);
		return;
	}

	/*
	 * Only this worker maps and unmaps chunks, but the prefetch makes
	 * blocks busy too: look again once the allocations are done.
	 */
	op = mempool_alloc(&fvd->op_pool, GFP_NOIO);
	buffer = mempool_alloc(fvd->buffer_pool, GFP_NOIO);
	spin_lock_irq(&fvd->lock);
	if (fvd_meta_present(&fvd->meta, block) || fvd_find_op(fvd, block)) {
		/* The prefetch took the block meanwhile: as above. */
		fvd->cor_inflight -= bytes;
		if (fvd_meta_present(&fvd->meta, block))
			fvd_remap_locked(fvd, bio);
		else
			fvd_remap_origin(fvd, bio);
		spin_unlock_irq(&fvd->lock);
		mempool_free(buffer, fvd->buffer_pool);
		mempool_free(op, &fvd->op_pool);
		dm_submit_bio_remap(bio, NULL);
		return;
	}
	fvd_op_start(fvd, op, block);
	atomic_inc(&fvd->nr_cor_ops);
	spin_unlock_irq(&fvd->lock);
	op->bio = bio;
	op->copy_on_read = true;
	op->buffer = buffer;
	fvd_origin_read_begins(fvd, bio);

	/* .map sent reads past the origin's end elsewhere: origin_len > 0 */
	origin_len = fvd_block_origin_len(sb, block);
	memset(buffer + ((size_t)origin_len << SECTOR_SHIFT), 0,
	       (size_t)(len - origin_len) << SECTOR_SHIFT);
	atomic64_add((u64)origin_len << SECTOR_SHIFT, &fvd->nr_origin_bytes);
	fvd_profile_note(fvd, fvd_block_start(sb, block), origin_len);
	fvd_buffer_io(op, REQ_OP_READ, fvd->origin_dev->bdev,
		      fvd_block_start(sb, block), origin_len, fvd_cor_read_done);
}

enum fvd_chunk_state {
	FVD_CHUNK_READY,
	FVD_CHUNK_HELD,		/* bio held until the data device grows */
	FVD_CHUNK_NO_SPACE,	/* bio must fail with ENOSPC */
	FVD_CHUNK_REQUEUE,	/* no space while suspending: back to dm */
};

/*
 * Compact images: make sure the chunk of @block is mapped before its first
 * write.  Under the lock; dm events are raised by the worker afterwards.
 */
static enum fvd_chunk_state fvd_map_chunk(struct fvd_target *fvd,
					  struct bio *bio, u64 block)
{
	struct fvd_meta *meta = &fvd->meta;
	u64 chunk;

	if (!fvd->compact)
		return FVD_CHUNK_READY;
	chunk = fvd_block_chunk(&meta->sb, block);
	if (fvd_table_get(meta->table.live, chunk) != FVD_CHUNK_UNMAPPED)
		return FVD_CHUNK_READY;
	if (fvd_meta_map_chunk(meta, chunk) >= 0) {
		if (meta->nr_free < fvd->args.low_water_mark &&
		    !fvd->low_water_raised) {
			fvd->low_water_raised = true;
			fvd->raise_event = true;
		}
		return FVD_CHUNK_READY;
	}
	if (meta->nr_freeing || meta->nr_unmapped || meta->nr_draining) {
		/* Discarded chunks are free after the next commit. */
		bio_list_add(&fvd->no_space, bio);
		fvd->commit_wanted = true;
		return FVD_CHUNK_HELD;
	}
	if (!fvd->out_of_space) {
		fvd->out_of_space = true;
		fvd->raise_event = true;
	}
	if (fvd->args.error_if_no_space || fvd->no_space_expired)
		return FVD_CHUNK_NO_SPACE;
	/*
	 * A held write would keep a suspend waiting.  A noflush suspend
	 * hands it back to dm, which reissues it after the resume; a
	 * flushing one cannot keep it (as for those held before): it fails.
	 * Once dm undid an interrupted noflush suspend, it is held again.
	 */
	if (fvd->suspending && dm_noflush_suspending(fvd->ti))
		return FVD_CHUNK_REQUEUE;
	if (fvd->suspending && !fvd->suspend_noflush)
		return FVD_CHUNK_NO_SPACE;
	/* Pending already: the first held write's deadline stands. */
	if (fvd->args.no_space_timeout)
		queue_delayed_work(fvd->wq, &fvd->no_space_timer,
				   fvd->args.no_space_timeout * HZ);
	bio_list_add(&fvd->no_space, bio);
	return FVD_CHUNK_HELD;
}

/* The data device stayed full for no_space_timeout: fail the held writes. */
static void fvd_no_space_timeout_fn(struct work_struct *ws)
{
	struct fvd_target *fvd = container_of(to_delayed_work(ws),
					      struct fvd_target, no_space_timer);
	struct bio_list held;

	spin_lock_irq(&fvd->lock);
	held = fvd->no_space;
	bio_list_init(&fvd->no_space);
	fvd->no_space_expired = true;
	spin_unlock_irq(&fvd->lock);
	DMWARN_LIMIT("%s: data device full for %us: failing writes to new chunks",
		     dm_table_device_name(fvd->ti->table),
		     fvd->args.no_space_timeout);
	fvd_complete_bios(&held, BLK_STS_NOSPC);
}

/*
 * Is a write making a block local in chunks [@first, @end) in progress?
 * Ops are also hashed by chunk: whichever is shorter, the ops or the
 * chunks, is looked through.
 */
static bool fvd_ops_in_chunks(struct fvd_target *fvd, u64 first, u64 end)
{
	const struct fvd_sb_info *sb = &fvd->meta.sb;
	struct fvd_op *op;
	unsigned int bucket;
	u64 chunk;

	if (fvd->nr_ops < end - first) {
		hash_for_each(fvd->ops, bucket, op, node) {
			chunk = fvd_block_chunk(sb, op->block);
			if (chunk >= first && chunk < end)
				return true;
		}
		return false;
	}
	for (chunk = first; chunk < end; chunk++)
		hash_for_each_possible(fvd->chunk_ops, op, chunk_node, chunk)
			if (fvd_block_chunk(sb, op->block) == chunk)
				return true;
	return false;
}

/*
 * Worker: unmap the whole chunks a discard covers; the parts of chunks at
 * its ends are left alone (discard_granularity says so).  A chunk with a
 * block write in progress waits for it: the write would set a bit in an
 * unmapped chunk otherwise.  A bounded number of blocks per lock hold (or
 * one chunk, when a chunk holds more).
 */
static void fvd_process_discard(struct fvd_target *fvd, struct bio *bio)
{
	struct fvd_bio_ctx *ctx = dm_per_bio_data(bio, sizeof(*ctx));
	const struct fvd_sb_info *sb = &fvd->meta.sb;
	sector_t start = fvd_bio_sector(fvd, bio);
	sector_t end = start + bio_sectors(bio);
	u64 chunk = (start + sb->chunk_sectors - 1) >> sb->chunk_shift;
	u64 last = end >= sb->virtual_sectors ? sb->nr_chunks :
		   end >> sb->chunk_shift;
	u64 batch = max(1ULL, FVD_DISCARD_BLOCKS_PER_HOLD >> sb->chunk_block_shift);
	u64 batch_end;

	chunk = max(chunk, ctx->discard_next);
	while (chunk < last) {
		spin_lock_irq(&fvd->lock);
		if (fvd->mode != FVD_MODE_WRITE) {
			spin_unlock_irq(&fvd->lock);
			bio_io_error(bio);
			return;
		}
		/*
		 * All-local: the origin is gone, so the chunks holding its
		 * data stay mapped (the discard is only a hint).
		 */
		if (fvd->all_local)
			chunk = max(chunk, fvd_origin_chunks(sb));
		batch_end = min(last, chunk + batch);
		if (chunk < batch_end && fvd_ops_in_chunks(fvd, chunk, batch_end)) {
			ctx->discard_next = chunk;
			bio_list_add(&fvd->discard_wait, bio);
			spin_unlock_irq(&fvd->lock);
			return;
		}
		for (; chunk < batch_end; chunk++)
			fvd_meta_unmap_chunk(&fvd->meta, chunk);
		spin_unlock_irq(&fvd->lock);
		cond_resched();
	}
	bio_endio(bio);
}

/* Worker: a write that found its block absent in .map. */
static void fvd_handle_absent_write(struct fvd_target *fvd, struct bio *bio)
{
	struct fvd_bio_ctx *ctx = dm_per_bio_data(bio, sizeof(*ctx));
	u64 block = fvd_bio_block(fvd, bio);
	enum fvd_chunk_state chunk_state;
	struct fvd_op *op, *busy;
	bool fresh;

	op = mempool_alloc(&fvd->op_pool, GFP_NOIO);

	spin_lock_irq(&fvd->lock);
	if (fvd->mode != FVD_MODE_WRITE) {
		spin_unlock_irq(&fvd->lock);
		mempool_free(op, &fvd->op_pool);
		bio_io_error(bio);
		return;
	}
	if (fvd_bit_test(fvd->meta.bits.live, block)) {
		/* Made local while this bio waited. */
		ctx->needs_commit = fvd_fua_needs_commit(fvd, bio, block);
		fvd_remap_locked(fvd, bio);
		spin_unlock_irq(&fvd->lock);
		mempool_free(op, &fvd->op_pool);
		dm_submit_bio_remap(bio, NULL);
		return;
	}
	busy = fvd_find_op(fvd, block);
	if (busy) {
		bio_list_add(&busy->waiters, bio);
		spin_unlock_irq(&fvd->lock);
		mempool_free(op, &fvd->op_pool);
		return;
	}
	/* Copied on read: the data device already holds the rest of the block. */
	fresh = fvd_bit_test(fvd->meta.fresh, block);
	chunk_state = fresh ? FVD_CHUNK_READY : fvd_map_chunk(fvd, bio, block);
	if (chunk_state != FVD_CHUNK_READY) {
		spin_unlock_irq(&fvd->lock);
		mempool_free(op, &fvd->op_pool);
		if (chunk_state != FVD_CHUNK_HELD) {
			bio->bi_status = chunk_state == FVD_CHUNK_NO_SPACE ?
					 BLK_STS_NOSPC : BLK_STS_DM_REQUEUE;
			bio_endio(bio);
		}
		return;
	}
	fvd_op_start(fvd, op, block);
	op->fua = bio->bi_opf & REQ_FUA;
	spin_unlock_irq(&fvd->lock);

	if (fresh || fvd_bio_covers_block(fvd, bio, block)) {
		/* Nothing of the old block survives, or it is there already. */
		ctx->op = op;
		ctx->needs_commit = op->fua;
		if (!fresh)
			atomic64_inc(&fvd->nr_whole_writes);
		bio_set_dev(bio, fvd->data_dev->bdev);
		bio->bi_iter.bi_sector = op->data_sector +
					 (fvd_bio_sector(fvd, bio) -
					  fvd_block_start(&fvd->meta.sb, block));
		dm_submit_bio_remap(bio, NULL);
		return;
	}
	op->bio = bio;
	fvd_copy_start(op);
}

static void fvd_worker(struct work_struct *ws)
{
	struct fvd_target *fvd = container_of(ws, struct fvd_target, worker);
	struct bio_list bios;
	struct bio *bio;
	bool commit, event;

	spin_lock_irq(&fvd->lock);
	bios = fvd->deferred;
	bio_list_init(&fvd->deferred);
	spin_unlock_irq(&fvd->lock);

	while ((bio = bio_list_pop(&bios))) {
		if (bio_op(bio) == REQ_OP_DISCARD)
			fvd_process_discard(fvd, bio);
		else if (bio_op(bio) == REQ_OP_READ)
			fvd_handle_absent_read(fvd, bio);
		else
			fvd_handle_absent_write(fvd, bio);
	}

	spin_lock_irq(&fvd->lock);
	commit = !bio_list_empty(&fvd->commit_waiters) || fvd->commit_wanted;
	fvd->commit_wanted = false;
	event = fvd->raise_event;
	fvd->raise_event = false;
	spin_unlock_irq(&fvd->lock);
	if (event)
		dm_table_event(fvd->ti->table);
	if (commit)
		fvd_commit(fvd, false, false);
}

/* ---- dm target interface ---- */

static int fvd_map_flush(struct fvd_target *fvd, struct bio *bio)
{
	unsigned long flags;

	spin_lock_irqsave(&fvd->lock, flags);
	if (fvd_meta_clean(&fvd->meta)) {
		/* No bit waits for a commit: flushing the data is enough. */
		spin_unlock_irqrestore(&fvd->lock, flags);
		bio_set_dev(bio, fvd->data_dev->bdev);
		return DM_MAPIO_REMAPPED;
	}
	bio_list_add(&fvd->commit_waiters, bio);
	spin_unlock_irqrestore(&fvd->lock, flags);
	fvd_wake_worker(fvd);
	return DM_MAPIO_SUBMITTED;
}

static int fvd_map_read(struct fvd_target *fvd, struct bio *bio)
{
	const struct fvd_sb_info *sb = &fvd->meta.sb;
	sector_t sector = fvd_bio_sector(fvd, bio);
	sector_t origin_end = fvd->origin_dev ? sb->origin_sectors : 0;

	u64 block = fvd_sector_to_block(sb, sector);
	unsigned long flags;
	bool local;

	if (fvd->compact) {
		/* Discards clear bits and table entries: look up under the lock. */
		spin_lock_irqsave(&fvd->lock, flags);
		local = fvd_meta_present(&fvd->meta, block);
		if (local)
			fvd_remap_locked(fvd, bio);
		spin_unlock_irqrestore(&fvd->lock, flags);
		if (local)
			return DM_MAPIO_REMAPPED;
	} else if (fvd_meta_present(&fvd->meta, block)) {
		/*
		 * No lock: without a chunk table, bits are only ever set (a
		 * load replaces the whole map before the first bio).  A read
		 * racing with the first write of a block may see the old
		 * content, as it may on any disk.
		 */
		fvd_remap_data(fvd, bio);
		return DM_MAPIO_REMAPPED;
	}
	if (sector >= origin_end) {
		zero_fill_bio(bio);
		bio_endio(bio);
		return DM_MAPIO_SUBMITTED;
	}
	if (sector + bio_sectors(bio) > origin_end)
		dm_accept_partial_bio(bio, origin_end - sector);
	if (fvd->copy_on_read && READ_ONCE(fvd->mode) == FVD_MODE_WRITE &&
	    READ_ONCE(fvd->cor_inflight) < fvd->max_cor_inflight) {
		spin_lock_irqsave(&fvd->lock, flags);
		bio_list_add(&fvd->deferred, bio);
		spin_unlock_irqrestore(&fvd->lock, flags);
		fvd_wake_worker(fvd);
		return DM_MAPIO_SUBMITTED;
	}
	fvd_remap_origin(fvd, bio);
	return DM_MAPIO_REMAPPED;
}

static int fvd_map_write(struct fvd_target *fvd, struct bio *bio)
{
	struct fvd_bio_ctx *ctx = dm_per_bio_data(bio, sizeof(*ctx));
	enum fvd_mode mode = READ_ONCE(fvd->mode);
	u64 block = fvd_bio_block(fvd, bio);
	unsigned long flags;

	if (!fvd->writable || mode == FVD_MODE_FAIL)
		return DM_MAPIO_KILL;

	/* The common case needs no lock: see fvd_map_read(). */
	if (!fvd->compact && !(bio->bi_opf & REQ_FUA) &&
	    fvd_bit_test(fvd->meta.bits.live, block)) {
		fvd_remap_data(fvd, bio);
		return DM_MAPIO_REMAPPED;
	}

	spin_lock_irqsave(&fvd->lock, flags);
	if (fvd_bit_test(fvd->meta.bits.live, block)) {
		ctx->needs_commit = fvd_fua_needs_commit(fvd, bio, block);
		if (ctx->needs_commit && fvd->mode != FVD_MODE_WRITE) {
			spin_unlock_irqrestore(&fvd->lock, flags);
			return DM_MAPIO_KILL;
		}
		fvd_remap_locked(fvd, bio);
		spin_unlock_irqrestore(&fvd->lock, flags);
		return DM_MAPIO_REMAPPED;
	}
	if (fvd->mode != FVD_MODE_WRITE) {
		spin_unlock_irqrestore(&fvd->lock, flags);
		return DM_MAPIO_KILL;
	}
	bio_list_add(&fvd->deferred, bio);
	spin_unlock_irqrestore(&fvd->lock, flags);
	fvd_wake_worker(fvd);
	return DM_MAPIO_SUBMITTED;
}

/* Compact images only: the worker unmaps the chunks. */
static int fvd_map_discard(struct fvd_target *fvd, struct bio *bio)
{
	unsigned long flags;

	if (!fvd->writable || READ_ONCE(fvd->mode) != FVD_MODE_WRITE)
		return DM_MAPIO_KILL;
	spin_lock_irqsave(&fvd->lock, flags);
	bio_list_add(&fvd->deferred, bio);
	spin_unlock_irqrestore(&fvd->lock, flags);
	fvd_wake_worker(fvd);
	return DM_MAPIO_SUBMITTED;
}

/*
 * dm core does not cut bios at block boundaries, so that big I/O to local
 * data costs what it costs on the data device.  A bio over blocks that are
 * all local goes to the data device whole; a read over blocks that all come
 * from the origin, with no copy-on-read to do (none at all, or, on a compact
 * image, chunks not mapped yet), goes there whole.  The tests
 * are those of the one-block paths, without the lock: see fvd_map_read().
 * Any other bio is cut at the end of its first block and dm core maps the
 * rest as a new bio, so the one-block paths only ever see one block.
 * Returns true when the bio was remapped whole.
 */
static bool fvd_map_span(struct fvd_target *fvd, struct bio *bio)
{
	const struct fvd_sb_info *sb = &fvd->meta.sb;
	sector_t sector = fvd_bio_sector(fvd, bio);
	sector_t end = sector + bio_sectors(bio);
	sector_t origin_end = fvd->origin_dev ? sb->origin_sectors : 0;
	u64 first = fvd_sector_to_block(sb, sector);
	u64 last = fvd_sector_to_block(sb, end - 1);
	bool read = bio_data_dir(bio) == READ;
	enum fvd_mode mode = READ_ONCE(fvd->mode);
	u64 block;

	if (first == last)
		return false;
	/* Compact images: consecutive blocks may lie in distant chunks. */
	if (!fvd->compact &&
	    (read || (fvd->writable && mode != FVD_MODE_FAIL &&
		      !(bio->bi_opf & REQ_FUA)))) {
		for (block = first; block <= last; block++)
			if (read ? !fvd_meta_present(&fvd->meta, block) :
				   !fvd_bit_test(fvd->meta.bits.live, block))
				break;
		if (block > last) {
			fvd_remap_data(fvd, bio);
			return true;
		}
	}
	if (read && end <= origin_end) {
		bool copy = fvd->copy_on_read && mode == FVD_MODE_WRITE;

		/* Compact images copy on read only into chunks already mapped. */
		for (block = first; block <= last; block++)
			if (fvd_meta_present(&fvd->meta, block) ||
			    (copy && (!fvd->compact ||
				      fvd_table_get(fvd->meta.table.live,
						    fvd_block_chunk(sb, block)) !=
				      FVD_CHUNK_UNMAPPED)))
				break;
		if (block > last) {
			fvd_remap_origin(fvd, bio);
			return true;
		}
	}
	dm_accept_partial_bio(bio, fvd_block_start(sb, first) +
			      fvd_block_len(sb, first) - sector);
	return false;
}

static int fvd_map(struct dm_target *ti, struct bio *bio)
{
	struct fvd_target *fvd = ti->private;
	struct fvd_bio_ctx *ctx = dm_per_bio_data(bio, sizeof(*ctx));

	ctx->op = NULL;
	ctx->needs_commit = false;
	ctx->epoch = -1;
	ctx->discard_next = 0;
	ctx->origin_read = false;
	ctx->origin_held = false;

	if (bio->bi_opf & REQ_PREFLUSH)
		return fvd_map_flush(fvd, bio);
	if (bio_op(bio) == REQ_OP_DISCARD)
		return fvd_map_discard(fvd, bio);
	if (fvd_map_span(fvd, bio))
		return DM_MAPIO_REMAPPED;
	if (bio_data_dir(bio) == READ)
		return fvd_map_read(fvd, bio);
	return fvd_map_write(fvd, bio);
}

/* ---- origin_error_mode queue ---- */

#define FVD_ORIGIN_RETRY	HZ	/* between two tries of held bios */

/*
 * end_io: the origin read @bio depends on failed with *@error.  Hold the
 * bio for a retry until origin_queue_timeout has passed since its first
 * failure (checked when a retry fails); while suspending, hand it back to
 * dm (noflush) or fail it.  Returns DM_ENDIO_INCOMPLETE when held.
 */
static int fvd_origin_read_failed(struct fvd_target *fvd, struct bio *bio,
				  blk_status_t *error)
{
	struct fvd_bio_ctx *ctx = fvd_bio_ctx(bio);
	unsigned long flags;
	bool first;

	/* A medium or target error will not go away by waiting. */
	if (!blk_path_error(*error))
		return DM_ENDIO_DONE;
	spin_lock_irqsave(&fvd->lock, flags);
	/* As for writes held for space: see fvd_map_chunk(). */
	if (fvd->suspending && dm_noflush_suspending(fvd->ti)) {
		spin_unlock_irqrestore(&fvd->lock, flags);
		*error = BLK_STS_DM_REQUEUE;
		return DM_ENDIO_DONE;
	}
	if (fvd->suspending && !fvd->suspend_noflush) {
		spin_unlock_irqrestore(&fvd->lock, flags);
		return DM_ENDIO_DONE;
	}
	if (ctx->origin_held && time_after_eq(jiffies, ctx->origin_deadline)) {
		spin_unlock_irqrestore(&fvd->lock, flags);
		DMERR_LIMIT("%s: the origin read for sectors %llu+%u still fails after %u s (origin_queue_timeout): failing the I/O",
			    dm_table_device_name(fvd->ti->table),
			    (unsigned long long)ctx->origin_bi_iter.bi_sector,
			    ctx->origin_bi_iter.bi_size >> SECTOR_SHIFT,
			    fvd->args.origin_queue_timeout);
		return DM_ENDIO_DONE;
	}
	first = false;
	if (!ctx->origin_held) {
		ctx->origin_held = true;
		ctx->origin_deadline = jiffies + fvd->args.origin_queue_timeout * HZ;
		first = !fvd->nr_origin_held++;
		fvd->raise_event |= first;
	}
	/* As it was before its first submission to the origin. */
	bio->bi_flags = ctx->origin_bi_flags;
	atomic_set(&bio->__bi_remaining, ctx->origin_bi_remaining);
	bio->bi_iter = ctx->origin_bi_iter;
	bio->bi_status = BLK_STS_OK;
	bio_list_add(&fvd->origin_held, bio);
	if (!delayed_work_pending(&fvd->origin_retry))
		queue_delayed_work(fvd->wq, &fvd->origin_retry, FVD_ORIGIN_RETRY);
	spin_unlock_irqrestore(&fvd->lock, flags);
	if (first) {
		DMWARN_LIMIT("%s: origin read failed: guest I/O held for up to %u s (origin_error_mode queue)",
			     dm_table_device_name(fvd->ti->table),
			     fvd->args.origin_queue_timeout);
		fvd_wake_worker(fvd);
	}
	return DM_ENDIO_INCOMPLETE;
}

/* end_io: a bio once held completes for good; the last raises an event. */
static void fvd_origin_held_done(struct fvd_target *fvd)
{
	unsigned long flags;
	bool last;

	spin_lock_irqsave(&fvd->lock, flags);
	last = !--fvd->nr_origin_held;
	fvd->raise_event |= last;
	spin_unlock_irqrestore(&fvd->lock, flags);
	if (last)
		fvd_wake_worker(fvd);
}

/*
 * A held read: from the data device if its block became local meanwhile
 * (a read within one block; larger ones were all absent and go on to the
 * origin), else straight from the origin, with no copy this time.
 */
static void fvd_origin_retry_read(struct fvd_target *fvd, struct bio *bio)
{
	const struct fvd_sb_info *sb = &fvd->meta.sb;
	sector_t sector = fvd_bio_sector(fvd, bio);
	u64 block = fvd_sector_to_block(sb, sector);
	bool local = false;

	spin_lock_irq(&fvd->lock);
	if (fvd_sector_to_block(sb, sector + bio_sectors(bio) - 1) == block &&
	    fvd_meta_present(&fvd->meta, block)) {
		fvd_remap_locked(fvd, bio);
		local = true;
	}
	spin_unlock_irq(&fvd->lock);
	if (!local)
		fvd_remap_origin(fvd, bio);
	dm_submit_bio_remap(bio, NULL);
}

/*
 * Try the held bios again: reads as fvd_origin_retry_read() says, writes
 * through the worker, which copies their block anew.
 */
static void fvd_origin_retry_fn(struct work_struct *ws)
{
	struct fvd_target *fvd = container_of(to_delayed_work(ws),
					      struct fvd_target, origin_retry);
	struct bio_list bios, writes = BIO_EMPTY_LIST;
	struct bio *bio;

	spin_lock_irq(&fvd->lock);
	bios = fvd->origin_held;
	bio_list_init(&fvd->origin_held);
	spin_unlock_irq(&fvd->lock);
	while ((bio = bio_list_pop(&bios))) {
		if (bio_data_dir(bio) == READ)
			fvd_origin_retry_read(fvd, bio);
		else
			bio_list_add(&writes, bio);
	}
	if (bio_list_empty(&writes))
		return;
	spin_lock_irq(&fvd->lock);
	bio_list_merge(&fvd->deferred, &writes);
	spin_unlock_irq(&fvd->lock);
	fvd_wake_worker(fvd);
}

/* Presuspend: the held bios go back to dm (noflush) or fail now. */
static void fvd_origin_release_held(struct fvd_target *fvd)
{
	struct bio_list held;

	cancel_delayed_work_sync(&fvd->origin_retry);
	spin_lock_irq(&fvd->lock);
	held = fvd->origin_held;
	bio_list_init(&fvd->origin_held);
	spin_unlock_irq(&fvd->lock);
	fvd_complete_bios(&held, fvd->suspend_noflush ? BLK_STS_DM_REQUEUE :
							BLK_STS_IOERR);
}

static int fvd_end_io(struct dm_target *ti, struct bio *bio,
		      blk_status_t *error)
{
	struct fvd_target *fvd = ti->private;
	struct fvd_bio_ctx *ctx = dm_per_bio_data(bio, sizeof(*ctx));
	unsigned long flags;
	int epoch = ctx->epoch;

	if (ctx->origin_read) {
		ctx->origin_read = false;
		if (*error && fvd_origin_read_failed(fvd, bio, error) ==
			      DM_ENDIO_INCOMPLETE)
			return DM_ENDIO_INCOMPLETE;
	}
	if (epoch >= 0) {
		ctx->epoch = -1;
		if (atomic_dec_and_test(&fvd->io_count[epoch]))
			wake_up_var(&fvd->io_count[epoch]);
	}
	if (ctx->op) {
		struct fvd_op *op = ctx->op;

		ctx->op = NULL;
		*error = fvd_op_release(fvd, op, *error);
		mempool_free(op, &fvd->op_pool);
	}
	if (ctx->needs_commit && !*error) {
		/* Completed again with bio_endio() once the commit is done. */
		ctx->needs_commit = false;
		spin_lock_irqsave(&fvd->lock, flags);
		bio_list_add(&fvd->commit_waiters, bio);
		spin_unlock_irqrestore(&fvd->lock, flags);
		fvd_wake_worker(fvd);
		return DM_ENDIO_INCOMPLETE;
	}
	if (ctx->origin_held) {
		ctx->origin_held = false;
		fvd_origin_held_done(fvd);
	}
	return DM_ENDIO_DONE;
}

static void fvd_destroy(struct fvd_target *fvd)
{
	cancel_delayed_work_sync(&fvd->no_space_timer);
	cancel_delayed_work_sync(&fvd->origin_retry);
	fvd_prefetch_cancel(fvd);
	fvd_profile_exit(fvd);
	if (fvd->wq)
		destroy_workqueue(fvd->wq);
	if (fvd->copy_wq)
		destroy_workqueue(fvd->copy_wq);
	if (fvd->io_client)
		dm_io_client_destroy(fvd->io_client);
	mempool_destroy(fvd->buffer_pool);
	mempool_exit(&fvd->op_pool);
	fvd_journal_exit(&fvd->journal);
	fvd_meta_close(&fvd->meta);
	if (fvd->origin_dev)
		dm_put_device(fvd->ti, fvd->origin_dev);
	if (fvd->data_dev)
		dm_put_device(fvd->ti, fvd->data_dev);
	if (fvd->meta_dev)
		dm_put_device(fvd->ti, fvd->meta_dev);
	kfree(fvd);
}

/* Check the image against the devices of the table line. */
static int fvd_check_devices(struct fvd_target *fvd, char **error)
{
	const struct fvd_sb_info *sb = &fvd->meta.sb;
	struct block_device *data = fvd->data_dev->bdev;
	const char *name = dm_table_device_name(fvd->ti->table);

	if (sb->ro_compat_features & ~FVD_RO_COMPAT_SUPPORTED && fvd->writable) {
		*error = "Image has unknown read-only-compatible features: load it read_only";
		return -EINVAL;
	}
	if ((sb->flags & FVD_FLAG_NEEDS_CHECK) && fvd->writable) {
		DMERR("%s: image %s has needs_check set: a metadata error stopped its last use; run fvd-check --repair on it, or load it read_only",
		      name, fvd->args.meta_path);
		*error = "Image needs checking: run fvd-check --repair, or load it read_only";
		return -EINVAL;
	}
	if (fvd->ti->len != sb->virtual_sectors) {
		DMERR("%s: the table's length is %llu sectors, the image's virtual size %llu: give %llu",
		      name, (unsigned long long)fvd->ti->len, sb->virtual_sectors,
		      sb->virtual_sectors);
		*error = "Target length does not match the image's virtual size";
		return -EINVAL;
	}
	if (bdev_nr_sectors(fvd->meta_dev->bdev) < sb->metadata_sectors) {
		DMERR("%s: metadata device %s has %llu sectors, the image's metadata needs %llu",
		      name, fvd->args.meta_path,
		      (unsigned long long)bdev_nr_sectors(fvd->meta_dev->bdev),
		      sb->metadata_sectors);
		*error = "Metadata device is smaller than the image's metadata";
		return -EINVAL;
	}
	if (data == fvd->meta_dev->bdev && sb->data_offset < sb->metadata_sectors) {
		*error = "Image keeps its data on a separate device, but the table names the metadata device";
		return -EINVAL;
	}
	/* A compact image's data device may start without a single chunk. */
	if (bdev_nr_sectors(data) < sb->data_offset +
	    (fvd_compact(sb) ? 0 : sb->virtual_sectors)) {
		DMERR("%s: data device %s has %llu sectors, the image's data needs %llu (it starts at sector %llu)",
		      name, fvd->args.data_path, (unsigned long long)bdev_nr_sectors(data),
		      sb->data_offset + (fvd_compact(sb) ? 0 : sb->virtual_sectors),
		      sb->data_offset);
		*error = "Data device is too small for the image";
		return -EINVAL;
	}
	if (!fvd_compact(sb) &&
	    (fvd->args.error_if_no_space || fvd->args.have_low_water_mark ||
	     fvd->args.have_no_space_timeout)) {
		*error = "Space feature arguments need a compact image";
		return -EINVAL;
	}
	if (!fvd->origin_dev && sb->origin_sectors &&
	    !(sb->flags & FVD_FLAG_ALL_LOCAL)) {
		*error = "Image needs its origin device, but the table says '-'";
		return -EINVAL;
	}
	if (fvd->origin_dev && !sb->origin_sectors) {
		*error = "Image has no origin, but the table names an origin device";
		return -EINVAL;
	}
	if (fvd->origin_dev && (fvd->origin_dev->bdev == data ||
				fvd->origin_dev->bdev == fvd->meta_dev->bdev)) {
		*error = "Origin device must differ from the metadata and data devices";
		return -EINVAL;
	}
	if (fvd->origin_dev &&
	    bdev_nr_sectors(fvd->origin_dev->bdev) != sb->origin_sectors) {
		DMERR("%s: origin device %s has %llu sectors, the image was made over an origin of %llu%s%s",
		      name, fvd->args.origin_path,
		      (unsigned long long)bdev_nr_sectors(fvd->origin_dev->bdev),
		      sb->origin_sectors,
		      sb->origin_hint[0] ? ", recorded as " : "", sb->origin_hint);
		*error = "Origin device size does not match the image";
		return -EINVAL;
	}
	return 0;
}

/* Read @count sectors at @sector of @bdev into @buffer and wait. */
static int fvd_read_sync(struct fvd_target *fvd, struct block_device *bdev,
			 sector_t sector, sector_t count, void *buffer)
{
	struct dm_io_region region = {
		.bdev = bdev, .sector = sector, .count = count,
	};
	struct dm_io_request req = {
		.bi_opf = REQ_OP_READ,
		.client = fvd->io_client,
	};

	fvd_dm_io_buffer(&req, buffer);
	/* No notify function: dm_io() waits. */
	return fvd_dm_io(&req, 1, &region);
}

/* Each edge in one read: few round trips to an origin far away. */
#define FVD_FP_READ_SECTORS	FVD_FP_EDGE_SECTORS

/* The origin's fingerprint, read as fvd_origin_fp_ranges() says. */
static int fvd_origin_fingerprint(struct fvd_target *fvd, u32 *fingerprint)
{
	struct fvd_fp_range ranges[FVD_FP_MAX_RANGES];
	unsigned int n = fvd_origin_fp_ranges(fvd->meta.sb.origin_sectors, ranges);
	unsigned int i;
	sector_t sector, count, end;
	u32 crc = ~0U;
	void *buffer;
	int r = 0;

	buffer = kvmalloc(FVD_FP_READ_SECTORS << SECTOR_SHIFT, GFP_KERNEL);
	if (!buffer)
		return -ENOMEM;
	for (i = 0; i < n && !r; i++) {
		end = ranges[i].start + ranges[i].len;
		for (sector = ranges[i].start; sector < end && !r; sector += count) {
			count = min_t(sector_t, end - sector, FVD_FP_READ_SECTORS);
			r = fvd_read_sync(fvd, fvd->origin_dev->bdev, sector, count,
					  buffer);
			if (!r)
				crc = fvd_crc32c_update(crc, buffer,
							count << SECTOR_SHIFT);
		}
	}
	kvfree(buffer);
	*fingerprint = ~crc;
	return r;
}

/*
 * An image that records its origin's identity loads only over that origin:
 * the size is checked with the devices, the fingerprint here (about 2 MiB
 * read).  skip_origin_check trusts the table instead.
 */
static int fvd_check_origin_identity(struct fvd_target *fvd, char **error)
{
	const struct fvd_sb_info *sb = &fvd->meta.sb;
	const char *name = dm_table_device_name(fvd->ti->table);
	u32 fingerprint;
	int r;

	if (!fvd->origin_dev || !(sb->compat_features & FVD_COMPAT_ORIGIN_ID) ||
	    fvd->args.skip_origin_check)
		return 0;
	r = fvd_origin_fingerprint(fvd, &fingerprint);
	if (r) {
		DMERR("%s: cannot read origin device %s for its fingerprint (%d): check it, or add skip_origin_check to load the table without checking which origin it is",
		      name, fvd->args.origin_path, r);
		*error = "Error reading the origin device";
		return r;
	}
	if (fingerprint != sb->origin_fingerprint) {
		DMERR("%s: origin device %s is not the image's origin: %llu sectors with fingerprint %08x, the image was made over %llu sectors with fingerprint %08x (%s); name that origin, or add skip_origin_check if this one holds the same data",
		      name, fvd->args.origin_path,
		      (unsigned long long)bdev_nr_sectors(fvd->origin_dev->bdev), fingerprint,
		      sb->origin_sectors, sb->origin_fingerprint,
		      sb->origin_hint[0] ? sb->origin_hint : "no path recorded");
		*error = "Origin device is not the image's origin (fingerprint mismatch)";
		return -EINVAL;
	}
	return 0;
}

static int fvd_open_devices(struct fvd_target *fvd, char **error)
{
	struct dm_target *ti = fvd->ti;
	int r;

	r = fvd_get_device(ti, fvd->args.meta_path, fvd->writable,
			   &fvd->meta_dev);
	if (r) {
		*error = "Error opening metadata device";
		return r;
	}
	r = fvd_get_device(ti, fvd->args.data_path, fvd->writable,
			   &fvd->data_dev);
	if (r) {
		*error = "Error opening data device";
		return r;
	}
	return 0;
}

/* An all-local image never opens its origin again, even if the table names it. */
static int fvd_open_origin(struct fvd_target *fvd, char **error)
{
	int r;

	if (!fvd->args.origin_path ||
	    (fvd->meta.sb.flags & FVD_FLAG_ALL_LOCAL))
		return 0;
	r = fvd_get_device(fvd->ti, fvd->args.origin_path, false,
			   &fvd->origin_dev);
	if (r)
		*error = "Error opening origin device";
	return r;
}

static int fvd_alloc_resources(struct fvd_target *fvd, char **error)
{
	const char *name = dm_table_device_name(fvd->ti->table);
	size_t block_bytes = (size_t)fvd->meta.sb.block_sectors << SECTOR_SHIFT;

	if (fvd_meta_alloc(&fvd->meta)) {
		*error = "Cannot allocate the block bitmap";
		return -ENOMEM;
	}
	if (fvd_journal_init(&fvd->journal, &fvd->meta.sb)) {
		*error = "Cannot allocate the journal buffer";
		return -ENOMEM;
	}
	if (mempool_init_kmalloc_pool(&fvd->op_pool, FVD_RESERVED_OPS,
				      sizeof(struct fvd_op))) {
		*error = "Cannot allocate the block operation pool";
		return -ENOMEM;
	}
	fvd->buffer_pool = fvd_mempool_create_kvmalloc(FVD_RESERVED_BUFFERS,
						       block_bytes);
	if (!fvd->buffer_pool) {
		*error = "Cannot allocate the copy buffers";
		return -ENOMEM;
	}
	fvd->io_client = dm_io_client_create();
	if (IS_ERR(fvd->io_client)) {
		fvd->io_client = NULL;
		*error = "Cannot create the dm-io client";
		return -ENOMEM;
	}
	/* Two queues, each with a rescuer: a copy step never waits behind a worker. */
	fvd->wq = alloc_workqueue("dm-fvd-%s", WQ_MEM_RECLAIM | FVD_WQ_PERCPU,
				  0, name);
	fvd->copy_wq = alloc_workqueue("dm-fvd-copy-%s",
				       WQ_MEM_RECLAIM | FVD_WQ_PERCPU, 0, name);
	if (!fvd->wq || !fvd->copy_wq) {
		*error = "Cannot allocate the workqueues";
		return -ENOMEM;
	}
	return 0;
}

/*
 * <metadata dev> <data dev> <origin dev|-> [<#feature args> [<arg>]*]
 */
static int fvd_ctr(struct dm_target *ti, unsigned int argc, char **argv)
{
	struct fvd_target *fvd;
	enum fvd_sb_status status;
	int r;

	fvd = kzalloc(sizeof(*fvd), GFP_KERNEL);
	if (!fvd) {
		ti->error = "Cannot allocate the target context";
		return -ENOMEM;
	}
	fvd->ti = ti;
	ti->private = fvd;
	spin_lock_init(&fvd->lock);
	mutex_init(&fvd->commit_lock);
	bio_list_init(&fvd->deferred);
	bio_list_init(&fvd->commit_waiters);
	bio_list_init(&fvd->no_space);
	bio_list_init(&fvd->discard_wait);
	hash_init(fvd->ops);
	hash_init(fvd->chunk_ops);
	INIT_WORK(&fvd->worker, fvd_worker);
	INIT_DELAYED_WORK(&fvd->commit_timer, fvd_commit_timer_fn);
	INIT_DELAYED_WORK(&fvd->no_space_timer, fvd_no_space_timeout_fn);
	INIT_DELAYED_WORK(&fvd->origin_retry, fvd_origin_retry_fn);
	fvd_prefetch_setup(fvd);
	fvd_profile_setup(fvd);
	atomic64_set(&fvd->nr_copies, 0);
	atomic64_set(&fvd->nr_whole_writes, 0);
	atomic64_set(&fvd->nr_commits, 0);
	atomic_set(&fvd->io_count[0], 0);
	atomic_set(&fvd->io_count[1], 0);
	atomic_set(&fvd->nr_cor_ops, 0);
	atomic64_set(&fvd->nr_cor_bytes, 0);
	atomic64_set(&fvd->nr_origin_bytes, 0);

	r = fvd_parse_table_args(argc, argv, &fvd->args, &ti->error);
	if (r)
		goto bad;
	fvd->writable = !fvd->args.read_only && fvd_table_writable(ti);
	fvd->mode = FVD_MODE_WRITE;

	r = fvd_open_devices(fvd, &ti->error);
	if (r)
		goto bad;

	r = fvd_meta_open(&fvd->meta, fvd->meta_dev->bdev, &status);
	if (r == -EINVAL) {
		/* Never used behind the user's back: fvd-check tells which is right. */
		if (status == FVD_SB_BAD_CSUM && fvd_meta_backup_sb_valid(&fvd->meta))
			DMERR("%s: invalid superblock: %s; the backup superblock at sector %u is valid: fvd-check --repair restores the primary from it",
			      fvd->meta_dev->name, fvd_sb_status_str(status),
			      FVD_BACKUP_SB_SECTOR);
		else if (fvd_meta_backup_sb_valid(&fvd->meta))
			DMERR("%s: invalid superblock: %s; the backup superblock at sector %u is valid: if the image's start was overwritten, fvd-check --repair --backup-superblock restores it",
			      fvd->meta_dev->name, fvd_sb_status_str(status),
			      FVD_BACKUP_SB_SECTOR);
		else
			DMERR("%s: invalid superblock: %s", fvd->meta_dev->name,
			      fvd_sb_status_str(status));
		/* dm declares ti->error non-const but never writes it */
		ti->error = (char *)fvd_sb_status_str(status);
		goto bad;
	} else if (r) {
		ti->error = "Error reading the superblock";
		goto bad;
	}
	r = fvd_open_origin(fvd, &ti->error);
	if (r)
		goto bad;
	r = fvd_check_devices(fvd, &ti->error);
	if (r)
		goto bad;
	fvd->journaled = fvd->meta.sb.incompat_features & FVD_INCOMPAT_JOURNAL;
	fvd->copy_on_read = fvd->writable && fvd->origin_dev &&
			    !fvd->args.no_copy_on_read;
	fvd->max_cor_inflight = (u64)fvd->args.max_cor_inflight << 10;
	fvd->compact = fvd_compact(&fvd->meta.sb);
	fvd->all_local = fvd->meta.sb.flags & FVD_FLAG_ALL_LOCAL;
	fvd->needs_check = fvd->meta.sb.flags & FVD_FLAG_NEEDS_CHECK;
	r = fvd_alloc_resources(fvd, &ti->error);
	if (r)
		goto bad;
	r = fvd_check_origin_identity(fvd, &ti->error);
	if (r)
		goto bad;
	fvd_prefetch_init(fvd);
	r = fvd_profile_init(fvd);
	if (r) {
		ti->error = "Cannot allocate the profile's record (profile_seconds)";
		goto bad;
	}

	/* No max_io_len: fvd_map_span() cuts bios only where it must. */
	ti->num_flush_bios = 1;
	ti->flush_supported = true;
	if (fvd->compact) {
		/* Discards unmap chunks: the devices need not support them. */
		ti->num_discard_bios = 1;
		ti->discards_supported = true;
	}
	ti->per_io_data_size = sizeof(struct fvd_bio_ctx);
	ti->accounts_remapped_io = true;
	return 0;

bad:
	fvd_destroy(fvd);
	ti->private = NULL;
	return r;
}

/* Commit everything and mark the image cleanly shut down. */
static void fvd_shutdown(struct fvd_target *fvd)
{
	int r;

	if (!fvd->resumed)
		return;
	fvd->resumed = false;
	if (!fvd->writable || READ_ONCE(fvd->mode) != FVD_MODE_WRITE)
		return;
	fvd_commit(fvd, true, true);
	if (READ_ONCE(fvd->mode) != FVD_MODE_WRITE)
		return;
	fvd->meta.sb.flags |= FVD_FLAG_CLEAN;
	r = fvd_meta_write_sb(&fvd->meta);
	if (r)
		fvd_metadata_error(fvd, "superblock write", r);
}

static void fvd_dtr(struct dm_target *ti)
{
	struct fvd_target *fvd = ti->private;

	/* An active table is suspended (and so shut down) before this. */
	fvd_shutdown(fvd);
	fvd_destroy(fvd);
}

/*
 * Writes held for a free chunk would keep a suspend waiting forever, and
 * growing the data device needs one: hand them back to dm, which reissues
 * them after the resume when the suspend is a noflush one (and fails them
 * otherwise), as dm-thin does.  dm maps bios until it blocks I/O after
 * this (a flushing suspend's lock_fs writes among them): until the suspend
 * ends or is undone, a write that finds no space is not held either (see
 * fvd_map_chunk()).
 */
static void fvd_presuspend(struct dm_target *ti)
{
	struct fvd_target *fvd = ti->private;
	struct bio_list held;

	/* First, so that no write held from now on arms the timer again. */
	spin_lock_irq(&fvd->lock);
	fvd->suspending = true;
	fvd->suspend_noflush = dm_noflush_suspending(ti);
	spin_unlock_irq(&fvd->lock);
	cancel_delayed_work_sync(&fvd->no_space_timer);
	fvd_origin_release_held(fvd);
	fvd_prefetch_suspend(fvd);
	spin_lock_irq(&fvd->lock);
	held = fvd->no_space;
	bio_list_init(&fvd->no_space);
	/* A write that still finds no space after the resume waits anew. */
	fvd->out_of_space = fvd->no_space_expired;
	spin_unlock_irq(&fvd->lock);
	fvd_complete_bios(&held, BLK_STS_DM_REQUEUE);
}

/*
 * The suspend failed after presuspend (lock_fs failed, or a signal ended
 * the wait for in-flight I/O): the device stays live, so does the target.
 */
static void fvd_presuspend_undo(struct dm_target *ti)
{
	struct fvd_target *fvd = ti->private;

	spin_lock_irq(&fvd->lock);
	fvd->suspending = false;
	spin_unlock_irq(&fvd->lock);
	fvd_prefetch_resume(fvd);
}

static void fvd_postsuspend(struct dm_target *ti)
{
	struct fvd_target *fvd = ti->private;

	cancel_delayed_work_sync(&fvd->commit_timer);
	/* Reads copied on read are complete; their data writes may not be. */
	flush_workqueue(fvd->wq);
	wait_var_event(&fvd->nr_cor_ops, !atomic_read(&fvd->nr_cor_ops));
	flush_workqueue(fvd->copy_wq);
	flush_workqueue(fvd->wq);
	fvd_profile_suspend(fvd);
	fvd_shutdown(fvd);
	spin_lock_irq(&fvd->lock);
	fvd->suspending = false;
	spin_unlock_irq(&fvd->lock);
}

/*
 * A writable image in use is not clean.  Before the resume lets the
 * prefetch go on (it sets the all-local flag) and under the lock of every
 * other superblock writer, so neither update is lost; a failure fails the
 * resume.
 */
static int fvd_mark_in_use(struct fvd_target *fvd)
{
	int r = 0;

	if (!fvd->writable || READ_ONCE(fvd->mode) != FVD_MODE_WRITE)
		return 0;
	mutex_lock(&fvd->commit_lock);
	if (fvd->meta.sb.flags & FVD_FLAG_CLEAN) {
		fvd->meta.sb.flags &= ~FVD_FLAG_CLEAN;
		r = fvd_meta_write_sb(&fvd->meta);
		if (r) {
			fvd->meta.sb.flags |= FVD_FLAG_CLEAN;
			DMERR("%s: cannot write the superblock (%d)",
			      dm_table_device_name(fvd->ti->table), r);
		}
	}
	mutex_unlock(&fvd->commit_lock);
	return r;
}

/*
 * The bitmap is read here rather than in the ctr: a table loaded while
 * another one is live over the same image must see what the live one
 * committed when it was suspended.
 */
static int fvd_preresume(struct dm_target *ti)
{
	struct fvd_target *fvd = ti->private;
	struct fvd_sb_info sb;
	enum fvd_sb_status status;
	struct fvd_replay replay;
	const char *changed;
	u64 was, now;
	int r;

	if (fvd->compact) {
		/* Every resume: the data device may have grown. */
		r = fvd_meta_set_capacity(&fvd->meta,
					  (bdev_nr_sectors(fvd->data_dev->bdev) -
					   fvd->meta.sb.data_offset) >>
					  fvd->meta.sb.chunk_shift, &fvd->lock);
		if (r) {
			DMERR("%s: %s", dm_table_device_name(ti->table),
			      r == -ENOSPC ? "the data device shrank below a chunk in use" :
			      "cannot allocate the chunk map");
			return r;
		}
	}
	if (fvd->loaded)
		return fvd_mark_in_use(fvd);
	r = fvd_meta_read_sb(&fvd->meta, &sb, &status);
	if (r) {
		DMERR("%s: cannot read back the superblock: %s",
		      dm_table_device_name(ti->table),
		      r == -EINVAL ? fvd_sb_status_str(status) : "I/O error");
		return r;
	}
	/* The table sized its buffers and checked its devices by the old one. */
	changed = fvd_sb_layout_change(&fvd->meta.sb, &sb, &was, &now);
	if (changed && !strcmp(changed, "uuid")) {
		DMERR("%s: the image was reformatted after the table was loaded (a new uuid): load the table again",
		      dm_table_device_name(ti->table));
		return -EINVAL;
	}
	if (changed) {
		DMERR("%s: the image was reformatted after the table was loaded (superblock %s was %llu, is %llu): load the table again",
		      dm_table_device_name(ti->table), changed, was, now);
		return -EINVAL;
	}
	/* The ctr left the origin closed because the image was all-local. */
	if (!fvd->origin_dev && sb.origin_sectors &&
	    !(sb.flags & FVD_FLAG_ALL_LOCAL)) {
		DMERR("%s: the image is no longer all-local, and the table has no origin: load the table again, with its origin",
		      dm_table_device_name(ti->table));
		return -EINVAL;
	}
	if ((sb.flags & FVD_FLAG_NEEDS_CHECK) && fvd->writable) {
		DMERR("%s: needs_check was set after the table was loaded: run fvd-check --repair, or load it read_only",
		      dm_table_device_name(ti->table));
		return -EINVAL;
	}
	fvd->meta.sb = sb;
	WRITE_ONCE(fvd->needs_check, sb.flags & FVD_FLAG_NEEDS_CHECK);
	/* A table loaded while the live one finished the prefetch. */
	fvd->all_local = sb.flags & FVD_FLAG_ALL_LOCAL;
	r = fvd_meta_load(&fvd->meta, &replay);
	if (r) {
		DMERR("%s: %s (%d)", dm_table_device_name(ti->table),
		      r == -ERANGE ? "the chunk table maps past the end of the data device" :
		      r == -EEXIST ? "the chunk table maps a physical chunk twice" :
		      r == -EUCLEAN ? "a local block lies in an unmapped chunk" :
		      "cannot read the bitmap, table and journal", r);
		return r;
	}
	if (replay.nr_commits)
		DMINFO("%s: replayed %llu journal commits (%llu blocks, %llu records) after sequence %llu; end of journal: %s",
		       dm_table_device_name(ti->table), replay.nr_commits,
		       replay.head, replay.nr_records, sb.checkpoint_seq,
		       replay.full ? "region full" :
		       fvd_jblock_status_str(replay.stop));
	if (replay.nr_newer && fvd->writable) {
		DMERR("%s: the journal is damaged: the replay stopped at journal block %llu (%s), but %llu valid blocks of later commits follow from block %llu (up to sequence %llu); they hold acknowledged writes, so the image is left untouched: load it read_only, or drop them with fvd-check --repair",
		      dm_table_device_name(ti->table), replay.head,
		      fvd_jblock_status_str(replay.stop), replay.nr_newer,
		      replay.first_newer, replay.max_seq);
		return -EUCLEAN;
	}
	if (replay.nr_newer)
		DMWARN("%s: the journal is damaged at block %llu: %llu blocks of later commits are ignored",
		       dm_table_device_name(ti->table), replay.head, replay.nr_newer);
	r = fvd_profile_load(fvd);
	if (r)
		return r;

	/* The checkpoint below takes a number no block in the region has. */
	fvd->journal.next_seq = max(replay.next_seq, replay.max_seq);
	fvd->journal.head = replay.head;

	/*
	 * Writable: start from an empty journal.  The checkpoint also takes
	 * the sequence number a torn commit at the head may have used.
	 */
	if (fvd->writable && fvd->journaled) {
		fvd->meta.sb.flags &= ~FVD_FLAG_CLEAN;
		r = fvd_checkpoint(fvd);
		if (r) {
			DMERR("%s: cannot checkpoint the replayed journal (%d)",
			      dm_table_device_name(ti->table), r);
			return r;
		}
	}
	fvd->loaded = true;
	return fvd_mark_in_use(fvd);
}

static void fvd_resume(struct dm_target *ti)
{
	struct fvd_target *fvd = ti->private;

	fvd->resumed = true;
	if (fvd->compact) {
		spin_lock_irq(&fvd->lock);
		if (fvd->meta.nr_free) {
			fvd->out_of_space = false;
			fvd->no_space_expired = false;
		}
		if (fvd->meta.nr_free >= fvd->args.low_water_mark)
			fvd->low_water_raised = false;
		spin_unlock_irq(&fvd->lock);
	}
	fvd_profile_resume(fvd);
	fvd_prefetch_resume(fvd);
	if (fvd->writable && READ_ONCE(fvd->mode) == FVD_MODE_WRITE)
		queue_delayed_work(fvd->wq, &fvd->commit_timer, FVD_COMMIT_PERIOD);
}

static void fvd_status(struct dm_target *ti, status_type_t type,
		       unsigned int status_flags, char *result,
		       unsigned int maxlen)
{
	struct fvd_target *fvd = ti->private;
	struct fvd_prefetch *pf = &fvd->prefetch;
	unsigned int sz = 0, nr_features, id;
	unsigned long flags;
	u64 nr_local, nr_fresh, nr_free, nr_phys, read_rate, write_rate, pauses;
	enum fvd_prefetch_state prefetch;
	enum fvd_prefetch_cause cause;
	const char *space;

	switch (type) {
	case STATUSTYPE_INFO:
		spin_lock_irqsave(&fvd->lock, flags);
		nr_local = fvd->meta.nr_local;
		nr_fresh = fvd->meta.nr_fresh;
		nr_free = fvd->meta.nr_free;
		nr_phys = fvd->meta.nr_phys;
		space = fvd->out_of_space ? "out_of_data_space" :
			fvd->low_water_raised ? "low_water" : "ok";
		prefetch = pf->state;
		cause = pf->cause;
		read_rate = pf->read_rate.avg;
		write_rate = pf->write_rate.avg;
		pauses = pf->nr_pauses;
		spin_unlock_irqrestore(&fvd->lock, flags);
		DMEMIT("%s %u %llu/%llu %lld %lld %lld %lld %lld %lld",
		       fvd_mode_name(READ_ONCE(fvd->mode)),
		       fvd->meta.sb.block_sectors, nr_local,
		       fvd->meta.sb.nr_blocks,
		       (long long)atomic64_read(&fvd->nr_copies),
		       (long long)atomic64_read(&fvd->nr_whole_writes),
		       (long long)atomic64_read(&fvd->nr_commits),
		       (long long)atomic64_read(&fvd->journal.nr_writes),
		       (long long)atomic64_read(&fvd->journal.nr_written_blocks),
		       (long long)atomic64_read(&fvd->journal.nr_checkpoints));
		if (fvd->compact)
			DMEMIT(" %llu/%llu %s", nr_free, nr_phys, space);
		else
			DMEMIT(" - -");
		DMEMIT(" %llu %lld %lld", nr_fresh,
		       (long long)atomic64_read(&fvd->nr_cor_bytes),
		       (long long)atomic64_read(&fvd->nr_origin_bytes));
		DMEMIT(" %s %lld %llu %llu %llu",
		       fvd_prefetch_state_name(prefetch),
		       (long long)atomic64_read(&pf->nr_bytes),
		       read_rate >> 10, write_rate >> 10, pauses);
		/* Fields are only ever appended from here on: fvd-status.h. */
		DMEMIT(" %s", fvd_prefetch_cause_name(cause));
		DMEMIT(" %s", READ_ONCE(fvd->needs_check) ? "needs_check" : "-");
		DMEMIT(" %u", READ_ONCE(fvd->nr_origin_held));
		break;
	case STATUSTYPE_TABLE:
		DMEMIT("%s %s %s", fvd->meta_dev->name, fvd->data_dev->name,
		       fvd->origin_dev ? fvd->origin_dev->name : "-");
		nr_features = fvd->args.read_only + fvd->args.no_copy_on_read +
			      2 * fvd->args.have_max_cor_inflight +
			      fvd->args.error_if_no_space +
			      2 * fvd->args.have_low_water_mark +
			      2 * fvd->args.have_no_space_timeout +
			      fvd->args.no_prefetch + fvd->args.skip_origin_check +
			      2 * fvd->args.have_origin_error_mode +
			      2 * fvd->args.have_origin_queue_timeout +
			      2 * hweight_long(READ_ONCE(pf->given));
		if (nr_features)
			DMEMIT(" %u", nr_features);
		if (fvd->args.read_only)
			DMEMIT(" read_only");
		if (fvd->args.no_copy_on_read)
			DMEMIT(" no_copy_on_read");
		if (fvd->args.have_max_cor_inflight)
			DMEMIT(" max_cor_inflight %u", fvd->args.max_cor_inflight);
		if (fvd->args.error_if_no_space)
			DMEMIT(" error_if_no_space");
		if (fvd->args.have_low_water_mark)
			DMEMIT(" low_water_mark %llu", fvd->args.low_water_mark);
		if (fvd->args.have_no_space_timeout)
			DMEMIT(" no_space_timeout %u", fvd->args.no_space_timeout);
		if (fvd->args.no_prefetch)
			DMEMIT(" no_prefetch");
		if (fvd->args.skip_origin_check)
			DMEMIT(" skip_origin_check");
		if (fvd->args.have_origin_error_mode)
			DMEMIT(" origin_error_mode %s",
			       fvd->args.origin_queue ? "queue" : "fail");
		if (fvd->args.have_origin_queue_timeout)
			DMEMIT(" origin_queue_timeout %u", fvd->args.origin_queue_timeout);
		/* Including those changed by "set" messages since. */
		for (id = 0; id < FVD_NR_TUNABLES; id++)
			if (READ_ONCE(pf->given) & BIT(id))
				DMEMIT(" %s %u", fvd_tunables[id].name,
				       READ_ONCE(pf->tunables[id]));
		break;
	case STATUSTYPE_IMA:
		*result = '\0';
		break;
	}
}

static int fvd_message(struct dm_target *ti, unsigned int argc, char **argv,
		       char *result, unsigned int maxlen)
{
	if (argc >= 1 && !strcasecmp(argv[0], "profile"))
		return fvd_profile_message(ti->private, argc, argv, result, maxlen);
	return fvd_prefetch_message(ti->private, argc, argv);
}

static int fvd_iterate_devices(struct dm_target *ti,
			       iterate_devices_callout_fn fn, void *data)
{
	struct fvd_target *fvd = ti->private;
	sector_t data_len = ti->len;
	int r;


	/* A compact image's data device holds what was allocated so far. */
	if (fvd->compact)
		data_len = bdev_nr_sectors(fvd->data_dev->bdev) -
			   fvd->meta.sb.data_offset;
	r = fn(ti, fvd->data_dev, fvd->meta.sb.data_offset, data_len, data);
	if (!r && fvd->origin_dev)
		r = fn(ti, fvd->origin_dev, 0, fvd->meta.sb.origin_sectors, data);
	return r;
}

static void fvd_io_hints(struct dm_target *ti, struct queue_limits *limits)
{
	struct fvd_target *fvd = ti->private;

	/* Whole-block writes to absent blocks need no copy from the origin. */
	limits->io_opt = fvd->meta.sb.block_sectors << SECTOR_SHIFT;
	if (fvd->compact) {
		/* Only whole chunks are freed. */
		limits->discard_granularity = fvd->meta.sb.chunk_sectors << SECTOR_SHIFT;
		limits->max_discard_sectors = FVD_MAX_DISCARD_SECTORS;
		limits->max_hw_discard_sectors = FVD_MAX_DISCARD_SECTORS;
	}
}

static struct target_type fvd_target_type = {
	.name = "fvd",
	.version = {FVD_VERSION_MAJOR, FVD_VERSION_MINOR, FVD_VERSION_PATCH},
	.module = THIS_MODULE,
	.ctr = fvd_ctr,
	.dtr = fvd_dtr,
	.map = fvd_map,
	.end_io = fvd_end_io,
	.presuspend = fvd_presuspend,
	.presuspend_undo = fvd_presuspend_undo,
	.postsuspend = fvd_postsuspend,
	.preresume = fvd_preresume,
	.resume = fvd_resume,
	.status = fvd_status,
	.message = fvd_message,
	.iterate_devices = fvd_iterate_devices,
	.io_hints = fvd_io_hints,
};

static int __init dm_fvd_init(void)
{
	int r = dm_register_target(&fvd_target_type);

	if (r)
		DMERR("register failed %d", r);
	return r;
}

static void __exit dm_fvd_exit(void)
{
	dm_unregister_target(&fvd_target_type);
}

module_init(dm_fvd_init);
module_exit(dm_fvd_exit);

MODULE_DESCRIPTION(DM_NAME " FVD target: copy-on-write virtual disk over a read-only origin");
MODULE_AUTHOR("dm-fvd developers");
MODULE_LICENSE("GPL");
MODULE_VERSION(FVD_VERSION);
