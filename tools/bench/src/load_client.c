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
 * --spin polls epoll without blocking. A blocked client must be woken for
 * every reply, which on a VM goes through the hypervisor and leaves the
 * server idle meanwhile; a spinning client answers at once. Its own
 * client_cpu then leaves out the time spent in polls that found nothing.
 *
 * Exit status: 0 ok, 1 usage or setup, 2 an echoed byte differs, 3 a
 * connection failed or closed, 4 no request completed in the window, 5 no
 * progress at all for 10 s. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { kMaxEvents = 256, kShiftRange = 251, kRecvMax = 256 * 1024 };

typedef struct {
  int fd;
  unsigned id;
  uint64_t seq;        /* requests completed on this connection */
  size_t shift;        /* where the current message starts in the pattern */
  size_t sent, got;    /* bytes of the current message sent / echoed back */
  int want_out;        /* EPOLLOUT registered: the last send was partial */
  uint64_t started_ns; /* when the first byte of the current message went out */
} Conn;

static const char* name_ = "server";
static int port_ = 0, conns_n_ = 10, server_pid_ = 0, spin_ = 0;
static size_t size_ = 1024;
static double warmup_s_ = 1.0, duration_s_ = 5.0;

static int epfd_;
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

static void set_out_interest(Conn* c, int on) {
  if (c->want_out == on) return;
  struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.ptr = c};
  if (epoll_ctl(epfd_, EPOLL_CTL_MOD, c->fd, &ev) < 0) die(1, "epoll_ctl: %s", strerror(errno));
  c->want_out = on;
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

static void start_request(Conn* c) {
  c->shift = (c->seq * 7 + c->id * 13) % kShiftRange;
  c->sent = c->got = 0;
  c->started_ns = mono_ns();
  push(c);
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
    const unsigned char* expect = pattern_ + c->shift + c->got;
    if (memcmp(recv_buf_, expect, (size_t)n) != 0) {
      size_t i = 0;
      while (recv_buf_[i] == expect[i]) i++;
      die(2, "MISMATCH conn %u request %llu byte %zu of %zu: got 0x%02x, sent 0x%02x", c->id,
          (unsigned long long)c->seq, c->got + i, size_, recv_buf_[i], expect[i]);
    }
    c->got += (size_t)n;
    if (c->got > c->sent) die(2, "MISMATCH conn %u: %zu bytes echoed before they were sent", c->id, c->got);
    if (c->got == size_) {
      if (measuring_) record_latency(mono_ns() - c->started_ns);
      requests_++;
      c->seq++;
      start_request(c);
    }
  }
}

static int connect_one(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) die(1, "socket: %s", strerror(errno));
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port_)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr*)&sa, sizeof sa) < 0) die(3, "connect to port %d: %s", port_, strerror(errno));
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

static void usage(int status) {
  fprintf(status ? stderr : stdout,
          "usage: load_client --port P [--conns N] [--size BYTES] [--warmup S] [--duration S]\n"
          "                   [--server-pid PID] [--name NAME] [--spin]\n");
  exit(status);
}

static double parse_num(const char* opt, const char* s, double lo) {
  char* end;
  double v = strtod(s, &end);
  if (*s == 0 || *end != 0 || v < lo) die(1, "%s wants a number >= %g, got '%s'", opt, lo, s);
  return v;
}

int main(int argc, char** argv) {
  static const struct option opts[] = {
      {"port", required_argument, 0, 'p'},     {"conns", required_argument, 0, 'c'},
      {"size", required_argument, 0, 's'},     {"warmup", required_argument, 0, 'w'},
      {"duration", required_argument, 0, 'd'}, {"server-pid", required_argument, 0, 'P'},
      {"name", required_argument, 0, 'n'},     {"spin", no_argument, 0, 'S'},
      {"help", no_argument, 0, 'h'},           {0, 0, 0, 0}};
  int o;
  while ((o = getopt_long(argc, argv, "", opts, 0)) != -1) {
    switch (o) {
      case 'p': port_ = (int)parse_num("--port", optarg, 1); break;
      case 'c': conns_n_ = (int)parse_num("--conns", optarg, 1); break;
      case 's': size_ = (size_t)parse_num("--size", optarg, 1); break;
      case 'w': warmup_s_ = parse_num("--warmup", optarg, 0); break;
      case 'd': duration_s_ = parse_num("--duration", optarg, 0.1); break;
      case 'P': server_pid_ = (int)parse_num("--server-pid", optarg, 1); break;
      case 'n': name_ = optarg; break;
      case 'S': spin_ = 1; break;
      case 'h': usage(0); break;
      default: usage(1);
    }
  }
  if (optind != argc || port_ == 0 || port_ > 65535) usage(1);

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
  /* Connect all first (blocking, loopback), then make them non-blocking and start. */
  for (int i = 0; i < conns_n_; i++) {
    conns[i].fd = connect_one();
    conns[i].id = (unsigned)i;
  }
  for (int i = 0; i < conns_n_; i++) {
    Conn* c = &conns[i];
    if (fcntl(c->fd, F_SETFL, O_NONBLOCK) < 0) die(1, "fcntl: %s", strerror(errno));
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    if (epoll_ctl(epfd_, EPOLL_CTL_ADD, c->fd, &ev) < 0) die(1, "epoll_ctl: %s", strerror(errno));
    start_request(c);
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
      if (events[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) pull(c);
      if (events[i].events & EPOLLOUT) push(c);
    }
    uint64_t now = mono_ns();
    if (requests_ != last_requests) {
      last_requests = requests_;
      last_progress = now;
    } else if (now - last_progress > 10000000000ull) {
      die(5, "no echo for 10 s (%llu requests done)", (unsigned long long)requests_);
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
  if (s0.server_ticks >= 0 && s1.server_ticks >= 0) server_cpu = (double)(s1.server_ticks - s0.server_ticks) / hz / wall;
  double total = (double)(s1.machine.total - s0.machine.total);
  double steal = total > 0 ? (double)(s1.machine.steal - s0.machine.steal) / total : 0;
  /* Busy cores machine-wide, less what this client and the server account for (and less
   * the idle polling, which /proc/stat counts as busy): the load of everything else. */
  double busy = total > 0 ? (total - (double)(s1.machine.idle - s0.machine.idle) -
                             (double)(s1.machine.steal - s0.machine.steal)) /
                                total * (double)sysconf(_SC_NPROCESSORS_ONLN)
                          : 0;
  double others = busy - (double)(s1.self_cpu_ns - s0.self_cpu_ns) / 1e9 / wall - (server_cpu > 0 ? server_cpu : 0);
  if (others < 0) others = 0;

  printf("{\"server\":\"%s\",\"conns\":%d,\"size\":%zu,\"seconds\":%.3f,\"requests\":%llu,\"rps\":%.1f,"
         "\"MBps\":%.2f,\"p50_us\":%.1f,\"p99_us\":%.1f,\"client_cpu\":%.3f,",
         name_, conns_n_, size_, wall, (unsigned long long)requests, (double)requests / wall,
         (double)requests * (double)size_ / wall / 1e6, percentile_us(0.50), percentile_us(0.99), client_cpu);
  if (server_cpu >= 0)
    printf("\"server_cpu\":%.3f,", server_cpu);
  else
    printf("\"server_cpu\":null,");
  printf("\"steal\":%.4f,\"other_cpu\":%.3f,\"spin\":%s,\"total_requests\":%llu}\n", steal, others,
         spin_ ? "true" : "false", (unsigned long long)s1.requests);
  return 0;
}
