// SPDX-License-Identifier: GPL-2.0
/* The origin identity of a new image, and the check of an origin against it. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fvd-format.h"
#include "fvd-origin.h"

#define READ_CHUNK	(64 * 1024)

int fvd_origin_fingerprint(int fd, uint64_t sectors, uint32_t *fingerprint)
{
	struct fvd_fp_range ranges[FVD_FP_MAX_RANGES];
	static uint8_t buf[READ_CHUNK];
	unsigned int n = fvd_origin_fp_ranges(sectors, ranges), i;
	uint32_t crc = ~0U;

	for (i = 0; i < n; i++) {
		uint64_t off = ranges[i].start * 512, end = off + ranges[i].len * 512;

		while (off < end) {
			size_t want = end - off < READ_CHUNK ? end - off : READ_CHUNK;
			ssize_t got = pread(fd, buf, want, off);

			if (got < 0 && errno == EINTR)
				continue;
			if (got <= 0) {
				if (!got)
					errno = EIO;
				return -1;
			}
			crc = fvd_crc32c_update(crc, buf, got);
			off += got;
		}
	}
	*fingerprint = ~crc;
	return 0;
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
