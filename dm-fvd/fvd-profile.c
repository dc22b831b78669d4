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
 *
 * An image made with a profile region keeps the record: the target writes
 * it there when the recording ends (its window passed, "profile stop", or
 * no room for another run) and at a suspend, as a whole checksummed region
 * in one write.  The profile is advisory and points at no data, so it
 * goes around the journal: a torn write leaves a region that reads as no
 * profile.  A profile another table saved is kept (a later boot reads
 * little from the origin, and would leave a poorer one) unless "profile
 * save" asks for the new one.
 */

#define DM_MSG_PREFIX "fvd"

#include <linux/device-mapper.h>
#include <linux/jiffies.h>
#include <linux/kernel.h>
#include <linux/mm.h>
#include <linux/sched/mm.h>
#include <linux/slab.h>
#include <linux/string.h>

#include "fvd-compat.h"
#include "fvd-target.h"

/* A full record fits the image's profile region, and a region the queue. */
static_assert(FVD_PROFILE_MAX_RUNS == FVD_PROFILE_REGION_RUNS);

/* Blocks of a stored run looked at, at the most, to leave it out as local. */
#define FVD_PROFILE_LOAD_SCAN	1024

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

static void fvd_profile_save_fn(struct work_struct *ws);

/* First in the ctr, so that every later failure may call the exit. */
void fvd_profile_setup(struct fvd_target *fvd)
{
	spin_lock_init(&fvd->profile.lock);
	INIT_DELAYED_WORK(&fvd->profile.save_work, fvd_profile_save_fn);
}

/* In the ctr: the record's room when the table asks for a recording. */
int fvd_profile_init(struct fvd_target *fvd)
{
	struct fvd_profile *prof = &fvd->profile;

	if (!fvd->origin_dev || !fvd_profile_seconds(fvd))
		return 0;
	prof->rec.runs = fvd_profile_alloc_runs();
	return prof->rec.runs ? 0 : -ENOMEM;
}

void fvd_profile_exit(struct fvd_target *fvd)
{
	cancel_delayed_work_sync(&fvd->profile.save_work);
	kvfree(fvd->profile.rec.runs);
	kvfree(fvd->profile.queue.runs);
}

/* Is there a record, and room on the image to keep it? */
static bool fvd_profile_savable(struct fvd_target *fvd)
{
	return fvd->profile.rec.runs && fvd->writable &&
	       (fvd->meta.sb.compat_features & FVD_COMPAT_PROFILE);
}

/* When the recording's window closes, in jiffies from now (0: it has). */
static unsigned long fvd_profile_time_left(struct fvd_target *fvd)
{
	struct fvd_profile *prof = &fvd->profile;
	unsigned long end = prof->start + (unsigned long)fvd_profile_seconds(fvd) * HZ;

	return time_after(end, jiffies) ? end - jiffies : 0;
}

/*
 * Under the profile's lock: have the record saved when the window closes,
 * or at once when the recording ended unsaved.  Nothing while suspended:
 * the suspend saved it, the resume arms this again.
 */
static void fvd_profile_arm_save(struct fvd_target *fvd)
{
	struct fvd_profile *prof = &fvd->profile;

	if (!prof->live || !fvd_profile_savable(fvd))
		return;
	if (prof->recording)
		mod_delayed_work(fvd->wq, &prof->save_work, fvd_profile_time_left(fvd));
	else if (prof->unsaved)
		mod_delayed_work(fvd->wq, &prof->save_work, 0);
}

/* Under the profile's lock: the recording is over (stopped, or full). */
static void fvd_profile_end(struct fvd_target *fvd)
{
	WRITE_ONCE(fvd->profile.recording, false);
	fvd_profile_arm_save(fvd);
}

/* The window opens at the first resume, where the guest's I/O begins. */
void fvd_profile_resume(struct fvd_target *fvd)
{
	struct fvd_profile *prof = &fvd->profile;
	unsigned long flags;

	spin_lock_irqsave(&prof->lock, flags);
	if (prof->rec.runs && !prof->start && !prof->full) {
		prof->start = jiffies | 1;	/* 0: not started */
		prof->unsaved = true;		/* an empty record is a result too */
		WRITE_ONCE(prof->recording, true);
	}
	prof->live = true;
	fvd_profile_arm_save(fvd);
	spin_unlock_irqrestore(&prof->lock, flags);
}

/* Under the profile's lock: a window that has passed ends the recording. */
static bool fvd_profile_window_open(struct fvd_target *fvd)
{
	struct fvd_profile *prof = &fvd->profile;

	if (prof->recording && !fvd_profile_time_left(fvd))
		fvd_profile_end(fvd);
	return prof->recording;
}

/* Read or write the first @sectors of the profile region, and wait. */
static int fvd_profile_io(struct fvd_target *fvd, blk_opf_t opf, void *region,
			  sector_t sectors)
{
	struct dm_io_region where = {
		.bdev = fvd->meta_dev->bdev,
		.sector = fvd->meta.sb.profile_offset,
		.count = sectors,
	};
	struct dm_io_request req = {
		.bi_opf = opf,
		.client = fvd->io_client,
	};

	fvd_dm_io_buffer(&req, region);
	return fvd_dm_io(&req, 1, &where);
}

static bool fvd_profile_unsaved(struct fvd_profile *prof)
{
	bool unsaved;

	spin_lock_irq(&prof->lock);
	unsaved = prof->unsaved;
	spin_unlock_irq(&prof->lock);
	return unsaved;
}

/*
 * Write the record into the profile region: when it changed since the
 * last save and the region holds no profile with runs that another table
 * saved, or in any case with @force.  A metadata device that fails the I/O is a
 * metadata error like any other.  Process context; returns 0 when the
 * record is saved or was not to be.
 */
static int fvd_profile_save(struct fvd_target *fvd, bool force)
{
	struct fvd_profile *prof = &fvd->profile;
	const struct fvd_sb_info *sb = &fvd->meta.sb;
	struct fvd_disk_profile_run *run;
	unsigned int i, nr, noio;
	u32 kept, header_flags;
	u64 start, end;
	sector_t sectors;
	void *region;
	int r = 0;

	if (!force && !fvd_profile_unsaved(prof))
		return 0;
	/* The rescuer of a reclaim workqueue may run this: no I/O to free memory. */
	noio = memalloc_noio_save();
	/* zeroed: the write's last block holds more than the runs */
	region = kvzalloc(FVD_PROFILE_REGION_BYTES, GFP_KERNEL);
	memalloc_noio_restore(noio);
	if (!region) {
		DMERR("%s: cannot allocate %zu KiB to save the profile",
		      fvd_profile_name(fvd), FVD_PROFILE_REGION_BYTES >> 10);
		return -ENOMEM;
	}

	mutex_lock(&fvd->commit_lock);
	if (READ_ONCE(fvd->mode) != FVD_MODE_WRITE) {
		r = -EROFS;
		goto out;
	}
	/* again: a save that held the lock before this one may have done it */
	if (!force && !fvd_profile_unsaved(prof))
		goto out;
	if (!prof->replace && !force) {
		r = fvd_profile_io(fvd, REQ_OP_READ, region, FVD_PROFILE_REGION_SECTORS);
		if (r) {
			fvd_metadata_error(fvd, "profile region read", r);
			goto out;
		}
		/* an empty one (a boot that found every block local) is no loss */
		if (fvd_profile_region_check(region, sb->origin_sectors, &kept) ==
		    FVD_PROFILE_OK && kept) {
			DMINFO("%s: the image keeps the profile saved before (%u runs): 'profile save' replaces it",
			       fvd_profile_name(fvd), kept);
			spin_lock_irq(&prof->lock);
			prof->unsaved = false;
			spin_unlock_irq(&prof->lock);
			goto out;
		}
	}

	/* Origin sectors, as "profile get" gives them; the last run may grow. */
	spin_lock_irq(&prof->lock);
	for (i = 0, nr = 0; i < prof->rec.nr; i++) {
		start = fvd_block_start(sb, prof->rec.runs[i].first);
		end = min(fvd_block_start(sb, prof->rec.runs[i].first + prof->rec.runs[i].nr),
			  sb->origin_sectors);
		if (start >= end)
			continue;
		run = fvd_profile_region_run(region, nr++);
		run->start = cpu_to_le64(start);
		run->len = cpu_to_le64(end - start);
	}
	header_flags = prof->full ? FVD_PROFILE_FULL : 0;
	prof->unsaved = false;
	spin_unlock_irq(&prof->lock);

	fvd_profile_region_seal(region, nr, sb->origin_sectors, prof->saves + 1,
				header_flags);
	sectors = (FVD_PROFILE_HEADER_SIZE +
		   round_up(nr * sizeof(*run), FVD_META_BLOCK_SIZE)) >> SECTOR_SHIFT;
	r = fvd_profile_io(fvd, REQ_OP_WRITE | REQ_SYNC | REQ_FUA, region, sectors);
	if (r) {
		spin_lock_irq(&prof->lock);
		prof->unsaved = true;
		spin_unlock_irq(&prof->lock);
		fvd_metadata_error(fvd, "profile write", r);
		goto out;
	}
	prof->saves++;
	prof->replace = true;
	DMINFO("%s: profile of %u run%s saved (save %llu)", fvd_profile_name(fvd), nr,
	       nr == 1 ? "" : "s", prof->saves);
out:
	mutex_unlock(&fvd->commit_lock);
	kvfree(region);
	return r;
}

/* The window closed (or was to close: a longer one arms this again). */
static void fvd_profile_save_fn(struct work_struct *ws)
{
	struct fvd_profile *prof = container_of(to_delayed_work(ws), struct fvd_profile,
						save_work);
	struct fvd_target *fvd = container_of(prof, struct fvd_target, profile);
	bool recording;

	spin_lock_irq(&prof->lock);
	recording = fvd_profile_window_open(fvd);
	if (recording)
		fvd_profile_arm_save(fvd);
	spin_unlock_irq(&prof->lock);
	if (!recording)
		fvd_profile_save(fvd, false);
}

/*
 * postsuspend, before the shutdown: what was recorded so far is saved (the
 * host may be going down); the recording goes on after a resume.
 */
void fvd_profile_suspend(struct fvd_target *fvd)
{
	struct fvd_profile *prof = &fvd->profile;

	spin_lock_irq(&prof->lock);
	prof->live = false;
	spin_unlock_irq(&prof->lock);
	cancel_delayed_work_sync(&prof->save_work);
	if (fvd_profile_savable(fvd))
		fvd_profile_save(fvd, false);
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
	if (fvd_profile_window_open(fvd)) {
		prof->unsaved = true;
		if (!fvd_profile_append(&prof->rec, first, last - first + 1)) {
			prof->full = true;
			fvd_profile_end(fvd);
		}
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
		prof->unsaved = true;
		WRITE_ONCE(prof->recording, true);
	}
	/* the save waits for the new end of the window */
	if (fvd_profile_window_open(fvd))
		fvd_profile_arm_save(fvd);
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
	/*
	 * The runs copied already make room: a stored profile the table
	 * queued at its resume may hold most of the queue until it is copied.
	 */
	if (prof->head >= prof->queue.nr) {
		prof->queue.nr = 0;
		prof->head = 0;
		prof->pos = 0;
	} else if (prof->head) {
		memmove(prof->queue.runs, prof->queue.runs + prof->head,
			(prof->queue.nr - prof->head) * sizeof(*prof->queue.runs));
		prof->queue.nr -= prof->head;
		prof->head = 0;
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
 * At the first preresume of a table that prefetches, once the bitmap is
 * read: the profile the image keeps (saved by a table here, or copied by
 * fvd-create from the image or file it was made after) becomes the
 * prefetch's queue, so that what a boot reads is copied first from the
 * moment the table is live, before the guest starts as well as during
 * its boot.  Runs already local are left out: after the boot that
 * recorded it, or a seeded one, they all are and nothing is queued.  The
 * profile only orders the copies: a damaged region is reported and
 * ignored; a read error is the metadata device failing, and fails the
 * resume.
 */
int fvd_profile_load(struct fvd_target *fvd)
{
	struct fvd_profile *prof = &fvd->profile;
	const struct fvd_sb_info *sb = &fvd->meta.sb;
	struct fvd_disk_profile_run *run;
	enum fvd_profile_status status;
	struct fvd_profile_run *runs;
	u64 start, len, first, nr, b, end;
	u32 nr_runs, i, queued = 0;
	unsigned int noio;
	void *region;
	int r;

	if (!(sb->compat_features & FVD_COMPAT_PROFILE) || !fvd->writable ||
	    !fvd->origin_dev || fvd->all_local || fvd->prefetch.state == FVD_PREFETCH_OFF)
		return 0;
	/* A reload's device is suspended: reclaim must not write to it. */
	noio = memalloc_noio_save();
	region = kvmalloc(FVD_PROFILE_REGION_BYTES, GFP_KERNEL);
	runs = fvd_profile_alloc_runs();
	memalloc_noio_restore(noio);
	if (!region || !runs) {
		/* the profile only orders the copies: the table works without */
		DMWARN("%s: cannot allocate %zu KiB to read the image's profile: the prefetch goes in disk order",
		       fvd_profile_name(fvd),
		       (FVD_PROFILE_REGION_BYTES + FVD_PROFILE_MAX_RUNS * sizeof(*runs)) >> 10);
		r = 0;
		goto out;
	}
	r = fvd_profile_io(fvd, REQ_OP_READ, region, FVD_PROFILE_REGION_SECTORS);
	if (r) {
		DMERR("%s: cannot read the profile region at sector %llu (%d)",
		      fvd_profile_name(fvd), sb->profile_offset, r);
		goto out;
	}
	status = fvd_profile_region_check(region, sb->origin_sectors, &nr_runs);
	if (status != FVD_PROFILE_OK) {
		if (status != FVD_PROFILE_NONE)
			DMWARN("%s: the profile region at sector %llu is not valid (%s): the prefetch goes in disk order; fvd-check --repair clears it",
			       fvd_profile_name(fvd), sb->profile_offset,
			       fvd_profile_status_str(status));
		goto out;
	}
	/*
	 * No I/O of this table yet, and any other table over the image is
	 * suspended (messages reach only the live one): the bitmap holds still
	 * without the lock.  A run is left out when the first
	 * FVD_PROFILE_LOAD_SCAN of its blocks are local and it has no more;
	 * a longer one is queued, and the prefetch skips what is local in
	 * bounded steps, so that this scan stays short whatever the runs.
	 */
	for (i = 0; i < nr_runs; i++) {
		cond_resched();
		run = fvd_profile_region_run(region, i);
		start = le64_to_cpu(run->start);
		len = le64_to_cpu(run->len);
		first = fvd_sector_to_block(sb, start);
		nr = fvd_sector_to_block(sb, start + len - 1) - first + 1;
		end = first + min_t(u64, nr, FVD_PROFILE_LOAD_SCAN);
		for (b = first; b < end && fvd_meta_present(&fvd->meta, b); b++)
			;
		if (b == first + nr)
			continue;
		runs[queued].first = first;
		runs[queued].nr = nr;
		queued++;
	}
	if (queued) {
		/* a preresume that failed after this may have left a queue */
		spin_lock_irq(&fvd->lock);
		swap(prof->queue.runs, runs);
		prof->queue.nr = queued;
		prof->head = 0;
		prof->pos = 0;
		spin_unlock_irq(&fvd->lock);
		DMINFO("%s: the prefetch copies first %u of the %u runs of the image's profile (the rest are local)",
		       fvd_profile_name(fvd), queued, nr_runs);
	}
out:
	kvfree(runs);
	kvfree(region);
	return r;
}

/*
 * profile get INDEX
 * profile stop
 * profile save
 * profile add START+LEN...
 * Returns 1 when @result holds the answer.
 */
int fvd_profile_message(struct fvd_target *fvd, unsigned int argc, char **argv,
			char *result, unsigned int maxlen)
{
	struct fvd_profile *prof = &fvd->profile;
	struct fvd_profile_run *runs;
	unsigned long flags;
	int r;

	if (argc == 3 && !strcasecmp(argv[1], "get"))
		return fvd_profile_get(fvd, argv[2], result, maxlen);
	if (argc == 2 && !strcasecmp(argv[1], "stop")) {
		spin_lock_irqsave(&prof->lock, flags);
		runs = prof->rec.runs;
		if (runs && !prof->start) {
			prof->start = jiffies | 1;
			prof->unsaved = true;
		}
		fvd_profile_end(fvd);
		spin_unlock_irqrestore(&prof->lock, flags);
		if (runs && fvd_profile_savable(fvd)) {
			/* saved when the message returns, not some time after */
			r = fvd_profile_save(fvd, false);
			return r == -EROFS ? 0 : r;
		}
		if (runs)
			return 0;
		DMERR("%s: profile stop: the table records no profile (profile_seconds 0)",
		      fvd_profile_name(fvd));
		return -EINVAL;
	}
	if (argc >= 3 && !strcasecmp(argv[1], "add"))
		return fvd_profile_add(fvd, argc - 2, argv + 2);
	if (argc == 2 && !strcasecmp(argv[1], "save")) {
		if (!fvd_profile_savable(fvd)) {
			DMERR("%s: profile save: %s", fvd_profile_name(fvd),
			      !prof->rec.runs ? "the table records no profile (profile_seconds 0)" :
			      !fvd->writable ? "the table is read-only" :
			      "the image has no profile region (made before dm-fvd 1.8)");
			return -EINVAL;
		}
		return fvd_profile_save(fvd, true);
	}
	DMERR("%s: unknown message: expected 'profile get <run>', 'profile stop', 'profile save' or 'profile add <start>+<len>...'",
	      fvd_profile_name(fvd));
	return -EINVAL;
}
