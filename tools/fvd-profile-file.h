/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Access profiles in userspace: the file "fvdsetup profile NAME save"
 * writes (what "profile get" gave, with the origin it was recorded over),
 * and the profile an image keeps in its profile region.  fvdsetup open
 * seeds a live table with one; fvd-create copies one into a new image.
 */
#ifndef FVD_PROFILE_FILE_H
#define FVD_PROFILE_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fvd-format.h"

#define FVD_PROFILE_FILE_HEADER		"# dm-fvd profile 1"

/* At most what the target's queue holds (FVD_PROFILE_MAX_RUNS). */
#define FVD_PROFILE_FILE_MAX_RUNS	8192

struct fvd_profile_file_run {
	uint64_t start;			/* origin sectors */
	uint64_t len;
};

struct fvd_profile_file {
	uint64_t origin_sectors;
	uint32_t fingerprint;
	bool has_fingerprint;
	struct fvd_profile_file_run *runs;
	size_t nr;
};

/*
 * The profile at @path: a profile file ("-": standard input), or the one
 * kept in the profile region of the FVD image at @path.  Anything else
 * exits with a message from @prog that names what is wrong; @check_cmd is
 * the command that says more about a damaged image.
 */
void fvd_profile_file_read(const char *prog, const char *check_cmd, const char *path,
			   struct fvd_profile_file *prof);

/* A profile seeds only an image over the origin it was recorded on. */
void fvd_profile_file_match(const char *prog, const char *path,
			    const struct fvd_profile_file *prof,
			    const struct fvd_sb_info *sb, const char *image);

void fvd_profile_file_free(struct fvd_profile_file *prof);

#endif /* FVD_PROFILE_FILE_H */
