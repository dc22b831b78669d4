/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Where a path's bytes live: the tools refuse to format an image or a data
 * device that shares storage with the origin, however it is reached (the
 * same file through another name, a loop device over it, a partition, a
 * device-mapper device stacked on it).
 */
#ifndef FVD_STORAGE_H
#define FVD_STORAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

enum fvd_extent_kind {
	FVD_EXTENT_DISK,	/* sectors of a block device that stacks on nothing */
	FVD_EXTENT_FILE,	/* sectors of a regular file */
	FVD_EXTENT_THIN,	/* a thin device of a pool (shares no sector with another id) */
};

#define FVD_EXTENT_TO_END	UINT64_MAX

struct fvd_extent {
	enum fvd_extent_kind kind;
	uint64_t dev;		/* disk: its dev_t; file: st_dev; thin: the pool's dev_t */
	uint64_t ino;		/* file: st_ino; thin: the device id */
	uint64_t start;		/* in 512-byte sectors */
	uint64_t len;		/* sectors, or FVD_EXTENT_TO_END */
	uint64_t opaque;	/* reached below this md/dm device (whole), or 0 */
	char via[192];		/* how it was reached, for messages: "dm-3 > sdb" */
};

struct fvd_extents {
	struct fvd_extent *v;
	size_t n, cap;
};

/*
 * The extents holding the bytes of the block device or regular file at
 * @path (of @st, its stat); with @reading, also what it reads (a thin
 * device's external origin).  A device the tools cannot see into (md, dm
 * targets other than linear, striped, crypt and thin, a dm table that
 * cannot be read) counts with its own sectors and, tagged with it, as the
 * whole of every device below it.  Returns 0, or -1 with errno set.
 */
int fvd_storage_extents(const char *path, const struct stat *st, bool reading,
			struct fvd_extents *out);

/* The first extent of @a that overlaps one of @b, with it in *@hit_b; or NULL. */
const struct fvd_extent *fvd_storage_overlap(const struct fvd_extents *a,
					     const struct fvd_extents *b,
					     const struct fvd_extent **hit_b);

/* The sectors @a and @b (which overlap) have in common, in @out. */
void fvd_extent_intersect(const struct fvd_extent *a, const struct fvd_extent *b,
			  struct fvd_extent *out);

void fvd_storage_free(struct fvd_extents *e);

/* Describe @e in @buf ("sectors 0-2047 of 8:16 (sdb)", "file 8:1 inode 12"). */
const char *fvd_extent_describe(const struct fvd_extent *e, char *buf, size_t size);

/*
 * The loop device, if any, that uses the regular file @st as its backing
 * file: its name in @name.  Returns true when one does.
 */
bool fvd_file_loop_user(const struct stat *st, char *name, size_t size);

#endif /* FVD_STORAGE_H */
