/* protocol.h: NBD wire format (NetworkBlockDevice/nbd doc/proto.md).
 *
 * Rule: everything on the wire is big-endian; these packed structs are
 * the exact wire layout, filled with htobe* and read with be*toh, never
 * used to hold host-order values.
 *
 * Only what this server speaks is here: fixed newstyle negotiation,
 * NBD_OPT_INFO/GO, structured replies and block status.  No TLS, no
 * extended headers, no resize.
 */
#ifndef VHD_NBD_PROTOCOL_H
#define VHD_NBD_PROTOCOL_H

#include <stdint.h>

/* ------------------------------------------------------------ handshake */

#define NBD_MAGIC       UINT64_C (0x4e42444d41474943)   /* "NBDMAGIC" */
#define NBD_IHAVEOPT    UINT64_C (0x49484156454F5054)   /* "IHAVEOPT" */
#define NBD_REP_MAGIC   UINT64_C (0x0003e889045565a9)

/* Server greeting of the newstyle handshake. */
struct nbd_new_handshake {
  uint64_t nbdmagic;            /* NBD_MAGIC */
  uint64_t version;             /* NBD_IHAVEOPT */
  uint16_t gflags;              /* NBD_FLAG_FIXED_NEWSTYLE etc. */
} __attribute__ ((__packed__));
_Static_assert (sizeof (struct nbd_new_handshake) == 18, "greeting");

/* Handshake flags (server) and client flags. */
#define NBD_FLAG_FIXED_NEWSTYLE    (1U << 0)
#define NBD_FLAG_NO_ZEROES         (1U << 1)
#define NBD_FLAG_C_FIXED_NEWSTYLE  (1U << 0)
#define NBD_FLAG_C_NO_ZEROES       (1U << 1)

/* Option header sent by the client, followed by optlen bytes. */
struct nbd_new_option {
  uint64_t version;             /* NBD_IHAVEOPT */
  uint32_t option;              /* NBD_OPT_* */
  uint32_t optlen;
} __attribute__ ((__packed__));
_Static_assert (sizeof (struct nbd_new_option) == 16, "option header");

/* Reply to every option but NBD_OPT_EXPORT_NAME, followed by replylen
 * bytes. */
struct nbd_fixed_new_option_reply {
  uint64_t magic;               /* NBD_REP_MAGIC */
  uint32_t option;              /* the option replied to */
  uint32_t reply;               /* NBD_REP_* */
  uint32_t replylen;
} __attribute__ ((__packed__));
_Static_assert (sizeof (struct nbd_fixed_new_option_reply) == 20,
                "option reply");

/* Reply to NBD_OPT_EXPORT_NAME (then 124 zero bytes unless NO_ZEROES). */
struct nbd_export_name_reply {
  uint64_t exportsize;
  uint16_t eflags;
} __attribute__ ((__packed__));
_Static_assert (sizeof (struct nbd_export_name_reply) == 10, "export reply");
#define NBD_EXPORT_NAME_ZEROES 124

/* NBD_REP_INFO payloads. */
struct nbd_info_export {
  uint16_t info;                /* NBD_INFO_EXPORT */
  uint64_t exportsize;
  uint16_t eflags;
} __attribute__ ((__packed__));
_Static_assert (sizeof (struct nbd_info_export) == 12, "NBD_INFO_EXPORT");

struct nbd_info_block_size {
  uint16_t info;                /* NBD_INFO_BLOCK_SIZE */
  uint32_t minimum;
  uint32_t preferred;
  uint32_t maximum;
} __attribute__ ((__packed__));
_Static_assert (sizeof (struct nbd_info_block_size) == 14,
                "NBD_INFO_BLOCK_SIZE");

/* Options. */
#define NBD_OPT_EXPORT_NAME         1
#define NBD_OPT_ABORT               2
#define NBD_OPT_LIST                3
#define NBD_OPT_STARTTLS            5
#define NBD_OPT_INFO                6
#define NBD_OPT_GO                  7
#define NBD_OPT_STRUCTURED_REPLY    8
#define NBD_OPT_LIST_META_CONTEXT   9
#define NBD_OPT_SET_META_CONTEXT    10
#define NBD_OPT_EXTENDED_HEADERS    11

/* Option replies. */
#define NBD_REP_ERR(x)              ((1U << 31) | (x))
#define NBD_REP_IS_ERR(x)           (((x) & (1U << 31)) != 0)
#define NBD_REP_ACK                 1
#define NBD_REP_SERVER              2
#define NBD_REP_INFO                3
#define NBD_REP_META_CONTEXT        4
#define NBD_REP_ERR_UNSUP           NBD_REP_ERR (1)
#define NBD_REP_ERR_POLICY          NBD_REP_ERR (2)
#define NBD_REP_ERR_INVALID         NBD_REP_ERR (3)
#define NBD_REP_ERR_PLATFORM        NBD_REP_ERR (4)
#define NBD_REP_ERR_TLS_REQD        NBD_REP_ERR (5)
#define NBD_REP_ERR_UNKNOWN         NBD_REP_ERR (6)
#define NBD_REP_ERR_SHUTDOWN        NBD_REP_ERR (7)
#define NBD_REP_ERR_BLOCK_SIZE_REQD NBD_REP_ERR (8)
#define NBD_REP_ERR_TOO_BIG         NBD_REP_ERR (9)

/* NBD_INFO_* information types of NBD_OPT_INFO and NBD_OPT_GO. */
#define NBD_INFO_EXPORT             0
#define NBD_INFO_NAME               1
#define NBD_INFO_DESCRIPTION        2
#define NBD_INFO_BLOCK_SIZE         3

/* Transmission flags. */
#define NBD_FLAG_HAS_FLAGS          (1U << 0)
#define NBD_FLAG_READ_ONLY          (1U << 1)
#define NBD_FLAG_SEND_FLUSH         (1U << 2)
#define NBD_FLAG_SEND_FUA           (1U << 3)
#define NBD_FLAG_ROTATIONAL         (1U << 4)
#define NBD_FLAG_SEND_TRIM          (1U << 5)
#define NBD_FLAG_SEND_WRITE_ZEROES  (1U << 6)
#define NBD_FLAG_SEND_DF            (1U << 7)
#define NBD_FLAG_CAN_MULTI_CONN     (1U << 8)
#define NBD_FLAG_SEND_RESIZE        (1U << 9)
#define NBD_FLAG_SEND_CACHE         (1U << 10)
#define NBD_FLAG_SEND_FAST_ZERO     (1U << 11)

/* Strings (names, queries, messages) MUST be no longer than this. */
#define NBD_MAX_STRING              4096

/* --------------------------------------------------------- transmission */

#define NBD_REQUEST_MAGIC           UINT32_C (0x25609513)
#define NBD_SIMPLE_REPLY_MAGIC      UINT32_C (0x67446698)
#define NBD_STRUCTURED_REPLY_MAGIC  UINT32_C (0x668e33ef)

struct nbd_request {
  uint32_t magic;               /* NBD_REQUEST_MAGIC */
  uint16_t flags;               /* NBD_CMD_FLAG_* */
  uint16_t type;                /* NBD_CMD_* */
  uint64_t cookie;              /* "handle": opaque, echoed in the reply */
  uint64_t offset;
  uint32_t count;
} __attribute__ ((__packed__));
_Static_assert (sizeof (struct nbd_request) == 28, "request");

struct nbd_simple_reply {
  uint32_t magic;               /* NBD_SIMPLE_REPLY_MAGIC */
  uint32_t error;               /* NBD_E* or 0 */
  uint64_t cookie;
} __attribute__ ((__packed__));
_Static_assert (sizeof (struct nbd_simple_reply) == 16, "simple reply");

struct nbd_structured_reply {
  uint32_t magic;               /* NBD_STRUCTURED_REPLY_MAGIC */
  uint16_t flags;               /* NBD_REPLY_FLAG_DONE */
  uint16_t type;                /* NBD_REPLY_TYPE_* */
  uint64_t cookie;
  uint32_t length;              /* bytes of payload that follow */
} __attribute__ ((__packed__));
_Static_assert (sizeof (struct nbd_structured_reply) == 20,
                "structured reply chunk");

/* Payload of NBD_REPLY_TYPE_OFFSET_DATA (data follows) and _OFFSET_HOLE. */
struct nbd_structured_reply_offset_data {
  uint64_t offset;
} __attribute__ ((__packed__));

struct nbd_structured_reply_offset_hole {
  uint64_t offset;
  uint32_t length;              /* nonzero */
} __attribute__ ((__packed__));
_Static_assert (sizeof (struct nbd_structured_reply_offset_hole) == 12,
                "hole chunk");

/* Payload of NBD_REPLY_TYPE_ERROR (then len bytes of message). */
struct nbd_structured_reply_error {
  uint32_t error;               /* NBD_E*, nonzero */
  uint16_t len;                 /* message length */
} __attribute__ ((__packed__));
_Static_assert (sizeof (struct nbd_structured_reply_error) == 6,
                "error chunk");

/* NBD_REPLY_TYPE_BLOCK_STATUS: a context ID, then descriptors. */
struct nbd_block_descriptor {
  uint32_t length;              /* nonzero */
  uint32_t status_flags;
} __attribute__ ((__packed__));
_Static_assert (sizeof (struct nbd_block_descriptor) == 8, "descriptor");

#define NBD_REPLY_FLAG_DONE         (1U << 0)

#define NBD_REPLY_TYPE_NONE         0
#define NBD_REPLY_TYPE_OFFSET_DATA  1
#define NBD_REPLY_TYPE_OFFSET_HOLE  2
#define NBD_REPLY_TYPE_BLOCK_STATUS 5
#define NBD_REPLY_TYPE_ERROR        ((1U << 15) + 1)
#define NBD_REPLY_TYPE_ERROR_OFFSET ((1U << 15) + 2)

/* Commands. */
#define NBD_CMD_READ                0
#define NBD_CMD_WRITE               1
#define NBD_CMD_DISC                2
#define NBD_CMD_FLUSH               3
#define NBD_CMD_TRIM                4
#define NBD_CMD_CACHE               5
#define NBD_CMD_WRITE_ZEROES        6
#define NBD_CMD_BLOCK_STATUS        7

/* Command flags. */
#define NBD_CMD_FLAG_FUA            (1U << 0)
#define NBD_CMD_FLAG_NO_HOLE        (1U << 1)
#define NBD_CMD_FLAG_DF             (1U << 2)
#define NBD_CMD_FLAG_REQ_ONE        (1U << 3)
#define NBD_CMD_FLAG_FAST_ZERO      (1U << 4)

/* base:allocation status flags. */
#define NBD_STATE_HOLE              (1U << 0)
#define NBD_STATE_ZERO              (1U << 1)

/* Error values of replies: fixed by the protocol, not the host's errno. */
#define NBD_SUCCESS                 0
#define NBD_EPERM                   1
#define NBD_EIO                     5
#define NBD_ENOMEM                  12
#define NBD_EINVAL                  22
#define NBD_ENOSPC                  28
#define NBD_EOVERFLOW               75
#define NBD_ENOTSUP                 95
#define NBD_ESHUTDOWN               108

#endif /* VHD_NBD_PROTOCOL_H */
