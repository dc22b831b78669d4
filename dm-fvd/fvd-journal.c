// SPDX-License-Identifier: GPL-2.0
/*
 * dm-fvd metadata journal.
 *
 * A journal commit is one sequential FUA write of up to
 * FVD_JOURNAL_MAX_COMMIT_BLOCKS journal blocks at the head of the journal,
 * issued after the data device flush; it lists the table entries that
 * changed and the runs of blocks that became local (a larger commit of the
 * target takes several).  The bitmap blocks at home are only written by
 * checkpoints (journal full, clean shutdown, load), which the target
 * drives.  Journal blocks are written with dm-io and
 * read through dm-bufio at load only, then forgotten, so a cached copy never
 * hides a later write.
 */
#include <linux/dm-bufio.h>
#include <linux/dm-io.h>
#include <linux/err.h>
#include <linux/minmax.h>
#include <linux/sched.h>
#include <linux/slab.h>

#include "fvd-compat.h"
#include "fvd-journal.h"
#include "fvd-meta.h"

#define FVD_JOURNAL_READAHEAD	64	/* journal blocks */

int fvd_journal_init(struct fvd_journal *journal, const struct fvd_sb_info *sb)
{
	memset(journal, 0, sizeof(*journal));
	journal->nr_blocks = fvd_journal_blocks(sb);
	journal->next_seq = sb->checkpoint_seq + 1;
	if (!(sb->incompat_features & FVD_INCOMPAT_JOURNAL))
		return 0;
	journal->builder.max_blocks = FVD_JOURNAL_MAX_COMMIT_BLOCKS;
	journal->builder.buf = kvmalloc(FVD_JOURNAL_MAX_COMMIT_BLOCKS *
					FVD_JOURNAL_BLOCK_SIZE, GFP_KERNEL);
	return journal->builder.buf ? 0 : -ENOMEM;
}

void fvd_journal_exit(struct fvd_journal *journal)
{
	kvfree(journal->builder.buf);
	journal->builder.buf = NULL;
}

/* Write the prepared commit at the head of the journal, with FUA. */
int fvd_journal_append(struct fvd_journal *journal, struct dm_io_client *client,
		       struct block_device *bdev, const struct fvd_sb_info *sb)
{
	struct fvd_jbuilder *jb = &journal->builder;
	const sector_t per_block = FVD_JOURNAL_BLOCK_SIZE >> SECTOR_SHIFT;
	struct dm_io_region region = {
		.bdev = bdev,
		.sector = sb->journal_offset + journal->head * per_block,
		.count = jb->nr_blocks * per_block,
	};
	struct dm_io_request req = {
		.bi_opf = REQ_OP_WRITE | REQ_SYNC | REQ_FUA,
		.client = client,
	};
	int r;

	fvd_dm_io_buffer(&req, jb->buf);
	fvd_jbuilder_seal(jb, journal->next_seq);
	r = fvd_dm_io(&req, 1, &region);
	if (r)
		return r;
	journal->head += jb->nr_blocks;
	journal->next_seq++;
	atomic64_inc(&journal->nr_writes);
	atomic64_add(jb->nr_blocks, &journal->nr_written_blocks);
	return 0;
}

struct fvd_replay_context {
	struct fvd_meta *meta;
	const struct fvd_sb_info *sb;
	u8 *bits;
	u8 *table;
	struct dm_buffer *buf;
};

static sector_t fvd_journal_mblock(const struct fvd_sb_info *sb, u64 index)
{
	return sb->journal_offset / FVD_META_BLOCK_SECTORS + index;
}

static int fvd_replay_read(void *context, u64 index, const void **block)
{
	struct fvd_replay_context *ctx = context;
	u64 left = fvd_journal_blocks(ctx->sb) - index;
	void *data;

	if (ctx->buf) {
		dm_bufio_release(ctx->buf);
		ctx->buf = NULL;
	}
	if (!(index % FVD_JOURNAL_READAHEAD)) {
		dm_bufio_prefetch(ctx->meta->bufio,
				  fvd_journal_mblock(ctx->sb, index),
				  min_t(u64, left, FVD_JOURNAL_READAHEAD));
		cond_resched();
	}
	data = dm_bufio_read(ctx->meta->bufio, fvd_journal_mblock(ctx->sb, index),
			     &ctx->buf);
	if (IS_ERR(data)) {
		ctx->buf = NULL;
		return PTR_ERR(data);
	}
	*block = data;
	return 0;
}

/* A record applied to the bitmap and table being loaded. */
static int fvd_replay_apply(void *context, const struct fvd_jrec *rec)
{
	struct fvd_replay_context *ctx = context;
	struct fvd_meta *meta = ctx->meta;
	u64 first = rec->start, last = rec->start + rec->count - 1, unused;
	int r;

	r = fvd_jrec_apply(&meta->sb, rec, ctx->bits, ctx->table);
	if (r || !rec->count)
		return r;
	/* Home blocks the record touched, or may have: written at the checkpoint. */
	if (rec->type == FVD_JREC_TABLE) {
		bitmap_set(meta->table.home_stale, fvd_meta_tblock_of(first),
			   fvd_meta_tblock_of(last) - fvd_meta_tblock_of(first) + 1);
		fvd_chunk_blocks(&meta->sb, first, &first, &unused);
		fvd_chunk_blocks(&meta->sb, last, &unused, &last);
		if (last == first)
			return 0;
		last--;
	}
	bitmap_set(meta->bits.home_stale, fvd_meta_mblock_of(first),
		   fvd_meta_mblock_of(last) - fvd_meta_mblock_of(first) + 1);
	return 0;
}

/*
 * Apply to the bitmap @bits and the table @table every journal commit newer
 * than @sb's checkpoint.  Sets the home_stale bit of each metadata block a
 * commit touched.
 */
int fvd_journal_replay_meta(struct fvd_meta *meta, const struct fvd_sb_info *sb,
			    u8 *bits, u8 *table, struct fvd_replay *replay)
{
	struct fvd_replay_context ctx = {
		.meta = meta, .sb = sb, .bits = bits, .table = table,
	};
	sector_t first = fvd_journal_mblock(sb, 0);
	u64 nr = fvd_journal_blocks(sb);
	int r;

	dm_bufio_forget_buffers(meta->bufio, first, nr);
	r = fvd_journal_replay(sb, fvd_replay_read, fvd_replay_apply, &ctx,
			       replay);
	if (ctx.buf)
		dm_bufio_release(ctx.buf);
	dm_bufio_forget_buffers(meta->bufio, first, nr);
	return r;
}
