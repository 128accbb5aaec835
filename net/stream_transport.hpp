// The part of every stream transport that does not depend on how bytes move:
// the write buffer, write_eof, pause/resume reading, and delivery to Protocol
// or BufferedProtocol; the close / abort state machine and flow control come
// from TransportCore. Written once; each engine (selector readiness, proactor
// completion) derives and supplies the engine_* operations.
#pragma once

#include <core/event_loop.hpp>
#include <net/socket.hpp>
#include <net/transport_core.hpp>
#include <net/transports.hpp>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>

namespace aio::detail {

class StreamTransport : public TransportCore<Transport> {
 public:
  // What the transport carries: both directions (a socket), or one, as
  // asyncio's pipe transports: a read pipe closes itself at end of file
  // whatever eof_received says; a write pipe closes on write_eof(), and its
  // engine watches for the reader going away (on_reader_gone()). The
  // methods of the missing direction throw std::logic_error.
  enum class Direction : std::uint8_t { both, read, write };

  StreamTransport(EventLoop& loop, std::shared_ptr<BaseProtocol> protocol, Direction direction = Direction::both);
  ~StreamTransport() override;

  void pause_reading() override;
  void resume_reading() override;
  bool is_reading() const noexcept override { return direction_ != Direction::write && !paused_ && !is_closing(); }
  void write(std::string_view data) override;
  void writelines(std::span<const std::string_view> lines) override;
  void write_eof() override;
  bool can_write_eof() const noexcept override { return direction_ != Direction::read; }
  void set_protocol(std::shared_ptr<BaseProtocol> protocol) override;
  std::shared_ptr<Transport> shared_handle() override { return this->shared_from_this(); }
  StreamTransport* stream_transport() noexcept override { return this; }
  Direction direction() const noexcept { return direction_; }

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
  Future<void> sendfile_drained();
  Future<void> sendfile_writable() { return sendfile_wait(0, true); }
  // Throws sendfile_error() once the transport is closing.
  void sendfile_check_open() const;
  // The socket a native sendfile may use, or -1 for an engine without one:
  // the sendfile then writes through the transport.
  virtual fd_t sendfile_socket() const noexcept { return -1; }

 protected:
  // ---- What an engine provides (and TransportCore's engine_* operations) ----
  // What engine_send() did with the bytes it was given. `sent` of them went
  // out now (a readiness engine's send(2)). `taken` (at least `sent`) left
  // the transport's buffer: the bytes between the two are in the engine's
  // own copy, which a completion engine's send in flight reads from. They
  // still count in get_write_buffer_size() until the engine reports them
  // with on_sent().
  struct Sent {
    std::size_t sent = 0;
    std::size_t taken = 0;
  };
  // Sends, or takes to send, what it can of `data` without blocking;
  // throws std::system_error.
  virtual Sent engine_send(std::string_view data) = 0;
  // Calls on_writable() whenever buffered data could move.
  virtual void engine_start_writing() = 0;
  virtual void engine_shutdown_write() = 0;

  // ---- What the engine calls ----
  // Writability: flushes what it can of the buffer.
  void on_writable();
  // A completion engine's send finished: `n` bytes of what it had taken
  // went out. Then flushes the buffer as on_writable() (engine_send() is
  // asked again, and takes nothing while the engine still sends).
  void on_sent(std::size_t n);
  // Readability, for engines that read on readiness: `recv` reads into a
  // span and returns the count, 0 at end of file, std::nullopt if it would block.
  template <class Recv>
  void on_readable(Recv recv);
  // engine_shutdown_write() of a socket transport: shutdown(SHUT_WR), a
  // failure being a fatal error.
  void shutdown_socket_write(Socket& sock);
  // For engines that receive into their own memory (a completion's data):
  // hands `data` to the protocol, all of it (a BufferedProtocol in as many
  // pieces as its buffers take); empty `data` is the end of file.
  void on_received(std::span<const char> data);
  // A write pipe's end became readable: its reader went away (a pipe) or
  // the peer sent or closed (a socket). Closes, as asyncio's write pipe
  // transport: with a BrokenPipe error if data was still waiting, else
  // cleanly.
  void on_reader_gone();

 private:
  void call_connection_made() override;
  bool reading_paused() const noexcept override { return paused_; }
  void clear_write_buffer() noexcept override;
  bool flow_control_held() const noexcept override { return sendfile_; }
  void closing_started() override { wake_sendfile(sendfile_error()); }
  Future<void> sendfile_wait(std::size_t level, bool writable);
  void wake_sendfile(std::exception_ptr error);
  // What a sendfile fails with when the connection goes: the error it is
  // lost with, else std::system_error(connection_aborted).
  std::exception_ptr sendfile_error() const;
  void send_or_buffer(std::string_view data);
  // Throws std::logic_error when the transport lacks that direction.
  void check_can_write(const char* method) const;
  void check_can_read(const char* method) const;
  // engine_shutdown_write(), once: write_eof() from the resume_writing()
  // that on_writable() calls has shut it already, and a second
  // shutdown(SHUT_WR) fails with ENOTCONN once the peer has closed too.
  void shut_write_side();
  void deliver_eof();
  std::span<char> read_buffer();
  bool delivered(std::size_t n, std::span<char> buffer);

  Direction direction_;
  Protocol* stream_ = nullptr;  // the protocol as a Protocol, or null
  BufferedProtocol* buffered_protocol_ = nullptr;
  std::deque<std::string> buffer_;  // data the engine has not taken, oldest first
  std::size_t buffer_offset_ = 0;   // taken bytes of buffer_.front()
  bool eof_ = false;                // write_eof() was called
  bool write_shut_ = false;         // and the write side was shut
  bool paused_ = false;             // reading paused
  bool sendfile_ = false;           // a sendfile is in progress
  Future<void> sendfile_waiter_;    // its pending wait
  std::size_t sendfile_level_ = 0;  // which completes at or below this many buffered bytes
};

// What a stream transport calls `protocol` through: exactly one of the two
// is set. std::invalid_argument naming `who` ("a stream transport", "a TLS
// transport"), what is allowed and what `protocol` is, unless it is an
// aio::Protocol or an aio::BufferedProtocol.
struct StreamProtocolFace {
  Protocol* stream = nullptr;
  BufferedProtocol* buffered = nullptr;
};
StreamProtocolFace stream_protocol_face(BaseProtocol* protocol, const char* who);

// A protocol from `factory` for a stream transport. std::invalid_argument
// naming `method` for an empty factory, a null protocol, or one that is
// neither an aio::Protocol nor an aio::BufferedProtocol.
std::shared_ptr<BaseProtocol> make_stream_protocol(const ProtocolFactory& factory, const char* method);

// Starts `transport`; completes once its protocol's connection_made ran.
Task<void> start_transport(EventLoop& loop, std::shared_ptr<StreamTransport> transport);

template <class Recv>
void StreamTransport::on_readable(Recv recv) {
  if (lost_scheduled()) return;
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
