// WindowsProactorEventLoop: the ProactorEventLoop over an IocpProactor, with
// what only Windows has (asyncio keeps the same in windows_events.py): named
// pipes. The default loop on Windows. Its pipe methods build net/ objects, so
// they are defined in net/windows_pipes.cpp.
#pragma once

#ifdef _WIN32

#include <backends/iocp_proactor.hpp>
#include <backends/proactor_event_loop.hpp>

#include <memory>
#include <string>
#include <utility>

namespace aio {

// A named pipe server made by start_serving_pipe (asyncio's PipeServer).
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

class WindowsProactorEventLoop final : public ProactorEventLoop {
 public:
  explicit WindowsProactorEventLoop(std::unique_ptr<IocpProactor> proactor, Clock clock = {})
      : WindowsProactorEventLoop(*proactor, std::move(proactor), std::move(clock)) {}

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

  IocpProactor& iocp() noexcept { return iocp_; }

 private:
  // `owner` by reference: a by-value parameter could be moved from before
  // `iocp` is bound, as argument evaluation order is unspecified.
  WindowsProactorEventLoop(IocpProactor& iocp, std::unique_ptr<IocpProactor>&& owner, Clock clock)
      : ProactorEventLoop(std::move(owner), std::move(clock)), iocp_(iocp) {}

  IocpProactor& iocp_;
};

}  // namespace aio

#endif  // _WIN32
