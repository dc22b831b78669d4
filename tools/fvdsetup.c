// SPDX-License-Identifier: GPL-2.0
/*
 * fvdsetup: set up and look at dm-fvd devices, in the manner of
 * veritysetup and integritysetup.
 *
 *   fvdsetup format [fvd-create options] IMAGE
 *   fvdsetup open IMAGE NAME [--origin DEV] [--data-dev DEV] [options]
 *   fvdsetup close NAME
 *   fvdsetup status NAME [--json]
 *   fvdsetup info IMAGE [--json]
 *   fvdsetup prefetch NAME start|stop|set TUNABLE VALUE
 *   fvdsetup check|repair IMAGE [fvd-check options]
 *
 * The device itself is made, messaged and removed by dmsetup(8), which
 * also waits for udev; what fvdsetup adds is reading the image: the table
 * line from the superblock, the origin from its recorded identity, loop
 * devices for images in files, and a person's reading of the status line.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/loop.h>

#include "fvd-format.h"
#include "fvd-origin.h"
#include "fvd-profile-file.h"
#include "fvd-status.h"
#include "fvd-tool.h"
#include "fvd-version.h"

#define SECTOR ((uint64_t)512)

static const char *prog = "fvdsetup";

static void __noreturn __printf(1, 2) die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fvd_vdie(prog, 1, fmt, ap);
}

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: %s COMMAND ...\n"
		"\n"
		"  format [fvd-create options] IMAGE   format an image (fvd-create)\n"
		"  open IMAGE NAME [options]           create /dev/mapper/NAME over IMAGE\n"
		"      --origin PATH     the origin (default: the path the image recorded)\n"
		"      --data-dev PATH   the data device of an image that keeps it apart\n"
		"      --read-only       load the device read-only\n"
		"      --no-copy-on-read, --no-prefetch, --skip-origin-check\n"
		"      --feature NAME[=VALUE]  any other feature argument of the table\n"
		"      --profile-from FILE|IMAGE  have the prefetch copy the blocks of a\n"
		"                           saved profile first, at once: a file that\n"
		"                           'profile save' wrote, or the profile an image\n"
		"                           over the same origin recorded\n"
		"  close NAME                          remove the device\n"
		"  status NAME [--json]                what the device does, for a person\n"
		"  info IMAGE [--json]                 what the image's superblock says\n"
		"  prefetch NAME start|stop|set TUNABLE VALUE\n"
		"  profile NAME save FILE|-             save what the guest read from the\n"
		"                                      origin (table feature profile_seconds)\n"
		"  check IMAGE [fvd-check options]     check the image (fvd-check)\n"
		"  repair IMAGE [fvd-check options]    fvd-check --repair\n"
		"  --version                           print the version of dm-fvd\n"
		"Files are attached to loop devices that go away with the device.\n",
		prog);
}

/* ---- helpers ---- */

/* A sibling tool: next to this program if it is there, else from $PATH. */
static void exec_tool(const char *tool, char **args, int nr_args, const char *first)
{
	char self[PATH_MAX], path[PATH_MAX + 32], *slash, **argv;
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	int i, argc = 0;

	argv = calloc(nr_args + 3, sizeof(*argv));
	if (!argv)
		die("out of memory");
	argv[argc++] = (char *)tool;
	if (first)
		argv[argc++] = (char *)first;
	for (i = 0; i < nr_args; i++)
		argv[argc++] = args[i];
	if (n > 0) {
		self[n] = '\0';
		slash = strrchr(self, '/');
		if (slash) {
			*slash = '\0';
			snprintf(path, sizeof(path), "%s/%s", self, tool);
			if (!access(path, X_OK))
				execv(path, argv);
		}
	}
	execvp(tool, argv);
	die("cannot run %s: %s", tool, strerror(errno));
}

/* The next run_dmsetup() is a question whose "no" is not an error: no stderr. */
static bool dmsetup_quiet;

/*
 * Run dmsetup with @argv (NULL-terminated, without "dmsetup"); its
 * standard output into @out of @size bytes when @out is given.  Returns
 * its exit status, or -1 when it could not be run.
 */
static int run_dmsetup(const char *const *argv, char *out, size_t size)
{
	bool quiet = dmsetup_quiet;

	const char *args[16] = { "dmsetup" };
	int pipefd[2] = { -1, -1 }, status, i;
	size_t len = 0;
	ssize_t got;
	pid_t pid;

	dmsetup_quiet = false;
	for (i = 0; argv[i] && i < 14; i++)
		args[i + 1] = argv[i];
	if (out && pipe(pipefd))
		return -1;
	pid = fork();
	if (pid < 0)
		return -1;
	if (!pid) {
		if (quiet) {
			int null = open("/dev/null", O_WRONLY);

			if (null >= 0)
				dup2(null, STDERR_FILENO);
		}
		if (out) {
			dup2(pipefd[1], STDOUT_FILENO);
			close(pipefd[0]);
			close(pipefd[1]);
		}
		execvp("dmsetup", (char **)args);
		fprintf(stderr, "%s: cannot run dmsetup: %s\n", prog, strerror(errno));
		_exit(127);
	}
	if (out) {
		close(pipefd[1]);
		while ((got = read(pipefd[0], out + len, size - 1 - len)) > 0)
			len += got;
		out[len] = '\0';
		close(pipefd[0]);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void read_full(int fd, const char *path, void *buf, size_t len, uint64_t off)
{
	ssize_t n = pread(fd, buf, len, off);

	if (n != (ssize_t)len)
		die("cannot read %s at byte %" PRIu64 ": %s", path, off,
		    n < 0 ? strerror(errno) : "short read");
}

/* The superblock of @path; exits with a pointer to fvd-check when it is not valid. */
static void read_superblock(const char *path, struct fvd_sb_info *sb)
{
	static uint8_t block[FVD_SB_SIZE];
	enum fvd_sb_status status;
	uint64_t size;
	bool blk;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		die("cannot open %s: %s", path, strerror(errno));
	if (fvd_fd_size(fd, &size, &blk))
		die("%s is neither a block device nor a regular file", path);
	if (size < FVD_SB_SIZE)
		die("%s: %" PRIu64 " bytes, too small for an FVD superblock", path, size);
	read_full(fd, path, block, sizeof(block), 0);
	close(fd);
	status = fvd_sb_decode(block, sb);
	if (status == FVD_SB_BAD_MAGIC)
		die("%s: not an FVD image (no FVD superblock)", path);
	if (status != FVD_SB_OK)
		die("%s: invalid superblock: %s (fvdsetup check %s says more)", path,
		    fvd_sb_status_str(status), path);
}

/* @bytes the way a person reads them: "64.0 MiB", "512 B". */
static const char *human(uint64_t bytes, char *buf, size_t size)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
	double value = bytes;
	unsigned int u = 0;

	while (value >= 1024 && u + 1 < ARRAY_SIZE(units)) {
		value /= 1024;
		u++;
	}
	if (!u)
		snprintf(buf, size, "%" PRIu64 " B", bytes);
	else
		snprintf(buf, size, "%.1f %s", value, units[u]);
	return buf;
}

static void uuid_text(const uint8_t *u, char *buf)
{
	unsigned int i;

	for (i = 0; i < 16; i++)
		buf += sprintf(buf, "%02x%s", u[i], i == 3 || i == 5 || i == 7 || i == 9 ? "-" : "");
}

/* @s as a JSON string (without the quotes' escaping problems). */
static void json_string(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			printf("\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			printf("\\u%04x", *s);
		else
			putchar(*s);
	}
	putchar('"');
}

/* ---- info ---- */

static int cmd_info(int argc, char **argv)
{
	struct fvd_sb_info sb;
	bool json = false;
	char uuid[40], a[32], b[32];
	const char *image = NULL;
	int i;

	for (i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			json = true;
		else if (!image && argv[i][0] != '-')
			image = argv[i];
		else
			die("info: unexpected argument '%s' (usage: info IMAGE [--json])", argv[i]);
	}
	if (!image)
		die("info: no IMAGE given");
	read_superblock(image, &sb);
	uuid_text(sb.uuid, uuid);
	if (json) {
		printf("{\"image\": ");
		json_string(image);
		printf(", \"uuid\": \"%s\", \"version\": %u, \"virtual_bytes\": %" PRIu64
		       ", \"block_bytes\": %" PRIu64 ", \"blocks\": %" PRIu64,
		       uuid, sb.version, sb.virtual_sectors * SECTOR,
		       (uint64_t)sb.block_sectors * SECTOR, sb.nr_blocks);
		printf(", \"compact\": %s", fvd_compact(&sb) ? "true" : "false");
		if (fvd_compact(&sb))
			printf(", \"chunk_bytes\": %" PRIu64 ", \"chunks\": %" PRIu64,
			       (uint64_t)sb.chunk_sectors * SECTOR, sb.nr_chunks);
		printf(", \"journal_bytes\": %" PRIu64, sb.journal_sectors * SECTOR);
		printf(", \"data\": %s, \"data_offset_bytes\": %" PRIu64,
		       sb.data_offset ? "\"image\"" : "\"separate\"", sb.data_offset * SECTOR);
		printf(", \"origin\": ");
		if (!sb.origin_sectors) {
			printf("null");
		} else {
			printf("{\"bytes\": %" PRIu64, sb.origin_sectors * SECTOR);
			if (sb.compat_features & FVD_COMPAT_ORIGIN_ID) {
				printf(", \"fingerprint\": \"%08x\", \"hint\": ", sb.origin_fingerprint);
				json_string(sb.origin_hint);
			}
			printf("}");
		}
		printf(", \"clean\": %s, \"all_local\": %s, \"needs_check\": %s, \"backup_superblock\": %s}\n",
		       sb.flags & FVD_FLAG_CLEAN ? "true" : "false",
		       sb.flags & FVD_FLAG_ALL_LOCAL ? "true" : "false",
		       sb.flags & FVD_FLAG_NEEDS_CHECK ? "true" : "false",
		       sb.ro_compat_features & FVD_RO_COMPAT_BACKUP_SB ? "true" : "false");
		return 0;
	}
	printf("%s: FVD image, format version %u\n", image, sb.version);
	printf("  uuid            %s\n", uuid);
	printf("  virtual size    %s (%" PRIu64 " sectors)\n",
	       human(sb.virtual_sectors * SECTOR, a, sizeof(a)), sb.virtual_sectors);
	printf("  block size      %s, %" PRIu64 " blocks\n",
	       human((uint64_t)sb.block_sectors * SECTOR, a, sizeof(a)), sb.nr_blocks);
	if (fvd_compact(&sb))
		printf("  compact         chunks of %s, %" PRIu64 " chunks\n",
		       human((uint64_t)sb.chunk_sectors * SECTOR, a, sizeof(a)), sb.nr_chunks);
	printf("  journal         %s\n", sb.journal_sectors ?
	       human(sb.journal_sectors * SECTOR, a, sizeof(a)) : "none");
	if (sb.data_offset)
		printf("  data            in the image, from %s\n",
		       human(sb.data_offset * SECTOR, a, sizeof(a)));
	else
		printf("  data            on a separate device (open needs --data-dev)\n");
	if (!sb.origin_sectors)
		printf("  origin          none: unwritten blocks read as zeroes\n");
	else if (sb.compat_features & FVD_COMPAT_ORIGIN_ID)
		printf("  origin          %s, fingerprint %08x, recorded as %s\n",
		       human(sb.origin_sectors * SECTOR, b, sizeof(b)), sb.origin_fingerprint,
		       sb.origin_hint[0] ? sb.origin_hint : "(no path)");
	else
		printf("  origin          %s (no identity recorded: made before dm-fvd 1.5)\n",
		       human(sb.origin_sectors * SECTOR, b, sizeof(b)));
	printf("  state           %s%s%s\n",
	       sb.flags & FVD_FLAG_CLEAN ? "clean" : "not cleanly shut down (in use, or crashed)",
	       sb.flags & FVD_FLAG_ALL_LOCAL ? ", all-local (the origin is no longer needed)" : "",
	       sb.flags & FVD_FLAG_NEEDS_CHECK ? ", needs check (run fvdsetup repair)" : "");
	return 0;
}

/* ---- open ---- */

/*
 * Attach the regular file @path to a free loop device that goes away when
 * its last user closes it; the open loop device's fd is returned in *@fd
 * (kept open until the table holds it), its path in @loop.
 */
static void attach_loop(const char *path, bool read_only, int *fd, char *loop, size_t size)
{
	struct loop_config config;
	int ctl, file, n, tries;

	file = open(path, (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);
	if (file < 0)
		die("cannot open %s: %s", path, strerror(errno));
	ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
	if (ctl < 0)
		die("cannot attach %s to a loop device: /dev/loop-control: %s%s", path,
		    strerror(errno), errno == ENOENT ? " (modprobe loop)" : "");
	for (tries = 0; tries < 16; tries++) {
		n = ioctl(ctl, LOOP_CTL_GET_FREE);
		if (n < 0)
			die("no free loop device for %s: %s", path, strerror(errno));
		snprintf(loop, size, "/dev/loop%d", n);
		*fd = open(loop, (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);
		if (*fd < 0)
			die("cannot open %s: %s", loop, strerror(errno));
		memset(&config, 0, sizeof(config));
		config.fd = file;
		config.info.lo_flags = LO_FLAGS_AUTOCLEAR | (read_only ? LO_FLAGS_READ_ONLY : 0);
		snprintf((char *)config.info.lo_file_name, sizeof(config.info.lo_file_name),
			 "%s", path);
		if (!ioctl(*fd, LOOP_CONFIGURE, &config))
			break;
		/* another program took it between the two calls */
		if (errno != EBUSY)
			die("cannot attach %s to %s: %s", path, loop, strerror(errno));
		close(*fd);
		*fd = -1;
	}
	if (*fd < 0)
		die("cannot attach %s to a loop device: all taken while trying", path);
	close(ctl);
	close(file);
}

/*
 * The block device for @path: itself, or a loop device over a regular
 * file (its fd in the first free slot of @held).
 */
static const char *block_device_for(const char *path, bool read_only, int *held,
				    char *loop, size_t size)
{
	struct stat st;

	if (stat(path, &st))
		die("cannot open %s: %s", path, strerror(errno));
	if (S_ISBLK(st.st_mode))
		return path;
	if (!S_ISREG(st.st_mode))
		die("%s is neither a block device nor a regular file", path);
	attach_loop(path, read_only, held, loop, size);
	return loop;
}

/* Is the origin at @path the one the image was made over? */
static void check_origin(const struct fvd_sb_info *sb, const char *path, bool skip)
{
	uint32_t fingerprint;
	uint64_t size;
	bool blk;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		die("cannot open origin %s: %s", path, strerror(errno));
	if (fvd_fd_size(fd, &size, &blk))
		die("origin %s is neither a block device nor a regular file", path);
	if (size != sb->origin_sectors * SECTOR)
		die("origin %s has %" PRIu64 " bytes, the image was made over one of %" PRIu64,
		    path, size, sb->origin_sectors * SECTOR);
	if (!skip && (sb->compat_features & FVD_COMPAT_ORIGIN_ID)) {
		if (fvd_origin_fingerprint(fd, sb->origin_sectors, &fingerprint))
			die("cannot read origin %s: %s", path, strerror(errno));
		if (fingerprint != sb->origin_fingerprint)
			die("origin %s is not the image's origin: fingerprint %08x, the image was made over one with fingerprint %08x (%s); give the right --origin, or --skip-origin-check if this one holds the same data",
			    path, fingerprint, sb->origin_fingerprint,
			    sb->origin_hint[0] ? sb->origin_hint : "no path recorded");
	}
	close(fd);
}

/* A device-mapper name dmsetup takes, as cryptsetup checks it. */
static void check_name(const char *name)
{
	if (!*name || strlen(name) >= 128 || strchr(name, '/') || !strcmp(name, ".") ||
	    !strcmp(name, ".."))
		die("invalid device name '%s'", name);
}

enum {
	OPT_ORIGIN = 256, OPT_DATA_DEV, OPT_READ_ONLY, OPT_NO_COR, OPT_NO_PREFETCH,
	OPT_SKIP_ORIGIN_CHECK, OPT_FEATURE, OPT_JSON, OPT_PROFILE_FROM,
};

/* profile add: this many runs per message */
#define PROFILE_RUNS_PER_MESSAGE	128

/* profile add, PROFILE_RUNS_PER_MESSAGE runs per message. */
static bool profile_send(const char *name, const struct fvd_profile_file *prof)
{
	/* a run prints as at most 20 + 1 + 20 characters and a space */
	static char message[32 + PROFILE_RUNS_PER_MESSAGE * 42];
	size_t i, n, len;

	for (i = 0; i < prof->nr; i += n) {
		len = snprintf(message, sizeof(message), "profile add");
		for (n = 0; n < PROFILE_RUNS_PER_MESSAGE && i + n < prof->nr; n++)
			len += snprintf(message + len, sizeof(message) - len,
					" %" PRIu64 "+%" PRIu64, prof->runs[i + n].start,
					prof->runs[i + n].len);
		if (len >= sizeof(message))
			die("internal error: profile message of %zu bytes", len);
		if (run_dmsetup((const char *const[]){ "message", name, "0", message, NULL },
				NULL, 0))
			return false;
	}
	return true;
}

static int cmd_open(int argc, char **argv)
{
	static const struct option options[] = {
		{ "origin", required_argument, NULL, OPT_ORIGIN },
		{ "data-dev", required_argument, NULL, OPT_DATA_DEV },
		{ "read-only", no_argument, NULL, OPT_READ_ONLY },
		{ "no-copy-on-read", no_argument, NULL, OPT_NO_COR },
		{ "no-prefetch", no_argument, NULL, OPT_NO_PREFETCH },
		{ "skip-origin-check", no_argument, NULL, OPT_SKIP_ORIGIN_CHECK },
		{ "feature", required_argument, NULL, OPT_FEATURE },
		{ "profile-from", required_argument, NULL, OPT_PROFILE_FROM },
		{ NULL, 0, NULL, 0 }
	};
	const char *origin = NULL, *data = NULL, *image, *name, *meta_dev, *data_dev;
	const char *profile_from = NULL;
	struct fvd_profile_file prof;
	const char *origin_dev = "-";
	char features[1024] = "", table[4096 + 3 * PATH_MAX], a[32], uuid[64], other[256];
	char loops[3][32];
	int held[3] = { -1, -1, -1 }, nr_features = 0, opt, r, i;
	bool read_only = false, skip_check = false, needs_origin;
	struct fvd_sb_info sb;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
		switch (opt) {
		case OPT_ORIGIN:
			origin = optarg;
			break;
		case OPT_DATA_DEV:
			data = optarg;
			break;
		case OPT_READ_ONLY:
			read_only = true;
			break;
		case OPT_PROFILE_FROM:
			profile_from = optarg;
			break;
		case OPT_NO_COR:
		case OPT_NO_PREFETCH:
		case OPT_SKIP_ORIGIN_CHECK:
		case OPT_FEATURE: {
			const char *word = opt == OPT_NO_COR ? "no_copy_on_read" :
					   opt == OPT_NO_PREFETCH ? "no_prefetch" :
					   opt == OPT_SKIP_ORIGIN_CHECK ? "skip_origin_check" : optarg;
			char *eq = strchr(word, '=');
			size_t len = strlen(features);

			if (opt == OPT_SKIP_ORIGIN_CHECK)
				skip_check = true;
			if (strpbrk(word, " \t\n") || !*word)
				die("invalid feature '%s'", word);
			if (eq)
				snprintf(features + len, sizeof(features) - len, " %.*s %s",
					 (int)(eq - word), word, eq + 1);
			else
				snprintf(features + len, sizeof(features) - len, " %s", word);
			nr_features += eq ? 2 : 1;
			break;
		}
		default:
			usage(stderr);
			return 1;
		}
	}
	if (argc - optind != 2)
		die("open: IMAGE and NAME expected (usage: open IMAGE NAME [options])");
	image = argv[optind];
	name = argv[optind + 1];
	check_name(name);
	read_superblock(image, &sb);
	if ((sb.flags & FVD_FLAG_NEEDS_CHECK) && !read_only)
		die("%s needs checking: a metadata error stopped its last use; run 'fvdsetup repair %s' first, or open it --read-only",
		    image, image);
	if (read_only) {
		size_t len = strlen(features);

		snprintf(features + len, sizeof(features) - len, " read_only");
		nr_features++;
	}

	needs_origin = sb.origin_sectors && !(sb.flags & FVD_FLAG_ALL_LOCAL);
	if (!sb.origin_sectors && origin)
		die("%s has no origin, but --origin %s was given", image, origin);
	if (needs_origin && !origin) {
		if (!sb.origin_hint[0])
			die("%s needs its origin (%s, no path recorded): give --origin", image,
			    human(sb.origin_sectors * SECTOR, a, sizeof(a)));
		if (access(sb.origin_hint, R_OK))
			die("%s needs its origin, recorded as %s, which is not there (%s): give --origin",
			    image, sb.origin_hint, strerror(errno));
		origin = sb.origin_hint;
	}
	if (needs_origin)
		check_origin(&sb, origin, skip_check);
	if (profile_from) {
		if (read_only || !sb.origin_sectors)
			die("--profile-from: %s", read_only ? "a read-only device copies nothing" :
			    "the image has no origin");
		fvd_profile_file_read(prog, "fvdsetup check", profile_from, &prof);
		fvd_profile_file_match(prog, profile_from, &prof, &sb, image);
		if (!needs_origin)
			profile_from = NULL;	/* all local: nothing to copy */
	}
	if (sb.data_offset && data)
		die("%s keeps its data after its metadata, but --data-dev %s was given", image, data);
	if (!sb.data_offset && !data)
		die("%s keeps its data on a separate device: give --data-dev", image);

	/*
	 * The device's DM UUID names the image: udev links it as
	 * /dev/disk/by-id/dm-uuid-FVD-..., and device-mapper refuses a second
	 * device over the same image.
	 */
	strcpy(uuid, "FVD-");
	uuid_text(sb.uuid, uuid + 4);
	dmsetup_quiet = true;
	if (!run_dmsetup((const char *const[]){ "info", "-c", "--noheadings", "-o", "name",
						"-u", uuid, NULL }, other, sizeof(other)) &&
	    other[0]) {
		other[strcspn(other, "\n")] = '\0';
		die("%s is open already, as %s", image, other);
	}
	meta_dev = block_device_for(image, read_only, &held[0], loops[0], sizeof(loops[0]));
	data_dev = sb.data_offset ? meta_dev :
		   block_device_for(data, read_only, &held[1], loops[1], sizeof(loops[1]));
	if (needs_origin)
		origin_dev = block_device_for(origin, true, &held[2], loops[2], sizeof(loops[2]));
	if (nr_features)
		snprintf(table, sizeof(table), "0 %" PRIu64 " fvd %s %s %s %d%s",
			 sb.virtual_sectors, meta_dev, data_dev, origin_dev, nr_features, features);
	else
		snprintf(table, sizeof(table), "0 %" PRIu64 " fvd %s %s %s",
			 sb.virtual_sectors, meta_dev, data_dev, origin_dev);
	r = run_dmsetup((const char *const[]){ "create", name, "--uuid", uuid, "--table", table,
						NULL }, NULL, 0);
	/* The table holds the loop devices now, or they go away with these. */
	for (i = 0; i < 3; i++)
		if (held[i] >= 0)
			close(held[i]);
	if (r)
		die("dmsetup create %s failed (the kernel log says why): table %s", name, table);
	if (profile_from && !profile_send(name, &prof)) {
		r = run_dmsetup((const char *const[]){ "remove", name, NULL }, NULL, 0);
		die("the target refused the profile %s (the kernel log says why): %s %s",
		    profile_from, name, r ? "could not be removed" : "removed");
	}
	if (profile_from)
		printf("%s: prefetch seeded with %zu runs from %s\n", name, prof.nr, profile_from);
	printf("/dev/mapper/%s: %s over %s%s%s\n", name,
	       human(sb.virtual_sectors * SECTOR, a, sizeof(a)), image,
	       needs_origin ? ", origin " : "", needs_origin ? origin : "");
	return 0;
}

/* ---- the device ---- */

/*
 * The fvd target's parameters of device @name from "dmsetup @what", in
 * @out: the words after "<start> <length> fvd".  Refuses a device that is
 * not one fvd target.
 */
static void fvd_line(const char *name, const char *what, char *out, size_t size,
		     uint64_t *length)
{
	static char buf[65536];
	char type[32];
	int r, skip = 0;
	uint64_t start;

	check_name(name);
	r = run_dmsetup((const char *const[]){ what, name, NULL }, buf, sizeof(buf));
	if (r)
		die("no device-mapper device %s (dmsetup %s failed)", name, what);
	if (sscanf(buf, "%" SCNu64 " %" SCNu64 " %31s %n", &start, length, type, &skip) != 3 ||
	    strcmp(type, "fvd"))
		die("%s is not a dm-fvd device", name);
	if (strchr(buf, '\n') && strchr(buf, '\n')[1])
		die("%s has more than one target: not a device fvdsetup made", name);
	snprintf(out, size, "%s", buf + skip);
	out[strcspn(out, "\n")] = '\0';
}

static int cmd_close(int argc, char **argv)
{
	char line[4096];
	uint64_t length;

	if (argc != 1)
		die("close: NAME expected");
	fvd_line(argv[0], "table", line, sizeof(line), &length);
	if (run_dmsetup((const char *const[]){ "remove", argv[0], NULL }, NULL, 0))
		die("dmsetup remove %s failed (open, or mounted?)", argv[0]);
	return 0;
}

static int cmd_prefetch(int argc, char **argv)
{
	char line[4096], message[256];
	uint64_t length;

	if (argc == 2 && (!strcmp(argv[1], "start") || !strcmp(argv[1], "stop")))
		snprintf(message, sizeof(message), "prefetch %s", argv[1]);
	else if (argc == 4 && !strcmp(argv[1], "set"))
		snprintf(message, sizeof(message), "set %s %s", argv[2], argv[3]);
	else
		die("prefetch: NAME start|stop|set TUNABLE VALUE expected");
	fvd_line(argv[0], "table", line, sizeof(line), &length);
	if (run_dmsetup((const char *const[]){ "message", argv[0], "0", message, NULL },
			NULL, 0))
		die("the target refused '%s' (the kernel log says why)", message);
	return 0;
}

/*
 * The device node of block device MAJ:MIN in @path: /dev/ and the name
 * sysfs gives it (udev's /dev/block links may not be there).
 */
static bool device_node(unsigned int maj, unsigned int min, char *path, size_t size)
{
	char uevent[64], line[256];
	bool found = false;
	FILE *f;

	snprintf(uevent, sizeof(uevent), "/sys/dev/block/%u:%u/uevent", maj, min);
	f = fopen(uevent, "re");
	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f)) {
		if (!strncmp(line, "DEVNAME=", 8)) {
			line[strcspn(line, "\n")] = '\0';
			snprintf(path, size, "/dev/%s", line + 8);
			found = true;
		}
	}
	fclose(f);
	return found;
}

/* The superblock of the metadata device MAJ:MIN named by a table line. */
static bool table_superblock(const char *params, struct fvd_sb_info *sb)
{
	static uint8_t block[FVD_SB_SIZE];
	unsigned int maj, min;
	char path[320];
	int fd;

	if (sscanf(params, "%u:%u", &maj, &min) != 2 ||
	    !device_node(maj, min, path, sizeof(path)))
		return false;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	if (pread(fd, block, sizeof(block), 0) != (ssize_t)sizeof(block)) {
		close(fd);
		return false;
	}
	close(fd);
	return fvd_sb_decode(block, sb) == FVD_SB_OK;
}

/* The value of feature argument @name in table parameters, or 0. */
static uint64_t table_feature(const char *params, const char *name)
{
	size_t len = strlen(name);
	const char *p = params;

	while ((p = strstr(p, name))) {
		if ((p == params || p[-1] == ' ') && p[len] == ' ')
			return strtoull(p + len + 1, NULL, 10);
		p += len;
	}
	return 0;
}

static const char *prefetch_words(const char *state, const char *cause)
{
	if (!strcmp(state, "running") && !strcmp(cause, "max_rate"))
		return "running, held to prefetch_max_rate";
	if (!strcmp(state, "off"))
		return "off: the table is read-only or has no origin";
	if (!strcmp(state, "waiting"))
		return "waiting for prefetch_delay";
	if (!strcmp(state, "running"))
		return "running";
	if (!strcmp(state, "done"))
		return "done: every block is local, the origin is no longer used";
	if (!strcmp(state, "error"))
		return "error: an origin read or data write of the prefetch failed (prefetch start retries)";
	if (!strcmp(cause, "no_prefetch"))
		return "stopped: the table says no_prefetch (prefetch start starts it)";
	if (!strcmp(cause, "message"))
		return "stopped by 'prefetch stop' (prefetch start goes on)";
	if (!strcmp(cause, "no_space"))
		return "stopped: the free chunks left are kept for guest writes";
	if (!strcmp(cause, "origin_slow"))
		return "paused: origin reads slower than prefetch_min_read (contended)";
	if (!strcmp(cause, "data_slow"))
		return "paused: data writes slower than prefetch_min_write (contended)";
	return state;
}

static uint64_t num(const char *s)
{
	return strtoull(s, NULL, 10);
}

static int cmd_status(int argc, char **argv)
{
	const char *const *names = fvd_status_field_names;
	char line[8192], table[4096], *f[FVD_STATUS_MAX_FIELDS], *save = NULL, *tok;
	char a[32], b[32], c[32], eta[64] = "";
	const char *name = NULL;
	uint64_t length, local, blocks, block_bytes, origin_blocks = 0, remaining = 0;
	uint64_t data_kib, max_rate, eta_s = 0;
	struct fvd_sb_info sb;
	bool json = false, have_sb, have_eta = false;
	unsigned int n = 0, i;

	for (i = 0; i < (unsigned int)argc; i++) {
		if (!strcmp(argv[i], "--json"))
			json = true;
		else if (!name)
			name = argv[i];
		else
			die("status: unexpected argument '%s'", argv[i]);
	}
	if (!name)
		die("status: NAME expected");
	fvd_line(name, "status", line, sizeof(line), &length);
	for (tok = strtok_r(line, " ", &save); tok && n < FVD_STATUS_MAX_FIELDS;
	     tok = strtok_r(NULL, " ", &save))
		f[n++] = tok;
	if (n < FVD_ST_NR_FIELDS)
		die("%s: the target's status has %u fields, fvdsetup %s knows %d: an older dm-fvd module is loaded",
		    name, n, FVD_VERSION, FVD_ST_NR_FIELDS);
	fvd_line(name, "table", table, sizeof(table), &length);
	have_sb = table_superblock(table, &sb);

	local = num(f[FVD_ST_LOCAL]);
	blocks = num(strchr(f[FVD_ST_LOCAL], '/') ? strchr(f[FVD_ST_LOCAL], '/') + 1 : "0");
	block_bytes = num(f[FVD_ST_BLOCK_SECTORS]) * SECTOR;
	data_kib = num(f[FVD_ST_DATA_KIBS]);
	/* The rates are measured while copying; the cap holds the average. */
	max_rate = table_feature(table, "prefetch_max_rate");
	if (max_rate && max_rate < data_kib)
		data_kib = max_rate;
	if (have_sb) {
		origin_blocks = fvd_origin_blocks(&sb);
		/* guest writes past the origin count as local too: an estimate */
		remaining = local < origin_blocks ? origin_blocks - local : 0;
	}
	if (have_sb && !strcmp(f[FVD_ST_PREFETCH], "running") && data_kib && remaining) {
		eta_s = remaining * block_bytes / (data_kib * 1024);
		have_eta = true;
		snprintf(eta, sizeof(eta), ", about %" PRIu64 "m %02" PRIu64 "s left",
			 eta_s / 60, eta_s % 60);
	}

	if (json) {
		printf("{\"name\": ");
		json_string(name);
		printf(", \"fields\": {");
		for (i = 0; i < FVD_ST_NR_FIELDS; i++) {
			printf("%s\"%s\": ", i ? ", " : "", names[i]);
			json_string(f[i]);
		}
		printf("}, \"mode\": \"%s\", \"block_bytes\": %" PRIu64 ", \"blocks\": %" PRIu64
		       ", \"local_blocks\": %" PRIu64 ", \"local_percent\": %.1f",
		       f[FVD_ST_MODE], block_bytes, blocks, local,
		       blocks ? 100.0 * local / blocks : 100.0);
		if (have_sb)
			printf(", \"origin_blocks\": %" PRIu64 ", \"origin_blocks_absent\": %" PRIu64,
			       origin_blocks, remaining);
		printf(", \"origin_read_bytes\": %s, \"copy_on_read_bytes\": %s",
		       f[FVD_ST_ORIGIN_BYTES], f[FVD_ST_COR_BYTES]);
		printf(", \"prefetch\": {\"state\": \"%s\", \"cause\": \"%s\", \"bytes\": %s",
		       f[FVD_ST_PREFETCH], f[FVD_ST_CAUSE], f[FVD_ST_PREFETCH_BYTES]);
		printf(", \"origin_kib_s\": %s, \"data_kib_s\": %s, \"pauses\": %s, \"eta_seconds\": ",
		       f[FVD_ST_ORIGIN_KIBS], f[FVD_ST_DATA_KIBS], f[FVD_ST_PAUSES]);
		if (have_eta)
			printf("%" PRIu64 "}", eta_s);
		else
			printf("null}");
		if (strcmp(f[FVD_ST_CHUNKS], "-")) {
			uint64_t free_chunks = num(f[FVD_ST_CHUNKS]);
			const char *slash = strchr(f[FVD_ST_CHUNKS], '/');

			printf(", \"chunks\": {\"free\": %" PRIu64 ", \"data\": %" PRIu64
			       ", \"space\": \"%s\"}", free_chunks, slash ? num(slash + 1) : 0,
			       f[FVD_ST_SPACE]);
		} else {
			printf(", \"chunks\": null");
		}
		printf(", \"origin_held_bios\": %" PRIu64 ", \"needs_check\": %s}\n",
		       num(f[FVD_ST_ORIGIN_HELD]),
		       strcmp(f[FVD_ST_NEEDS_CHECK], "-") ? "true" : "false");
		return 0;
	}

	printf("%s: dm-fvd device, %s\n", name, human(length * SECTOR, a, sizeof(a)));
	if (have_sb) {
		uuid_text(sb.uuid, b);
		printf("  image         %s\n", b);
	}
	printf("  mode          %s\n",
	       !strcmp(f[FVD_ST_MODE], "rw") ? "rw: read-write" :
	       !strcmp(f[FVD_ST_MODE], "ro") ? "ro: a metadata update failed; no new local blocks" :
	       "fail: the metadata cannot be read; writes fail");
	printf("  local         %" PRIu64 " of %" PRIu64 " blocks of %s (%.1f %%)\n", local,
	       blocks, human(block_bytes, a, sizeof(a)), blocks ? 100.0 * local / blocks : 100.0);
	if (have_sb && origin_blocks)
		printf("  from origin   %" PRIu64 " of the %" PRIu64 " blocks holding origin data still to copy\n",
		       remaining, origin_blocks);
	printf("  prefetch      %s", prefetch_words(f[FVD_ST_PREFETCH], f[FVD_ST_CAUSE]));
	printf("; %s copied, origin %s KiB/s, data %s KiB/s, %s pause%s%s\n",
	       human(num(f[FVD_ST_PREFETCH_BYTES]), a, sizeof(a)), f[FVD_ST_ORIGIN_KIBS],
	       f[FVD_ST_DATA_KIBS], f[FVD_ST_PAUSES], num(f[FVD_ST_PAUSES]) == 1 ? "" : "s", eta);
	printf("  origin reads  %s (copied on read %s)\n",
	       human(num(f[FVD_ST_ORIGIN_BYTES]), a, sizeof(a)),
	       human(num(f[FVD_ST_COR_BYTES]), c, sizeof(c)));
	if (num(f[FVD_ST_ORIGIN_HELD]))
		printf("  origin fails  %" PRIu64 " guest I/O%s held, retried every second (origin_error_mode queue)\n",
		       num(f[FVD_ST_ORIGIN_HELD]), num(f[FVD_ST_ORIGIN_HELD]) == 1 ? "" : "s");
	if (strcmp(f[FVD_ST_CHUNKS], "-")) {
		const char *slash = strchr(f[FVD_ST_CHUNKS], '/');

		printf("  space         %" PRIu64 " of %" PRIu64 " chunks free (%s)\n",
		       num(f[FVD_ST_CHUNKS]), slash ? num(slash + 1) : 0, f[FVD_ST_SPACE]);
	}
	printf("  needs check   %s\n", strcmp(f[FVD_ST_NEEDS_CHECK], "-") ?
	       "yes: run fvdsetup repair on the image before the next read-write open" : "no");
	return 0;
}

/*
 * profile NAME save FILE: page through "profile get" and write the runs
 * with the origin they were recorded over.  An existing FILE is refused.
 */
static int cmd_profile(int argc, char **argv)
{
	static char answer[1 << 16];
	char line[4096], message[64], state[16], *p;
	uint64_t length, nr = 0, index = 0, first, start, len;
	struct fvd_sb_info sb;
	unsigned int given;
	bool to_stdout;
	int fd, skip;
	FILE *f;

	if (argc != 3 || strcmp(argv[1], "save"))
		die("profile: NAME save FILE expected");
	fvd_line(argv[0], "table", line, sizeof(line), &length);
	if (!table_superblock(line, &sb))
		die("cannot read the superblock of %s's image", argv[0]);
	to_stdout = !strcmp(argv[2], "-");
	if (to_stdout) {
		f = stdout;
	} else {
		fd = open(argv[2], O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		if (fd < 0)
			die("cannot create %s: %s%s", argv[2], strerror(errno),
			    errno == EEXIST ? " (remove it first: it is not overwritten)" : "");
		f = fdopen(fd, "w");
		if (!f) {
			unlink(argv[2]);
			die("cannot write %s: %s", argv[2], strerror(errno));
		}
	}
	do {
		snprintf(message, sizeof(message), "profile get %" PRIu64, index);
		if (run_dmsetup((const char *const[]){ "message", argv[0], "0", message, NULL },
				answer, sizeof(answer)))
			goto refused;
		skip = 0;
		if (sscanf(answer, "%15s %" SCNu64 " %" SCNu64 "%n", state, &nr, &first, &skip) != 3 ||
		    first != index)
			goto refused;
		if (!index) {
			if (!strcmp(state, "off")) {
				if (!to_stdout)
					unlink(argv[2]);
				die("%s records no profile: its table has no profile_seconds, or no origin",
				    argv[0]);
			}
			fprintf(f, FVD_PROFILE_FILE_HEADER "\n# %s, recorded from %s: %" PRIu64 " runs\n",
				state, argv[0], nr);
			fprintf(f, "origin_sectors %" PRIu64 "\n", sb.origin_sectors);
			if (sb.compat_features & FVD_COMPAT_ORIGIN_ID)
				fprintf(f, "origin_fingerprint %08x\n", sb.origin_fingerprint);
		}
		p = answer + skip;
		given = 0;
		while (sscanf(p, " %" SCNu64 "+%" SCNu64 "%n", &start, &len, &skip) == 2) {
			fprintf(f, "%" PRIu64 "+%" PRIu64 "\n", start, len);
			p += skip;
			given++;
		}
		index += given;
		if (index < nr && !given)
			goto refused;
	} while (index < nr);
	if (fflush(f) || ferror(f) || (!to_stdout && fclose(f))) {
		if (!to_stdout)
			unlink(argv[2]);
		die("cannot write %s: %s", argv[2], strerror(errno));
	}
	if (!to_stdout)
		fprintf(stderr, "%s: %" PRIu64 " runs (%s) saved to %s\n", argv[0], nr, state, argv[2]);
	if (strcmp(state, "done") && strcmp(state, "full"))
		fprintf(stderr, "%s: warning: the profile is not finished (%s): it holds what the guest read so far; save it after profile_seconds or 'dmsetup message %s 0 profile stop'\n",
			prog, state, argv[0]);
	return 0;
refused:
	if (!to_stdout)
		unlink(argv[2]);
	die("the target refused '%s' or gave no profile (the kernel log says why)", message);
}

int main(int argc, char **argv)
{
	const char *cmd;

	if (argc < 2) {
		usage(stderr);
		return 1;
	}
	cmd = argv[1];
	if (!strcmp(cmd, "--version") || !strcmp(cmd, "-V")) {
		printf("%s (dm-fvd) %s\n", prog, FVD_VERSION);
		return 0;
	}
	if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(cmd, "format"))
		exec_tool("fvd-create", argv + 2, argc - 2, NULL);
	if (!strcmp(cmd, "check"))
		exec_tool("fvd-check", argv + 2, argc - 2, NULL);
	if (!strcmp(cmd, "repair"))
		exec_tool("fvd-check", argv + 2, argc - 2, "--repair");
	if (!strcmp(cmd, "info"))
		return cmd_info(argc - 2, argv + 2);
	if (!strcmp(cmd, "open"))
		return cmd_open(argc - 1, argv + 1);
	if (!strcmp(cmd, "close"))
		return cmd_close(argc - 2, argv + 2);
	if (!strcmp(cmd, "status"))
		return cmd_status(argc - 2, argv + 2);
	if (!strcmp(cmd, "prefetch"))
		return cmd_prefetch(argc - 2, argv + 2);
	if (!strcmp(cmd, "profile"))
		return cmd_profile(argc - 2, argv + 2);
	fprintf(stderr, "%s: unknown command '%s'\n", prog, cmd);
	usage(stderr);
	return 1;
}
