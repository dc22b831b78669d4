// SPDX-License-Identifier: GPL-2.0
/*
 * dm-fvd access profiles: record what a boot read from the origin, and
 * let the prefetch copy another host's record first.
 *
 * A host that boots a guest from a golden image reads the same few percent
 * of it as every other host booting it.  The first host records which
 * blocks its guest's I/O needed from the origin (copy-on-read, reads sent
 * to the origin, the copies of partial writes), in the order it needed
 * them; "profile get" exports the record as origin sector ranges, which do
 * not depend on the image's block size.  Another host queues them with
 * "profile add" before its guest starts: the prefetch copies them first,
 * at once, in batches as large as the runs allow, ahead of the guest.
 */

#define DM_MSG_PREFIX "fvd"

#include <linux/device-mapper.h>
#include <linux/jiffies.h>
#include <linux/kernel.h>
#include <linux/mm.h>
#include <linux/slab.h>
#include <linux/string.h>

#include "fvd-target.h"

/*
 * Add blocks [@first, @first + @nr) at the end of @list: the last run grows
 * when they touch or overlap it, and a range inside it adds nothing.
 * Returns false when a new run was needed and the list is full.
 */
bool fvd_profile_append(struct fvd_profile_list *list, u64 first, u64 nr)
{
	struct fvd_profile_run *last = list->nr ? &list->runs[list->nr - 1] : NULL;

	if (!nr)
		return true;
	if (last && first >= last->first && first <= last->first + last->nr) {
		last->nr = max(last->nr, first + nr - last->first);
		return true;
	}
	if (list->nr >= FVD_PROFILE_MAX_RUNS)
		return false;
	list->runs[list->nr].first = first;
	list->runs[list->nr].nr = nr;
	list->nr++;
	return true;
}

/*
 * "START+LEN": @len sectors of the origin from sector @start, all of them
 * inside its @origin_sectors.  Returns 0 or -EINVAL.
 */
int fvd_profile_parse_range(const char *word, u64 origin_sectors,
			    u64 *start, u64 *len)
{
	const char *plus = strchr(word, '+');
	char head[24];

	if (!plus || plus == word || plus - word >= sizeof(head))
		return -EINVAL;
	memcpy(head, word, plus - word);
	head[plus - word] = '\0';
	if (kstrtou64(head, 10, start) || kstrtou64(plus + 1, 10, len))
		return -EINVAL;
	if (!*len || *start >= origin_sectors || *len > origin_sectors - *start)
		return -EINVAL;
	return 0;
}

static const char *fvd_profile_name(struct fvd_target *fvd)
{
	return dm_table_device_name(fvd->ti->table);
}

static u32 fvd_profile_seconds(struct fvd_target *fvd)
{
	return READ_ONCE(fvd->prefetch.tunables[FVD_PROFILE_SECONDS]);
}

static struct fvd_profile_run *fvd_profile_alloc_runs(void)
{
	return kvcalloc(FVD_PROFILE_MAX_RUNS, sizeof(struct fvd_profile_run),
			GFP_KERNEL);
}

/* In the ctr: the record's room when the table asks for a recording. */
int fvd_profile_init(struct fvd_target *fvd)
{
	struct fvd_profile *prof = &fvd->profile;

	spin_lock_init(&prof->lock);
	if (!fvd->origin_dev || !fvd_profile_seconds(fvd))
		return 0;
	prof->rec.runs = fvd_profile_alloc_runs();
	return prof->rec.runs ? 0 : -ENOMEM;
}

void fvd_profile_exit(struct fvd_target *fvd)
{
	kvfree(fvd->profile.rec.runs);
	kvfree(fvd->profile.queue.runs);
}

/* The window opens at the first resume, where the guest's I/O begins. */
void fvd_profile_resume(struct fvd_target *fvd)
{
	struct fvd_profile *prof = &fvd->profile;
	unsigned long flags;

	spin_lock_irqsave(&prof->lock, flags);
	if (prof->rec.runs && !prof->start && !prof->full) {
		prof->start = jiffies | 1;	/* 0: not started */
		WRITE_ONCE(prof->recording, true);
	}
	spin_unlock_irqrestore(&prof->lock, flags);
}

/* Under the profile's lock: a window that has passed ends the recording. */
static bool fvd_profile_window_open(struct fvd_target *fvd)
{
	struct fvd_profile *prof = &fvd->profile;

	if (prof->recording &&
	    time_after_eq(jiffies, prof->start + (unsigned long)fvd_profile_seconds(fvd) * HZ))
		WRITE_ONCE(prof->recording, false);
	return prof->recording;
}

/*
 * The guest's I/O reads virtual sectors [@sector, @sector + @sectors) from
 * the origin.  Called in .map and the worker: a spinlock and an append.
 */
void fvd_profile_note(struct fvd_target *fvd, u64 sector, u64 sectors)
{
	struct fvd_profile *prof = &fvd->profile;
	const struct fvd_sb_info *sb = &fvd->meta.sb;
	unsigned long flags;
	u64 first, last;

	if (!READ_ONCE(prof->recording) || !sectors)
		return;
	first = fvd_sector_to_block(sb, sector);
	last = fvd_sector_to_block(sb, sector + sectors - 1);
	spin_lock_irqsave(&prof->lock, flags);
	if (fvd_profile_window_open(fvd) &&
	    !fvd_profile_append(&prof->rec, first, last - first + 1)) {
		prof->full = true;
		WRITE_ONCE(prof->recording, false);
	}
	spin_unlock_irqrestore(&prof->lock, flags);
}

/*
 * set profile_seconds @seconds, before the new value is stored: the room
 * for a recording when the table had none, and the end of a recording
 * whose window has passed (it is ended for good: a longer window does not
 * bring it back).
 */
int fvd_profile_reserve(struct fvd_target *fvd, u32 seconds)
{
	struct fvd_profile *prof = &fvd->profile;
	struct fvd_profile_run *runs = NULL;
	unsigned long flags;

	if (!fvd->origin_dev || !seconds)
		return 0;
	if (!READ_ONCE(prof->rec.runs)) {
		runs = fvd_profile_alloc_runs();
		if (!runs) {
			DMERR("%s: set profile_seconds: cannot allocate the record (%zu KiB)",
			      fvd_profile_name(fvd),
			      FVD_PROFILE_MAX_RUNS * sizeof(*runs) >> 10);
			return -ENOMEM;
		}
	}
	spin_lock_irqsave(&prof->lock, flags);
	if (!prof->rec.runs) {
		prof->rec.runs = runs;
		runs = NULL;
	}
	fvd_profile_window_open(fvd);
	spin_unlock_irqrestore(&prof->lock, flags);
	kvfree(runs);
	return 0;
}

/*
 * After set profile_seconds: the window's length changed; a live table
 * that recorded nothing so far starts a recording now.
 */
void fvd_profile_set_seconds(struct fvd_target *fvd)
{
	struct fvd_profile *prof = &fvd->profile;
	unsigned long flags;

	spin_lock_irqsave(&prof->lock, flags);
	if (prof->rec.runs && !prof->start && fvd->resumed && fvd_profile_seconds(fvd)) {
		prof->start = jiffies | 1;
		WRITE_ONCE(prof->recording, true);
	}
	spin_unlock_irqrestore(&prof->lock, flags);
}

/* The recording's state word in "profile get"; under the profile's lock. */
static const char *fvd_profile_state(struct fvd_target *fvd)
{
	struct fvd_profile *prof = &fvd->profile;

	if (!prof->rec.runs)
		return "off";
	if (fvd_profile_window_open(fvd))
		return "recording";
	if (prof->full)
		return "full";
	return prof->start ? "done" : "waiting";
}

/*
 * profile get INDEX: "STATE NR INDEX" and the runs from INDEX on, as many
 * as the result buffer holds, each "START+LEN" in origin sectors.  A run
 * is read under the lock: the last one may still grow.
 */
static int fvd_profile_get(struct fvd_target *fvd, const char *arg,
			   char *result, unsigned int maxlen)
{
	struct fvd_profile *prof = &fvd->profile;
	const struct fvd_sb_info *sb = &fvd->meta.sb;
	unsigned int sz = 0, nr, index;
	struct fvd_profile_run run;
	const char *state;
	unsigned long flags;
	u64 start, len;

	if (kstrtouint(arg, 10, &index)) {
		DMERR("%s: profile get: '%s' is not a run number", fvd_profile_name(fvd), arg);
		return -EINVAL;
	}
	spin_lock_irqsave(&prof->lock, flags);
	nr = prof->rec.nr;
	state = fvd_profile_state(fvd);
	spin_unlock_irqrestore(&prof->lock, flags);
	if (index > nr) {
		DMERR("%s: profile get: run %u asked, the profile holds %u",
		      fvd_profile_name(fvd), index, nr);
		return -EINVAL;
	}
	DMEMIT("%s %u %u", state, nr, index);
	/* a run takes at most 2 * 20 digits, a '+' and a space */
	for (; index < nr && sz + 48 < maxlen; index++) {
		spin_lock_irqsave(&prof->lock, flags);
		run = prof->rec.runs[index];
		spin_unlock_irqrestore(&prof->lock, flags);
		start = fvd_block_start(sb, run.first);
		len = min(fvd_block_start(sb, run.first + run.nr), sb->origin_sectors) - start;
		DMEMIT(" %llu+%llu", start, len);
	}
	return 1;
}

/*
 * profile add START+LEN...: queue origin ranges for the prefetch to copy
 * first, in this order.  All or none: a bad range refuses the message.
 */
static int fvd_profile_add(struct fvd_target *fvd, unsigned int argc, char **argv)
{
	struct fvd_profile *prof = &fvd->profile;
	const struct fvd_sb_info *sb = &fvd->meta.sb;
	struct fvd_profile_run *runs = NULL, *asked;
	u64 start, len;
	unsigned int i, queued;
	int r = 0;

	if (!fvd->origin_dev || !fvd->writable) {
		DMERR("%s: profile add: no prefetch: the table %s", fvd_profile_name(fvd),
		      fvd->writable ? "has no origin" : "is read-only");
		return -EOPNOTSUPP;
	}
	if (argc > FVD_PROFILE_MAX_RUNS) {
		DMERR("%s: profile add: %u ranges, the queue holds %u",
		      fvd_profile_name(fvd), argc, FVD_PROFILE_MAX_RUNS);
		return -ENOSPC;
	}
	/* Parsed here, not under the target's lock that .map takes. */
	asked = kvmalloc_array(argc, sizeof(*asked), GFP_KERNEL);
	if (!asked)
		goto no_memory;
	for (i = 0; i < argc; i++) {
		if (fvd_profile_parse_range(argv[i], sb->origin_sectors, &start, &len)) {
			DMERR("%s: profile add: '%s' is not START+LEN inside the origin's %llu sectors",
			      fvd_profile_name(fvd), argv[i], sb->origin_sectors);
			kvfree(asked);
			return -EINVAL;
		}
		asked[i].first = fvd_sector_to_block(sb, start);
		asked[i].nr = fvd_sector_to_block(sb, start + len - 1) - asked[i].first + 1;
	}
	if (!READ_ONCE(prof->queue.runs)) {
		runs = fvd_profile_alloc_runs();
		if (!runs) {
			kvfree(asked);
			goto no_memory;
		}
	}

	spin_lock_irq(&fvd->lock);
	if (!prof->queue.runs) {
		prof->queue.runs = runs;
		runs = NULL;
	}
	/* Copied to the end already: start the list afresh. */
	if (prof->head >= prof->queue.nr) {
		prof->queue.nr = 0;
		prof->head = 0;
		prof->pos = 0;
	}
	/* All or none: room for a new run per range, or no change. */
	queued = prof->queue.nr;
	if (queued + argc > FVD_PROFILE_MAX_RUNS) {
		r = -ENOSPC;
	} else {
		for (i = 0; i < argc; i++)
			fvd_profile_append(&prof->queue, asked[i].first, asked[i].nr);
		fvd_prefetch_profile_queued(fvd);
	}
	spin_unlock_irq(&fvd->lock);
	kvfree(runs);
	kvfree(asked);
	if (r)
		DMERR("%s: profile add: %u runs queued, %u more asked, the queue holds %u",
		      fvd_profile_name(fvd), queued, argc, FVD_PROFILE_MAX_RUNS);
	return r;

no_memory:
	DMERR("%s: profile add: cannot allocate the queue", fvd_profile_name(fvd));
	return -ENOMEM;
}

/*
 * profile get INDEX
 * profile stop
 * profile add START+LEN...
 * Returns 1 when @result holds the answer.
 */
int fvd_profile_message(struct fvd_target *fvd, unsigned int argc, char **argv,
			char *result, unsigned int maxlen)
{
	struct fvd_profile *prof = &fvd->profile;
	struct fvd_profile_run *runs;
	unsigned long flags;

	if (argc == 3 && !strcasecmp(argv[1], "get"))
		return fvd_profile_get(fvd, argv[2], result, maxlen);
	if (argc == 2 && !strcasecmp(argv[1], "stop")) {
		spin_lock_irqsave(&prof->lock, flags);
		runs = prof->rec.runs;
		WRITE_ONCE(prof->recording, false);
		if (runs && !prof->start)
			prof->start = jiffies | 1;
		spin_unlock_irqrestore(&prof->lock, flags);
		if (runs)
			return 0;
		DMERR("%s: profile stop: the table records no profile (profile_seconds 0)",
		      fvd_profile_name(fvd));
		return -EINVAL;
	}
	if (argc >= 3 && !strcasecmp(argv[1], "add"))
		return fvd_profile_add(fvd, argc - 2, argv + 2);
	DMERR("%s: unknown message: expected 'profile get <run>', 'profile stop' or 'profile add <start>+<len>...'",
	      fvd_profile_name(fvd));
	return -EINVAL;
}
