/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The kernel interfaces dm-fvd uses whose signature changes between kernel
 * releases.  Porting to a newer kernel should only touch this file.
 *
 * Built against Debian bookworm's 6.1 series, where dm_io() already has the
 * ioprio argument (backported in 6.1.83).
 */
#ifndef FVD_COMPAT_H
#define FVD_COMPAT_H

#include <linux/version.h>
#include <linux/blkdev.h>
#include <linux/dm-io.h>
#include <linux/ioprio.h>
#include <linux/mempool.h>
#include <linux/slab.h>

static inline int fvd_dm_io(struct dm_io_request *req, unsigned int nr_regions,
			    struct dm_io_region *where)
{
	return dm_io(req, nr_regions, where, NULL, IOPRIO_DEFAULT);
}

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
