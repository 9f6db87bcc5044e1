/* minmax.h: MIN and MAX that evaluate their arguments once. */
#ifndef LIBVHD_MINMAX_H
#define LIBVHD_MINMAX_H

#define MIN(a, b)                                                             \
  ({ __typeof__ (a) min_a_ = (a); __typeof__ (b) min_b_ = (b);               \
     min_a_ < min_b_ ? min_a_ : min_b_; })
#define MAX(a, b)                                                             \
  ({ __typeof__ (a) max_a_ = (a); __typeof__ (b) max_b_ = (b);               \
     max_a_ > max_b_ ? max_a_ : max_b_; })

#define IS_POWER_OF_2(x) ((x) != 0 && ((x) & ((x) - 1)) == 0)
#define ROUND_UP(x, a) (((x) + (a) - 1) / (a) * (a))
#define DIV_ROUND_UP(x, a) (((x) + (a) - 1) / (a))

#endif /* LIBVHD_MINMAX_H */
