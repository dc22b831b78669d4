/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The fields of the target's INFO status line, in order: the one list the
 * tools parse by and the documentation is checked against.  fvd_status()
 * emits them; fields are only ever appended.
 */
#ifndef FVD_STATUS_H
#define FVD_STATUS_H

enum fvd_status_field {
	FVD_ST_MODE,
	FVD_ST_BLOCK_SECTORS,
	FVD_ST_LOCAL,		/* <#local>/<#total> */
	FVD_ST_COPIES,
	FVD_ST_WHOLE_WRITES,
	FVD_ST_COMMITS,
	FVD_ST_JOURNAL_WRITES,
	FVD_ST_JOURNAL_BLOCKS,
	FVD_ST_CHECKPOINTS,
	FVD_ST_CHUNKS,		/* <#free>/<#data>, or - */
	FVD_ST_SPACE,
	FVD_ST_FRESH,
	FVD_ST_COR_BYTES,
	FVD_ST_ORIGIN_BYTES,
	FVD_ST_PREFETCH,
	FVD_ST_PREFETCH_BYTES,
	FVD_ST_ORIGIN_KIBS,
	FVD_ST_DATA_KIBS,
	FVD_ST_PAUSES,
	FVD_ST_CAUSE,
	FVD_ST_NEEDS_CHECK,
	FVD_ST_ORIGIN_HELD,
	FVD_ST_NR_FIELDS
};

/* Their names, as fvdsetup status --json gives them. */
static const char *const fvd_status_field_names[FVD_ST_NR_FIELDS] = {
	[FVD_ST_MODE] = "metadata_mode",
	[FVD_ST_BLOCK_SECTORS] = "block_sectors",
	[FVD_ST_LOCAL] = "local_blocks",
	[FVD_ST_COPIES] = "copies",
	[FVD_ST_WHOLE_WRITES] = "whole_block_writes",
	[FVD_ST_COMMITS] = "commits",
	[FVD_ST_JOURNAL_WRITES] = "journal_writes",
	[FVD_ST_JOURNAL_BLOCKS] = "journal_blocks",
	[FVD_ST_CHECKPOINTS] = "checkpoints",
	[FVD_ST_CHUNKS] = "free_chunks",
	[FVD_ST_SPACE] = "space",
	[FVD_ST_FRESH] = "fresh_blocks",
	[FVD_ST_COR_BYTES] = "copy_on_read_bytes",
	[FVD_ST_ORIGIN_BYTES] = "origin_read_bytes",
	[FVD_ST_PREFETCH] = "prefetch_state",
	[FVD_ST_PREFETCH_BYTES] = "prefetch_bytes",
	[FVD_ST_ORIGIN_KIBS] = "prefetch_origin_kib_s",
	[FVD_ST_DATA_KIBS] = "prefetch_data_kib_s",
	[FVD_ST_PAUSES] = "prefetch_pauses",
	[FVD_ST_CAUSE] = "prefetch_cause",
	[FVD_ST_NEEDS_CHECK] = "needs_check",
	[FVD_ST_ORIGIN_HELD] = "origin_held_bios",
};

/* More than a parser looks at: what a later version may have appended. */
#define FVD_STATUS_MAX_FIELDS		64

#endif /* FVD_STATUS_H */
