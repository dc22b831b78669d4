// SPDX-License-Identifier: GPL-2.0
/*
 * fvdsetup-generator: a systemd generator (systemd.generator(7)) that makes
 * one unit per line of /etc/fvdtab (fvdtab(5)), each running fvdsetup open
 * at boot and fvdsetup close at shutdown.
 *
 * A unit binds to the devices its line names (or waits for the mounts a
 * file is on), runs before local-fs.target, or with _netdev after the
 * network and before remote-fs.target, and is pulled in by that target:
 * required, or only wanted with nofail; noauto leaves it to be started by
 * hand.  $FVDTAB names another table, for tests.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FVDTAB "/etc/fvdtab"
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

static const char *prog = "fvdsetup-generator";
static const char *tab_path;

struct fvdtab_line {
	unsigned int nr;
	char *name, *image, *data, *origin, *options;
	/* from the options */
	bool netdev, nofail, noauto;
	char args[2048];	/* fvdsetup open's options */
};

static void complain(const struct fvdtab_line *l, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: %s:%u: ", prog, tab_path, l->nr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs(": line ignored\n", stderr);
}

/* @c as systemd's unit name escaping keeps it, or as \xNN. */
static void escape_char(char c, bool first, char **out)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	    c == ':' || c == '_' || (c == '.' && !first))
		*(*out)++ = c;
	else
		*out += sprintf(*out, "\\x%02x", (unsigned char)c);
}

/* systemd-escape @s: "vm-1" -> "vm\x2d1". */
static void unit_escape(const char *s, char *out)
{
	bool first = true;

	for (; *s; s++, first = false) {
		if (*s == '/')
			*out++ = '-';
		else
			escape_char(*s, first, &out);
	}
	*out = '\0';
}

/* systemd-escape --path @path: "/dev/vg/vm-1" -> "dev-vg-vm\x2d1". */
static void path_escape(const char *path, char *out)
{
	char simple[PATH_MAX], *p = simple;
	const char *s = path;
	bool first = true;

	/* collapse "//" and "/./", drop the leading and trailing slashes */
	while (*s) {
		while (*s == '/')
			s++;
		if (s[0] == '.' && (s[1] == '/' || !s[1])) {
			s++;
			continue;
		}
		if (!*s)
			break;
		if (p != simple)
			*p++ = '/';
		while (*s && *s != '/')
			*p++ = *s++;
	}
	*p = '\0';
	if (!simple[0]) {
		strcpy(out, "-");
		return;
	}
	for (p = simple; *p; p++, first = false) {
		if (*p == '/')
			*out++ = '-';
		else
			escape_char(*p, first, &out);
	}
	*out = '\0';
}

/*
 * @arg as one word of an Exec= line: quoted, with the specifier and
 * variable characters doubled.
 */
static void exec_word(FILE *f, const char *arg)
{
	fputc('"', f);
	for (; *arg; arg++) {
		if (*arg == '"' || *arg == '\\')
			fputc('\\', f);
		if (*arg == '%' || *arg == '$')
			fputc(*arg, f);
		fputc(*arg, f);
	}
	fputc('"', f);
}

/* Append " @word" to @l->args, or fail when it does not fit. */
static bool add_arg(struct fvdtab_line *l, const char *fmt, ...)
{
	size_t len = strlen(l->args);
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(l->args + len, sizeof(l->args) - len, fmt, ap);
	va_end(ap);
	return n >= 0 && (size_t)n < sizeof(l->args) - len;
}

/* The options field: fvdsetup open's options, and the unit's. */
static bool parse_options(struct fvdtab_line *l)
{
	static const struct {
		const char *word, *option;
	} flags[] = {
		{ "read-only", "--read-only" },
		{ "no-copy-on-read", "--no-copy-on-read" },
		{ "no-prefetch", "--no-prefetch" },
		{ "skip-origin-check", "--skip-origin-check" },
	};
	char *save = NULL, *opt;
	unsigned int i;
	bool known;

	if (!l->options || !strcmp(l->options, "-") || !strcmp(l->options, "defaults"))
		return true;
	for (opt = strtok_r(l->options, ",", &save); opt; opt = strtok_r(NULL, ",", &save)) {
		known = false;
		for (i = 0; i < ARRAY_SIZE(flags); i++) {
			if (!strcmp(opt, flags[i].word)) {
				known = add_arg(l, "\t%s", flags[i].option);
				if (!known) {
					complain(l, "too many options");
					return false;
				}
			}
		}
		if (known)
			continue;
		if (!strcmp(opt, "_netdev")) {
			l->netdev = true;
		} else if (!strcmp(opt, "nofail")) {
			l->nofail = true;
		} else if (!strcmp(opt, "noauto")) {
			l->noauto = true;
		} else if (!strncmp(opt, "feature=", 8) && opt[8] && opt[8] != '=') {
			if (!add_arg(l, "\t--feature\t%s", opt + 8)) {
				complain(l, "too many options");
				return false;
			}
		} else {
			complain(l, "unknown option '%s'", opt);
			return false;
		}
	}
	return true;
}

/* BindsTo a device, or RequiresMountsFor a file. */
static void depend_on(FILE *f, const char *path)
{
	char unit[PATH_MAX * 4 + 16];

	if (!strncmp(path, "/dev/", 5)) {
		path_escape(path, unit);
		fprintf(f, "BindsTo=%s.device\nAfter=%s.device\n", unit, unit);
	} else {
		fprintf(f, "RequiresMountsFor=%s\n", path);
	}
}

static bool valid_path(const struct fvdtab_line *l, const char *what, const char *path)
{
	if (path[0] != '/') {
		complain(l, "%s '%s' is not an absolute path", what, path);
		return false;
	}
	if (strlen(path) >= PATH_MAX) {
		complain(l, "%s is too long", what);
		return false;
	}
	return true;
}

static int write_unit(const char *dir, const char *fvdsetup, struct fvdtab_line *l)
{
	char escaped[128 * 4 + 1], unit[sizeof(escaped) + 32], path[PATH_MAX];
	char link_dir[PATH_MAX], link[PATH_MAX + sizeof(unit)], *tok, *save = NULL;
	const char *target = l->netdev ? "remote-fs.target" : "local-fs.target";
	FILE *f;

	unit_escape(l->name, escaped);
	snprintf(unit, sizeof(unit), "fvdsetup@%s.service", escaped);
	if (strlen(unit) > 255) {
		complain(l, "name '%s' makes a unit name longer than systemd takes", l->name);
		return -1;
	}
	snprintf(path, sizeof(path), "%s/%s", dir, unit);
	f = fopen(path, "we");
	if (!f) {
		fprintf(stderr, "%s: cannot write %s: %s\n", prog, path, strerror(errno));
		return -1;
	}
	fprintf(f, "# Made by %s from %s line %u\n", prog, tab_path, l->nr);
	fprintf(f, "[Unit]\nDescription=dm-fvd device %s\n", l->name);
	fprintf(f, "Documentation=man:fvdtab(5) man:fvdsetup(8)\nSourcePath=%s\n", tab_path);
	fprintf(f, "DefaultDependencies=no\nIgnoreOnIsolate=true\n");
	fprintf(f, "Conflicts=umount.target\nBefore=umount.target\n");
	if (l->netdev)
		fprintf(f, "Wants=network-online.target\nAfter=network-online.target remote-fs-pre.target\n"
			"Before=remote-fs.target\n");
	else
		fprintf(f, "Wants=local-fs-pre.target\nBefore=local-fs-pre.target\n");
	depend_on(f, l->image);
	if (strcmp(l->data, "-"))
		depend_on(f, l->data);
	if (strcmp(l->origin, "-"))
		depend_on(f, l->origin);
	fprintf(f, "\n[Service]\nType=oneshot\nRemainAfterExit=yes\nTimeoutSec=0\n");
	fprintf(f, "ExecStart=");
	exec_word(f, fvdsetup);
	fputs(" open ", f);
	exec_word(f, l->image);
	fputc(' ', f);
	exec_word(f, l->name);
	if (strcmp(l->data, "-")) {
		fputs(" --data-dev ", f);
		exec_word(f, l->data);
	}
	if (strcmp(l->origin, "-")) {
		fputs(" --origin ", f);
		exec_word(f, l->origin);
	}
	for (tok = strtok_r(l->args, "\t", &save); tok; tok = strtok_r(NULL, "\t", &save)) {
		fputc(' ', f);
		exec_word(f, tok);
	}
	fputs("\nExecStop=", f);
	exec_word(f, fvdsetup);
	fputs(" close ", f);
	exec_word(f, l->name);
	fputc('\n', f);
	if (fclose(f)) {
		fprintf(stderr, "%s: cannot write %s: %s\n", prog, path, strerror(errno));
		return -1;
	}
	if (l->noauto)
		return 0;
	snprintf(link_dir, sizeof(link_dir), "%s/%s.%s", dir, target,
		 l->nofail ? "wants" : "requires");
	if (mkdir(link_dir, 0755) && errno != EEXIST) {
		fprintf(stderr, "%s: cannot make %s: %s\n", prog, link_dir, strerror(errno));
		return -1;
	}
	snprintf(link, sizeof(link), "%s/%s", link_dir, unit);
	if (symlink(path, link) && errno != EEXIST) {
		fprintf(stderr, "%s: cannot link %s: %s\n", prog, link, strerror(errno));
		return -1;
	}
	return 0;
}

/*
 * fvdsetup next to this program (a build tree), else the installed one:
 * the package's in /usr/sbin, make install's in /usr/local/sbin.
 */
static const char *find_fvdsetup(char *buf, size_t size)
{
	char self[PATH_MAX - 16], *slash;
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	if (getenv("FVDSETUP"))
		return getenv("FVDSETUP");
	if (n > 0) {
		self[n] = '\0';
		slash = strrchr(self, '/');
		if (slash) {
			*slash = '\0';
			snprintf(buf, size, "%s/fvdsetup", self);
			if (!access(buf, X_OK))
				return buf;
		}
	}
	if (access("/usr/sbin/fvdsetup", X_OK) && !access("/usr/local/sbin/fvdsetup", X_OK))
		return "/usr/local/sbin/fvdsetup";
	return "/usr/sbin/fvdsetup";
}

int main(int argc, char **argv)
{
	char line[8192], fvdsetup_buf[PATH_MAX], *p, *end;
	struct fvdtab_line l;
	const char *fvdsetup;
	int status = 0, n;
	FILE *tab;

	if (argc != 2 && argc != 4) {
		fprintf(stderr, "usage: %s NORMAL-DIR [EARLY-DIR LATE-DIR]\n", prog);
		return 1;
	}
	tab_path = getenv("FVDTAB") ?: FVDTAB;
	tab = fopen(tab_path, "re");
	if (!tab) {
		if (errno == ENOENT)
			return 0;
		fprintf(stderr, "%s: cannot read %s: %s\n", prog, tab_path, strerror(errno));
		return 1;
	}
	fvdsetup = find_fvdsetup(fvdsetup_buf, sizeof(fvdsetup_buf));
	memset(&l, 0, sizeof(l));
	while (fgets(line, sizeof(line), tab)) {
		l.nr++;
		end = strchr(line, '\n');
		if (!end && !feof(tab)) {
			complain(&l, "longer than %zu bytes", sizeof(line) - 1);
			status = 1;
			while (fgets(line, sizeof(line), tab) && !strchr(line, '\n'))
				;
			continue;
		}
		if (end)
			*end = '\0';
		p = line + strspn(line, " \t");
		if (!*p || *p == '#')
			continue;
		l.name = strtok(p, " \t");
		l.image = strtok(NULL, " \t");
		l.data = strtok(NULL, " \t");
		l.origin = strtok(NULL, " \t");
		l.options = strtok(NULL, " \t");
		l.netdev = l.nofail = l.noauto = false;
		l.args[0] = '\0';
		if (!l.origin) {
			complain(&l, "NAME IMAGE DATA ORIGIN [OPTIONS] expected (\"-\" for no DATA or ORIGIN)");
			status = 1;
			continue;
		}
		if (strtok(NULL, " \t")) {
			complain(&l, "more than five fields");
			status = 1;
			continue;
		}
		n = strlen(l.name);
		if (n >= 128 || strchr(l.name, '/') || !strcmp(l.name, ".") ||
		    !strcmp(l.name, "..")) {
			complain(&l, "invalid device name '%s'", l.name);
			status = 1;
			continue;
		}
		if (!valid_path(&l, "IMAGE", l.image) ||
		    (strcmp(l.data, "-") && !valid_path(&l, "DATA", l.data)) ||
		    (strcmp(l.origin, "-") && !valid_path(&l, "ORIGIN", l.origin)) ||
		    !parse_options(&l)) {
			status = 1;
			continue;
		}
		if (write_unit(argv[1], fvdsetup, &l))
			status = 1;
	}
	fclose(tab);
	return status;
}
