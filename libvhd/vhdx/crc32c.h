/* crc32c.h: CRC-32C (Castagnoli), the checksum of every VHDX structure.
 *
 * VHDX checksums cover a whole structure with its own checksum field
 * taken as zero; vhdx_checksum computes that over a const buffer, so the
 * caller's bytes are never modified (not even temporarily).
 */
#ifndef LIBVHD_VHDX_CRC32C_H
#define LIBVHD_VHDX_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Continue a CRC-32C over buf.  Start with crc = 0; the result of one
 * call can be passed to the next to checksum a buffer in pieces. */
uint32_t crc32c (uint32_t crc, const void *buf, size_t len);

/* The VHDX checksum of buf[0..len), with the four bytes at csum_off
 * counted as zero.  csum_off + 4 <= len. */
uint32_t vhdx_checksum (const uint8_t *buf, size_t len, size_t csum_off);

#endif /* LIBVHD_VHDX_CRC32C_H */
