/* raw_tls PORT CERT KEY [BUFFER_BYTES]: the smallest fair TLS echo server, the
 * baseline tools/bench/echo --tls compares every other TLS server with.
 *
 * raw_epoll with OpenSSL in between: level-triggered epoll, one thread,
 * SSL_set_fd on each non-blocking socket, the handshake done by the first
 * SSL_read. Each wakeup decrypts what is there into one shared buffer (64 KiB
 * unless given) and encrypts it straight back. When the socket cannot take the
 * whole echo, the rest is kept on the connection, reading stops and EPOLLOUT
 * is asked for until it is written. OpenSSL reads ahead (one recv takes in
 * several records) and sends each record as it is made. The certificate chain
 * and key are PEM files; OpenSSL's defaults otherwise (TLS 1.3 with its three
 * suites, two session tickets after each handshake, as Python's ssl and most
 * servers), except that no server-side session cache is kept: nothing here
 * resumes. A close_notify is answered with one, then the connection closed. */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct {
  int fd;
  SSL* ssl;
  unsigned events; /* what the epoll set watches for it */
  char* pending;   /* plain text of the last echo that SSL_write did not take yet (NULL when none) */
  size_t pending_len, pending_off;
} Conn;

static int epfd;
static char* buf;
static size_t buf_size = 64 * 1024;

static void watch(Conn* c, int op, unsigned events) {
  struct epoll_event ev = {.events = events, .data.ptr = c};
  if (epoll_ctl(epfd, op, c->fd, &ev) < 0) {
    perror("epoll_ctl");
    exit(1);
  }
  c->events = events;
}

static void set_events(Conn* c, unsigned events) {
  if (c->events != events) watch(c, EPOLL_CTL_MOD, events);
}

/* Closes a connection after the SSL call that returned err. A TLS-level failure (a bad handshake, a
 * corrupt record) goes to the log; a peer that just went away does not. The error queue is
 * emptied either way, or the next connection's SSL_get_error would report it. */
static void drop(Conn* c, int err) {
  unsigned long e;
  while ((e = ERR_get_error()) != 0) {
    if (err == SSL_ERROR_SSL) {
      char text[256];
      ERR_error_string_n(e, text, sizeof text);
      fprintf(stderr, "raw_tls: connection dropped: %s\n", text);
    }
  }
  SSL_free(c->ssl);
  close(c->fd); /* also removes it from the epoll set */
  free(c->pending);
  free(c);
}

/* SSL_write of data[*off..len), advancing *off. 0: all written; 1: the socket is full, and
 * EPOLLOUT (or, for a write that must first read, EPOLLIN) is awaited; -1: c was dropped. */
static int write_some(Conn* c, const char* data, size_t len, size_t* off) {
  while (*off < len) {
    int n = SSL_write(c->ssl, data + *off, (int)(len - *off));
    if (n > 0) {
      *off += (size_t)n;
      continue;
    }
    int err = SSL_get_error(c->ssl, n);
    if (err != SSL_ERROR_WANT_WRITE && err != SSL_ERROR_WANT_READ) {
      drop(c, err);
      return -1;
    }
    set_events(c, err == SSL_ERROR_WANT_READ ? EPOLLIN : EPOLLOUT);
    return 1;
  }
  return 0;
}

/* Echoes data[0..len); what the socket does not take is kept on the connection (a retried
 * SSL_write must be given the same bytes, which SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER lets move).
 * Returns as write_some. */
static int echo(Conn* c, const char* data, size_t len) {
  size_t off = 0;
  int r = write_some(c, data, len, &off);
  if (r <= 0) return r;
  c->pending = malloc(len - off);
  if (!c->pending) {
    fprintf(stderr, "raw_tls: out of memory\n");
    exit(1);
  }
  memcpy(c->pending, data + off, len - off);
  c->pending_len = len - off;
  c->pending_off = 0;
  return 1;
}

/* One wakeup of a connection: finish a kept echo, then decrypt and echo what has come. Once
 * SSL_read has returned data, it is called again only while OpenSSL holds more bytes
 * (SSL_has_pending): a socket with more wakes level-triggered epoll again, as raw_epoll's one
 * recv per wakeup relies on, but bytes OpenSSL has taken in would not. */
static void serve(Conn* c) {
  if (c->pending) {
    if (write_some(c, c->pending, c->pending_len, &c->pending_off) != 0) return;
    free(c->pending);
    c->pending = NULL;
  }
  for (;;) {
    size_t len = 0;
    int err = SSL_ERROR_NONE;
    while (len < buf_size) {
      int n = SSL_read(c->ssl, buf + len, (int)(buf_size - len));
      if (n <= 0) {
        err = SSL_get_error(c->ssl, n);
        break;
      }
      len += (size_t)n;
      if (!SSL_has_pending(c->ssl)) break;
    }
    if (len > 0 && echo(c, buf, len) != 0) return;
    switch (err) {
      case SSL_ERROR_NONE:
        if (SSL_has_pending(c->ssl)) continue; /* the buffer filled up before OpenSSL's ran dry */
        set_events(c, EPOLLIN);
        return;
      case SSL_ERROR_WANT_READ:
        set_events(c, EPOLLIN);
        return;
      case SSL_ERROR_WANT_WRITE:
        set_events(c, EPOLLOUT);
        return; /* a handshake flight is half sent */
      case SSL_ERROR_ZERO_RETURN:
        SSL_shutdown(c->ssl); /* the peer's close_notify: answer it, then close */
        drop(c, err);
        return;
      default:
        drop(c, err);
        return;
    }
  }
}

int main(int argc, char** argv) {
  if (argc < 4 || argc > 5) {
    fprintf(stderr, "usage: raw_tls PORT CERT KEY [BUFFER_BYTES]\n");
    return 1;
  }
  if (argc == 5) buf_size = (size_t)strtoul(argv[4], NULL, 10);
  if (buf_size == 0 || buf_size > 1 << 30) {
    fprintf(stderr, "raw_tls: BUFFER_BYTES wants 1 .. 2^30, got '%s'\n", argv[4]);
    return 1;
  }
  buf = malloc(buf_size);
  signal(SIGPIPE, SIG_IGN);

  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  if (!ctx || SSL_CTX_use_certificate_chain_file(ctx, argv[2]) != 1 ||
      SSL_CTX_use_PrivateKey_file(ctx, argv[3], SSL_FILETYPE_PEM) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
    fprintf(stderr, "raw_tls: cannot use certificate %s with key %s:\n", argv[2], argv[3]);
    ERR_print_errors_fp(stderr);
    return 1;
  }
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  /* A client that closes without close_notify (load_client at the end of a run) is a plain
   * end of stream here, not an error to log. */
  SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  SSL_CTX_set_read_ahead(ctx, 1);
  SSL_CTX_set_default_read_buffer_len(ctx, 64 * 1024);

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
      if (c != NULL) {
        serve(c);
        continue;
      }
      int fd;
      while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        Conn* nc = calloc(1, sizeof *nc);
        if (!nc || !(nc->ssl = SSL_new(ctx)) || SSL_set_fd(nc->ssl, fd) != 1) {
          fprintf(stderr, "raw_tls: out of memory for a connection\n");
          exit(1);
        }
        nc->fd = fd;
        SSL_set_accept_state(nc->ssl);
        watch(nc, EPOLL_CTL_ADD, EPOLLIN);
      }
    }
  }
}
