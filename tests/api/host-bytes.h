/* host-bytes.h: the host space a test file takes. */
#ifndef TESTS_HOST_BYTES_H
#define TESTS_HOST_BYTES_H

#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

/* Bytes allocated to the file at path, once what was written has reached
 * it (fsync first: delayed allocation makes st_blocks lag behind). */
static inline uint64_t
host_bytes (const char *path)
{
  struct stat st;
  int fd = open (path, O_RDONLY);

  cr_assert_neq (fd, -1, "%s", path);
  cr_assert_eq (fsync (fd), 0);
  cr_assert_eq (fstat (fd, &st), 0, "%s", path);
  close (fd);
  return (uint64_t) st.st_blocks * 512;
}

#endif /* TESTS_HOST_BYTES_H */
