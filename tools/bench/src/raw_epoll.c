/* raw_epoll PORT [BUFFER_BYTES]: the smallest fair echo server over epoll, the
 * baseline tools/bench/echo compares every other server with.
 *
 * Level-triggered, one thread. Each connection reads into one shared buffer
 * (64 KiB unless given) and writes it straight back. When the socket cannot
 * take the whole echo, the rest is kept on the connection, reading stops and
 * EPOLLOUT is asked for until it is written: no data is ever dropped or
 * reordered, and a client that does not read cannot make the server grow. */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct {
  int fd;
  char* pending; /* unsent tail of the last echo (NULL when none) */
  size_t pending_len, pending_off;
} Conn;

static int epfd;
static char* buf;
static size_t buf_size = 64 * 1024;

static void drop(Conn* c) {
  close(c->fd); /* also removes it from the epoll set */
  free(c->pending);
  free(c);
}

static void watch(Conn* c, int op, unsigned events) {
  struct epoll_event ev = {.events = events, .data.ptr = c};
  if (epoll_ctl(epfd, op, c->fd, &ev) < 0) {
    perror("epoll_ctl");
    exit(1);
  }
}

/* Writes data[0..len); keeps what the socket did not take. Returns -1 on error. */
static int echo(Conn* c, const char* data, size_t len) {
  size_t off = 0;
  while (off < len) {
    ssize_t n = send(c->fd, data + off, len - off, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN) return -1;
      break;
    }
    off += (size_t)n;
  }
  if (off == len) return 0;
  c->pending = malloc(len - off);
  if (!c->pending) return -1;
  memcpy(c->pending, data + off, len - off);
  c->pending_len = len - off;
  c->pending_off = 0;
  watch(c, EPOLL_CTL_MOD, EPOLLOUT);
  return 0;
}

static void on_readable(Conn* c) {
  ssize_t n = recv(c->fd, buf, buf_size, 0);
  if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
    drop(c);
  } else if (n > 0 && echo(c, buf, (size_t)n) < 0) {
    drop(c);
  }
}

static void on_writable(Conn* c) {
  while (c->pending_off < c->pending_len) {
    ssize_t n = send(c->fd, c->pending + c->pending_off, c->pending_len - c->pending_off, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) return;
      drop(c);
      return;
    }
    c->pending_off += (size_t)n;
  }
  free(c->pending);
  c->pending = NULL;
  watch(c, EPOLL_CTL_MOD, EPOLLIN);
}

int main(int argc, char** argv) {
  if (argc < 2 || argc > 3) {
    fprintf(stderr, "usage: raw_epoll PORT [BUFFER_BYTES]\n");
    return 1;
  }
  if (argc == 3) buf_size = (size_t)strtoul(argv[2], NULL, 10);
  buf = malloc(buf_size);
  signal(SIGPIPE, SIG_IGN);

  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(argv[1]))};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(lfd, (struct sockaddr*)&sa, sizeof sa) < 0 || listen(lfd, 1024) < 0) {
    perror("bind/listen");
    return 1;
  }
  epfd = epoll_create1(0);
  struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
  epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &lev);

  struct epoll_event events[256];
  for (;;) {
    int n = epoll_wait(epfd, events, 256, -1);
    for (int i = 0; i < n; i++) {
      Conn* c = events[i].data.ptr;
      if (c == NULL) {
        int fd;
        while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
          setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          Conn* nc = calloc(1, sizeof *nc);
          nc->fd = fd;
          watch(nc, EPOLL_CTL_ADD, EPOLLIN);
        }
      } else if (c->pending) {
        on_writable(c);
      } else {
        on_readable(c);
      }
    }
  }
}
