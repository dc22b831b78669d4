// SPDX-License-Identifier: GPL-2.0
/*
 * fvd-sbedit: test helper that rewrites superblock fields of an FVD image.
 *
 *   fvd-sbedit [--backup] IMAGE            print the fields
 *   fvd-sbedit [--backup] [--keep-csum] IMAGE f=v...
 *                                          set fields, then fix the checksum
 *                                          (unless --keep-csum); --backup:
 *                                          of the backup superblock
 *   fvd-sbedit --jcommit IMAGE INDEX SEQ RECORD...
 *                                          write a journal commit at journal
 *                                          block INDEX; RECORD is START+COUNT
 *                                          (blocks local) or tCHUNK=ENTRY
 *                                          (chunk table entry)
 *   fvd-sbedit --profile IMAGE SEQ START+LEN...
 *                                          write a sealed profile of these
 *                                          origin ranges into the image's
 *                                          profile region
 *
 * Used to build malformed images that the target must reject, and journals
 * for fvd-check to replay.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "fvd-format.h"

#define FIELD(name, width) \
	{ #name, offsetof(struct fvd_disk_superblock, name), width }

static const struct field {
	const char *name;
	size_t offset;
	int width;
} fields[] = {
	FIELD(magic, 8), FIELD(version, 4), FIELD(csum, 4),
	FIELD(incompat_features, 8), FIELD(ro_compat_features, 8),
	FIELD(compat_features, 8), FIELD(flags, 8),
	FIELD(virtual_sectors, 8), FIELD(origin_sectors, 8),
	FIELD(block_sectors, 4), FIELD(chunk_sectors, 4),
	FIELD(bitmap_offset, 8), FIELD(bitmap_sectors, 8),
	FIELD(table_offset, 8), FIELD(table_sectors, 8),
	FIELD(journal_offset, 8), FIELD(journal_sectors, 8),
	FIELD(data_offset, 8), FIELD(checkpoint_seq, 8),
	FIELD(origin_fingerprint, 4),
	FIELD(profile_offset, 8), FIELD(profile_sectors, 8),
};

static uint64_t get_field(const uint8_t *sb, const struct field *f)
{
	uint64_t v64 = 0;
	uint32_t v32 = 0;

	if (f->width == 8) {
		memcpy(&v64, sb + f->offset, 8);
		return le64toh(v64);
	}
	memcpy(&v32, sb + f->offset, 4);
	return le32toh(v32);
}

static void set_field(uint8_t *sb, const struct field *f, uint64_t value)
{
	uint64_t v64 = htole64(value);
	uint32_t v32 = htole32((uint32_t)value);

	if (f->width == 8)
		memcpy(sb + f->offset, &v64, 8);
	else
		memcpy(sb + f->offset, &v32, 4);
}

/* Write one commit through the same builder the target uses. */
static int write_commit(int argc, char **argv)
{
	static uint8_t sb_block[FVD_SB_SIZE];
	static uint8_t buf[FVD_JOURNAL_MAX_COMMIT_BLOCKS * FVD_JOURNAL_BLOCK_SIZE];
	struct fvd_jbuilder jb = { .buf = buf,
				   .max_blocks = FVD_JOURNAL_MAX_COMMIT_BLOCKS };
	struct fvd_sb_info sb;
	uint64_t index, seq, start, count;
	uint32_t entry;
	size_t len;
	int fd, i;

	if (argc < 4) {
		fprintf(stderr, "usage: fvd-sbedit --jcommit IMAGE INDEX SEQ START+COUNT...\n");
		return 2;
	}
	fd = open(argv[0], O_RDWR);
	if (fd < 0 || pread(fd, sb_block, sizeof(sb_block), 0) != sizeof(sb_block)) {
		perror(argv[0]);
		return 1;
	}
	if (fvd_sb_decode(sb_block, &sb) != FVD_SB_OK) {
		fprintf(stderr, "fvd-sbedit: %s: invalid superblock\n", argv[0]);
		return 1;
	}
	index = strtoull(argv[1], NULL, 0);
	seq = strtoull(argv[2], NULL, 0);
	fvd_jbuilder_reset(&jb);
	for (i = 3; i < argc; i++) {
		bool added;

		if (sscanf(argv[i], "t%" SCNu64 "=%" SCNu32, &start, &entry) == 2) {
			__le32 le = cpu_to_le32(entry);

			added = fvd_jbuilder_add_table(&jb, start, 1, &le) == 1;
		} else if (sscanf(argv[i], "%" SCNu64 "+%" SCNu64, &start, &count) == 2) {
			added = fvd_jbuilder_add_run(&jb, start, count);
		} else {
			fprintf(stderr, "fvd-sbedit: bad run '%s'\n", argv[i]);
			return 2;
		}
		if (!added) {
			fprintf(stderr, "fvd-sbedit: too many runs for one commit\n");
			return 2;
		}
	}
	fvd_jbuilder_seal(&jb, seq);
	len = (size_t)jb.nr_blocks * FVD_JOURNAL_BLOCK_SIZE;
	if (pwrite(fd, buf, len, sb.journal_offset * 512 + index * FVD_JOURNAL_BLOCK_SIZE) !=
	    (ssize_t)len || fsync(fd)) {
		perror("write");
		return 1;
	}
	printf("%u\n", jb.nr_blocks);
	return 0;
}

/* Write a profile region as the target saves one (the ranges unchecked). */
static int write_profile(int argc, char **argv)
{
	static uint8_t sb_block[FVD_SB_SIZE];
	static uint8_t region[FVD_PROFILE_REGION_BYTES];
	struct fvd_disk_profile_run *run;
	struct fvd_sb_info sb;
	uint64_t start, len;
	int fd, i;

	if (argc < 2 || argc - 2 > FVD_PROFILE_REGION_RUNS) {
		fprintf(stderr, "usage: fvd-sbedit --profile IMAGE SEQ START+LEN...\n");
		return 2;
	}
	fd = open(argv[0], O_RDWR);
	if (fd < 0 || pread(fd, sb_block, sizeof(sb_block), 0) != sizeof(sb_block)) {
		perror(argv[0]);
		return 1;
	}
	if (fvd_sb_decode(sb_block, &sb) != FVD_SB_OK ||
	    !(sb.compat_features & FVD_COMPAT_PROFILE)) {
		fprintf(stderr, "fvd-sbedit: %s: no valid superblock with a profile region\n",
			argv[0]);
		return 1;
	}
	for (i = 2; i < argc; i++) {
		if (sscanf(argv[i], "%" SCNu64 "+%" SCNu64, &start, &len) != 2) {
			fprintf(stderr, "fvd-sbedit: bad range '%s'\n", argv[i]);
			return 2;
		}
		run = fvd_profile_region_run(region, i - 2);
		run->start = cpu_to_le64(start);
		run->len = cpu_to_le64(len);
	}
	fvd_profile_region_seal(region, argc - 2, sb.origin_sectors,
				strtoull(argv[1], NULL, 0), 0);
	if (pwrite(fd, region, sizeof(region), sb.profile_offset * 512) != sizeof(region) ||
	    fsync(fd)) {
		perror("write");
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static uint8_t sb[FVD_SB_SIZE];
	bool keep_csum = false, csum_set = false;
	off_t where = 0;
	const struct field *f;
	size_t i;
	int fd, arg = 1;

	if (arg < argc && !strcmp(argv[arg], "--jcommit"))
		return write_commit(argc - 2, argv + 2);
	if (arg < argc && !strcmp(argv[arg], "--profile"))
		return write_profile(argc - 2, argv + 2);
	if (arg < argc && !strcmp(argv[arg], "--backup")) {
		where = FVD_BACKUP_SB_SECTOR * 512;
		arg++;
	}
	if (arg < argc && !strcmp(argv[arg], "--keep-csum")) {
		keep_csum = true;
		arg++;
	}
	if (arg >= argc) {
		fprintf(stderr, "usage: fvd-sbedit [--backup] [--keep-csum] IMAGE [field=value]...\n");
		return 2;
	}
	fd = open(argv[arg], argc - arg > 1 ? O_RDWR : O_RDONLY);
	if (fd < 0 || pread(fd, sb, sizeof(sb), where) != sizeof(sb)) {
		perror(argv[arg]);
		return 1;
	}
	if (argc - arg == 1) {
		for (i = 0; i < ARRAY_SIZE(fields); i++)
			printf("%s=%" PRIu64 "\n", fields[i].name, get_field(sb, &fields[i]));
		return 0;
	}
	for (arg++; arg < argc; arg++) {
		char *eq = strchr(argv[arg], '=');

		f = NULL;
		for (i = 0; eq && i < ARRAY_SIZE(fields); i++)
			if (strlen(fields[i].name) == (size_t)(eq - argv[arg]) &&
			    !strncmp(fields[i].name, argv[arg], eq - argv[arg]))
				f = &fields[i];
		if (!f) {
			fprintf(stderr, "fvd-sbedit: bad assignment '%s'\n", argv[arg]);
			return 2;
		}
		set_field(sb, f, strtoull(eq + 1, NULL, 0));
		if (!strcmp(f->name, "csum"))
			csum_set = true;
	}
	if (!keep_csum && !csum_set) {
		uint32_t csum = htole32(fvd_sb_csum((struct fvd_disk_superblock *)sb));

		memcpy(sb + offsetof(struct fvd_disk_superblock, csum), &csum, 4);
	}
	if (pwrite(fd, sb, sizeof(sb), where) != sizeof(sb) || fsync(fd)) {
		perror("write");
		return 1;
	}
	return 0;
}
