// ProactorEventLoop: the event loop over a completion Proactor (Windows I/O
// completion ports). asyncio's ProactorEventLoop: no readiness API
// (add_reader/add_writer raise NotImplementedError); the sock_* coroutines
// run as overlapped operations.
#pragma once

#include <backends/proactor.hpp>
#include <core/event_loop.hpp>

#include <memory>

namespace aio {

class ProactorEventLoop final : public EventLoop {
 public:
  explicit ProactorEventLoop(std::unique_ptr<Proactor> proactor, Clock clock = {});
  ~ProactorEventLoop() override;

  // add_reader/add_writer throw NotImplementedError, as asyncio's proactor
  // loop; remove_* return false (nothing can be registered).
  bool remove_reader(fd_t fd) override;
  bool remove_writer(fd_t fd) override;
  std::string_view backend() const noexcept override { return name_; }

  Task<std::size_t> sock_recv_into(Socket& sock, std::span<char> buffer) override;
  Task<std::pair<std::size_t, SocketAddress>> sock_recvfrom_into(Socket& sock, std::span<char> buffer) override;
  Task<void> sock_sendall(Socket& sock, std::string data) override;
  Task<std::size_t> sock_sendto(Socket& sock, std::string data, SocketAddress address) override;
  Task<void> sock_connect(Socket& sock, SocketAddress address) override;
  using EventLoop::sock_connect;
  Task<std::pair<Socket, SocketAddress>> sock_accept(Socket& sock) override;

  Proactor& proactor() noexcept { return *proactor_; }

 protected:
  void poll_io(std::int64_t timeout_ns) override;
  void wakeup() noexcept override;
  void close_io() noexcept override;
  void add_reader_impl(fd_t fd, detail::Callback callback) override;
  void add_writer_impl(fd_t fd, detail::Callback callback) override;
  // TransmitFile.
  Task<std::size_t> sendfile_native(fd_t sock, int file, std::uint64_t offset, std::size_t count,
                                    detail::StreamTransport* transport) override;

 private:
  std::unique_ptr<Proactor> proactor_;
  std::string_view name_;
};

}  // namespace aio
