/* pool.c: the worker threads that run requests.
 *
 * One FIFO queue shared by every connection, served by a fixed number of
 * threads that call the synchronous libvhd API (dispatch_request) and
 * send the reply themselves.  A connection's reader never has more than
 * MAX_INFLIGHT requests (or MAX_INFLIGHT_BYTES of buffers) out (conn.c),
 * so one busy client cannot fill the queue or the memory on its own.
 * pool_stop () is called only once no connection is left, so the queue
 * is empty by then.
 *
 * Why threads over the synchronous calls are the default rather than
 * libaio: with the page cache (the default), the kernel runs a buffered
 * libaio transfer inside io_submit, in the submitting thread, so native
 * AIO would serialise what the pool runs side by side; the library's
 * reader-writer lock lets reads and in-place writes of the workers
 * proceed together.  --aio=native --cache=none (aio.c), where transfers
 * really are asynchronous, is the choice for data that is not in the
 * host's cache.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "server.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static struct request *head, *tail;
static bool stopping;
static pthread_t *threads;
static unsigned n_threads_started;

static struct request *
take (void)
{
  struct request *r;

  pthread_mutex_lock (&lock);
  while (head == NULL && !stopping)
    pthread_cond_wait (&cond, &lock);
  r = head;
  if (r) {
    head = r->next;
    if (head == NULL)
      tail = NULL;
  }
  pthread_mutex_unlock (&lock);
  return r;
}

static void *
worker (void *arg)
{
  struct request *r;

  while ((r = take ()) != NULL) {
    dispatch_request (r);
    finish_request (r);
  }
  return NULL;
}

/* Queue r and wake a worker, after letting go of the lock, so that the
 * woken worker does not at once block on it (a third fewer context
 * switches at queue depth 16).  Waking only when a worker is known to be
 * idle saves a few more, but loses throughput: fewer workers run. */
void
pool_submit (struct request *r)
{
  r->next = NULL;
  pthread_mutex_lock (&lock);
  if (tail)
    tail->next = r;
  else
    head = r;
  tail = r;
  pthread_mutex_unlock (&lock);
  pthread_cond_signal (&cond);
}

int
pool_start (unsigned n)
{
  unsigned i;

  threads = calloc (n, sizeof *threads);
  if (threads == NULL) {
    server_error ("out of memory");
    return -1;
  }
  for (i = 0; i < n; i++) {
    int err = pthread_create (&threads[i], NULL, worker, NULL);
    if (err) {
      server_error ("creating worker thread: %s", strerror (err));
      pool_stop ();
      return -1;
    }
    n_threads_started++;
  }
  return 0;
}

/* Let the workers drain the queue and exit, and wait for them. */
void
pool_stop (void)
{
  unsigned i;

  pthread_mutex_lock (&lock);
  stopping = true;
  pthread_cond_broadcast (&cond);
  pthread_mutex_unlock (&lock);
  for (i = 0; i < n_threads_started; i++)
    pthread_join (threads[i], NULL);
  free (threads);
  threads = NULL;
  n_threads_started = 0;
}
