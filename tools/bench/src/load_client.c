/* load_client: the echo load generator of tools/bench/echo.
 *
 * Opens --conns TCP connections to 127.0.0.1:--port. Each connection sends a
 * message of --size bytes, reads until the whole echo is back, compares it
 * with what it sent, and sends the next message (its content shifts with
 * every request, so a server that echoes stale or misordered data is caught).
 * One thread and one epoll set drive all connections. After --warmup seconds
 * it measures for --duration seconds and prints one JSON line; every figure
 * is taken over that window only.
 *
 * --tls --ca FILE speaks TLS 1.3 over OpenSSL instead, offering only
 * --ciphersuite (TLS_AES_128_GCM_SHA256 unless given) and verifying the
 * server's certificate against FILE and the address 127.0.0.1. Every
 * connection completes its handshake before the load starts, so the window
 * holds echoes only. --handshakes measures handshakes instead: each of the
 * --conns slots connects, completes a full handshake (never a resumption),
 * sends close_notify and its FIN, reads until the server closes, and starts
 * over; one completed cycle counts as one request.
 *
 * --spin polls epoll without blocking. A blocked client must be woken for
 * every reply, which on a VM goes through the hypervisor and leaves the
 * server idle meanwhile; a spinning client answers at once. Its own
 * client_cpu then leaves out the time spent in polls that found nothing.
 *
 * Exit status: 0 ok, 1 usage or setup, 2 an echoed byte differs, 3 a
 * connection failed or closed, 4 no request completed in the window, 5 no
 * progress at all for 10 s, 6 a TLS handshake failed. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

enum { kMaxEvents = 256, kShiftRange = 251, kRecvMax = 256 * 1024, kTlsReadAhead = 64 * 1024 };

/* A --handshakes slot's stage: its handshake in progress, or close_notify and FIN sent and
 * the server's close awaited. */
enum { kHandshaking, kClosing };

typedef struct {
  int fd;
  unsigned id;
  uint64_t seq;                           /* requests completed on this connection */
  size_t shift;                           /* where the current message starts in the pattern */
  size_t sent, got;                       /* bytes of the current message sent / echoed back */
  int want_out;                           /* EPOLLOUT registered: the last send was partial */
  uint64_t started_ns;                    /* when the first byte of the current message went out */
  SSL* ssl;                               /* --tls: the connection's TLS session */
  int write_wants_read, read_wants_write; /* --tls: an SSL call waits for the other direction */
  int stage;                              /* --handshakes: kHandshaking or kClosing */
} Conn;

static const char* name_ = "server";
static int port_ = 0, conns_n_ = 10, server_pid_ = 0, spin_ = 0;
static size_t size_ = 1024;
static double warmup_s_ = 1.0, duration_s_ = 5.0;
static int tls_ = 0, handshakes_ = 0;
static const char* ca_file_ = NULL;
static const char* ciphersuite_ = "TLS_AES_128_GCM_SHA256";

static int epfd_;
static SSL_CTX* tls_ctx_;
static unsigned char* pattern_; /* size_ + kShiftRange bytes of noise */
static unsigned char recv_buf_[kRecvMax];

static void die(int status, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "load_client[%s]: ", name_);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(status);
}

static uint64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t self_cpu_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* utime + stime of a process (all its threads), in clock ticks; -1 if gone. */
static long long proc_ticks(int pid) {
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  FILE* f = fopen(path, "r");
  if (!f) return -1;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  /* The command name may hold spaces and parentheses: count fields after the last ')'. */
  char* p = strrchr(buf, ')');
  if (!p) return -1;
  unsigned long long utime = 0, stime = 0;
  /* Fields 3..13 are skipped; 14 is utime, 15 stime. */
  if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime) != 2) return -1;
  return (long long)(utime + stime);
}

/* The machine-wide "cpu" line of /proc/stat: total, idle (+iowait) and steal ticks. */
typedef struct {
  unsigned long long total, idle, steal;
} CpuTicks;

static CpuTicks machine_ticks(void) {
  CpuTicks t = {0, 0, 0};
  FILE* f = fopen("/proc/stat", "r");
  if (!f) return t;
  unsigned long long v[8] = {0};
  if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6],
             &v[7]) == 8) {
    for (int i = 0; i < 8; i++) t.total += v[i];
    t.idle = v[3] + v[4];
    t.steal = v[7];
  }
  fclose(f);
  return t;
}

typedef struct {
  uint64_t wall_ns, self_cpu_ns, idle_poll_ns, requests;
  long long server_ticks;
  CpuTicks machine;
} Snapshot;

static uint64_t idle_poll_ns_ = 0, requests_ = 0;

static Snapshot snapshot(void) {
  Snapshot s;
  s.machine = machine_ticks();
  s.server_ticks = server_pid_ ? proc_ticks(server_pid_) : -1;
  s.self_cpu_ns = self_cpu_ns();
  s.idle_poll_ns = idle_poll_ns_;
  s.requests = requests_;
  s.wall_ns = mono_ns();
  return s;
}

/* Latencies (ns) of the requests completed in the measured window. */
static uint64_t* lat_;
static size_t lat_n_, lat_cap_;
static int measuring_;

static void record_latency(uint64_t ns) {
  if (lat_n_ == lat_cap_) {
    lat_cap_ = lat_cap_ ? lat_cap_ * 2 : 1 << 16;
    lat_ = realloc(lat_, lat_cap_ * sizeof *lat_);
    if (!lat_) die(1, "out of memory");
  }
  lat_[lat_n_++] = ns;
}

static int cmp_u64(const void* a, const void* b) {
  uint64_t x = *(const uint64_t*)a, y = *(const uint64_t*)b;
  return (x > y) - (x < y);
}

static double percentile_us(double q) {
  if (lat_n_ == 0) return 0;
  size_t i = (size_t)(q * (double)(lat_n_ - 1) + 0.5);
  return (double)lat_[i] / 1000.0;
}

/* EPOLLIN always, EPOLLOUT when `on`; a descriptor not yet watched (want_out < 0) is added. */
static void set_out_interest(Conn* c, int on) {
  if (c->want_out == on) return;
  struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.ptr = c};
  if (epoll_ctl(epfd_, c->want_out < 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, c->fd, &ev) < 0)
    die(1, "epoll_ctl: %s", strerror(errno));
  c->want_out = on;
}

/* OpenSSL's queued errors as text, the queue emptied: a stale entry would be taken for the
 * error of the next call on any connection. */
static const char* ssl_errors(void) {
  static char text[1024];
  size_t len = 0;
  unsigned long e;
  text[0] = 0;
  while ((e = ERR_get_error()) != 0) {
    if (len + 3 >= sizeof text) continue;
    if (len) text[len++] = ';', text[len++] = ' ';
    ERR_error_string_n(e, text + len, sizeof text - len);
    len = strlen(text);
  }
  return text;
}

/* Why an SSL call on `ssl` returned `ret`: OpenSSL's reasons, the certificate's verdict
 * when verification failed, or the socket error. */
static const char* tls_failure(SSL* ssl, int ret) {
  static char text[1400];
  int saved_errno = errno, err = SSL_get_error(ssl, ret);
  const char* reasons = ssl_errors();
  long verify = SSL_get_verify_result(ssl);
  if (verify != X509_V_OK) {
    snprintf(text, sizeof text, "%s (certificate: %s)", reasons, X509_verify_cert_error_string(verify));
  } else if (*reasons) {
    snprintf(text, sizeof text, "%s", reasons);
  } else if (err == SSL_ERROR_ZERO_RETURN) {
    snprintf(text, sizeof text, "the server sent close_notify");
  } else if (err == SSL_ERROR_SYSCALL) {
    snprintf(text, sizeof text, "%s", saved_errno ? strerror(saved_errno) : "the server closed the connection");
  } else {
    snprintf(text, sizeof text, "SSL_get_error %d", err);
  }
  return text;
}

/* tls_failure for a failed handshake, with a hint where OpenSSL's reason is a protocol one. */
static const char* handshake_failure(SSL* ssl, int ret) {
  static char text[1600];
  int err = SSL_get_error(ssl, ret);
  const char* why = tls_failure(ssl, ret);
  int protocol = err == SSL_ERROR_SSL && SSL_get_verify_result(ssl) == X509_V_OK;
  if (protocol)
    snprintf(text, sizeof text, "%s (is it a TLS 1.3 server with %s among its suites?)", why, ciphersuite_);
  else
    snprintf(text, sizeof text, "%s", why);
  return text;
}

/* A handshake that settled on anything but TLS 1.3 with --ciphersuite would measure something else. */
static void check_negotiated(SSL* ssl, unsigned id) {
  const char* suite = SSL_CIPHER_get_name(SSL_get_current_cipher(ssl));
  if (SSL_version(ssl) != TLS1_3_VERSION || strcmp(suite, ciphersuite_) != 0)
    die(6, "conn %u: negotiated %s %s, not TLSv1.3 %s", id, SSL_get_version(ssl), suite, ciphersuite_);
}

static void tls_setup(void) {
  tls_ctx_ = SSL_CTX_new(TLS_client_method());
  if (!tls_ctx_) die(1, "SSL_CTX_new: %s", ssl_errors());
  SSL_CTX_set_min_proto_version(tls_ctx_, TLS1_3_VERSION);
  SSL_CTX_set_max_proto_version(tls_ctx_, TLS1_3_VERSION);
  /* OpenSSL skips names it does not know, so check that the suite made it into the list. */
  int known = SSL_CTX_set_ciphersuites(tls_ctx_, ciphersuite_) == 1;
  STACK_OF(SSL_CIPHER)* list = SSL_CTX_get_ciphers(tls_ctx_);
  int found = 0;
  for (int i = 0; known && i < sk_SSL_CIPHER_num(list); i++)
    found |= strcmp(SSL_CIPHER_get_name(sk_SSL_CIPHER_value(list, i)), ciphersuite_) == 0;
  if (!found)
    die(1,
        "--ciphersuite wants one TLS 1.3 suite (TLS_AES_128_GCM_SHA256, TLS_AES_256_GCM_SHA384, "
        "TLS_CHACHA20_POLY1305_SHA256), got '%s'",
        ciphersuite_);
  if (SSL_CTX_load_verify_locations(tls_ctx_, ca_file_, NULL) != 1)
    die(1, "--ca %s: not readable as PEM certificates: %s", ca_file_, ssl_errors());
  SSL_CTX_set_verify(tls_ctx_, SSL_VERIFY_PEER, NULL);
  /* The servers listen on 127.0.0.1: their certificate must name that address (asyncio's check). */
  X509_VERIFY_PARAM_set1_ip_asc(SSL_CTX_get0_param(tls_ctx_), "127.0.0.1");
  /* Every handshake is a full one: no session is kept to resume. */
  SSL_CTX_set_session_cache_mode(tls_ctx_, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_mode(tls_ctx_, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  /* One recv takes in several records rather than two per record (header, then body). */
  SSL_CTX_set_read_ahead(tls_ctx_, 1);
  SSL_CTX_set_default_read_buffer_len(tls_ctx_, kTlsReadAhead);
}

static void push(Conn* c);
static void tls_push(Conn* c);

static void start_request(Conn* c) {
  c->shift = (c->seq * 7 + c->id * 13) % kShiftRange;
  c->sent = c->got = 0;
  c->started_ns = mono_ns();
  if (c->ssl)
    tls_push(c);
  else
    push(c);
}

/* Sends what is left of the current message; EPOLLOUT only while some remains. */
static void push(Conn* c) {
  while (c->sent < size_) {
    ssize_t n = send(c->fd, pattern_ + c->shift + c->sent, size_ - c->sent, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) break;
      die(3, "conn %u: send: %s", c->id, strerror(errno));
    }
    c->sent += (size_t)n;
  }
  set_out_interest(c, c->sent < size_);
}

/* push over TLS. A write that must first read (never seen with TLS 1.3) is retried after
 * the next read; EPOLLOUT stays on while a read waits to write. */
static void tls_push(Conn* c) {
  int blocked = 0;
  c->write_wants_read = 0;
  while (c->sent < size_) {
    int n = SSL_write(c->ssl, pattern_ + c->shift + c->sent, (int)(size_ - c->sent));
    if (n > 0) {
      c->sent += (size_t)n;
      continue;
    }
    int err = SSL_get_error(c->ssl, n);
    if (err == SSL_ERROR_WANT_WRITE)
      blocked = 1;
    else if (err == SSL_ERROR_WANT_READ)
      c->write_wants_read = 1;
    else
      die(3, "conn %u: SSL_write: %s", c->id, tls_failure(c->ssl, n));
    break;
  }
  set_out_interest(c, blocked || c->read_wants_write);
}

/* Checks n echoed bytes in recv_buf_ against the message sent; a complete echo starts the next. */
static void take_echo(Conn* c, size_t n) {
  const unsigned char* expect = pattern_ + c->shift + c->got;
  if (memcmp(recv_buf_, expect, n) != 0) {
    size_t i = 0;
    while (recv_buf_[i] == expect[i]) i++;
    die(2, "MISMATCH conn %u request %llu byte %zu of %zu: got 0x%02x, sent 0x%02x", c->id, (unsigned long long)c->seq,
        c->got + i, size_, recv_buf_[i], expect[i]);
  }
  c->got += n;
  if (c->got > c->sent) die(2, "MISMATCH conn %u: %zu bytes echoed before they were sent", c->id, c->got);
  if (c->got == size_) {
    if (measuring_) record_latency(mono_ns() - c->started_ns);
    requests_++;
    c->seq++;
    start_request(c);
  }
}

static void pull(Conn* c) {
  for (;;) {
    size_t want = size_ - c->got;
    if (want == 0) return; /* nothing is owed: anything more would be extra bytes, seen next time */
    if (want > sizeof recv_buf_) want = sizeof recv_buf_;
    ssize_t n = recv(c->fd, recv_buf_, want, 0);
    if (n == 0) die(3, "conn %u: server closed the connection", c->id);
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) return;
      die(3, "conn %u: recv: %s", c->id, strerror(errno));
    }
    take_echo(c, (size_t)n);
  }
}

/* pull over TLS. It reads on while OpenSSL holds bytes (SSL_has_pending), which would wake no
 * level-triggered epoll, and stops when it holds none: more on the socket wakes epoll again,
 * and no recv is spent on finding it empty. The server never owes more than one message,
 * so every byte read belongs to the current one. */
static void tls_pull(Conn* c) {
  c->read_wants_write = 0;
  for (;;) {
    size_t want = size_ - c->got;
    if (want > sizeof recv_buf_) want = sizeof recv_buf_;
    int n = SSL_read(c->ssl, recv_buf_, (int)want);
    if (n <= 0) {
      int err = SSL_get_error(c->ssl, n);
      if (err == SSL_ERROR_WANT_READ) break;
      if (err == SSL_ERROR_WANT_WRITE) {
        c->read_wants_write = 1;
        set_out_interest(c, 1);
        break;
      }
      die(3, "conn %u: SSL_read: %s", c->id, tls_failure(c->ssl, n));
    }
    take_echo(c, (size_t)n);
    if (!SSL_has_pending(c->ssl)) break;
  }
  if (c->write_wants_read) tls_push(c);
}

static struct sockaddr_in server_address(void) {
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port_)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return sa;
}

static int connect_one(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) die(1, "socket: %s", strerror(errno));
  struct sockaddr_in sa = server_address();
  if (connect(fd, (struct sockaddr*)&sa, sizeof sa) < 0) die(3, "connect to port %d: %s", port_, strerror(errno));
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

/* The handshake of an echo connection, on its still blocking socket, before any load. */
static void tls_handshake_blocking(Conn* c) {
  /* Bounded, so that a server that never answers (or is not TLS and waits for more) fails. */
  struct timeval limit = {.tv_sec = 10}, none = {0};
  setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
  setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit);
  c->ssl = SSL_new(tls_ctx_);
  if (!c->ssl || SSL_set_fd(c->ssl, c->fd) != 1) die(1, "SSL_new: %s", ssl_errors());
  int r = SSL_connect(c->ssl);
  if (r != 1) {
    int err = SSL_get_error(c->ssl, r);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)
      die(6, "conn %u: TLS handshake failed: no answer from the server within %ld s", c->id, (long)limit.tv_sec);
    die(6, "conn %u: TLS handshake failed: %s", c->id, handshake_failure(c->ssl, r));
  }
  check_negotiated(c->ssl, c->id);
  setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &none, sizeof none);
  setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &none, sizeof none);
}

static uint64_t resets_ = 0; /* --handshakes: closes the server made with a reset */
static void hs_step(Conn* c);

/* --handshakes: a new connection on slot c, its handshake begun. */
static void hs_open(Conn* c) {
  c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  if (c->fd < 0) die(1, "socket: %s", strerror(errno));
  int one = 1;
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  struct sockaddr_in sa = server_address();
  c->started_ns = mono_ns();
  if (connect(c->fd, (struct sockaddr*)&sa, sizeof sa) < 0 && errno != EINPROGRESS)
    die(3, "slot %u: connect to port %d: %s", c->id, port_, strerror(errno));
  c->ssl = SSL_new(tls_ctx_);
  if (!c->ssl || SSL_set_fd(c->ssl, c->fd) != 1) die(1, "SSL_new: %s", ssl_errors());
  SSL_set_connect_state(c->ssl);
  c->stage = kHandshaking;
  c->want_out = -1;
  /* The ClientHello goes out once the connection is up: until then the write finds EAGAIN
   * and OpenSSL asks for EPOLLOUT, which also reports a refused connection. */
  hs_step(c);
}

/* --handshakes: drives slot c's cycle on an event: the handshake, then close_notify and FIN,
 * then reading past the server's session tickets and close_notify until it closes. */
static void hs_step(Conn* c) {
  if (c->stage == kHandshaking) {
    int r = SSL_do_handshake(c->ssl);
    if (r != 1) {
      int err = SSL_get_error(c->ssl, r);
      if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE)
        die(6, "slot %u: TLS handshake failed after %llu complete ones: %s", c->id, (unsigned long long)requests_,
            handshake_failure(c->ssl, r));
      set_out_interest(c, err == SSL_ERROR_WANT_WRITE);
      return;
    }
    check_negotiated(c->ssl, c->id);
    if (measuring_) record_latency(mono_ns() - c->started_ns);
    /* close_notify and FIN both: a server may answer either with its close. */
    if (SSL_shutdown(c->ssl) < 0) ERR_clear_error();
    shutdown(c->fd, SHUT_WR);
    c->stage = kClosing;
    set_out_interest(c, 0);
  }
  for (;;) {
    ssize_t n = recv(c->fd, recv_buf_, sizeof recv_buf_, 0);
    if (n > 0 || (n < 0 && errno == EINTR)) continue;
    if (n < 0 && errno == EAGAIN) return;
    if (n < 0 && errno != ECONNRESET) die(3, "slot %u: recv: %s", c->id, strerror(errno));
    resets_ += n < 0;
    break;
  }
  SSL_free(c->ssl);
  c->ssl = NULL;
  close(c->fd); /* also leaves the epoll set */
  requests_++;
  hs_open(c);
}

/* --handshakes: where the slots are, for a run that stalls. */
static const char* slot_stages(const Conn* conns) {
  static char text[160];
  int closing = 0;
  for (int i = 0; i < conns_n_; i++) closing += conns[i].stage == kClosing;
  snprintf(text, sizeof text,
           "%d slots in their handshake, %d waiting for the server to close after close_notify and FIN",
           conns_n_ - closing, closing);
  return text;
}

static void usage(int status) {
  fprintf(status ? stderr : stdout,
          "usage: load_client --port P [--conns N] [--size BYTES] [--warmup S] [--duration S]\n"
          "                   [--server-pid PID] [--name NAME] [--spin]\n"
          "                   [--tls --ca FILE [--ciphersuite NAME] [--handshakes]]\n");
  exit(status);
}

static double parse_num(const char* opt, const char* s, double lo) {
  char* end;
  double v = strtod(s, &end);
  if (*s == 0 || *end != 0 || v < lo) die(1, "%s wants a number >= %g, got '%s'", opt, lo, s);
  return v;
}

int main(int argc, char** argv) {
  static const struct option opts[] = {{"port", required_argument, 0, 'p'},
                                       {"conns", required_argument, 0, 'c'},
                                       {"size", required_argument, 0, 's'},
                                       {"warmup", required_argument, 0, 'w'},
                                       {"duration", required_argument, 0, 'd'},
                                       {"server-pid", required_argument, 0, 'P'},
                                       {"name", required_argument, 0, 'n'},
                                       {"spin", no_argument, 0, 'S'},
                                       {"tls", no_argument, 0, 't'},
                                       {"ca", required_argument, 0, 'a'},
                                       {"ciphersuite", required_argument, 0, 'C'},
                                       {"handshakes", no_argument, 0, 'H'},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
  int o;
  while ((o = getopt_long(argc, argv, "", opts, 0)) != -1) {
    switch (o) {
      case 'p':
        port_ = (int)parse_num("--port", optarg, 1);
        break;
      case 'c':
        conns_n_ = (int)parse_num("--conns", optarg, 1);
        break;
      case 's':
        size_ = (size_t)parse_num("--size", optarg, 1);
        break;
      case 'w':
        warmup_s_ = parse_num("--warmup", optarg, 0);
        break;
      case 'd':
        duration_s_ = parse_num("--duration", optarg, 0.1);
        break;
      case 'P':
        server_pid_ = (int)parse_num("--server-pid", optarg, 1);
        break;
      case 'n':
        name_ = optarg;
        break;
      case 'S':
        spin_ = 1;
        break;
      case 't':
        tls_ = 1;
        break;
      case 'a':
        ca_file_ = optarg;
        break;
      case 'C':
        ciphersuite_ = optarg;
        break;
      case 'H':
        handshakes_ = 1;
        break;
      case 'h':
        usage(0);
        break;
      default:
        usage(1);
    }
  }
  if (optind != argc || port_ == 0 || port_ > 65535) usage(1);
  if (handshakes_ && !tls_) die(1, "--handshakes measures TLS handshakes: give --tls as well");
  if (tls_ && !ca_file_) die(1, "--tls wants --ca FILE, the CA the server's certificate must chain to");
  if (tls_ && size_ > 1u << 30) die(1, "--size over TLS is limited to 1 GiB, got %zu", size_);
  if (tls_) {
    /* OpenSSL writes with write(), not send(MSG_NOSIGNAL): a server gone must be an error here. */
    signal(SIGPIPE, SIG_IGN);
    tls_setup();
  }

  pattern_ = malloc(size_ + kShiftRange);
  if (!pattern_) die(1, "out of memory");
  uint32_t x = 2463534242u;
  for (size_t i = 0; i < size_ + kShiftRange; i++) {
    x ^= x << 13, x ^= x >> 17, x ^= x << 5;
    pattern_[i] = (unsigned char)(x >> 24);
  }

  epfd_ = epoll_create1(0);
  if (epfd_ < 0) die(1, "epoll_create1: %s", strerror(errno));
  Conn* conns = calloc((size_t)conns_n_, sizeof *conns);
  if (!conns) die(1, "out of memory");
  for (int i = 0; i < conns_n_; i++) conns[i].id = (unsigned)i;
  if (handshakes_) {
    for (int i = 0; i < conns_n_; i++) hs_open(&conns[i]);
  } else {
    /* Connect all first (blocking, loopback; TLS handshakes too), then make them non-blocking and start. */
    for (int i = 0; i < conns_n_; i++) {
      conns[i].fd = connect_one();
      if (tls_) tls_handshake_blocking(&conns[i]);
    }
    for (int i = 0; i < conns_n_; i++) {
      Conn* c = &conns[i];
      if (fcntl(c->fd, F_SETFL, O_NONBLOCK) < 0) die(1, "fcntl: %s", strerror(errno));
      struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
      if (epoll_ctl(epfd_, EPOLL_CTL_ADD, c->fd, &ev) < 0) die(1, "epoll_ctl: %s", strerror(errno));
      start_request(c);
    }
  }

  const uint64_t begin = mono_ns();
  const uint64_t measure_at = begin + (uint64_t)(warmup_s_ * 1e9);
  const uint64_t end_at = measure_at + (uint64_t)(duration_s_ * 1e9);
  Snapshot s0 = {0};
  uint64_t last_progress = begin, last_requests = 0;
  struct epoll_event events[kMaxEvents];
  for (;;) {
    uint64_t before = spin_ ? mono_ns() : 0;
    int n = epoll_wait(epfd_, events, kMaxEvents, spin_ ? 0 : 100);
    if (n < 0 && errno != EINTR) die(1, "epoll_wait: %s", strerror(errno));
    if (spin_ && n == 0) idle_poll_ns_ += mono_ns() - before;
    for (int i = 0; i < n; i++) {
      Conn* c = events[i].data.ptr;
      unsigned ev = events[i].events;
      if (handshakes_) {
        hs_step(c);
      } else if (tls_) {
        if (ev & (EPOLLIN | EPOLLERR | EPOLLHUP)) tls_pull(c);
        if (ev & EPOLLOUT) {
          tls_push(c);
          if (c->read_wants_write) tls_pull(c);
        }
      } else {
        if (ev & (EPOLLIN | EPOLLERR | EPOLLHUP)) pull(c);
        if (ev & EPOLLOUT) push(c);
      }
    }
    uint64_t now = mono_ns();
    if (requests_ != last_requests) {
      last_requests = requests_;
      last_progress = now;
    } else if (now - last_progress > 10000000000ull) {
      if (!handshakes_) die(5, "no echo for 10 s (%llu requests done)", (unsigned long long)requests_);
      die(5, "no handshake cycle completed for 10 s (%llu done; %s)", (unsigned long long)requests_,
          slot_stages(conns));
    }
    if (!measuring_ && now >= measure_at) {
      measuring_ = 1;
      s0 = snapshot();
    } else if (measuring_ && now >= end_at) {
      break;
    }
  }
  Snapshot s1 = snapshot();

  double wall = (double)(s1.wall_ns - s0.wall_ns) / 1e9;
  uint64_t requests = s1.requests - s0.requests;
  if (requests == 0 && handshakes_)
    die(4, "no handshake cycle completed in the %.1f s window (%s)", wall, slot_stages(conns));
  if (requests == 0) die(4, "no request completed in the %.1f s window", wall);
  qsort(lat_, lat_n_, sizeof *lat_, cmp_u64);
  /* Spinning, the client is always on the CPU; its busy share is the part of the wall time
   * not spent in polls that found nothing. Scaling the CPU it got by that share (rather
   * than subtracting the idle time) stays right when other processes preempt it. */
  double idle_share = (double)(s1.idle_poll_ns - s0.idle_poll_ns) / 1e9 / wall;
  double client_cpu = (double)(s1.self_cpu_ns - s0.self_cpu_ns) / 1e9 / wall * (1 - idle_share);
  if (client_cpu < 0) client_cpu = 0;
  double hz = (double)sysconf(_SC_CLK_TCK);
  double server_cpu = -1;
  if (s0.server_ticks >= 0 && s1.server_ticks >= 0)
    server_cpu = (double)(s1.server_ticks - s0.server_ticks) / hz / wall;
  double total = (double)(s1.machine.total - s0.machine.total);
  double steal = total > 0 ? (double)(s1.machine.steal - s0.machine.steal) / total : 0;
  /* Busy cores machine-wide, less what this client and the server account for (and less
   * the idle polling, which /proc/stat counts as busy): the load of everything else. */
  double busy =
      total > 0
          ? (total - (double)(s1.machine.idle - s0.machine.idle) - (double)(s1.machine.steal - s0.machine.steal)) /
                total * (double)sysconf(_SC_NPROCESSORS_ONLN)
          : 0;
  double others = busy - (double)(s1.self_cpu_ns - s0.self_cpu_ns) / 1e9 / wall - (server_cpu > 0 ? server_cpu : 0);
  if (others < 0) others = 0;

  /* --handshakes: a request is a handshake cycle, moving no payload; latency runs from connect() to the
   * handshake's completion. */
  size_t payload = handshakes_ ? 0 : size_;
  printf("{\"server\":\"%s\",\"mode\":\"%s\",", name_, handshakes_ ? "handshakes" : tls_ ? "tls" : "plain");
  if (tls_) printf("\"tls\":\"TLSv1.3 %s\",", ciphersuite_);
  if (handshakes_) printf("\"resets\":%llu,", (unsigned long long)resets_);
  printf(
      "\"conns\":%d,\"size\":%zu,\"seconds\":%.3f,\"requests\":%llu,\"rps\":%.1f,"
      "\"MBps\":%.2f,\"p50_us\":%.1f,\"p99_us\":%.1f,\"client_cpu\":%.3f,",
      conns_n_, payload, wall, (unsigned long long)requests, (double)requests / wall,
      (double)requests * (double)payload / wall / 1e6, percentile_us(0.50), percentile_us(0.99), client_cpu);
  if (server_cpu >= 0)
    printf("\"server_cpu\":%.3f,", server_cpu);
  else
    printf("\"server_cpu\":null,");
  printf("\"steal\":%.4f,\"other_cpu\":%.3f,\"spin\":%s,\"total_requests\":%llu}\n", steal, others,
         spin_ ? "true" : "false", (unsigned long long)s1.requests);
  return 0;
}
