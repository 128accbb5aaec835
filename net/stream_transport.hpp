// The part of every stream transport that does not depend on how bytes move:
// the close / abort / write_eof state machine, write flow control, the write
// buffer, and delivery to Protocol or BufferedProtocol. Written once; each
// engine (selector readiness, proactor completion) derives and supplies the
// engine_* operations.
#pragma once

#include <core/event_loop.hpp>
#include <net/transports.hpp>

#include <deque>
#include <memory>
#include <string>

namespace aio::detail {

class StreamTransport : public Transport, public std::enable_shared_from_this<StreamTransport> {
 public:
  StreamTransport(EventLoop& loop, std::shared_ptr<BaseProtocol> protocol);
  ~StreamTransport() override;

  void close() override;
  bool is_closing() const noexcept override { return closing_; }
  void pause_reading() override;
  void resume_reading() override;
  bool is_reading() const noexcept override { return !paused_ && !closing_; }
  void write(std::string_view data) override;
  void writelines(std::span<const std::string_view> lines) override;
  void write_eof() override;
  bool can_write_eof() const noexcept override { return true; }
  void abort() override;
  std::size_t get_write_buffer_size() const noexcept override { return buffered_; }
  std::pair<std::size_t, std::size_t> get_write_buffer_limits() const noexcept override { return {low_, high_}; }
  void set_write_buffer_limits(std::optional<long long> high, std::optional<long long> low) override;
  void set_protocol(std::shared_ptr<BaseProtocol> protocol) override;
  std::shared_ptr<BaseProtocol> get_protocol() const override { return protocol_; }

  // Schedules connection_made, then reading (unless paused by then), then
  // `on_made` (may be empty). From here the loop's registrations and
  // scheduled calls hold the transport (the engine's watches capture
  // shared_from_this()), so it lives while it has I/O to do or callbacks to run.
  void start(Callback on_made);
  // Runs once, right after connection_lost (a Server forgetting its client).
  void set_on_lost(Callback on_lost) { on_lost_ = std::move(on_lost); }

  // ---- For EventLoop::sendfile (net/sendfile.cpp), one at a time ----
  // Between these, write() and writelines() throw std::runtime_error and the
  // protocol's pause_writing / resume_writing are held back; end_sendfile()
  // catches them up. begin_sendfile() throws std::runtime_error if a sendfile
  // is in progress already.
  void begin_sendfile();
  void end_sendfile();
  // write() for the sendfile's own data.
  void sendfile_write(std::string_view data);
  // The sendfile's waits; one at a time. Flushed: the write buffer is empty.
  // Drained: at once, unless the buffer is above the high-water mark, then
  // when it is at or below the low one (the flow control a protocol obeys).
  // Writable: the buffer is empty and the socket takes data again (a native
  // sendfile found it full). Each fails with sendfile_error() once the
  // transport is closing: close() and abort() fail a pending one at once.
  Future<void> sendfile_flushed() { return sendfile_wait(0, false); }
  Future<void> sendfile_drained() { return sendfile_wait(buffered_ > high_ ? low_ : high_, false); }
  Future<void> sendfile_writable() { return sendfile_wait(0, true); }
  // Throws sendfile_error() once the transport is closing.
  void sendfile_check_open() const;
  // The socket a native sendfile may use, or -1 for an engine without one:
  // the sendfile then writes through the transport.
  virtual fd_t sendfile_socket() const noexcept { return -1; }

 protected:
  // ---- What an engine provides ----
  virtual void engine_start_reading() = 0;
  virtual void engine_stop_reading() = 0;
  // Sends what it can of `data` without blocking; throws std::system_error.
  virtual std::size_t engine_send(std::string_view data) = 0;
  // Calls on_writable() whenever buffered data could move.
  virtual void engine_start_writing() = 0;
  virtual void engine_stop_writing() = 0;
  virtual void engine_shutdown_write() = 0;
  // Releases the OS resource; called once, after connection_lost.
  virtual void engine_close() noexcept = 0;

  // ---- What the engine calls ----
  // Writability: flushes what it can of the buffer.
  void on_writable();
  // Readability, for engines that read on readiness: `recv` reads into a
  // span and returns the count, 0 at end of file, std::nullopt if it would block.
  template <class Recv>
  void on_readable(Recv recv);
  // An OS error (or a protocol callback's exception): reported unless it is
  // a connection reset, then the transport closes with it.
  void fatal_error(std::exception_ptr error, const char* message);

  EventLoop& loop_;

 private:
  void deliver_eof();
  void force_close(std::exception_ptr error);
  void call_connection_lost(std::exception_ptr error);
  void maybe_pause_protocol();
  void maybe_resume_protocol();
  void report(std::exception_ptr error, const char* message);
  Future<void> sendfile_wait(std::size_t level, bool writable);
  void wake_sendfile(std::exception_ptr error);
  // What a sendfile fails with when the connection goes: the error it is
  // lost with, else std::system_error(connection_aborted).
  std::exception_ptr sendfile_error() const;
  void send_or_buffer(std::string_view data);
  std::span<char> read_buffer();
  bool delivered(std::size_t n, std::span<char> buffer);

  std::shared_ptr<BaseProtocol> protocol_;
  Protocol* stream_ = nullptr;  // protocol_ as a Protocol, or null
  BufferedProtocol* buffered_protocol_ = nullptr;
  std::deque<std::string> buffer_;  // unsent data, oldest first
  std::size_t buffer_offset_ = 0;   // sent bytes of buffer_.front()
  std::size_t buffered_ = 0;
  std::size_t high_ = 64 * 1024;
  std::size_t low_ = 16 * 1024;
  bool lost_scheduled_ = false;  // connection_lost is scheduled (or ran)
  int dropped_writes_ = 0;       // writes after close() or the loss
  bool closing_ = false;
  bool eof_ = false;              // write_eof() was called
  bool paused_ = false;           // reading paused
  bool protocol_paused_ = false;  // pause_writing() was called
  bool protocol_connected_ = false;
  bool lost_ = false;               // connection_lost ran
  std::exception_ptr lost_error_;   // what the connection is lost with
  bool sendfile_ = false;           // a sendfile is in progress
  Future<void> sendfile_waiter_;    // its pending wait
  std::size_t sendfile_level_ = 0;  // which completes at or below this many buffered bytes
  Callback on_lost_;
};

template <class Recv>
void StreamTransport::on_readable(Recv recv) {
  if (lost_scheduled_) return;
  std::span<char> buffer = read_buffer();
  if (buffer.empty()) return;  // get_buffer failed: already handled
  std::optional<std::size_t> n;
  try {
    n = recv(buffer);
  } catch (const std::system_error&) {
    fatal_error(std::current_exception(), "Fatal read error on socket transport");
    return;
  }
  if (!n) return;
  if (*n == 0)
    deliver_eof();
  else
    delivered(*n, buffer);
}

}  // namespace aio::detail
