// ProactorEventLoop: the event loop over a completion Proactor (Windows I/O
// completion ports). asyncio's ProactorEventLoop: no readiness API
// (add_reader/add_writer raise NotImplementedError); the sock_* coroutines
// run as overlapped operations.
#pragma once

#include <backends/proactor.hpp>
#include <core/event_loop.hpp>

#include <memory>
#include <string>
#include <utility>

namespace aio {

// A named pipe server made by ProactorEventLoop::start_serving_pipe (asyncio's
// PipeServer).
class PipeServer {
 public:
  virtual ~PipeServer() = default;
  // The pipe's name, as given.
  virtual const std::string& address() const noexcept = 0;
  // Stops accepting: the instance waiting for a client is closed (its
  // pending ConnectNamedPipe cancelled), so new clients find no pipe.
  // Connections already made stay open. Closing again does nothing.
  virtual void close() = 0;
  virtual bool closed() const noexcept = 0;
};

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

  // ---- Named pipes (as asyncio's ProactorEventLoop on Windows) -----------
  //
  // A pipe name has the form \\.\pipe\NAME; anything else, an empty factory
  // or a factory that makes no stream protocol is a std::invalid_argument.
  // The transport of a pipe connection is a stream transport (flow control,
  // pause_reading, close, abort) without write_eof: can_write_eof() is false
  // and write_eof() throws NotImplementedError, as a byte-mode pipe has no
  // half-close. Its get_extra_info has "pipe" (the HANDLE, as an fd_t) and
  // "addr" (the name). When the other end closes, the protocol gets
  // eof_received(), then connection_lost(nullptr).

  // Serves the pipe `address`: every client that opens it gets a new
  // transport and a protocol from `factory` (connection_made runs before
  // its first data). One instance of the pipe always waits for the next
  // client. std::system_error if the name is taken (by a pipe of this or
  // another process).
  Task<std::shared_ptr<PipeServer>> start_serving_pipe(ProtocolFactory factory, std::string address);

  // Opens the pipe `address` as a client and returns (transport, protocol)
  // once connection_made has run. While every instance is busy it tries
  // again, first after 1 ms and then doubling up to every 100 ms, until it
  // connects or is cancelled. std::system_error if there is no such pipe.
  Task<std::pair<std::shared_ptr<Transport>, std::shared_ptr<BaseProtocol>>> create_pipe_connection(
      ProtocolFactory factory, std::string address);

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
