/* SPDX-License-Identifier: GPL-2.0 */
/*
 * dm-fvd adaptive prefetch: copies the blocks still absent from the origin
 * to the data device in the background, and backs off when the origin or
 * the data device is slow.  The tunables, the throughput averaging and the
 * pause decision are kept apart from the I/O so KUnit can test them.
 */
#ifndef FVD_PREFETCH_H
#define FVD_PREFETCH_H

#include <linux/types.h>
#include <linux/workqueue.h>
#include <linux/atomic.h>

enum fvd_tunable_id {
	FVD_PREFETCH_DELAY,		/* s from the first resume to the start */
	FVD_PREFETCH_BATCH,		/* KiB copied by one origin read */
	FVD_PREFETCH_WRITES,		/* batches in flight */
	FVD_PREFETCH_WINDOW,		/* ms of one throughput measurement */
	FVD_PREFETCH_MIN_READ,		/* KiB/s from the origin, 0: no minimum */
	FVD_PREFETCH_MIN_WRITE,		/* KiB/s to the data device, 0: none */
	FVD_PREFETCH_MAX_PAUSE,		/* ms */
	FVD_PREFETCH_MAX_RATE,		/* KiB/s from the origin, 0: no cap */
	FVD_PROFILE_SECONDS,		/* s recorded from the first resume, 0: none */
	FVD_NR_TUNABLES
};

struct fvd_tunable {
	const char *name;
	u32 min;
	u32 max;
	u32 def;
	const char *error;		/* names the unit and the range */
};

extern const struct fvd_tunable fvd_tunables[FVD_NR_TUNABLES];

int fvd_tunable_lookup(const char *name);
int fvd_tunable_parse(unsigned int id, const char *value, u32 *result);

/*
 * Throughput of one kind of prefetch I/O: bytes completed over a window of
 * wall-clock time; each window's figure is averaged with the previous ones,
 * the newest weighing one half.
 */
struct fvd_rate {
	u64 start_ns;			/* of the window under way */
	u64 bytes;			/* completed in it */
	u64 avg;			/* bytes per second */
	unsigned int nr_windows;	/* since the reset; 0: avg is old */
};

void fvd_rate_reset(struct fvd_rate *rate, u64 now_ns);
bool fvd_rate_add(struct fvd_rate *rate, u64 bytes, u64 now_ns, u64 window_ns);
bool fvd_rate_too_slow(const struct fvd_rate *rate, u32 min_kib_per_s);
void fvd_rate_idle(struct fvd_rate *rate, u64 since_ns, u64 now_ns);

/*
 * prefetch_max_rate: the earliest time the next batch may start.  Each
 * batch moves it on by its origin bytes at the cap, from now if it lies in
 * the past, so no credit builds up while the prefetch is idle: in any span
 * of T seconds the prefetch reads at most cap * T plus one batch.
 */
u64 fvd_pace_wait_ns(u64 next_ns, u64 now_ns, u32 max_kib_per_s);
u64 fvd_pace_next_ns(u64 next_ns, u64 now_ns, u64 bytes, u32 max_kib_per_s);
u32 fvd_prefetch_pause_ms(u32 max_pause_ms);

enum fvd_prefetch_state {
	FVD_PREFETCH_OFF,		/* nothing to copy from, or read-only */
	FVD_PREFETCH_WAITING,		/* for prefetch_delay after the resume */
	FVD_PREFETCH_RUNNING,
	FVD_PREFETCH_PAUSED,		/* throughput fell below a minimum */
	FVD_PREFETCH_STOPPED,		/* no_prefetch, message, or no space */
	FVD_PREFETCH_DONE,		/* every block local: origin detached */
	FVD_PREFETCH_ERROR,		/* an origin read or data write failed */
};

const char *fvd_prefetch_state_name(enum fvd_prefetch_state state);

/* Why the prefetch is stopped or paused (status field 20). */
enum fvd_prefetch_cause {
	FVD_PREFETCH_NO_CAUSE,		/* any other state */
	FVD_PREFETCH_BY_TABLE,		/* stopped: no_prefetch */
	FVD_PREFETCH_BY_MESSAGE,	/* stopped: "prefetch stop" */
	FVD_PREFETCH_BY_SPACE,		/* stopped: free chunks kept for the guest */
	FVD_PREFETCH_BY_ORIGIN,		/* paused: origin reads below prefetch_min_read */
	FVD_PREFETCH_BY_DATA,		/* paused: data writes below prefetch_min_write */
	FVD_PREFETCH_BY_RATE,		/* running, waiting for prefetch_max_rate */
};

const char *fvd_prefetch_cause_name(enum fvd_prefetch_cause cause);

/* Fields under the target's lock unless said otherwise. */
struct fvd_prefetch {
	enum fvd_prefetch_state state;
	enum fvd_prefetch_cause cause;	/* of state */
	bool suspended;			/* no batch may start */
	bool busy_skipped;		/* this pass skipped a busy block */
	bool space_skipped;		/* this pass found no free chunk */
	u64 cursor;			/* next block to look at */
	unsigned int nr_inflight;	/* batches */
	unsigned long pause_end;	/* jiffies */
	u64 pace_next_ns;		/* prefetch_max_rate: next batch start */
	u64 pace_last_ns;		/* and the last one's start and bytes */
	u64 pace_last_bytes;
	u64 held_since_ns;		/* idle under the cap since, or 0 */
	unsigned long delay_end;	/* jiffies: prefetch_delay is over */
	bool early;			/* started before it by a profile */

	u32 tunables[FVD_NR_TUNABLES];	/* READ_ONCE without the lock */
	unsigned long given;		/* tunables in the table line or set */

	struct fvd_rate read_rate;
	struct fvd_rate write_rate;
	u64 nr_pauses;
	atomic64_t nr_bytes;		/* copied to the data device */

	struct delayed_work work;
};

struct fvd_target;

void fvd_prefetch_setup(struct fvd_target *fvd);
void fvd_prefetch_cancel(struct fvd_target *fvd);
void fvd_prefetch_init(struct fvd_target *fvd);
void fvd_prefetch_resume(struct fvd_target *fvd);
void fvd_prefetch_suspend(struct fvd_target *fvd);
int fvd_prefetch_message(struct fvd_target *fvd, unsigned int argc,
			 char **argv);

#endif /* FVD_PREFETCH_H */
