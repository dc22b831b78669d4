/* SPDX-License-Identifier: GPL-2.0 */
/* dm-fvd table line parsing, separate from device opening so it can be tested. */
#ifndef FVD_TABLE_H
#define FVD_TABLE_H

#include <linux/types.h>
#include "fvd-prefetch.h"

struct fvd_table_args {
	/* The table's words: valid during the ctr only. */
	const char *meta_path;
	const char *data_path;
	const char *origin_path;	/* NULL when the table says "-" */
	bool read_only;
	bool no_copy_on_read;
	bool have_max_cor_inflight;
	unsigned int max_cor_inflight;	/* KiB of copy-on-read in flight */
	/* compact images */
	bool error_if_no_space;
	bool have_low_water_mark;
	bool have_no_space_timeout;
	u64 low_water_mark;		/* chunks */
	unsigned int no_space_timeout;	/* seconds, 0: hold forever */
	/* the origin */
	bool skip_origin_check;
	bool have_origin_error_mode;
	bool origin_queue;		/* origin_error_mode queue */
	bool have_origin_queue_timeout;
	unsigned int origin_queue_timeout;	/* seconds */
	/* prefetch */
	bool no_prefetch;
	unsigned long given_tunables;	/* bit per enum fvd_tunable_id */
	u32 tunables[FVD_NR_TUNABLES];
};

#define FVD_DEFAULT_MAX_COR_INFLIGHT	4096	/* KiB */
#define FVD_MAX_MAX_COR_INFLIGHT	(1024 * 1024)
#define FVD_DEFAULT_NO_SPACE_TIMEOUT	60
#define FVD_MAX_NO_SPACE_TIMEOUT	(24 * 3600)
#define FVD_DEFAULT_ORIGIN_QUEUE_TIMEOUT	60
#define FVD_MAX_ORIGIN_QUEUE_TIMEOUT	(24 * 3600)

int fvd_parse_table_args(unsigned int argc, char **argv,
			 struct fvd_table_args *args, char **error);

#endif /* FVD_TABLE_H */
