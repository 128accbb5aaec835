// Server: what create_server returns (asyncio.Server).
#pragma once

#include <core/event_loop.hpp>
#include <net/socket.hpp>
#include <net/unix_socket_file.hpp>

#include <memory>
#include <unordered_map>
#include <vector>

namespace aio {

namespace detail {
class StreamTransport;
struct SSLSettings;  // net/ssl_protocol.hpp
}  // namespace detail

class Server : public std::enable_shared_from_this<Server> {
 public:
  // `socket_files`: Unix socket files to remove when the server closes.
  // `tls`: each connection runs the server side of a TLS handshake first.
  Server(EventLoop& loop, ProtocolFactory factory, std::vector<Socket> sockets, int backlog,
         std::vector<detail::UnixSocketFile> socket_files = {},
         std::shared_ptr<const detail::SSLSettings> tls = nullptr);
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;
  ~Server();

  // Stops listening and closes the listening sockets (removing the socket
  // file of a Unix server made with cleanup_socket); connections already
  // accepted stay open. Idempotent.
  void close();
  // Closes / aborts every connection accepted so far (and still open).
  void close_clients();
  void abort_clients();
  // std::runtime_error("Event loop is closed") once the loop is destroyed.
  EventLoop& get_loop() const;
  // Starts accepting (idempotent); create_server does it unless told not to.
  Task<void> start_serving();
  // Accepts until cancelled; then closes the server and waits for its
  // connections. std::runtime_error if already serving forever or closed.
  Task<void> serve_forever();
  bool is_serving() const noexcept { return serving_; }
  // Waits until the server is closed and every connection it accepted is gone.
  Task<void> wait_closed();
  // The listening sockets (empty once closed).
  const std::vector<Socket>& sockets() const noexcept { return sockets_; }

  // ---- For the engines' start_accepting hooks ----
  // Accepts on listening socket `index` whenever it is readable (add_reader),
  // up to backlog connections a time, as asyncio's selector loop.
  void accept_on_readiness(std::size_t index);
  // Accepts on listening socket `index` one connection after another through
  // sock_accept, as asyncio's proactor loop.
  void accept_by_awaiting(std::size_t index);

 private:
  void start_accepting(std::size_t index);
  void accept_ready(std::size_t index);
  // Out of descriptors or memory: report, and try again in a second.
  void report_out_of_resources();
  void pause_accepting(std::size_t index);
  static Task<void> accept_loop(std::weak_ptr<Server> weak, std::size_t index);
  void attach(Socket conn);
  void detach(detail::StreamTransport* client);
  void wake_waiters();
  std::vector<std::shared_ptr<detail::StreamTransport>> open_clients() const;

  EventLoop& loop_;
  detail::LoopRef loop_ref_;  // a server may outlive its loop: then it only closes its sockets
  ProtocolFactory factory_;
  std::shared_ptr<const detail::SSLSettings> tls_;  // null: plain connections
  std::vector<Socket> sockets_;
  std::vector<detail::UnixSocketFile> socket_files_;
  int backlog_;
  bool serving_ = false;
  bool closed_ = false;
  // Open connections (the loop keeps them alive while they have I/O to do).
  std::unordered_map<detail::StreamTransport*, std::weak_ptr<detail::StreamTransport>> clients_;
  std::vector<Future<void>> waiters_;
  Future<void> serving_forever_;
  std::vector<TimerHandle> retries_;      // accepting paused after EMFILE
  std::vector<Task<void>> accept_tasks_;  // engines without readiness: one sock_accept loop per socket
};

}  // namespace aio
