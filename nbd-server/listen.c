/* listen.c: listening sockets.
 *
 * A Unix socket at a path (a stale socket left there is replaced; any
 * other file is an error), or TCP on every address getaddrinfo gives for
 * ADDR (all local addresses, IPv4 and IPv6, when ADDR is NULL).  IPv6
 * sockets are IPV6_V6ONLY so that both families can bind the same port.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "server.h"

int
listen_unix (const char *path, int *fds, size_t max)
{
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  struct stat st;
  int fd;

  if (max < 1)
    return 0;
  if (strlen (path) >= sizeof addr.sun_path) {
    server_error ("%s: socket path too long", path);
    return -1;
  }
  memcpy (addr.sun_path, path, strlen (path) + 1);
  if (lstat (path, &st) == 0) {
    if (!S_ISSOCK (st.st_mode)) {
      server_error ("%s: exists and is not a socket", path);
      return -1;
    }
    unlink (path);
  }
  fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd == -1) {
    server_error ("socket: %m");
    return -1;
  }
  if (bind (fd, (struct sockaddr *) &addr, sizeof addr) == -1
      || listen (fd, SOMAXCONN) == -1) {
    server_error ("%s: %m", path);
    close (fd);
    return -1;
  }
  fds[0] = fd;
  return 1;
}

/* One listening socket for ai, or -1 (errno set). */
static int
listen_one (const struct addrinfo *ai)
{
  int fd, one = 1, saved;

  fd = socket (ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
               ai->ai_protocol);
  if (fd == -1)
    return -1;
  setsockopt (fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (ai->ai_family == AF_INET6)
    setsockopt (fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  if (bind (fd, ai->ai_addr, ai->ai_addrlen) == 0
      && listen (fd, SOMAXCONN) == 0)
    return fd;
  saved = errno;
  close (fd);
  errno = saved;
  return -1;
}

int
listen_tcp (const char *addr, const char *port, int *fds, size_t max)
{
  struct addrinfo hints = {
    .ai_flags = AI_PASSIVE,
    .ai_family = AF_UNSPEC,
    .ai_socktype = SOCK_STREAM,
  };
  struct addrinfo *res, *ai;
  size_t n = 0;
  int err, saved = EADDRNOTAVAIL;
  bool failed = false;

  err = getaddrinfo (addr, port, &hints, &res);
  if (err) {
    server_error ("%s port %s: %s", addr ? addr : "*", port,
                  gai_strerror (err));
    return -1;
  }
  for (ai = res; ai && n < max && !failed; ai = ai->ai_next) {
    int fd = listen_one (ai);
    if (fd >= 0)
      fds[n++] = fd;
    else {
      saved = errno;
      /* A family the host lacks is fine as long as another one works. */
      failed = errno != EAFNOSUPPORT && errno != EADDRNOTAVAIL;
    }
  }
  freeaddrinfo (res);
  if (n == 0 || failed) {
    errno = saved;
    server_error ("%s port %s: %m", addr ? addr : "*", port);
    while (n > 0)
      close (fds[--n]);
    return -1;
  }
  return (int) n;
}
