/* SPDX-License-Identifier: GPL-2.0 */
/* Helpers shared by the userspace tools (fvd-user.h is the kernel shim). */
#ifndef FVD_TOOL_H
#define FVD_TOOL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <linux/fs.h>

#include "fvd-user.h"

#define FVD_NOT_A_DEVICE	(-2)

/*
 * Size in bytes of the block device or regular file behind @fd.  Returns 0,
 * -1 with errno set, or FVD_NOT_A_DEVICE for anything else.
 */
static inline int fvd_fd_size(int fd, uint64_t *size, bool *is_blockdev)
{
	struct stat st;

	if (fstat(fd, &st))
		return -1;
	*is_blockdev = S_ISBLK(st.st_mode);
	if (*is_blockdev)
		return ioctl(fd, BLKGETSIZE64, size) ? -1 : 0;
	if (!S_ISREG(st.st_mode))
		return FVD_NOT_A_DEVICE;
	*size = st.st_size;
	return 0;
}

/* "@prog: <message>" on stderr, then exit(@status): the tools' way to fail. */
static inline void __noreturn __printf(3, 0)
fvd_vdie(const char *prog, int status, const char *fmt, va_list ap)
{
	fprintf(stderr, "%s: ", prog);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	exit(status);
}

#endif /* FVD_TOOL_H */
