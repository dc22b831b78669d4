// SPDX-License-Identifier: GPL-2.0
/*
 * libFuzzer target for journal replay, the code that reads the most
 * attacker-controlled metadata at load: the input is a journal region of up
 * to eight 4 KiB blocks.  With the low bit of the first byte set, every block
 * gets a valid magic and checksum so the fuzzer reaches the commit, sequence
 * and record rules rather than stopping at the checksum.  Whatever the input,
 * the replay must stay inside the region, only hand out records inside the
 * disk (and chunk table records only for compact images, their entries
 * readable to the last), and report counts that add up.
 */
#include <stdio.h>
#include <stdlib.h>

#include "fvd-format.h"

#define NR_JBLOCKS 8

struct journal {
	const struct fvd_sb_info *sb;
	uint8_t blocks[NR_JBLOCKS][FVD_JOURNAL_BLOCK_SIZE];
	uint64_t records;
	uint64_t entry_sum;
	uint8_t *bits;		/* exactly the bitmap and table the disk needs */
	uint8_t *table;
};

static int read_block(void *context, uint64_t index, const void **block)
{
	struct journal *j = context;

	if (index >= NR_JBLOCKS)
		abort();
	*block = j->blocks[index];
	return 0;
}

static int apply(void *context, const struct fvd_jrec *rec)
{
	struct journal *j = context;

	uint64_t limit = rec->type == FVD_JREC_TABLE ? j->sb->nr_chunks :
			 j->sb->nr_blocks;

	if ((rec->type != FVD_JREC_BITMAP_SET && rec->type != FVD_JREC_TABLE) ||
	    !rec->count || rec->start >= limit || rec->count > limit - rec->start ||
	    (rec->type == FVD_JREC_TABLE && !fvd_compact(j->sb)))
		abort();
	/* ASan checks that the last entry lies inside the block */
	if (rec->entries)
		j->entry_sum += le32_to_cpu(rec->entries[rec->count - 1]);
	j->records++;
	/* and that applying it stays inside the bitmap and the table */
	if (fvd_jrec_apply(j->sb, rec, j->bits, j->table))
		abort();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct journal j;
	struct fvd_sb_info sb;
	struct fvd_replay replay;
	unsigned int i;

	/* 1 GiB over 512 MiB, 64 KiB blocks, an 8-block journal; compact
	 * with 1 MiB chunks (so table records are valid) when asked to
	 */
	if (fvd_layout_init(&sb, 1 << 21, 1 << 20, 128,
			    size > 1 && (data[1] & 0x40) ? 2048 : 0,
			    NR_JBLOCKS * 8, true))
		abort();
	memset(&j, 0, sizeof(j));
	memcpy(j.blocks, data, size < sizeof(j.blocks) ? size : sizeof(j.blocks));
	j.sb = &sb;
	j.bits = calloc(1, fvd_bitmap_bytes(sb.nr_blocks));
	j.table = fvd_compact(&sb) ? calloc(sb.nr_chunks, sizeof(__le32)) : NULL;
	if (!j.bits || (fvd_compact(&sb) && !j.table))
		abort();
	/* the checkpoint the journal follows: from the input, small or not */
	if (size > 2)
		sb.checkpoint_seq = data[1] & 0x80 ? ~0ULL - data[2] : data[2];
	if (size > 0 && (data[0] & 1)) {
		for (i = 0; i < NR_JBLOCKS; i++) {
			struct fvd_disk_jheader *h = (void *)j.blocks[i];

			h->magic = cpu_to_le64(FVD_JOURNAL_MAGIC);
			fvd_jblock_seal(h, le64_to_cpu(h->seq), le16_to_cpu(h->index),
					le16_to_cpu(h->count));
		}
	}
	if (fvd_journal_replay(&sb, read_block, apply, &j, &replay))
		abort();
	free(j.bits);
	free(j.table);
	if (replay.head > NR_JBLOCKS ||
	    replay.nr_commits > replay.head || replay.nr_records != j.records ||
	    replay.next_seq != sb.checkpoint_seq + 1 + replay.nr_commits ||
	    replay.full != (replay.head == NR_JBLOCKS))
		abort();
	return 0;
}
