/* checked-overflow.h: arithmetic on numbers read from images.
 * Each macro stores the result in *r and is true when it overflowed. */
#ifndef LIBVHD_CHECKED_OVERFLOW_H
#define LIBVHD_CHECKED_OVERFLOW_H

#define ADD_OVERFLOW(a, b, r) __builtin_add_overflow ((a), (b), (r))
#define SUB_OVERFLOW(a, b, r) __builtin_sub_overflow ((a), (b), (r))
#define MUL_OVERFLOW(a, b, r) __builtin_mul_overflow ((a), (b), (r))

#endif /* LIBVHD_CHECKED_OVERFLOW_H */
