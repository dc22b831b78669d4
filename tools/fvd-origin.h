/* SPDX-License-Identifier: GPL-2.0 */
/*
 * An origin's identity as the superblock records it (FVD_COMPAT_ORIGIN_ID):
 * its fingerprint, read the way the target reads it, and a path hint.
 */
#ifndef FVD_ORIGIN_H
#define FVD_ORIGIN_H

#include <stddef.h>
#include <stdint.h>

/*
 * The fingerprint of the first @sectors of @fd: CRC-32C over the ranges of
 * fvd_origin_fp_ranges().  Returns 0, or -1 with errno set (EIO for a short
 * read).
 */
int fvd_origin_fingerprint(int fd, uint64_t sectors, uint32_t *fingerprint);

/*
 * A path that names the origin at @path for as long as it exists, in @hint
 * of @size bytes: a regular file by its canonical path; a block device by
 * the stable name it was given (/dev/disk/by-..., /dev/mapper/..., an LVM
 * /dev/VG/LV link), else by a /dev/disk/by-id link to it, else by its
 * device node.  Returns 0, or -1 with errno set (ENAMETOOLONG when the
 * path does not fit).
 */
int fvd_origin_hint(const char *path, char *hint, size_t size);

#endif /* FVD_ORIGIN_H */
