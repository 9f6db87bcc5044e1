/* cleanup.h: scope-bound cleanup for temporaries and locks (GCC and
 * Clang only, as the README says). */
#ifndef LIBVHD_CLEANUP_H
#define LIBVHD_CLEANUP_H

#include <pthread.h>
#include <stdlib.h>

static inline void
cleanup_free (void *ptr)
{
  free (*(void **) ptr);
}
#define CLEANUP_FREE __attribute__ ((cleanup (cleanup_free)))

static inline void
cleanup_unlock (pthread_mutex_t **mutex)
{
  pthread_mutex_unlock (*mutex);
}
#define LOCK_CONCAT_(a, b) a##b
#define LOCK_CONCAT(a, b) LOCK_CONCAT_ (a, b)
#define ACQUIRE_LOCK_FOR_CURRENT_SCOPE(mutex)                                 \
  pthread_mutex_t *LOCK_CONCAT (scope_lock_, __LINE__)                       \
    __attribute__ ((cleanup (cleanup_unlock), unused)) = (mutex);            \
  pthread_mutex_lock (LOCK_CONCAT (scope_lock_, __LINE__))

static inline void
cleanup_rwunlock (pthread_rwlock_t **lock)
{
  pthread_rwlock_unlock (*lock);
}
#define RWLOCK_FOR_CURRENT_SCOPE_(lock, how)                                  \
  pthread_rwlock_t *LOCK_CONCAT (scope_rwlock_, __LINE__)                    \
    __attribute__ ((cleanup (cleanup_rwunlock), unused)) = (lock);          \
  pthread_rwlock_##how (LOCK_CONCAT (scope_rwlock_, __LINE__))
#define SHARED_LOCK_FOR_CURRENT_SCOPE(lock)                                   \
  RWLOCK_FOR_CURRENT_SCOPE_ (lock, rdlock)
#define EXCLUSIVE_LOCK_FOR_CURRENT_SCOPE(lock)                                \
  RWLOCK_FOR_CURRENT_SCOPE_ (lock, wrlock)

#endif /* LIBVHD_CLEANUP_H */
