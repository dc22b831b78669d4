/* SPDX-License-Identifier: GPL-2.0 */
/*
 * dm-fvd access profiles.  For profile_seconds after its first resume the
 * target records, in order, the blocks the guest's I/O had to read from
 * the origin (a boot's working set); "profile get" hands the record to
 * userspace as origin sector ranges.  "profile add" queues such ranges,
 * recorded by another host over the same origin, for the prefetch to copy
 * first.  On an image with a profile region (FVD_COMPAT_PROFILE) the
 * record is also saved there when it ends, so that it outlives the table
 * and can seed images made later.  The run lists and their parsing are
 * kept apart from the target so KUnit can test them.
 */
#ifndef FVD_PROFILE_H
#define FVD_PROFILE_H

#include <linux/spinlock.h>
#include <linux/types.h>
#include <linux/workqueue.h>

/* 128 KiB of runs per list: a boot reads a few thousand runs. */
#define FVD_PROFILE_MAX_RUNS		8192

struct fvd_profile_run {
	u64 first;			/* block */
	u64 nr;				/* blocks */
};

/* Runs in the order they were first seen; what touches the last run extends it. */
struct fvd_profile_list {
	struct fvd_profile_run *runs;	/* FVD_PROFILE_MAX_RUNS of them */
	unsigned int nr;
};

bool fvd_profile_append(struct fvd_profile_list *list, u64 first, u64 nr);
int fvd_profile_parse_range(const char *word, u64 origin_sectors,
			    u64 *start, u64 *len);

struct fvd_profile {
	/* The recording, under @lock (taken in .map: never held long). */
	spinlock_t lock;
	struct fvd_profile_list rec;
	bool recording;			/* READ_ONCE without the lock */
	bool full;			/* ended: no room for another run */
	unsigned long start;		/* jiffies: the first resume */

	/*
	 * Saving the record in the profile region.  Under @lock: @live (the
	 * table is resumed, so a save may be queued) and @unsaved (the record
	 * changed since it was last saved).  Under the target's commit_lock:
	 * @replace (a profile found in the region may be written over: this
	 * table saved it, or was told to) and @saves (the header's seq).
	 */
	bool live;
	bool unsaved;
	bool replace;
	u64 saves;
	struct delayed_work save_work;	/* at the window's end, or at once */

	/*
	 * The seeded runs the prefetch copies first, under the target's
	 * lock: the run at @head, from its block @pos on.
	 */
	struct fvd_profile_list queue;
	unsigned int head;
	u64 pos;
};

struct fvd_target;

void fvd_profile_setup(struct fvd_target *fvd);
int fvd_profile_init(struct fvd_target *fvd);
void fvd_profile_exit(struct fvd_target *fvd);
int fvd_profile_load(struct fvd_target *fvd);
void fvd_profile_resume(struct fvd_target *fvd);
void fvd_profile_suspend(struct fvd_target *fvd);
int fvd_profile_reserve(struct fvd_target *fvd, u32 seconds);
void fvd_profile_set_seconds(struct fvd_target *fvd);
void fvd_profile_note(struct fvd_target *fvd, u64 sector, u64 sectors);
void fvd_prefetch_profile_queued(struct fvd_target *fvd);
int fvd_profile_message(struct fvd_target *fvd, unsigned int argc, char **argv,
			char *result, unsigned int maxlen);

#endif /* FVD_PROFILE_H */
