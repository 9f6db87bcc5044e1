/* errors.c: the per-thread last error (libnbd's shape).
 *
 * Public wrappers name themselves with set_error_context () on entry;
 * set_error () then records "CONTEXT: message" and the errno, and sets
 * errno too so callers that only look at errno see the same value.
 * Messages are kept in a fixed per-thread buffer: recording an error can
 * never fail, and nothing needs freeing at thread exit.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

#define MAX_MESSAGE ERROR_MESSAGE_MAX

static _Thread_local const char *error_context;
static _Thread_local char last_message[MAX_MESSAGE];
static _Thread_local int last_errno;

void
set_error_context (const char *context)
{
  error_context = context;
}

void
set_error (int errnum, const char *fs, ...)
{
  char msg[MAX_MESSAGE];
  va_list args;

  va_start (args, fs);
  vsnprintf (msg, sizeof msg, fs, args);
  va_end (args);
  if (error_context)
    snprintf (last_message, sizeof last_message, "%s: %s", error_context,
              msg);
  else
    snprintf (last_message, sizeof last_message, "%s", msg);
  last_errno = errnum;
  errno = errnum;
}

void
prefix_error (const char *fs, ...)
{
  char prefix[MAX_MESSAGE], old[MAX_MESSAGE];
  const char *rest = last_message;
  size_t ctx_len = error_context ? strlen (error_context) : 0;
  va_list args;

  va_start (args, fs);
  vsnprintf (prefix, sizeof prefix, fs, args);
  va_end (args);
  /* Keep the context first: "vhd_open: PREFIX: message". */
  if (ctx_len && strncmp (rest, error_context, ctx_len) == 0
      && strncmp (rest + ctx_len, ": ", 2) == 0)
    rest += ctx_len + 2;
  snprintf (old, sizeof old, "%s", rest);
  if (ctx_len)
    snprintf (last_message, sizeof last_message, "%s: %s: %s", error_context,
              prefix, old);
  else
    snprintf (last_message, sizeof last_message, "%s: %s", prefix, old);
  errno = last_errno;
}

const char *
error_message (void)
{
  size_t ctx_len = error_context ? strlen (error_context) : 0;

  if (last_message[0] == '\0')
    return "unknown error";
  if (ctx_len && strncmp (last_message, error_context, ctx_len) == 0
      && strncmp (last_message + ctx_len, ": ", 2) == 0)
    return last_message + ctx_len + 2;
  return last_message;
}

void
save_error (struct saved_error *e)
{
  e->errnum = last_errno;
  memcpy (e->message, last_message, sizeof e->message);
}

void
restore_error (const struct saved_error *e)
{
  memcpy (last_message, e->message, sizeof last_message);
  last_errno = e->errnum;
  errno = e->errnum;
}

const char *
vhd_get_error (void)
{
  return last_message[0] ? last_message : NULL;
}

int
vhd_get_errno (void)
{
  return last_errno;
}
