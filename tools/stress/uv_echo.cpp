// A minimal libuv echo server, the peer of stress.py's idle-connection
// figure (RSS per connection beside aio-echo's). Not a benchmark server: one
// 64 KiB read buffer per connection allocated when data arrives (libuv's
// usual alloc_cb), writes queued as they come.
//
//   stress-uv-echo [PORT]   (0: any free port; prints "... on 127.0.0.1:PORT (libuv)")
#include <uv.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace {

struct Write {
  uv_write_t req;
  uv_buf_t buf;
};

void on_close(uv_handle_t* handle) { delete reinterpret_cast<uv_tcp_t*>(handle); }

void on_alloc(uv_handle_t*, std::size_t, uv_buf_t* buf) {
  buf->base = static_cast<char*>(std::malloc(64 * 1024));
  buf->len = buf->base ? 64 * 1024 : 0;
}

void on_written(uv_write_t* req, int) {
  auto* w = reinterpret_cast<Write*>(req);
  std::free(w->buf.base);
  delete w;
}

void on_read(uv_stream_t* stream, ssize_t n, const uv_buf_t* buf) {
  if (n > 0) {
    auto* w = new Write;
    w->buf = uv_buf_init(buf->base, static_cast<unsigned>(n));
    if (uv_write(&w->req, stream, &w->buf, 1, on_written) == 0) return;
    delete w;
  }
  std::free(buf->base);
  if (n < 0) uv_close(reinterpret_cast<uv_handle_t*>(stream), on_close);
}

void on_connection(uv_stream_t* server, int status) {
  if (status < 0) return;
  auto* client = new uv_tcp_t;
  uv_tcp_init(server->loop, client);
  if (uv_accept(server, reinterpret_cast<uv_stream_t*>(client)) == 0)
    uv_read_start(reinterpret_cast<uv_stream_t*>(client), on_alloc, on_read);
  else
    uv_close(reinterpret_cast<uv_handle_t*>(client), on_close);
}

}  // namespace

int main(int argc, char** argv) {
  int port = argc > 1 ? std::atoi(argv[1]) : 0;
  uv_loop_t* loop = uv_default_loop();
  uv_tcp_t server;
  uv_tcp_init(loop, &server);
  sockaddr_in addr;
  uv_ip4_addr("127.0.0.1", port, &addr);
  if (uv_tcp_bind(&server, reinterpret_cast<const sockaddr*>(&addr), 0) != 0 ||
      uv_listen(reinterpret_cast<uv_stream_t*>(&server), 4096, on_connection) != 0) {
    std::fprintf(stderr, "stress-uv-echo: cannot listen on port %d\n", port);
    return 1;
  }
  sockaddr_storage bound;
  int len = sizeof bound;
  uv_tcp_getsockname(&server, reinterpret_cast<sockaddr*>(&bound), &len);
  std::fprintf(stderr, "stress-uv-echo: on 127.0.0.1:%d (libuv %s)\n",
               ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port), uv_version_string());
  return uv_run(loop, UV_RUN_DEFAULT);
}
