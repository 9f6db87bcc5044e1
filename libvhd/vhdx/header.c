/* header.c: file type identifier and the two VHDX headers (MS-VHDX
 * 2.2.1, 2.2.2).
 *
 * Decoding only rejects what the spec forbids: a wrong signature or
 * checksum (the header is not valid, and the other one may still be), a
 * version other than 1, or a log version other than 0 with a log to
 * replay.  Placement of the log is checked by the driver, which knows the
 * file's size.
 *
 * Choosing the current header: the valid one with the higher sequence
 * number.  Disk2VHD writes both headers with the same sequence number;
 * like qemu we accept that when they are byte-identical (corpus:
 * test-disk2vhd.vhdx), and call anything else corrupt.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "byteorder.h"
#include "crc32c.h"
#include "header.h"
#include "internal.h"

int
vhdx_fileid_decode (const uint8_t *raw, char *creator, size_t creator_size)
{
  char *s;
  size_t n;

  if (memcmp (raw + VHDX_FILEID_SIGNATURE, VHDX_FILEID_MAGIC, 8) != 0) {
    set_error (EBADMSG, "VHDX file identifier: bad signature (expected "
               "\"vhdxfile\")");
    return -1;
  }
  if (creator_size == 0)
    return 0;
  s = utf16_to_utf8 (raw + VHDX_FILEID_CREATOR, VHDX_FILEID_CREATOR_LEN,
                     false);
  if (s == NULL) {
    creator[0] = '\0'; /* diagnostic only: never refuse the file over it */
    return 0;
  }
  n = strlen (s);
  if (n >= creator_size) {
    n = creator_size - 1;
    while (n > 0 && ((unsigned char) s[n] & 0xc0) == 0x80)
      n--; /* do not cut a UTF-8 sequence */
  }
  memcpy (creator, s, n);
  creator[n] = '\0';
  free (s);
  return 0;
}

int
vhdx_fileid_encode (const char *creator, uint8_t *raw)
{
  memset (raw, 0, VHDX_FILEID_SIZE);
  memcpy (raw + VHDX_FILEID_SIGNATURE, VHDX_FILEID_MAGIC, 8);
  /* Keep a terminating NUL unit inside the field. */
  if (utf8_to_utf16 (creator, raw + VHDX_FILEID_CREATOR,
                     VHDX_FILEID_CREATOR_LEN - 2, false) == -1)
    return -1;
  return 0;
}

int
vhdx_header_decode (const uint8_t raw[VHDX_HDR_SIZE], struct vhdx_header *h)
{
  uint32_t stored, computed;

  if (get_le32 (raw + VHDX_HDR_SIGNATURE) != VHDX_HDR_MAGIC) {
    set_error (EBADMSG, "VHDX header: bad signature 0x%08" PRIx32
               " (expected \"head\")", get_le32 (raw + VHDX_HDR_SIGNATURE));
    return -1;
  }
  stored = get_le32 (raw + VHDX_HDR_CHECKSUM);
  computed = vhdx_checksum (raw, VHDX_HDR_SIZE, VHDX_HDR_CHECKSUM);
  if (stored != computed) {
    set_error (EBADMSG, "VHDX header: bad checksum (stored 0x%08" PRIx32
               ", computed 0x%08" PRIx32 ")", stored, computed);
    return -1;
  }
  h->sequence = get_le64 (raw + VHDX_HDR_SEQUENCE);
  guid_decode (raw + VHDX_HDR_FILE_WRITE_GUID, h->file_write_guid);
  guid_decode (raw + VHDX_HDR_DATA_WRITE_GUID, h->data_write_guid);
  guid_decode (raw + VHDX_HDR_LOG_GUID, h->log_guid);
  h->log_version = get_le16 (raw + VHDX_HDR_LOG_VERSION);
  h->version = get_le16 (raw + VHDX_HDR_VERSION);
  h->log_length = get_le32 (raw + VHDX_HDR_LOG_LENGTH);
  h->log_offset = get_le64 (raw + VHDX_HDR_LOG_OFFSET);
  if (h->version != 1) {
    set_error (ENOTSUP, "VHDX header: version %" PRIu16 " is not supported "
               "(only version 1 is)", h->version);
    return -1;
  }
  if (h->log_version != 0 && !guid_is_zero (h->log_guid)) {
    set_error (ENOTSUP, "VHDX header: log version %" PRIu16 " is not "
               "supported and the log must be replayed", h->log_version);
    return -1;
  }
  return 0;
}

void
vhdx_header_encode (const struct vhdx_header *h, uint8_t raw[VHDX_HDR_SIZE])
{
  memset (raw, 0, VHDX_HDR_SIZE);
  put_le32 (raw + VHDX_HDR_SIGNATURE, VHDX_HDR_MAGIC);
  put_le64 (raw + VHDX_HDR_SEQUENCE, h->sequence);
  guid_encode (h->file_write_guid, raw + VHDX_HDR_FILE_WRITE_GUID);
  guid_encode (h->data_write_guid, raw + VHDX_HDR_DATA_WRITE_GUID);
  guid_encode (h->log_guid, raw + VHDX_HDR_LOG_GUID);
  put_le16 (raw + VHDX_HDR_LOG_VERSION, h->log_version);
  put_le16 (raw + VHDX_HDR_VERSION, h->version);
  put_le32 (raw + VHDX_HDR_LOG_LENGTH, h->log_length);
  put_le64 (raw + VHDX_HDR_LOG_OFFSET, h->log_offset);
  put_le32 (raw + VHDX_HDR_CHECKSUM,
            vhdx_checksum (raw, VHDX_HDR_SIZE, VHDX_HDR_CHECKSUM));
}

int
vhdx_header_select (const uint8_t raw1[VHDX_HDR_SIZE],
                    const uint8_t raw2[VHDX_HDR_SIZE],
                    struct vhdx_header *h, unsigned *which)
{
  struct vhdx_header h1, h2;
  bool ok1, ok2;

  /* Header 2 first, so that when both fail header 1's message stays. */
  ok2 = vhdx_header_decode (raw2, &h2) == 0;
  ok1 = vhdx_header_decode (raw1, &h1) == 0;
  if (!ok1 && !ok2) {
    prefix_error ("no valid VHDX header (header 2 is invalid too); "
                  "header 1");
    return -1;
  }
  if (ok1 && ok2 && h1.sequence == h2.sequence
      && memcmp (raw1, raw2, VHDX_HDR_SIZE) != 0) {
    set_error (EBADMSG, "VHDX headers: both have sequence number %" PRIu64
               " but differ", h1.sequence);
    return -1;
  }
  if (ok1 && (!ok2 || h1.sequence >= h2.sequence)) {
    *h = h1;
    *which = 0;
  }
  else {
    *h = h2;
    *which = 1;
  }
  return 0;
}
