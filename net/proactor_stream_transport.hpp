// Private: the proactor loop's stream transports (sockets; Windows named
// pipes), written once over the Proactor's operations for every Proactor.
// Only how bytes move differs from the selector transport; the buffer, flow
// control and close/abort/eof states are detail::StreamTransport's.
//
// Reading keeps one receive in flight while the protocol reads (recv on a
// socket: the proactor brings the data in its own memory, so an idle
// connection pins no buffer; read on a pipe, into the operation's buffer)
// and hands each completion's data to the protocol. A completion that
// arrives while reading is paused is kept and handed over on resume.
//
// Writing keeps one send (write) in flight, with its own copy of what it
// sends: engine_send() takes the bytes out of the transport's buffer (a
// write to an idle transport is copied once, into the operation), and
// they count in get_write_buffer_size() until the completion reports them
// sent. A short send continues from the operation's copy. Where the
// proactor lends it (io_uring), a large write of bytes just received is
// sent from the receive's own memory instead, without a copy.
#pragma once

#include <backends/proactor_event_loop.hpp>
#include <net/socket.hpp>
#include <net/stream_transport.hpp>

#include <memory>
#include <span>
#include <string>
#include <string_view>

namespace aio::detail {

class ProactorStreamTransport : public StreamTransport {
 protected:
  // `socket`: `handle` is a socket (recv/send), else a pipe (read/write).
  // `what`: names the handle in errors ("socket 5", "pipe \\.\pipe\x").
  // `direction`: a pipe transport's one direction (StreamTransport). A
  // write pipe with `watch_reader` keeps a wait_readable in flight instead
  // of a read, which completes when its reader goes away.
  ProactorStreamTransport(ProactorEventLoop& loop, std::shared_ptr<BaseProtocol> protocol, fd_t handle, bool socket,
                          std::string what, Direction direction = Direction::both, bool watch_reader = false);

  void engine_start_reading() override;
  void engine_stop_reading() override { reading_ = false; }
  Sent engine_send(std::string_view data) final;
  // The write's completion calls on_sent() itself.
  void engine_start_writing() final {}
  void engine_stop_writing() final {}
  // Cancels what is in flight on the handle (each operation still
  // completes, into nothing), then releases it by close_handle().
  void engine_close() noexcept final;
  virtual void close_handle() noexcept = 0;

  Proactor& proactor_;

 private:
  void post_read();
  void read_done(ProactorOperation& op);
  void write_done(ProactorOperation& op);
  // Sends write_op_->buffer; or, given `lend` (bytes of the receive whose
  // completion is running), sends them from the receive's memory where the
  // proactor lends it, else copies them into the buffer first.
  void start_write(std::string_view lend = {});
  void deliver_held();

  fd_t handle_;
  bool socket_;
  bool watch_reader_;
  std::string what_;
  std::shared_ptr<ProactorOperation> read_op_;
  std::shared_ptr<ProactorOperation> write_op_;
  bool reading_ = false;
  bool closed_ = false;
  std::span<const char> lent_;  // what the send in flight sends from the receive's memory, if so
  std::string held_;            // received while paused, for resume_reading
  bool held_eof_ = false;       // and the end of file after it
  bool held_pending_ = false;   // a delivery of held_ is scheduled
};

// The stream transport of a ProactorEventLoop over a connected stream socket.
// (Its pipe transports are in process/proactor_pipes.cpp.)
std::shared_ptr<StreamTransport> make_proactor_socket_transport(ProactorEventLoop& loop, Socket sock,
                                                                std::shared_ptr<BaseProtocol> protocol);

}  // namespace aio::detail
