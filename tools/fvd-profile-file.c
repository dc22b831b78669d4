// SPDX-License-Identifier: GPL-2.0
/* Access profiles in userspace: a profile file, or an image's profile region. */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fvd-profile-file.h"
#include "fvd-tool.h"

#define SECTOR ((uint64_t)512)

static const char *profile_prog;

static void __noreturn __printf(1, 2) die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fvd_vdie(profile_prog, 1, fmt, ap);
}

static void read_full(int fd, const char *path, void *buf, size_t len, uint64_t off)
{
	ssize_t n = pread(fd, buf, len, off);

	if (n != (ssize_t)len)
		die("cannot read %s at byte %" PRIu64 ": %s", path, off,
		    n < 0 ? strerror(errno) : "short read");
}

/* Decimal digits only, as the kernel reads them: no sign, no blanks. */
static bool parse_u64(const char *s, const char *end, uint64_t *v)
{
	uint64_t n = 0;

	if (s == end)
		return false;
	for (; s < end; s++) {
		if (*s < '0' || *s > '9' || n > (UINT64_MAX - (*s - '0')) / 10)
			return false;
		n = n * 10 + (*s - '0');
	}
	*v = n;
	return true;
}

/*
 * The superblock of the FVD image open as @fd, or false when @fd holds no
 * FVD magic (a profile file); an image whose superblock is not valid exits.
 */
static bool read_image_sb(int fd, const char *path, const char *check_cmd,
			  struct fvd_sb_info *sb)
{
	static uint8_t block[FVD_SB_SIZE];
	enum fvd_sb_status status;

	if (pread(fd, block, sizeof(block), 0) != (ssize_t)sizeof(block))
		return false;
	status = fvd_sb_decode(block, sb);
	if (status == FVD_SB_BAD_MAGIC)
		return false;
	if (status != FVD_SB_OK)
		die("%s: invalid superblock: %s (%s %s says more)", path,
		    fvd_sb_status_str(status), check_cmd, path);
	return true;
}

/* The profile the target saved (or fvd-create copied) in the image's region. */
static void read_image(int fd, const char *path, const char *check_cmd,
		       const struct fvd_sb_info *sb, struct fvd_profile_file *prof)
{
	struct fvd_disk_profile_run *run;
	enum fvd_profile_status status;
	uint8_t *region;
	uint32_t nr, i;

	if (!(sb->compat_features & FVD_COMPAT_PROFILE) && !sb->origin_sectors)
		die("%s has no profile region (it has no origin): it records no profile", path);
	if (!(sb->compat_features & FVD_COMPAT_PROFILE))
		die("%s has no profile region (made before dm-fvd 1.8): save its profile with 'fvdsetup profile NAME save FILE' while it is open",
		    path);
	region = malloc(FVD_PROFILE_REGION_BYTES);
	if (!region)
		die("cannot read the profile of %s: out of memory", path);
	/* A live table writes the region past the page cache: drop what it holds. */
	posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
	read_full(fd, path, region, FVD_PROFILE_REGION_BYTES, sb->profile_offset * SECTOR);
	status = fvd_profile_region_check(region, sb->origin_sectors, &nr);
	if (status == FVD_PROFILE_NONE)
		die("%s holds no profile: none was recorded (table feature profile_seconds) and ended yet",
		    path);
	if (status != FVD_PROFILE_OK)
		die("%s: the profile region at sector %" PRIu64 " is not valid: %s (%s %s says more)",
		    path, sb->profile_offset, fvd_profile_status_str(status), check_cmd, path);
	if (nr > FVD_PROFILE_FILE_MAX_RUNS)
		die("%s: a profile of %" PRIu32 " runs, more than the %d the target queues",
		    path, nr, FVD_PROFILE_FILE_MAX_RUNS);
	prof->origin_sectors = sb->origin_sectors;
	prof->fingerprint = sb->origin_fingerprint;
	prof->has_fingerprint = sb->compat_features & FVD_COMPAT_ORIGIN_ID;
	prof->runs = calloc(nr ? nr : 1, sizeof(*prof->runs));
	if (!prof->runs)
		die("out of memory");
	for (i = 0; i < nr; i++) {
		run = fvd_profile_region_run(region, i);
		prof->runs[i].start = le64toh(run->start);
		prof->runs[i].len = le64toh(run->len);
	}
	prof->nr = nr;
	free(region);
}

/* A profile file: its header line, origin_sectors, a fingerprint, runs. */
static void read_file(FILE *f, const char *path, struct fvd_profile_file *prof)
{
	char line[128], *plus, *end;
	unsigned long fp;
	size_t room = 0;
	unsigned int lineno = 1;
	struct fvd_profile_file_run run;

	if (!fgets(line, sizeof(line), f) ||
	    strncmp(line, FVD_PROFILE_FILE_HEADER "\n", sizeof(FVD_PROFILE_FILE_HEADER)))
		die("%s is not a dm-fvd profile (no '%s' line first)", path,
		    FVD_PROFILE_FILE_HEADER);
	while (fgets(line, sizeof(line), f)) {
		lineno++;
		if (!strchr(line, '\n') && !feof(f))
			die("%s line %u: too long", path, lineno);
		line[strcspn(line, "\n")] = '\0';
		if (!line[0] || line[0] == '#')
			continue;
		if (!strncmp(line, "origin_sectors ", 15)) {
			if (prof->origin_sectors)
				die("%s line %u: a second origin_sectors", path, lineno);
			if (!parse_u64(line + 15, line + strlen(line), &prof->origin_sectors) ||
			    !prof->origin_sectors)
				die("%s line %u: bad origin_sectors", path, lineno);
			continue;
		}
		if (!strncmp(line, "origin_fingerprint ", 19)) {
			errno = 0;
			fp = strtoul(line + 19, &end, 16);
			if (prof->has_fingerprint || end == line + 19 || *end || errno ||
			    fp > UINT32_MAX || !isxdigit((unsigned char)line[19]))
				die("%s line %u: bad or second origin_fingerprint", path, lineno);
			prof->fingerprint = fp;
			prof->has_fingerprint = true;
			continue;
		}
		plus = strchr(line, '+');
		if (!plus || !parse_u64(line, plus, &run.start) ||
		    !parse_u64(plus + 1, line + strlen(line), &run.len) || !run.len ||
		    !prof->origin_sectors || run.start >= prof->origin_sectors ||
		    run.len > prof->origin_sectors - run.start)
			die("%s line %u: '%s' is not START+LEN inside the origin_sectors given before it",
			    path, lineno, line);
		if (prof->nr == FVD_PROFILE_FILE_MAX_RUNS)
			die("%s: more than %d runs, which the target does not queue", path,
			    FVD_PROFILE_FILE_MAX_RUNS);
		if (prof->nr == room) {
			room = room ? 2 * room : 1024;
			prof->runs = realloc(prof->runs, room * sizeof(*prof->runs));
			if (!prof->runs)
				die("out of memory");
		}
		prof->runs[prof->nr++] = run;
	}
	if (ferror(f))
		die("cannot read profile %s: %s", path, strerror(errno));
	if (!prof->origin_sectors)
		die("%s has no origin_sectors line", path);
}

void fvd_profile_file_read(const char *prog, const char *check_cmd, const char *path,
			   struct fvd_profile_file *prof)
{
	struct fvd_sb_info sb;
	FILE *f;
	int fd;

	profile_prog = prog;
	memset(prof, 0, sizeof(*prof));
	if (!strcmp(path, "-")) {
		read_file(stdin, path, prof);
		return;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		die("cannot open profile %s: %s", path, strerror(errno));
	if (read_image_sb(fd, path, check_cmd, &sb)) {
		read_image(fd, path, check_cmd, &sb, prof);
		close(fd);
		return;
	}
	f = fdopen(fd, "r");
	if (!f)
		die("cannot open profile %s: %s", path, strerror(errno));
	read_file(f, path, prof);
	fclose(f);
}

void fvd_profile_file_match(const char *prog, const char *path,
			    const struct fvd_profile_file *prof,
			    const struct fvd_sb_info *sb, const char *image)
{
	profile_prog = prog;
	if (prof->origin_sectors != sb->origin_sectors)
		die("profile %s was recorded over an origin of %" PRIu64 " sectors, %s has one of %" PRIu64,
		    path, prof->origin_sectors, image, sb->origin_sectors);
	if (prof->has_fingerprint && (sb->compat_features & FVD_COMPAT_ORIGIN_ID) &&
	    prof->fingerprint != sb->origin_fingerprint)
		die("profile %s was recorded over another origin (fingerprint %08x, %s's is %08x)",
		    path, prof->fingerprint, image, sb->origin_fingerprint);
}

void fvd_profile_file_free(struct fvd_profile_file *prof)
{
	free(prof->runs);
	prof->runs = NULL;
	prof->nr = 0;
}
