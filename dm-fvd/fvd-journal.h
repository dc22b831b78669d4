/* SPDX-License-Identifier: GPL-2.0 */
/*
 * dm-fvd metadata journal: commits appended to the journal region, replayed
 * at load.  The block format and the replay rules are in fvd-format.[ch].
 */
#ifndef FVD_JOURNAL_H
#define FVD_JOURNAL_H

#include <linux/atomic.h>
#include <linux/dm-io.h>
#include <linux/mm.h>
#include <linux/types.h>
#include "fvd-format.h"

struct block_device;
struct dm_io_client;
struct fvd_meta;

struct fvd_journal {
	struct fvd_jbuilder builder;	/* the commit being prepared */
	u64 nr_blocks;			/* size of the region */
	u64 head;			/* where the next commit goes */
	u64 next_seq;

	atomic64_t nr_writes;		/* journal commits written */
	atomic64_t nr_written_blocks;
	atomic64_t nr_checkpoints;
};

/* dm-io describes kmalloc and vmalloc buffers differently. */
static inline void fvd_dm_io_buffer(struct dm_io_request *req, void *buf)
{
	if (is_vmalloc_addr(buf)) {
		req->mem.type = DM_IO_VMA;
		req->mem.ptr.vma = buf;
	} else {
		req->mem.type = DM_IO_KMEM;
		req->mem.ptr.addr = buf;
	}
}

int fvd_journal_init(struct fvd_journal *journal, const struct fvd_sb_info *sb);
void fvd_journal_exit(struct fvd_journal *journal);
int fvd_journal_append(struct fvd_journal *journal, struct dm_io_client *client,
		       struct block_device *bdev, const struct fvd_sb_info *sb);
int fvd_journal_replay_meta(struct fvd_meta *meta, const struct fvd_sb_info *sb,
			    u8 *bits, u8 *table, struct fvd_replay *replay);

#endif /* FVD_JOURNAL_H */
