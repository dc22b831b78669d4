/* SPDX-License-Identifier: GPL-2.0 */
/*
 * dm-fvd target state, shared by the dm interface (dm-fvd-target.c) and the
 * background prefetch (fvd-prefetch.c).
 */
#ifndef FVD_TARGET_H
#define FVD_TARGET_H

#include <linux/bio.h>
#include <linux/dm-io.h>
#include <linux/blk_types.h>
#include <linux/hashtable.h>
#include <linux/mempool.h>
#include <linux/mutex.h>
#include <linux/spinlock.h>
#include <linux/workqueue.h>

#include "fvd-journal.h"
#include "fvd-meta.h"
#include "fvd-prefetch.h"
#include "fvd-profile.h"
#include "fvd-table.h"

#define FVD_OP_HASH_BITS	8

enum fvd_mode {
	FVD_MODE_WRITE,		/* normal operation */
	FVD_MODE_READ_ONLY,	/* metadata write failed: no new local blocks */
	FVD_MODE_FAIL,		/* metadata unusable: writes fail */
};

struct fvd_target {
	struct dm_target *ti;
	struct dm_dev *meta_dev;
	struct dm_dev *data_dev;
	struct dm_dev *origin_dev;
	struct fvd_table_args args;
	struct fvd_meta meta;
	struct fvd_journal journal;
	bool journaled;		/* image has FVD_INCOMPAT_JOURNAL */
	bool compact;		/* image has FVD_INCOMPAT_COMPACT */
	bool writable;		/* opened read-write and not read_only */
	bool needs_check;	/* the superblock on disk has FVD_FLAG_NEEDS_CHECK */
	bool copy_on_read;	/* writable, has an origin, no no_copy_on_read */
	bool all_local;		/* every block local: the origin is not used */
	bool loaded;		/* bitmap read since the table was loaded */
	bool resumed;

	enum fvd_mode mode;	/* READ_ONCE outside the lock */

	/* Protects the bitmaps, the lists and the op hash. */
	spinlock_t lock;
	struct bio_list deferred;	/* writes to absent blocks, discards */
	struct bio_list commit_waiters;	/* flushes and FUA writes */
	struct bio_list no_space;	/* writes waiting for a free chunk */
	struct bio_list discard_wait;	/* discards waiting for block writes */
	bool suspending;		/* from presuspend to postsuspend or undo */
	bool suspend_noflush;		/* that suspend is a noflush one */
	bool out_of_space;		/* no_space holds bios, or held ones failed */
	bool no_space_expired;		/* fail at once until the device grows */
	bool low_water_raised;
	bool commit_wanted;		/* worker: commit to free chunks */
	struct bio_list origin_held;	/* origin_error_mode queue: to retry */
	unsigned int nr_origin_held;	/* bios held or retried, not done */
	DECLARE_HASHTABLE(ops, FVD_OP_HASH_BITS);	/* by block */
	DECLARE_HASHTABLE(chunk_ops, FVD_OP_HASH_BITS);	/* compact: by chunk */
	unsigned long nr_ops;

	/* Compact images: bios mapped to the data device, per I/O epoch. */
	unsigned int io_epoch;		/* changed under both locks */
	atomic_t io_count[2];

	struct mutex commit_lock;
	struct workqueue_struct *wq;		/* worker and commits */
	struct workqueue_struct *copy_wq;	/* block copy steps */
	struct work_struct worker;
	struct delayed_work commit_timer;
	struct delayed_work no_space_timer;
	struct delayed_work origin_retry;
	bool raise_event;		/* worker: dm event outside the lock */

	mempool_t op_pool;
	mempool_t *buffer_pool;
	struct dm_io_client *io_client;

	atomic64_t nr_copies;		/* partial writes merged with a copy */
	atomic64_t nr_whole_writes;	/* absent blocks overwritten whole */
	atomic64_t nr_commits;

	u64 cor_inflight;		/* bytes, under the lock */
	u64 max_cor_inflight;		/* bytes */
	atomic_t nr_cor_ops;		/* waited for at suspend */
	atomic64_t nr_cor_bytes;	/* copied on read */
	atomic64_t nr_origin_bytes;	/* read from the origin */

	struct fvd_prefetch prefetch;
	struct fvd_profile profile;
};

/* An absent block on its way to becoming local. */
struct fvd_op {
	struct hlist_node node;
	struct hlist_node chunk_node;
	struct fvd_target *fvd;
	u64 block;
	sector_t data_sector;		/* of the block, fixed when the op starts */
	struct bio *bio;		/* partial write being merged, or read */
	bool fua;
	bool copy_on_read;		/* makes the block fresh, not local */
	struct bio_list waiters;	/* I/O to the block that came later */
	void *buffer;
	struct work_struct work;
	blk_status_t status;
};

struct fvd_op *fvd_find_op(struct fvd_target *fvd, u64 block);
void fvd_op_start(struct fvd_target *fvd, struct fvd_op *op, u64 block);
blk_status_t fvd_op_release(struct fvd_target *fvd, struct fvd_op *op,
			    blk_status_t status);
sector_t fvd_block_data_sector(struct fvd_target *fvd, u64 block);
void fvd_buffer_io_async(struct fvd_target *fvd, blk_opf_t opf,
			 struct block_device *bdev, sector_t sector,
			 sector_t count, void *buffer, io_notify_fn done,
			 void *context);
void fvd_commit(struct fvd_target *fvd, bool force_data_flush, bool checkpoint);
void fvd_metadata_error(struct fvd_target *fvd, const char *what, int r);

#endif /* FVD_TARGET_H */
