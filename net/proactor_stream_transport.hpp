// Private: what the proactor's stream transports (sockets, named pipes)
// share: the write side. One overlapped write is in flight at a time, with
// its own copy of the front of the buffer; engine_send() reports its bytes
// as sent only once its completion arrived, so get_write_buffer_size()
// counts what is in flight. Each transport says how a write starts.
#pragma once

#include <backends/iocp_proactor.hpp>
#include <backends/proactor_event_loop.hpp>
#include <net/stream_transport.hpp>

#include <memory>
#include <string>
#include <string_view>

namespace aio::detail {

class ProactorStreamTransport : public StreamTransport {
 protected:
  // `write_error`: what a failed write is reported with ("Fatal write error
  // on socket transport", as asyncio says).
  ProactorStreamTransport(ProactorEventLoop& loop, std::shared_ptr<BaseProtocol> protocol, const char* write_error);

  // Starts an overlapped write of `op.buffer`; false if it failed at once
  // (the error in GetLastError()).
  virtual bool start_overlapped_write(IocpOperation& op) = 0;
  // The handle a write goes to, and whether it is a socket.
  virtual fd_t io_handle() const noexcept = 0;
  virtual bool io_on_socket() const noexcept = 0;
  // Names the write call and its target in errors ("WSASend", "WriteFile (pipe X)").
  virtual std::string write_call() const = 0;

  std::size_t engine_send(std::string_view data) final;
  // The write's completion calls on_writable() itself.
  void engine_start_writing() final {}
  void engine_stop_writing() final {}

  IocpProactor& proactor_;
  std::shared_ptr<IocpOperation> write_op_;
  bool closed_ = false;  // set by the transport's engine_close(): completions then do nothing

 private:
  void start_write(std::string_view data);

  const char* write_error_;
  std::size_t sent_ = 0;     // bytes of the finished write not yet reported
  bool sent_ready_ = false;  // a write finished and engine_send() has not said so yet
};

}  // namespace aio::detail
