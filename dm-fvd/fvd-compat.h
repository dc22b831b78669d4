/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The kernel interfaces dm-fvd uses whose form differs between the kernels
 * it supports: Debian 12's 6.1, Debian 13's 6.12 and the newest (7.x).
 * Porting to another kernel should only touch this file and the header
 * probes in Kbuild.
 *
 * Version numbers are not tested: distribution kernels backport interface
 * changes (Debian's 6.1.83 has dm_io()'s ioprio argument, its 6.12.100 has
 * WQ_PERCPU).  A feature is taken from a macro its header defines, or from
 * Kbuild's probe of the headers (FVD_HAVE_*) where it is not a macro.
 */
#ifndef FVD_COMPAT_H
#define FVD_COMPAT_H

#include <linux/blkdev.h>
#include <linux/device-mapper.h>
#include <linux/dm-io.h>
#include <linux/ioprio.h>
#include <linux/mempool.h>
#include <linux/slab.h>
#include <linux/workqueue.h>

/*
 * The mode a table opens its devices in: blk_mode_t and BLK_OPEN_* since
 * 6.5, fmode_t and FMODE_* before.
 */
#ifdef BLK_OPEN_READ
#define FVD_OPEN_READ	BLK_OPEN_READ
#define FVD_OPEN_WRITE	BLK_OPEN_WRITE
#else
#define FVD_OPEN_READ	FMODE_READ
#define FVD_OPEN_WRITE	FMODE_WRITE
#endif

static inline int fvd_get_device(struct dm_target *ti, const char *path,
				 bool writable, struct dm_dev **result)
{
	return dm_get_device(ti, path,
			     writable ? FVD_OPEN_READ | FVD_OPEN_WRITE : FVD_OPEN_READ,
			     result);
}

/* Whether the table was loaded read-write (dmsetup --readonly clears it). */
static inline bool fvd_table_writable(struct dm_target *ti)
{
	return dm_table_get_mode(ti->table) & FVD_OPEN_WRITE;
}

/*
 * Since 7.x dm-io reports the regions where the operation was not
 * supported apart from those that failed: dm_io() takes a second bitset
 * and io_notify_fn a second argument.  dm-fvd only reads, writes and
 * flushes, where "not supported" is as fatal as an error.
 *
 * FVD_DEFINE_IO_NOTIFY(name, done) defines the io_notify_fn @name that
 * calls void done(unsigned long error, void *context).
 */
#ifdef FVD_HAVE_DM_IO_UNSUP
static inline int fvd_dm_io(struct dm_io_request *req, unsigned int nr_regions,
			    struct dm_io_region *where)
{
	return dm_io(req, nr_regions, where, NULL, NULL, IOPRIO_DEFAULT);
}
#else
static inline int fvd_dm_io(struct dm_io_request *req, unsigned int nr_regions,
			    struct dm_io_region *where)
{
	return dm_io(req, nr_regions, where, NULL, IOPRIO_DEFAULT);
}
#endif

#ifdef FVD_HAVE_IO_NOTIFY_UNSUP
#define FVD_DEFINE_IO_NOTIFY(name, done)				\
static void name(unsigned long error, unsigned long unsup, void *context) \
{									\
	done(error | unsup, context);					\
}
#else
#define FVD_DEFINE_IO_NOTIFY(name, done)				\
static void name(unsigned long error, void *context)			\
{									\
	done(error, context);						\
}
#endif

/*
 * Workqueues are to say whether they are per-CPU (7.x warns when neither
 * WQ_PERCPU nor WQ_UNBOUND is given); per-CPU was the default before.
 */
#ifdef FVD_HAVE_WQ_PERCPU
#define FVD_WQ_PERCPU	WQ_PERCPU
#else
#define FVD_WQ_PERCPU	0
#endif

/* Flush the volatile write cache of @bdev and wait for it. */
static inline int fvd_flush_bdev(struct block_device *bdev)
{
	return blkdev_issue_flush(bdev);
}

/* mempool_create_kvmalloc_pool() only arrived after 6.1. */
static inline void *fvd_mempool_kvmalloc(gfp_t gfp, void *size)
{
	return kvmalloc((size_t)size, gfp);
}

static inline void fvd_mempool_kvfree(void *element, void *size)
{
	kvfree(element);
}

static inline mempool_t *fvd_mempool_create_kvmalloc(int min_nr, size_t size)
{
	return mempool_create(min_nr, fvd_mempool_kvmalloc, fvd_mempool_kvfree,
			      (void *)size);
}

#endif /* FVD_COMPAT_H */
