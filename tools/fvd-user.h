/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The few kernel types and helpers that dm-fvd/fvd-format.[ch] use, for the
 * userspace tools.  Keeping the shim this small keeps the shared code honest.
 */
#ifndef FVD_USER_H
#define FVD_USER_H

#include <assert.h>
#include <endian.h>
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <linux/types.h>

typedef uint8_t u8;
typedef uint16_t u16;
typedef uint32_t u32;
typedef uint64_t u64;

/*
 * Every on-disk field is naturally aligned, and fvd-format.h asserts the
 * superblock size, so packing changes nothing but the struct's alignment.
 */
#define __packed
/* The kernel's attribute macros the tools use as well. */
#define FVD_ATTRIBUTES(...)	__attribute__((__VA_ARGS__))
#define __noreturn		FVD_ATTRIBUTES(__noreturn__)
#define __printf(a, b)		FVD_ATTRIBUTES(__format__(printf, a, b))
#define __aligned(x)		FVD_ATTRIBUTES(__aligned__(x))
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#define le16_to_cpu(x) le16toh(x)
#define le32_to_cpu(x) le32toh(x)
#define le64_to_cpu(x) le64toh(x)
#define cpu_to_le16(x) htole16(x)
#define cpu_to_le32(x) htole32(x)
#define cpu_to_le64(x) htole64(x)

#endif /* FVD_USER_H */
