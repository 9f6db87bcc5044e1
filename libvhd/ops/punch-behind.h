/* punch-behind.h: hole punching in a thread of its own, so that
 * compact --no-move frees the host space of all-zero blocks while its
 * scan reads on (the two cost about the same; in turn they add up).
 *
 * Only for ranges whose bytes are all zeros: punching them changes no
 * content, and a punch that fails loses nothing (the block's release
 * punches it again).  The caller waits for a range (punch_behind_wait)
 * before its space may be given back or reused: a late punch must not
 * hit what the file holds there next (a VHD footer after a cut).
 */
#ifndef LIBVHD_OPS_PUNCH_BEHIND_H
#define LIBVHD_OPS_PUNCH_BEHIND_H

#include <stdint.h>

struct punch_behind;

/* A thread punching holes into fd; NULL when fd < 0 or no thread could
 * be started (then there is nothing to do early). */
struct punch_behind *punch_behind_start (int fd);
/* Queue [offset, offset + length), which reads as zeros already; waits
 * while the queue is full.  Adjacent ranges are merged.  Returns the
 * range's ticket (0 for nothing queued). */
uint64_t punch_behind_add (struct punch_behind *p, uint64_t offset,
                           uint64_t length);
/* Wait until the range of ticket, and every one before it, is punched
 * (NULL or ticket 0: at once). */
void punch_behind_wait (struct punch_behind *p, uint64_t ticket);
/* Punch what is queued, stop the thread and free p (NULL is fine). */
void punch_behind_finish (struct punch_behind *p);

#endif /* LIBVHD_OPS_PUNCH_BEHIND_H */
