/* SPDX-License-Identifier: GPL-2.0 */
/*
 * dm-fvd's one version: the target's version triple (dmsetup targets), the
 * module's MODULE_VERSION, the tools' --version and the packages' version
 * (the Makefile reads it from here).  The major number changes only when a
 * table line that worked stops working.
 */
#ifndef FVD_VERSION_H
#define FVD_VERSION_H

#define FVD_VERSION_MAJOR	1
#define FVD_VERSION_MINOR	9
#define FVD_VERSION_PATCH	0

#define FVD_VERSION_STR_(x)	#x
#define FVD_VERSION_STR(x)	FVD_VERSION_STR_(x)
#define FVD_VERSION	FVD_VERSION_STR(FVD_VERSION_MAJOR) "."	\
			FVD_VERSION_STR(FVD_VERSION_MINOR) "."	\
			FVD_VERSION_STR(FVD_VERSION_PATCH)

#endif /* FVD_VERSION_H */
