/* handshake.c: fixed newstyle negotiation (proto.md "Handshake").
 *
 *   S: NBDMAGIC IHAVEOPT flags(FIXED_NEWSTYLE|NO_ZEROES)
 *   C: client flags
 *   repeat:  C: IHAVEOPT option length data
 *            S: option replies (one or more, the last ACK or an error)
 *   until NBD_OPT_EXPORT_NAME or a successful NBD_OPT_GO (transmission),
 *   or NBD_OPT_ABORT / end of file (drop).
 *
 * handshake () reads one option at a time and dispatches it to one
 * handler per option; handlers parse the option's data with the bounded
 * reader below and answer NBD_REP_ERR_INVALID when it does not add up, so
 * a malformed option never desynchronises the stream.  The client is
 * dropped only where the protocol leaves no way to answer: bad magic,
 * unknown client flags, option data longer than MAX_OPTION_DATA, more than
 * MAX_OPTIONS options, an NBD_OPT_EXPORT_NAME for a missing export, or any
 * option other than that from a client without fixed newstyle.
 *
 * Negotiated state lives in struct conn (structured replies, alignment
 * checks, the contexts selected) once transmission starts; until then
 * meta contexts are kept here, with the export they were selected for,
 * since they only count if the client goes on to that same export.
 */
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol.h"
#include "server.h"

enum opt_result {
  OPT_DROP = -1,               /* hard disconnect */
  OPT_CONTINUE = 0,            /* wait for the next option */
  OPT_TRANSMISSION = 1,        /* c->exp is set: start serving */
};

struct negotiation {
  struct conn *c;
  bool no_zeroes;              /* NBD_FLAG_C_NO_ZEROES */
  /* The last NBD_OPT_SET_META_CONTEXT. */
  const struct export *meta_export;
  bool meta_base, meta_depth;
};

/* The data of one option, read front to back without overrunning it. */
struct optdata {
  uint32_t option;
  const uint8_t *p;
  size_t left;
};

static bool
get_u16 (struct optdata *d, uint16_t *v)
{
  if (d->left < 2)
    return false;
  memcpy (v, d->p, 2);
  *v = be16toh (*v);
  d->p += 2, d->left -= 2;
  return true;
}

static bool
get_u32 (struct optdata *d, uint32_t *v)
{
  if (d->left < 4)
    return false;
  memcpy (v, d->p, 4);
  *v = be32toh (*v);
  d->p += 4, d->left -= 4;
  return true;
}

/* A string: 32-bit length then bytes, at most NBD_MAX_STRING long. */
static bool
get_string (struct optdata *d, const char **s, uint32_t *len)
{
  if (!get_u32 (d, len) || *len > d->left || *len > NBD_MAX_STRING)
    return false;
  *s = (const char *) d->p;
  d->p += *len, d->left -= *len;
  return true;
}

/* ------------------------------------------------------------ exports */

const struct export *
find_export (const char *name, size_t len)
{
  size_t i;

  for (i = 0; i < n_exports; i++)
    if (strlen (exports[i].name) == len
        && memcmp (exports[i].name, name, len) == 0)
      return &exports[i];
  return NULL;
}

/* ------------------------------------------------------------ replies */

static int
send_opt_reply (struct conn *c, uint32_t option, uint32_t reply,
                const void *data, size_t len)
{
  struct nbd_fixed_new_option_reply hdr = {
    .magic = htobe64 (NBD_REP_MAGIC),
    .option = htobe32 (option),
    .reply = htobe32 (reply),
    .replylen = htobe32 ((uint32_t) len),
  };
  struct iovec iov[] = {
    { &hdr, sizeof hdr },
    { (void *) data, len },
  };

  return send_iov (c, iov, 2);
}

static int
send_ack (struct conn *c, uint32_t option)
{
  return send_opt_reply (c, option, NBD_REP_ACK, NULL, 0);
}

/* An error reply carrying a message for the user.  The result goes to
 * the handler's caller: CONTINUE, or DROP when the send failed. */
static enum opt_result ATTR_PRINTF (4, 5)
opt_error (struct conn *c, uint32_t option, uint32_t reply,
           const char *fs, ...)
{
  char msg[256];
  va_list args;
  int n;

  va_start (args, fs);
  n = vsnprintf (msg, sizeof msg, fs, args);
  va_end (args);
  if (n < 0)
    n = 0;
  if ((size_t) n >= sizeof msg)
    n = sizeof msg - 1;
  return send_opt_reply (c, option, reply, msg, (size_t) n) == 0
           ? OPT_CONTINUE : OPT_DROP;
}

static enum opt_result
invalid (struct negotiation *n, const struct optdata *d, const char *what)
{
  conn_error (n->c, "option %" PRIu32 ": %s", d->option, what);
  return opt_error (n->c, d->option, NBD_REP_ERR_INVALID, "%s", what);
}

/* Transmission flags for this client: SEND_DF only with structured
 * replies (proto.md, "Transmission flags"). */
uint16_t
export_eflags (const struct conn *c)
{
  uint16_t flags = c->exp->eflags;

  if (c->structured)
    flags |= NBD_FLAG_SEND_DF;
  return flags;
}

/* Enter transmission on exp, keeping the meta contexts only if they were
 * selected for this export. */
static void
choose_export (struct negotiation *n, const struct export *exp)
{
  struct conn *c = n->c;

  c->exp = exp;
  c->meta_base = n->meta_export == exp && n->meta_base;
  c->meta_depth = n->meta_export == exp && n->meta_depth;
}

/* ------------------------------------------------------------ handlers */

/* NBD_OPT_EXPORT_NAME: the old way in; cannot fail politely. */
static enum opt_result
handle_opt_export_name (struct negotiation *n, struct optdata *d)
{
  struct conn *c = n->c;
  const struct export *exp;
  struct nbd_export_name_reply reply;
  static const uint8_t zeroes[NBD_EXPORT_NAME_ZEROES];
  struct iovec iov[2];

  if (d->left > NBD_MAX_STRING) {
    conn_error (c, "NBD_OPT_EXPORT_NAME: name too long");
    return OPT_DROP;
  }
  exp = find_export ((const char *) d->p, d->left);
  if (exp == NULL) {
    conn_error (c, "NBD_OPT_EXPORT_NAME: no export '%.*s'", (int) d->left,
                (const char *) d->p);
    return OPT_DROP;
  }
  choose_export (n, exp);
  reply.exportsize = htobe64 (exp->size);
  reply.eflags = htobe16 (export_eflags (c));
  iov[0] = (struct iovec) { &reply, sizeof reply };
  iov[1] = (struct iovec) { (void *) zeroes, n->no_zeroes ? 0 : sizeof zeroes };
  return send_iov (c, iov, 2) == 0 ? OPT_TRANSMISSION : OPT_DROP;
}

static enum opt_result
handle_opt_abort (struct negotiation *n, struct optdata *d)
{
  send_ack (n->c, d->option);   /* the client may already be gone */
  return OPT_DROP;
}

static enum opt_result
handle_opt_list (struct negotiation *n, struct optdata *d)
{
  size_t i;

  if (d->left != 0)
    return invalid (n, d, "NBD_OPT_LIST must have no data");
  for (i = 0; i < n_exports; i++) {
    size_t len = strlen (exports[i].name);
    uint8_t buf[4 + NBD_MAX_STRING];
    uint32_t be = htobe32 ((uint32_t) len);

    memcpy (buf, &be, 4);
    memcpy (buf + 4, exports[i].name, len);
    if (send_opt_reply (n->c, d->option, NBD_REP_SERVER, buf, 4 + len))
      return OPT_DROP;
  }
  return send_ack (n->c, d->option) ? OPT_DROP : OPT_CONTINUE;
}

static int
send_info (struct conn *c, uint32_t option, const void *info, size_t len)
{
  return send_opt_reply (c, option, NBD_REP_INFO, info, len);
}

/* NBD_INFO_NAME or NBD_INFO_DESCRIPTION: a type then a string. */
static int
send_info_string (struct conn *c, uint32_t option, uint16_t type,
                  const char *s)
{
  uint8_t buf[2 + NBD_MAX_STRING];
  uint16_t be = htobe16 (type);
  size_t len = strlen (s);

  if (len > NBD_MAX_STRING)
    len = NBD_MAX_STRING;
  memcpy (buf, &be, 2);
  memcpy (buf + 2, s, len);
  return send_info (c, option, buf, 2 + len);
}

static int
send_infos (struct conn *c, uint32_t option, const struct export *exp,
            bool want_name, bool want_description)
{
  struct nbd_info_export ie = {
    .info = htobe16 (NBD_INFO_EXPORT),
    .exportsize = htobe64 (exp->size),
  };
  struct nbd_info_block_size bs = {
    .info = htobe16 (NBD_INFO_BLOCK_SIZE),
    .minimum = htobe32 (exp->min_block),
    .preferred = htobe32 (exp->pref_block),
    .maximum = htobe32 (MAX_REQUEST_SIZE),
  };
  const struct export *saved = c->exp;

  c->exp = exp;                 /* for export_eflags () */
  ie.eflags = htobe16 (export_eflags (c));
  c->exp = saved;
  if (send_info (c, option, &ie, sizeof ie))
    return -1;
  /* Block sizes are always sent: the server MAY send unrequested info. */
  if (send_info (c, option, &bs, sizeof bs))
    return -1;
  if (want_name && send_info_string (c, option, NBD_INFO_NAME, exp->name))
    return -1;
  if (want_description
      && send_info_string (c, option, NBD_INFO_DESCRIPTION,
                           exp->description))
    return -1;
  return 0;
}

/* NBD_OPT_INFO and NBD_OPT_GO: name, then a list of NBD_INFO_* wanted. */
static enum opt_result
handle_opt_info_go (struct negotiation *n, struct optdata *d)
{
  struct conn *c = n->c;
  const char *name;
  uint32_t name_len;
  uint16_t n_infos, i;
  bool want_name = false, want_desc = false, want_bs = false;
  const struct export *exp;

  if (!get_string (d, &name, &name_len) || !get_u16 (d, &n_infos)
      || d->left != 2U * n_infos)
    return invalid (n, d, "NBD_OPT_INFO/GO: malformed data");
  for (i = 0; i < n_infos; i++) {
    uint16_t type = 0;
    get_u16 (d, &type);
    want_name |= type == NBD_INFO_NAME;
    want_desc |= type == NBD_INFO_DESCRIPTION;
    want_bs |= type == NBD_INFO_BLOCK_SIZE;
  }
  exp = find_export (name, name_len);
  if (exp == NULL)
    return opt_error (c, d->option, NBD_REP_ERR_UNKNOWN,
                      "no export named '%.*s'", (int) name_len, name);
  if (send_infos (c, d->option, exp, want_name, want_desc)
      || send_ack (c, d->option))
    return OPT_DROP;
  if (d->option == NBD_OPT_INFO)
    return OPT_CONTINUE;
  choose_export (n, exp);
  c->check_align = want_bs;
  return OPT_TRANSMISSION;
}

static enum opt_result
handle_opt_structured_reply (struct negotiation *n, struct optdata *d)
{
  if (d->left != 0)
    return invalid (n, d, "NBD_OPT_STRUCTURED_REPLY must have no data");
  n->c->structured = true;
  return send_ack (n->c, d->option) ? OPT_DROP : OPT_CONTINUE;
}

/* The contexts a query names.  For LIST, "base:" and "qemu:" are
 * wildcards; for SET they select nothing (proto.md, "The base:
 * metadata namespace").  Unknown namespaces and leaves are ignored. */
static void
match_query (const char *q, uint32_t len, bool list, bool *base,
             bool *depth)
{
#define IS(s) (len == sizeof (s) - 1 && memcmp (q, s, len) == 0)
  if (IS ("base:allocation") || (list && IS ("base:")))
    *base = true;
  if (IS ("qemu:allocation-depth") || (list && IS ("qemu:")))
    *depth = true;
#undef IS
}

static int
send_meta_context (struct conn *c, uint32_t option, uint32_t id,
                   const char *name)
{
  uint8_t buf[64];
  uint32_t be = htobe32 (id);
  size_t len = strlen (name);

  memcpy (buf, &be, 4);
  memcpy (buf + 4, name, len);
  return send_opt_reply (c, option, NBD_REP_META_CONTEXT, buf, 4 + len);
}

/* NBD_OPT_LIST_META_CONTEXT and NBD_OPT_SET_META_CONTEXT: an export name
 * then a counted list of query strings. */
static enum opt_result
handle_opt_meta_context (struct negotiation *n, struct optdata *d)
{
  struct conn *c = n->c;
  bool list = d->option == NBD_OPT_LIST_META_CONTEXT;
  bool base = false, depth = false;
  const char *name, *q;
  uint32_t name_len, n_queries, len, i;
  const struct export *exp;

  if (!list) {                  /* SET replaces, even when it fails */
    n->meta_export = NULL;
    n->meta_base = n->meta_depth = false;
  }
  if (!c->structured)
    return invalid (n, d, "meta contexts need structured replies first");
  if (!get_string (d, &name, &name_len) || !get_u32 (d, &n_queries))
    return invalid (n, d, "meta context: malformed data");
  for (i = 0; i < n_queries; i++) {
    if (!get_string (d, &q, &len))
      return invalid (n, d, "meta context: malformed query list");
    if (memchr (q, ':', len) == NULL)
      return invalid (n, d, "meta context: query without a namespace");
    match_query (q, len, list, &base, &depth);
  }
  if (d->left != 0)
    return invalid (n, d, "meta context: trailing data");
  if (list && n_queries == 0)
    base = depth = true;
  exp = find_export (name, name_len);
  if (exp == NULL)
    return opt_error (c, d->option, NBD_REP_ERR_UNKNOWN,
                      "no export named '%.*s'", (int) name_len, name);

  if (base && send_meta_context (c, d->option,
                                 list ? 0 : META_BASE_ALLOCATION,
                                 "base:allocation"))
    return OPT_DROP;
  if (depth && send_meta_context (c, d->option,
                                  list ? 0 : META_ALLOCATION_DEPTH,
                                  "qemu:allocation-depth"))
    return OPT_DROP;
  if (!list) {
    n->meta_export = exp;
    n->meta_base = base;
    n->meta_depth = depth;
  }
  return send_ack (c, d->option) ? OPT_DROP : OPT_CONTINUE;
}

static enum opt_result
dispatch_option (struct negotiation *n, struct optdata *d)
{
  switch (d->option) {
  case NBD_OPT_EXPORT_NAME:
    return handle_opt_export_name (n, d);
  case NBD_OPT_ABORT:
    return handle_opt_abort (n, d);
  case NBD_OPT_LIST:
    return handle_opt_list (n, d);
  case NBD_OPT_INFO:
  case NBD_OPT_GO:
    return handle_opt_info_go (n, d);
  case NBD_OPT_STRUCTURED_REPLY:
    return handle_opt_structured_reply (n, d);
  case NBD_OPT_LIST_META_CONTEXT:
  case NBD_OPT_SET_META_CONTEXT:
    return handle_opt_meta_context (n, d);
  default:                      /* STARTTLS, EXTENDED_HEADERS, unknown */
    return opt_error (n->c, d->option, NBD_REP_ERR_UNSUP,
                      "option %" PRIu32 " is not supported", d->option);
  }
}

/* ------------------------------------------------------------ driver */

static int
greet (struct negotiation *n)
{
  struct nbd_new_handshake hs = {
    .nbdmagic = htobe64 (NBD_MAGIC),
    .version = htobe64 (NBD_IHAVEOPT),
    .gflags = htobe16 (NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES),
  };
  struct iovec iov[] = { { &hs, sizeof hs } };
  uint32_t cflags;

  if (send_iov (n->c, iov, 1) || recv_all (n->c->fd, &cflags, 4))
    return -1;
  cflags = be32toh (cflags);
  if (cflags & ~(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES)) {
    conn_error (n->c, "unknown client flags 0x%" PRIx32, cflags);
    return -1;
  }
  n->no_zeroes = cflags & NBD_FLAG_C_NO_ZEROES;
  return (cflags & NBD_FLAG_C_FIXED_NEWSTYLE) ? 1 : 0;
}

/* Read one option header and its data (malloc'd into *buf). */
static int
read_option (struct conn *c, struct optdata *d, uint8_t **buf)
{
  struct nbd_new_option opt;
  uint32_t len;

  if (recv_all (c->fd, &opt, sizeof opt))
    return -1;
  if (be64toh (opt.version) != NBD_IHAVEOPT) {
    conn_error (c, "bad option magic");
    return -1;
  }
  d->option = be32toh (opt.option);
  len = be32toh (opt.optlen);
  if (len > MAX_OPTION_DATA) {
    conn_error (c, "option %" PRIu32 ": %" PRIu32 " bytes of data is too "
                "much", d->option, len);
    return -1;
  }
  *buf = malloc (len ? len : 1);
  if (*buf == NULL || recv_all (c->fd, *buf, len)) {
    free (*buf);
    *buf = NULL;
    return -1;
  }
  d->p = *buf;
  d->left = len;
  return 0;
}

int
handshake (struct conn *c)
{
  struct negotiation n = { .c = c };
  unsigned count;
  int fixed = greet (&n);

  if (fixed < 0)
    return -1;
  for (count = 0; count < MAX_OPTIONS; count++) {
    struct optdata d;
    uint8_t *buf;
    enum opt_result r;

    if (read_option (c, &d, &buf))
      return -1;
    if (!fixed && d.option != NBD_OPT_EXPORT_NAME) {
      conn_error (c, "option %" PRIu32 " without fixed newstyle", d.option);
      r = OPT_DROP;
    }
    else if (server_stopping () && d.option != NBD_OPT_ABORT
             && d.option != NBD_OPT_EXPORT_NAME)
      r = opt_error (c, d.option, NBD_REP_ERR_SHUTDOWN,
                     "server is shutting down");
    else if (server_stopping () && d.option == NBD_OPT_EXPORT_NAME)
      r = OPT_DROP;
    else
      r = dispatch_option (&n, &d);
    free (buf);
    if (r != OPT_CONTINUE)
      return r == OPT_TRANSMISSION ? 0 : -1;
  }
  conn_error (c, "more than %u options: dropping the client", MAX_OPTIONS);
  return -1;
}
