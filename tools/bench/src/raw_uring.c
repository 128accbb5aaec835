/* raw_uring PORT [BUFFER_BYTES]: the smallest fair echo server over io_uring
 * (liburing), the completion-based counterpart of raw_epoll.
 *
 * One thread, one ring. Each connection has one operation in flight at a
 * time: a recv into its own buffer (64 KiB unless given), then sends of what
 * came in until all of it is out, then the next recv. Each loop iteration
 * makes one io_uring_submit_and_wait call (it submits the operations queued
 * by the previous batch and sleeps until one completes) and then handles every
 * completion that is ready, so a busy server makes one system call per batch. */
#define _GNU_SOURCE
#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct {
  int fd;
  size_t len, off; /* bytes received by the last recv / already echoed */
  char buf[];
} Conn;

static struct io_uring ring;
static size_t buf_size = 64 * 1024;
static int listen_fd;

/* The submission queue is sized for every connection's one operation; when it
 * is full anyway, submit what is queued to make room. */
static struct io_uring_sqe* next_sqe(void) {
  struct io_uring_sqe* sqe;
  while ((sqe = io_uring_get_sqe(&ring)) == NULL) io_uring_submit(&ring);
  return sqe;
}

static void queue_accept(void) {
  struct io_uring_sqe* sqe = next_sqe();
  io_uring_prep_accept(sqe, listen_fd, NULL, NULL, 0);
  io_uring_sqe_set_data(sqe, NULL);
}

static void queue_recv(Conn* c) {
  struct io_uring_sqe* sqe = next_sqe();
  io_uring_prep_recv(sqe, c->fd, c->buf, buf_size, 0);
  io_uring_sqe_set_data(sqe, c);
}

static void queue_send(Conn* c) {
  struct io_uring_sqe* sqe = next_sqe();
  io_uring_prep_send(sqe, c->fd, c->buf + c->off, c->len - c->off, MSG_NOSIGNAL);
  io_uring_sqe_set_data(sqe, c);
}

static void on_accept(int fd) {
  queue_accept();
  if (fd < 0) return;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  Conn* c = malloc(sizeof *c + buf_size);
  c->fd = fd;
  c->len = c->off = 0;
  queue_recv(c);
}

/* A completion on a connection: of its recv when nothing is pending, else of its send. */
static void on_complete(Conn* c, int res) {
  if (res <= 0) { /* end of stream or an error, on either operation */
    close(c->fd);
    free(c);
    return;
  }
  if (c->len == 0) {
    c->len = (size_t)res;
    c->off = 0;
  } else {
    c->off += (size_t)res;
  }
  if (c->off < c->len) {
    queue_send(c);
  } else {
    c->len = c->off = 0;
    queue_recv(c);
  }
}

int main(int argc, char** argv) {
  if (argc < 2 || argc > 3) {
    fprintf(stderr, "usage: raw_uring PORT [BUFFER_BYTES]\n");
    return 1;
  }
  if (argc == 3) buf_size = (size_t)strtoul(argv[2], NULL, 10);
  signal(SIGPIPE, SIG_IGN);

  listen_fd = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(argv[1]))};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(listen_fd, (struct sockaddr*)&sa, sizeof sa) < 0 || listen(listen_fd, 1024) < 0) {
    perror("bind/listen");
    return 1;
  }
  /* One thread submits and reaps: with DEFER_TASKRUN the kernel runs completion work
   * when this thread waits, instead of interrupting it (Linux 6.1+; else plain setup). */
  int rc = io_uring_queue_init(1024, &ring, IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN);
  if (rc == -EINVAL) rc = io_uring_queue_init(1024, &ring, 0);
  if (rc < 0) {
    fprintf(stderr, "raw_uring: io_uring_queue_init: %s\n", strerror(-rc));
    return 1;
  }
  queue_accept();
  for (;;) {
    rc = io_uring_submit_and_wait(&ring, 1);
    if (rc < 0 && rc != -EINTR) {
      fprintf(stderr, "raw_uring: io_uring_submit_and_wait: %s\n", strerror(-rc));
      return 1;
    }
    struct io_uring_cqe* cqe;
    unsigned head, seen = 0;
    io_uring_for_each_cqe(&ring, head, cqe) {
      Conn* c = io_uring_cqe_get_data(cqe);
      if (c == NULL)
        on_accept(cqe->res);
      else
        on_complete(c, cqe->res);
      seen++;
    }
    io_uring_cq_advance(&ring, seen);
  }
}
