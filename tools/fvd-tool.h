/* SPDX-License-Identifier: GPL-2.0 */
/* Helpers shared by the userspace tools (fvd-user.h is the kernel shim). */
#ifndef FVD_TOOL_H
#define FVD_TOOL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <linux/fs.h>

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

#endif /* FVD_TOOL_H */
