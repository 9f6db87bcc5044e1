/* guid.h: VHDX GUIDs.
 *
 * On disk a GUID is stored the Windows way: the first three fields
 * (4, 2 and 2 bytes) little-endian, the last eight bytes as they are.
 * In memory we keep GUIDs in RFC 4122 byte order (what libuuid and
 * uuid_to_string use), so "{2dc27766-f623-4200-...}" reads the same in
 * our constants, in messages and in Windows tools.
 */
#ifndef LIBVHD_VHDX_GUID_H
#define LIBVHD_VHDX_GUID_H

#include <stdbool.h>
#include <stdint.h>

#define GUID_SIZE 16
/* "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" plus braces and NUL. */
#define GUID_STR_SIZE 39

/* Disk (mixed-endian) to memory (RFC order), and back. */
void guid_decode (const uint8_t *disk, uint8_t guid[GUID_SIZE]);
void guid_encode (const uint8_t guid[GUID_SIZE], uint8_t *disk);

bool guid_eq (const uint8_t *a, const uint8_t *b);
bool guid_is_zero (const uint8_t *g);

/* Lowercase "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx", in braces when
 * braces is true (the form VHDX parent locators use). */
void guid_format (const uint8_t guid[GUID_SIZE], bool braces,
                  char out[GUID_STR_SIZE]);
/* Parse that form, braces optional, any case.  0, or -1 (no error set). */
int guid_parse (const char *s, uint8_t guid[GUID_SIZE]);

#endif /* LIBVHD_VHDX_GUID_H */
