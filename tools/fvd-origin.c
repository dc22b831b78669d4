// SPDX-License-Identifier: GPL-2.0
/* The origin identity of a new image, and the check of an origin against it. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fvd-format.h"
#include "fvd-origin.h"

#define READ_CHUNK	(1024 * 1024)	/* an edge in one read */

/*
 * The target reads the origin past the page cache, so these reads must not
 * see what it does not: O_DIRECT, or where that is refused (tmpfs) a
 * cache dropped first.
 */
static void read_past_cache(int fd, int *saved_flags)
{
	*saved_flags = fcntl(fd, F_GETFL);
	if (*saved_flags >= 0 && fcntl(fd, F_SETFL, *saved_flags | O_DIRECT) == 0)
		return;
	posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
}

int fvd_origin_fingerprint(int fd, uint64_t sectors, uint32_t *fingerprint)
{
	struct fvd_fp_range ranges[FVD_FP_MAX_RANGES];
	static uint8_t buf[READ_CHUNK] __aligned(4096);
	unsigned int n = fvd_origin_fp_ranges(sectors, ranges), i;
	uint32_t crc = ~0U;
	int flags, r = 0;
	bool retried = false;

	read_past_cache(fd, &flags);
again:

	for (i = 0; i < n; i++) {
		uint64_t off = ranges[i].start * 512, end = off + ranges[i].len * 512;

		while (off < end) {
			size_t want = end - off < READ_CHUNK ? end - off : READ_CHUNK;
			ssize_t got = pread(fd, buf, want, off);

			if (got < 0 && errno == EINTR)
				continue;
			/* a file system that takes O_DIRECT opens but not reads */
			if (got < 0 && errno == EINVAL && !retried && flags >= 0) {
				fcntl(fd, F_SETFL, flags);
				posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
				retried = true;
				crc = ~0U;
				goto again;
			}
			if (got <= 0) {
				if (!got)
					errno = EIO;
				r = -1;
				goto out;
			}
			crc = fvd_crc32c_update(crc, buf, got);
			off += got;
		}
	}
	*fingerprint = ~crc;
out:
	if (flags >= 0)
		fcntl(fd, F_SETFL, flags);
	return r;
}

static int copy_hint(char *hint, size_t size, const char *path)
{
	if (strlen(path) >= size) {
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(hint, path);
	return 0;
}

/* A name udev or LVM keeps for as long as the device exists. */
static bool stable_name(const char *abs)
{
	char dir[PATH_MAX], *slash;
	struct stat st;

	if (!strncmp(abs, "/dev/disk/by-", 13) || !strncmp(abs, "/dev/mapper/", 12))
		return true;
	/* /dev/VG/LV: a link in a directory of /dev that is not a kernel name */
	if (strncmp(abs, "/dev/", 5) || !strncmp(abs, "/dev/block/", 11) ||
	    lstat(abs, &st) || !S_ISLNK(st.st_mode))
		return false;
	snprintf(dir, sizeof(dir), "%s", abs);
	slash = strrchr(dir, '/');
	return slash && slash > dir + 4;
}

/* A /dev/disk/by-id link to @rdev, the first in name order, in @hint. */
static int by_id_link(dev_t rdev, char *hint, size_t size)
{
	struct dirent **names;
	char link[PATH_MAX];
	struct stat st;
	int n, i, r = -1;

	n = scandir("/dev/disk/by-id", &names, NULL, alphasort);
	if (n < 0)
		return -1;
	for (i = 0; i < n; i++) {
		snprintf(link, sizeof(link), "/dev/disk/by-id/%s", names[i]->d_name);
		if (r && names[i]->d_name[0] != '.' && !stat(link, &st) &&
		    S_ISBLK(st.st_mode) && st.st_rdev == rdev &&
		    strlen(link) < size) {
			strcpy(hint, link);
			r = 0;
		}
		free(names[i]);
	}
	free(names);
	return r;
}

int fvd_origin_hint(const char *path, char *hint, size_t size)
{
	char abs[PATH_MAX], *real;
	struct stat st;
	int r;

	if (stat(path, &st))
		return -1;
	real = realpath(path, NULL);
	if (!real)
		return -1;
	if (!S_ISBLK(st.st_mode)) {
		r = copy_hint(hint, size, real);
		free(real);
		return r;
	}
	/* the name as given, made absolute but with its links kept */
	if (path[0] == '/') {
		snprintf(abs, sizeof(abs), "%s", path);
	} else if (getcwd(abs, sizeof(abs))) {
		size_t len = strlen(abs);

		snprintf(abs + len, sizeof(abs) - len, "/%s", path);
	} else {
		abs[0] = '\0';
	}
	if (abs[0] && stable_name(abs))
		r = copy_hint(hint, size, abs);
	else if (!by_id_link(st.st_rdev, hint, size))
		r = 0;
	else
		r = copy_hint(hint, size, real);
	free(real);
	return r;
}
