#include <net/stream_transport.hpp>

#include <core/tasks.hpp>
#include <net/protocols.hpp>

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <system_error>
#include <utility>
#include <vector>

namespace aio::detail {

namespace {

// Reads for a Protocol go through one buffer per thread: data_received sees
// it only during the call. 256 KiB, as uvloop: one recv for large messages.
constexpr std::size_t read_size = 256 * 1024;

}  // namespace

StreamTransport::StreamTransport(EventLoop& loop, std::shared_ptr<BaseProtocol> protocol, Direction direction)
    : TransportCore(loop), direction_(direction) {
  set_protocol(std::move(protocol));
}

void StreamTransport::check_can_write(const char* method) const {
  if (direction_ == Direction::read)
    throw std::logic_error(std::string(method) + "() on a read pipe transport, which has no write side");
}

void StreamTransport::check_can_read(const char* method) const {
  if (direction_ == Direction::write)
    throw std::logic_error(std::string(method) + "() on a write pipe transport, which has no read side");
}

StreamTransport::~StreamTransport() = default;

void StreamTransport::set_protocol(std::shared_ptr<BaseProtocol> protocol) {
  StreamProtocolFace face = stream_protocol_face(protocol.get(), "a stream transport");
  adopt_protocol(std::move(protocol));
  stream_ = face.stream;
  buffered_protocol_ = face.buffered;
}

void StreamTransport::call_connection_made() {
  if (stream_)
    stream_->connection_made(*this);
  else
    buffered_protocol_->connection_made(*this);
}

// ---- Reading ----------------------------------------------------------------

std::span<char> StreamTransport::read_buffer() {
  if (stream_) {
    thread_local std::vector<char> shared(read_size);
    return shared;
  }
  std::span<char> buffer;
  try {
    buffer = buffered_protocol_->get_buffer(read_size);
    if (buffer.empty()) throw std::runtime_error("get_buffer() returned an empty buffer");
  } catch (...) {
    fatal_error(std::current_exception(), "Fatal error: protocol.get_buffer() call failed.");
    return {};
  }
  return buffer;
}

bool StreamTransport::delivered(std::size_t n, std::span<char> buffer) {
  try {
    if (stream_)
      stream_->data_received(std::string_view(buffer.data(), n));
    else
      buffered_protocol_->buffer_updated(n);
    return true;
  } catch (...) {
    fatal_error(std::current_exception(), stream_ ? "Fatal error: protocol.data_received() call failed."
                                                  : "Fatal error: protocol.buffer_updated() call failed.");
    return false;
  }
}

void StreamTransport::shutdown_socket_write(Socket& sock) {
  try {
    sock.shutdown_write();
  } catch (const std::system_error&) {
    fatal_error(std::current_exception(), "Fatal error on shutdown of the write side");
  }
}

void StreamTransport::on_received(std::span<const char> data) {
  if (lost_scheduled()) return;
  if (data.empty()) {
    deliver_eof();
    return;
  }
  if (stream_) {
    std::span<char> view(const_cast<char*>(data.data()), data.size());  // data_received only reads it
    delivered(data.size(), view);
    return;
  }
  // As asyncio's _feed_data_to_buffered_proto: all of it, whatever the
  // protocol does meanwhile, unless the connection is lost.
  while (!data.empty() && !lost_scheduled()) {
    std::span<char> buffer = read_buffer();
    if (buffer.empty()) return;  // get_buffer failed: already handled
    std::size_t n = std::min(buffer.size(), data.size());
    std::memcpy(buffer.data(), data.data(), n);
    data = data.subspan(n);
    if (!delivered(n, buffer)) return;
  }
}

void StreamTransport::deliver_eof() {
  bool keep_open = false;
  try {
    keep_open = stream_ ? stream_->eof_received() : buffered_protocol_->eof_received();
  } catch (...) {
    fatal_error(std::current_exception(), "Fatal error: protocol.eof_received() call failed.");
    return;
  }
  if (keep_open && direction_ == Direction::both)
    engine_stop_reading();  // half-open: the write side stays usable
  else
    close();  // a read pipe has nothing left to do
}

void StreamTransport::pause_reading() {
  check_loop("pause_reading");
  check_can_read("pause_reading");
  if (is_closing() || paused_) return;
  auto keep_alive = weak_from_this().lock();  // the reader may be the last owner
  paused_ = true;
  engine_stop_reading();
}

void StreamTransport::resume_reading() {
  check_loop("resume_reading");
  check_can_read("resume_reading");
  if (is_closing() || !paused_) return;
  paused_ = false;
  engine_start_reading();
}

// ---- Writing ----------------------------------------------------------------

void StreamTransport::write(std::string_view data) {
  check_loop("write");
  check_can_write("write");
  if (sendfile_) throw std::runtime_error("unable to write; sendfile is in progress");
  send_or_buffer(data);
}

void StreamTransport::send_or_buffer(std::string_view data) {
  if (eof_) throw std::runtime_error("Cannot call write() after write_eof()");
  if (data.empty() || drop_write()) return;
  std::size_t unsent = data.size();
  if (get_write_buffer_size() == 0) {
    // Nothing queued: straight to the socket, as asyncio does.
    Sent done;
    try {
      done = engine_send(data);
    } catch (const std::system_error&) {
      fatal_error(std::current_exception(), "Fatal write error on socket transport");
      return;
    }
    // What the engine took but has not sent counts from now on, with what
    // it left for the buffer.
    unsent -= done.sent;
    data.remove_prefix(done.taken);
    if (!data.empty()) engine_start_writing();
  }
  if (!data.empty()) buffer_.emplace_back(data);
  if (unsent) buffered_grew(unsent);
}

void StreamTransport::writelines(std::span<const std::string_view> lines) {
  check_loop("writelines");
  check_can_write("writelines");
  std::string joined;
  for (std::string_view line : lines) joined += line;
  write(joined);
}

void StreamTransport::on_writable() {
  if (lost_scheduled()) return;
  // With nothing of ours to send, a native sendfile waits for the socket:
  // the wake below is its.
  try {
    while (!buffer_.empty()) {
      std::string_view front = std::string_view(buffer_.front()).substr(buffer_offset_);
      Sent done = engine_send(front);
      buffered_shrank(done.sent);
      if (done.taken < front.size()) {
        buffer_offset_ += done.taken;
        break;
      }
      buffer_.pop_front();
      buffer_offset_ = 0;
    }
  } catch (const std::system_error&) {
    fatal_error(std::current_exception(), "Fatal write error on socket transport");
    return;
  }
  if (get_write_buffer_size() <= sendfile_level_) wake_sendfile(nullptr);
  if (flushed() && eof_) shut_write_side();
}

void StreamTransport::on_sent(std::size_t n) {
  if (lost_scheduled()) return;  // the buffer, and its count, went with the loss
  buffered_shrank(n);
  on_writable();
}

void StreamTransport::shut_write_side() {
  if (std::exchange(write_shut_, true)) return;
  engine_shutdown_write();
}

void StreamTransport::on_reader_gone() {
  if (lost_scheduled()) return;
  if (get_write_buffer_size() > 0)
    fatal_error(std::make_exception_ptr(std::system_error(std::make_error_code(std::errc::broken_pipe),
                                                          "the pipe's reader went away with data still to write")),
                "Fatal write error on pipe transport");  // quiet: a broken pipe is not reported
  else
    close();
}

void StreamTransport::clear_write_buffer() noexcept {
  buffer_.clear();
  buffer_offset_ = 0;
}

void StreamTransport::write_eof() {
  check_loop("write_eof");
  check_can_write("write_eof");
  if (is_closing() || eof_) return;
  if (direction_ == Direction::write) {
    close();  // a pipe has no half-close: closing after the flush is its end of file
    return;
  }
  eof_ = true;
  if (get_write_buffer_size() == 0) shut_write_side();
}

// ---- Sendfile ---------------------------------------------------------------

void StreamTransport::begin_sendfile() {
  if (sendfile_) throw std::runtime_error("sendfile is already in progress on this transport");
  sendfile_ = true;
}

void StreamTransport::end_sendfile() {
  sendfile_ = false;
  sendfile_waiter_ = Future<void>();  // a wait its cancelled task left behind
  if (lost_scheduled()) return;
  if (get_write_buffer_size() == 0) engine_stop_writing();  // likewise
  update_flow();
}

void StreamTransport::sendfile_write(std::string_view data) { send_or_buffer(data); }

Future<void> StreamTransport::sendfile_drained() {
  auto [low, high] = get_write_buffer_limits();
  return sendfile_wait(get_write_buffer_size() > high ? low : high, false);
}

void StreamTransport::sendfile_check_open() const {
  if (is_closing()) std::rethrow_exception(sendfile_error());
}

Future<void> StreamTransport::sendfile_wait(std::size_t level, bool writable) {
  Future<void> waiter = loop_.create_future<void>();
  if (is_closing()) {
    waiter.set_exception(sendfile_error());
  } else if (!writable && get_write_buffer_size() <= level) {
    waiter.set_result();
  } else {
    sendfile_waiter_ = waiter;
    sendfile_level_ = level;
    if (writable) engine_start_writing();
  }
  return waiter;
}

void StreamTransport::wake_sendfile(std::exception_ptr error) {
  if (!sendfile_waiter_) return;
  Future<void> waiter = std::exchange(sendfile_waiter_, Future<void>());
  if (waiter.done()) return;  // cancelled with its task
  if (error)
    waiter.set_exception(std::move(error));
  else
    waiter.set_result();
}

std::exception_ptr StreamTransport::sendfile_error() const {
  if (lost_error()) return lost_error();
  return std::make_exception_ptr(
      std::system_error(std::make_error_code(std::errc::connection_aborted), "sendfile: the transport was closed"));
}

// ---- Making one ----------------------------------------------------------------

std::shared_ptr<BaseProtocol> make_stream_protocol(const ProtocolFactory& factory, const char* method) {
  if (!factory) throw std::invalid_argument(std::string(method) + ": the protocol factory is empty");
  std::shared_ptr<BaseProtocol> protocol = factory();
  if (!protocol) throw std::invalid_argument(std::string(method) + ": the protocol factory returned null");
  if (!protocol->as_protocol() && !protocol->as_buffered_protocol())
    throw std::invalid_argument(std::string(method) +
                                ": the protocol factory must make an aio::Protocol or aio::BufferedProtocol, got " +
                                describe_protocol(protocol.get()));
  return protocol;
}

StreamProtocolFace stream_protocol_face(BaseProtocol* protocol, const char* who) {
  StreamProtocolFace face;
  if (protocol) {
    face.stream = protocol->as_protocol();
    if (!face.stream) face.buffered = protocol->as_buffered_protocol();
  }
  if (!face.stream && !face.buffered)
    throw std::invalid_argument(std::string(who) + " needs an aio::Protocol or aio::BufferedProtocol, got " +
                                describe_protocol(protocol));
  return face;
}

Task<void> start_transport(EventLoop& loop, std::shared_ptr<StreamTransport> transport) {
  Future<void> made = loop.create_future<void>();
  transport->start([made]() mutable {
    if (!made.done()) made.set_result();
  });
  co_await made;
}

}  // namespace aio::detail
