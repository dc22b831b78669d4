// SPDX-License-Identifier: GPL-2.0
/*
 * libFuzzer target for the on-disk format parsers shared by the kernel and
 * the tools: the superblock decoder and the journal block validator.  Any
 * 4 KiB a hostile image holds must be rejected or accepted without a crash,
 * an out-of-bounds access or undefined behaviour (run with ASan + UBSan).
 */
#include <stdio.h>
#include <stdlib.h>

#include "fvd-format.h"

static int count_record(void *context, const struct fvd_jrec *rec)
{
	unsigned long *total = context;

	*total += rec->count;
	if (rec->entries)
		*total += le32_to_cpu(rec->entries[0]);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t block[FVD_SB_SIZE];
	struct fvd_sb_info sb;
	unsigned long total = 0;
	enum fvd_sb_status status;

	memset(block, 0, sizeof(block));
	memcpy(block, data, size < sizeof(block) ? size : sizeof(block));

	/* As a superblock: the checksum is fixed up so the fields get parsed. */
	if (size > 0 && (data[0] & 1)) {
		struct fvd_disk_superblock *disk = (void *)block;

		disk->magic = cpu_to_le64(FVD_MAGIC);
		disk->csum = cpu_to_le32(fvd_sb_csum(disk));
	}
	status = fvd_sb_decode(block, &sb);
	if (status == FVD_SB_OK) {
		/* accepted geometry must be self-consistent */
		if (!sb.nr_blocks || sb.bitmap_sectors * 512 * 8 < sb.nr_blocks ||
		    fvd_block_len(&sb, sb.nr_blocks - 1) == 0 ||
		    fvd_block_len(&sb, sb.nr_blocks) != 0)
			abort();
	} else if (fvd_layout_init(&sb, 1 << 20, 1 << 19, 128, 0, 0, true)) {
		abort();
	}

	/* As a journal block of that image (or of a default one). */
	if (size > 1 && (data[1] & 1)) {
		struct fvd_disk_jheader *h = (void *)block;

		h->magic = cpu_to_le64(FVD_JOURNAL_MAGIC);
		fvd_jblock_seal(block, le64_to_cpu(h->seq), le16_to_cpu(h->index),
				le16_to_cpu(h->count));
	}
	if (fvd_jblock_check(block, 0, &sb) == FVD_JB_OK)
		fvd_jblock_for_each(block, count_record, &total);
	return 0;
}
