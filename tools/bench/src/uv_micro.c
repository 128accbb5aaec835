/* uv_micro: aio-bench's two micro-benchmarks on libuv, same JSON fields.
 *
 *   uv_micro callbacks N       an idle handle whose callback runs N times: libuv has no
 *                              call_soon, and an active idle handle is how a libuv loop
 *                              runs something on every iteration without sleeping. An
 *                              async handle keeps an fd registered, so every iteration
 *                              polls epoll, as aio-bench's loop polls its wakeup fd.
 *   uv_micro timers N MAX_MS   N uv_timer_t with aio-bench's delays (whole ms: libuv's
 *                              resolution), all started up front, run until the last fires */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

static double wall_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long left;
static uv_async_t wakeup;

static void idle_cb(uv_idle_t* idle) {
  if (--left == 0) {
    uv_idle_stop(idle);
    uv_close((uv_handle_t*)&wakeup, NULL);
  }
}

static void timer_cb(uv_timer_t* t) {
  (void)t;
  if (--left == 0) uv_close((uv_handle_t*)&wakeup, NULL);
}

static void never(uv_async_t* a) { (void)a; }

int main(int argc, char** argv) {
  if (argc < 3 || (strcmp(argv[1], "callbacks") != 0 && strcmp(argv[1], "timers") != 0)) {
    fprintf(stderr, "usage: uv_micro callbacks N | uv_micro timers N MAX_MS\n");
    return 1;
  }
  long n = atol(argv[2]);
  long max_ms = argc > 3 ? atol(argv[3]) : 1000;
  if (n <= 0 || max_ms < 0) {
    fprintf(stderr, "uv_micro: N must be positive and MAX_MS not negative\n");
    return 1;
  }
  uv_loop_t* loop = uv_default_loop();
  uv_async_init(loop, &wakeup, never);
  left = n;
  if (strcmp(argv[1], "callbacks") == 0) {
    uv_idle_t idle;
    uv_idle_init(loop, &idle);
    double c0 = cpu_s(), t0 = wall_s();
    uv_idle_start(&idle, idle_cb);
    uv_run(loop, UV_RUN_DEFAULT);
    double wall = wall_s() - t0, cpu = cpu_s() - c0;
    printf("{\"impl\":\"libuv\",\"bench\":\"callbacks\",\"n\":%ld,\"wall_s\":%.6f,\"ns_per_op\":%.1f,"
           "\"cpu_ns_per_op\":%.1f}\n",
           n, wall, wall / (double)n * 1e9, cpu / (double)n * 1e9);
    return 0;
  }
  uint64_t* delay_ms = malloc((size_t)n * sizeof *delay_ms);
  uv_timer_t* timers = malloc((size_t)n * sizeof *timers);
  uint64_t x = 12345, max_delay = 0;
  for (long i = 0; i < n; i++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    double d = (double)(x % 1000001) / 1000000.0 * (double)max_ms; /* ms */
    delay_ms[i] = (uint64_t)(d + 0.5);
    if (delay_ms[i] > max_delay) max_delay = delay_ms[i];
    uv_timer_init(loop, &timers[i]);
  }
  double c0 = cpu_s(), t0 = wall_s();
  for (long i = 0; i < n; i++) uv_timer_start(&timers[i], timer_cb, delay_ms[i], 0);
  double t1 = wall_s();
  uv_run(loop, UV_RUN_DEFAULT);
  double t2 = wall_s(), cpu = cpu_s() - c0;
  printf("{\"impl\":\"libuv\",\"bench\":\"timers\",\"n\":%ld,\"max_delay_ms\":%ld,\"sched_ns_per_op\":%.1f,"
         "\"wall_s\":%.6f,\"ns_per_op\":%.1f,\"cpu_ns_per_op\":%.1f,\"late_ms\":%.1f}\n",
         n, max_ms, (t1 - t0) / (double)n * 1e9, t2 - t0, (t2 - t0) / (double)n * 1e9, cpu / (double)n * 1e9,
         (t2 - t0) * 1e3 - (double)max_delay);
  return 0;
}
