/* uv_echo PORT: an echo server on libuv, written as libuv's documentation
 * teaches (uv_read_start with an allocation callback, uv_write per read).
 *
 * Reads go into one 64 KiB buffer shared by every connection (a loop runs one
 * read callback at a time); uv_try_write sends what the socket takes at once,
 * and only a remainder is copied into a queued uv_write. While a connection
 * has a write queued, its reading stops, so a slow reader cannot make the
 * server's memory grow. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

enum { kBufSize = 64 * 1024 };

typedef struct {
  uv_write_t req;
  uv_buf_t buf;
} Write;

static uv_loop_t* loop;
static char shared_buf[kBufSize];

static void on_close(uv_handle_t* h) { free(h); }

static void alloc_cb(uv_handle_t* h, size_t suggested, uv_buf_t* buf) {
  (void)h, (void)suggested;
  *buf = uv_buf_init(shared_buf, kBufSize);
}

static void read_cb(uv_stream_t* s, ssize_t n, const uv_buf_t* buf);

static void write_cb(uv_write_t* req, int status) {
  Write* w = (Write*)req;
  uv_stream_t* s = req->handle;
  free(w->buf.base);
  free(w);
  if (status < 0) {
    if (!uv_is_closing((uv_handle_t*)s)) uv_close((uv_handle_t*)s, on_close);
    return;
  }
  uv_read_start(s, alloc_cb, read_cb);
}

static void read_cb(uv_stream_t* s, ssize_t n, const uv_buf_t* buf) {
  if (n < 0) {
    uv_close((uv_handle_t*)s, on_close);
    return;
  }
  if (n == 0) return;
  uv_buf_t out = uv_buf_init(buf->base, (unsigned)n);
  int sent = uv_try_write(s, &out, 1);
  if (sent == n) return;
  if (sent < 0 && sent != UV_EAGAIN) {
    uv_close((uv_handle_t*)s, on_close);
    return;
  }
  if (sent < 0) sent = 0;
  Write* w = malloc(sizeof *w);
  w->buf = uv_buf_init(malloc((size_t)(n - sent)), (unsigned)(n - sent));
  memcpy(w->buf.base, buf->base + sent, (size_t)(n - sent));
  uv_read_stop(s);
  uv_write(&w->req, s, &w->buf, 1, write_cb);
}

static void on_connection(uv_stream_t* server, int status) {
  if (status < 0) return;
  uv_tcp_t* client = malloc(sizeof *client);
  uv_tcp_init(loop, client);
  if (uv_accept(server, (uv_stream_t*)client) != 0) {
    uv_close((uv_handle_t*)client, on_close);
    return;
  }
  uv_tcp_nodelay(client, 1);
  uv_read_start((uv_stream_t*)client, alloc_cb, read_cb);
}

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: uv_echo PORT\n");
    return 1;
  }
  signal(SIGPIPE, SIG_IGN);
  loop = uv_default_loop();
  uv_tcp_t server;
  uv_tcp_init(loop, &server);
  struct sockaddr_in addr;
  uv_ip4_addr("127.0.0.1", atoi(argv[1]), &addr);
  int rc = uv_tcp_bind(&server, (const struct sockaddr*)&addr, 0);
  if (rc == 0) rc = uv_listen((uv_stream_t*)&server, 1024, on_connection);
  if (rc != 0) {
    fprintf(stderr, "uv_echo: %s\n", uv_strerror(rc));
    return 1;
  }
  return uv_run(loop, UV_RUN_DEFAULT);
}
