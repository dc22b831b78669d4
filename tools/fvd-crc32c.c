// SPDX-License-Identifier: GPL-2.0
/* Table-driven CRC-32C for the tools; the kernel side uses lib/crc32c. */
#include "fvd-format.h"

static u32 crc32c_table[256];
static bool crc32c_table_ready;

static void crc32c_init_table(void)
{
	u32 i, bit, crc;

	for (i = 0; i < 256; i++) {
		crc = i;
		for (bit = 0; bit < 8; bit++)
			crc = (crc >> 1) ^ (0x82f63b78U & -(crc & 1));
		crc32c_table[i] = crc;
	}
	crc32c_table_ready = true;
}

u32 fvd_crc32c_update(u32 crc, const void *buf, size_t len)
{
	const u8 *p = buf;

	if (!crc32c_table_ready)
		crc32c_init_table();
	while (len--)
		crc = (crc >> 8) ^ crc32c_table[(crc ^ *p++) & 0xff];
	return crc;
}
