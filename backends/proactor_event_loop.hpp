// ProactorEventLoop: the event loop over any completion Proactor (asyncio's
// BaseProactorEventLoop): IocpProactor on Windows, IoUringProactor on Linux.
// No readiness API (add_reader/add_writer raise NotImplementedError, as
// asyncio's proactor loop); the sock_* coroutines, the transports,
// accepting and sendfile run as the proactor's operations. Those build net/
// objects, so they are defined in net/ (net/proactor_loop.cpp, beside the
// proactor transports), written once for every Proactor.
#pragma once

#include <backends/proactor.hpp>
#include <core/event_loop.hpp>

#include <memory>
#include <string_view>

namespace aio {

class ProactorEventLoop : public EventLoop {
 public:
  explicit ProactorEventLoop(std::unique_ptr<Proactor> proactor, Clock clock = {});
  ~ProactorEventLoop() override;

  std::string_view backend() const noexcept override { return name_; }

  Task<std::size_t> sock_recv_into(Socket& sock, std::span<char> buffer) override;
  Task<std::pair<std::size_t, SocketAddress>> sock_recvfrom_into(Socket& sock, std::span<char> buffer) override;
  Task<void> sock_sendall(Socket& sock, std::string data) override;
  Task<std::size_t> sock_sendto(Socket& sock, std::string data, SocketAddress address) override;
  Task<void> sock_connect(Socket& sock, SocketAddress address) override;
  using EventLoop::sock_connect;
  Task<std::pair<Socket, SocketAddress>> sock_accept(Socket& sock) override;

  Proactor& proactor() noexcept { return *proactor_; }

  // Starts `op` with `start` and waits for its completion. Cancelling the
  // awaiting task cancels the operation and still waits for it to complete,
  // so that nothing is left in flight on the handle, then throws
  // CancelledError. A failed operation is a std::system_error naming
  // `what`. For the loop's own coroutines and Windows-only extras.
  template <class Start>
  Task<void> perform(ProactorOperation& op, Start start, std::string what);

 protected:
  void poll_io(std::int64_t timeout_ns) override;
  void wakeup() noexcept override;
  // Through the process-wide handler of backends/signals.hpp (on Windows,
  // a console control handler, for aio::run's Ctrl-C only).
  bool watch_signal(int sig, bool once, bool only_over_default) override;
  void unwatch_signal(int sig) noexcept override;
  void close_io() noexcept override;
  std::shared_ptr<detail::StreamTransport> make_socket_transport(Socket sock,
                                                                 std::shared_ptr<BaseProtocol> protocol) override;
  std::shared_ptr<detail::DatagramTransportBase> make_datagram_transport(Socket sock,
                                                                         std::shared_ptr<BaseProtocol> protocol,
                                                                         std::optional<SocketAddress> remote) override;
  // A wait for the handle to turn readable (the child watcher's pidfd).
  Task<void> wait_for_handle(fd_t handle) override;
  Task<std::size_t> sendfile_native(fd_t sock, int file, std::uint64_t offset, std::size_t count,
                                    detail::StreamTransport* transport) override;
  // The proactor's read / write (and wait_readable for a watched write
  // end) on the pipe (process/proactor_pipes.cpp).
  std::shared_ptr<detail::StreamTransport> make_read_pipe_transport(fd_t fd,
                                                                    std::shared_ptr<BaseProtocol> protocol) override;
  std::shared_ptr<detail::StreamTransport> make_write_pipe_transport(fd_t fd, std::shared_ptr<BaseProtocol> protocol,
                                                                     bool watch_reader) override;
  // Children over those pipes and wait_for_handle (process/proactor_pipes.cpp).
  Task<std::shared_ptr<SubprocessTransport>> make_subprocess_transport(std::shared_ptr<SubprocessProtocol> protocol,
                                                                       std::string program,
                                                                       std::vector<std::string> args,
                                                                       SubprocessOptions options) override;

 private:
  // perform() without the template: `op` was started already.
  Task<void> completion(std::shared_ptr<ProactorOperation> op, std::string what);

  std::unique_ptr<Proactor> proactor_;
  std::string_view name_;
};

template <class Start>
Task<void> ProactorEventLoop::perform(ProactorOperation& op, Start start, std::string what) {
  std::shared_ptr<ProactorOperation> keep = op.shared_from_this();
  start();
  return completion(std::move(keep), std::move(what));
}

}  // namespace aio
