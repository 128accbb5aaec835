// SelectorEventLoop: the event loop over a readiness Selector (asyncio's
// BaseSelectorEventLoop). It has the readiness API (add_reader/add_writer),
// and its sock_* coroutines, transports, accepting and sendfile work by
// trying the call and waiting for readiness when it would block. Those build
// net/ objects, so they are defined in net/ (net/selector_loop.cpp, beside
// the selector transports): backends/ never includes net/.
#pragma once

#include <backends/selector.hpp>
#include <core/event_loop.hpp>

#include <memory>
#include <unordered_map>
#include <vector>

namespace aio::detail {
class Waker;  // private: backends/waker.hpp
}  // namespace aio::detail

namespace aio {

class SelectorEventLoop final : public EventLoop {
 public:
  // `clock` replaces the monotonic clock (simulations and deterministic tests).
  explicit SelectorEventLoop(std::unique_ptr<Selector> selector, Clock clock = {});
  ~SelectorEventLoop() override;

  bool remove_reader(fd_t fd) override;
  bool remove_writer(fd_t fd) override;
  std::string_view backend() const noexcept override { return selector_->name(); }

  Task<std::size_t> sock_recv_into(Socket& sock, std::span<char> buffer) override;
  Task<std::pair<std::size_t, SocketAddress>> sock_recvfrom_into(Socket& sock, std::span<char> buffer) override;
  Task<void> sock_sendall(Socket& sock, std::string data) override;
  Task<std::size_t> sock_sendto(Socket& sock, std::string data, SocketAddress address) override;
  Task<void> sock_connect(Socket& sock, SocketAddress address) override;
  using EventLoop::sock_connect;
  Task<std::pair<Socket, SocketAddress>> sock_accept(Socket& sock) override;

  // Waits until `fd` is readable (or writable). The watch goes however the
  // wait ends, unless another wait on the same fd replaced it meanwhile
  // (asyncio's _sock_read_done checks the handle the same way): a cancelled
  // sock_recv never removes the reader of the sock_recv that followed it.
  Task<void> wait_ready(fd_t fd, bool writable);

 protected:
  void poll_io(std::int64_t timeout_ns) override;
  void wakeup() noexcept override;
  // Through the process-wide handler of backends/signals.hpp (on Windows,
  // a console control handler, for aio::run's Ctrl-C only).
  bool watch_signal(int sig, bool once, bool only_over_default) override;
  void unwatch_signal(int sig) noexcept override;
  void close_io() noexcept override;
  void add_reader_impl(fd_t fd, detail::Callback callback) override;
  void add_writer_impl(fd_t fd, detail::Callback callback) override;
  std::shared_ptr<detail::StreamTransport> make_socket_transport(Socket sock,
                                                                 std::shared_ptr<BaseProtocol> protocol) override;
  std::shared_ptr<detail::DatagramTransportBase> make_datagram_transport(Socket sock,
                                                                         std::shared_ptr<BaseProtocol> protocol,
                                                                         std::optional<SocketAddress> remote) override;
#ifndef _WIN32
  // A wait for the handle to turn readable (the child watcher's pidfd).
  // Winsock's select waits for sockets only: a selector loop on Windows
  // has no subprocesses, as asyncio's.
  Task<void> wait_for_handle(fd_t handle) override;
#endif
  void start_accepting(Server& server, std::size_t index) override;
  // sendfile(2) (or the BSDs' and macOS's) whenever the socket is writable.
  Task<std::size_t> sendfile_native(fd_t sock, int file, std::uint64_t offset, std::size_t count,
                                    detail::StreamTransport* transport) override;
#ifndef _WIN32
  // read(2) / write(2) on readiness (process/selector_pipes.cpp). Winsock's
  // select watches sockets only: a selector loop on Windows has no pipe
  // transports, as asyncio's.
  std::shared_ptr<detail::StreamTransport> make_read_pipe_transport(fd_t fd,
                                                                    std::shared_ptr<BaseProtocol> protocol) override;
  std::shared_ptr<detail::StreamTransport> make_write_pipe_transport(fd_t fd, std::shared_ptr<BaseProtocol> protocol,
                                                                     bool watch_reader) override;
  // Children over those pipes and the pidfd / SIGCHLD watch
  // (process/selector_pipes.cpp).
  Task<std::shared_ptr<SubprocessTransport>> make_subprocess_transport(std::shared_ptr<SubprocessProtocol> protocol,
                                                                       std::string program,
                                                                       std::vector<std::string> args,
                                                                       SubprocessOptions options) override;
#endif

 private:
  struct Watch {
    fd_t fd;
    std::uint32_t events = 0;
    Handle reader;
    Handle writer;
  };
  // Registers `callback` as the reader or writer of `fd` (replacing and
  // cancelling an earlier one) and returns its handle.
  Handle add_watch(fd_t fd, std::uint32_t event, detail::Callback callback);
  bool remove_watch(fd_t fd, std::uint32_t event);

  std::unique_ptr<Selector> selector_;
  std::unique_ptr<detail::Waker> waker_;
  std::unordered_map<fd_t, std::unique_ptr<Watch>> watches_;
  std::vector<SelectorEvent> events_;
};

}  // namespace aio
