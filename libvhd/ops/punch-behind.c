/* punch-behind.c: see punch-behind.h.  A ring of ranges between the
 * scanning thread and the punching one; fallocate on the descriptor is
 * safe beside the scanner's reads and writes of other ranges. */
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include "punch-behind.h"

#define QUEUE 64U

struct range {
  uint64_t offset, length;
  uint64_t ticket;          /* of the last add merged into it */
};

struct punch_behind {
  int fd;
  pthread_t thread;
  pthread_mutex_t lock;
  pthread_cond_t cond;
  struct range q[QUEUE];
  unsigned head, n;         /* queued: n ranges from q[head] on */
  uint64_t issued;          /* tickets handed out */
  uint64_t done;            /* every range up to this ticket is punched */
  bool stop;
};

static void *
punch_thread (void *arg)
{
  struct punch_behind *p = arg;

  pthread_mutex_lock (&p->lock);
  for (;;) {
    struct range r;
    while (p->n == 0 && !p->stop)
      pthread_cond_wait (&p->cond, &p->lock);
    if (p->n == 0)
      break;
    r = p->q[p->head];
    p->head = (p->head + 1) % QUEUE;
    p->n--;
    pthread_cond_broadcast (&p->cond); /* room for the scanner */
    pthread_mutex_unlock (&p->lock);
    /* A failure loses nothing: the block's release punches again. */
    (void) fallocate (p->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                      (off_t) r.offset, (off_t) r.length);
    pthread_mutex_lock (&p->lock);
    p->done = r.ticket;
    pthread_cond_broadcast (&p->cond);
  }
  pthread_mutex_unlock (&p->lock);
  return NULL;
}

struct punch_behind *
punch_behind_start (int fd)
{
  struct punch_behind *p;

  if (fd < 0 || (p = calloc (1, sizeof *p)) == NULL)
    return NULL;
  p->fd = fd;
  pthread_mutex_init (&p->lock, NULL);
  pthread_cond_init (&p->cond, NULL);
  if (pthread_create (&p->thread, NULL, punch_thread, p) != 0) {
    pthread_mutex_destroy (&p->lock);
    pthread_cond_destroy (&p->cond);
    free (p);
    return NULL;
  }
  return p;
}

uint64_t
punch_behind_add (struct punch_behind *p, uint64_t offset, uint64_t length)
{
  struct range *last;
  uint64_t ticket;

  if (p == NULL || length == 0)
    return 0;
  pthread_mutex_lock (&p->lock);
  ticket = ++p->issued;
  last = p->n ? &p->q[(p->head + p->n - 1) % QUEUE] : NULL;
  if (last && last->offset + last->length == offset) {
    last->length += length;
    last->ticket = ticket;
  }
  else {
    while (p->n == QUEUE)
      pthread_cond_wait (&p->cond, &p->lock);
    p->q[(p->head + p->n) % QUEUE] = (struct range) { offset, length,
                                                      ticket };
    p->n++;
    pthread_cond_broadcast (&p->cond);
  }
  pthread_mutex_unlock (&p->lock);
  return ticket;
}

void
punch_behind_wait (struct punch_behind *p, uint64_t ticket)
{
  if (p == NULL)
    return;
  pthread_mutex_lock (&p->lock);
  while (p->done < ticket)
    pthread_cond_wait (&p->cond, &p->lock);
  pthread_mutex_unlock (&p->lock);
}

void
punch_behind_finish (struct punch_behind *p)
{
  if (p == NULL)
    return;
  pthread_mutex_lock (&p->lock);
  p->stop = true;
  pthread_cond_broadcast (&p->cond);
  pthread_mutex_unlock (&p->lock);
  pthread_join (p->thread, NULL);
  pthread_mutex_destroy (&p->lock);
  pthread_cond_destroy (&p->cond);
  free (p);
}
