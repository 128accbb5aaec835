#include <core/log.hpp>
#include <net/stream_transport.hpp>

#include <stdexcept>
#include <system_error>
#include <utility>
#include <vector>

namespace aio::detail {

namespace {

// asyncio's LOG_THRESHOLD_FOR_CONNLOST_WRITES.
constexpr int connlost_writes_before_warning = 5;
// Reads for a Protocol go through one buffer per thread: data_received sees
// it only during the call. 256 KiB, as uvloop: one recv for large messages.
constexpr std::size_t read_size = 256 * 1024;

bool is_connection_reset(const std::exception_ptr& error) {
  try {
    std::rethrow_exception(error);
  } catch (const std::system_error& e) {
    return e.code() == std::errc::connection_reset || e.code() == std::errc::connection_aborted ||
           e.code() == std::errc::broken_pipe || e.code() == std::errc::not_connected;
  } catch (...) {
    return false;
  }
}

}  // namespace

StreamTransport::StreamTransport(EventLoop& loop, std::shared_ptr<BaseProtocol> protocol) : loop_(loop) {
  set_protocol(std::move(protocol));
}

StreamTransport::~StreamTransport() = default;

void StreamTransport::set_protocol(std::shared_ptr<BaseProtocol> protocol) {
  auto* stream = dynamic_cast<Protocol*>(protocol.get());
  auto* buffered = dynamic_cast<BufferedProtocol*>(protocol.get());
  if (!stream && !buffered)
    throw std::invalid_argument("a stream transport needs an aio::Protocol or aio::BufferedProtocol");
  protocol_ = std::move(protocol);
  stream_ = stream;
  buffered_protocol_ = buffered;
}

void StreamTransport::start(Callback on_made) {
  auto self = shared_from_this();
  loop_.call_soon([this, self] {
    protocol_connected_ = true;
    try {
      if (stream_)
        stream_->connection_made(*this);
      else
        buffered_protocol_->connection_made(*this);
    } catch (...) {
      fatal_error(std::current_exception(), "Fatal error: protocol.connection_made() call failed.");
    }
  });
  // A separate step, so that pause_reading() in connection_made is honoured.
  loop_.call_soon([this, self] {
    if (is_reading()) engine_start_reading();
  });
  if (on_made) loop_.call_soon(std::move(on_made));
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

void StreamTransport::deliver_eof() {
  bool keep_open = false;
  try {
    keep_open = stream_ ? stream_->eof_received() : buffered_protocol_->eof_received();
  } catch (...) {
    fatal_error(std::current_exception(), "Fatal error: protocol.eof_received() call failed.");
    return;
  }
  if (keep_open)
    engine_stop_reading();  // half-open: the write side stays usable
  else
    close();
}

void StreamTransport::pause_reading() {
  if (closing_ || paused_) return;
  paused_ = true;
  engine_stop_reading();
}

void StreamTransport::resume_reading() {
  if (closing_ || !paused_) return;
  paused_ = false;
  engine_start_reading();
}

// ---- Writing ----------------------------------------------------------------

void StreamTransport::write(std::string_view data) {
  if (sendfile_) throw std::runtime_error("unable to write; sendfile is in progress");
  send_or_buffer(data);
}

void StreamTransport::send_or_buffer(std::string_view data) {
  if (eof_) throw std::runtime_error("Cannot call write() after write_eof()");
  if (data.empty()) return;
  if (lost_scheduled_ || closing_) {
    if (++dropped_writes_ >= connlost_writes_before_warning)
      log(LogLevel::warning, "socket.send() raised exception.");  // asyncio's words, for the same event
    return;
  }
  if (buffered_ == 0) {
    // Nothing queued: straight to the socket, as asyncio does.
    std::size_t sent;
    try {
      sent = engine_send(data);
    } catch (const std::system_error&) {
      fatal_error(std::current_exception(), "Fatal write error on socket transport");
      return;
    }
    data.remove_prefix(sent);
    if (data.empty()) return;
    engine_start_writing();
  }
  buffer_.emplace_back(data);
  buffered_ += data.size();
  maybe_pause_protocol();
}

void StreamTransport::writelines(std::span<const std::string_view> lines) {
  std::string joined;
  for (std::string_view line : lines) joined += line;
  write(joined);
}

void StreamTransport::on_writable() {
  if (lost_scheduled_) return;
  if (buffered_ == 0) {
    // Nothing of ours to send: a native sendfile waits for the socket.
    engine_stop_writing();
    wake_sendfile(nullptr);
    return;
  }
  try {
    while (!buffer_.empty()) {
      std::string_view front = std::string_view(buffer_.front()).substr(buffer_offset_);
      std::size_t sent = engine_send(front);
      buffered_ -= sent;
      if (sent < front.size()) {
        buffer_offset_ += sent;
        break;
      }
      buffer_.pop_front();
      buffer_offset_ = 0;
    }
  } catch (const std::system_error&) {
    engine_stop_writing();
    buffer_.clear();
    buffer_offset_ = buffered_ = 0;
    fatal_error(std::current_exception(), "Fatal write error on socket transport");
    return;
  }
  maybe_resume_protocol();
  if (buffered_ <= sendfile_level_) wake_sendfile(nullptr);
  if (buffered_) return;
  engine_stop_writing();
  if (closing_) {
    lost_scheduled_ = true;
    call_connection_lost(nullptr);
  } else if (eof_) {
    engine_shutdown_write();
  }
}

void StreamTransport::write_eof() {
  if (closing_ || eof_) return;
  eof_ = true;
  if (buffered_ == 0) engine_shutdown_write();
}

void StreamTransport::set_write_buffer_limits(std::optional<long long> high, std::optional<long long> low) {
  if ((high && *high < 0) || (low && *low < 0))
    throw std::invalid_argument("set_write_buffer_limits: high and low must be >= 0");
  long long h = high ? *high : (low ? 4 * *low : 64 * 1024);
  long long l = low ? *low : h / 4;
  if (h < l)
    throw std::invalid_argument("set_write_buffer_limits: high (" + std::to_string(h) + ") must be >= low (" +
                                std::to_string(l) + ")");
  high_ = static_cast<std::size_t>(h);
  low_ = static_cast<std::size_t>(l);
  maybe_pause_protocol();
}

void StreamTransport::maybe_pause_protocol() {
  if (sendfile_ || buffered_ <= high_ || protocol_paused_) return;
  protocol_paused_ = true;
  try {
    protocol_->pause_writing();
  } catch (...) {
    report(std::current_exception(), "protocol.pause_writing() failed");
  }
}

void StreamTransport::maybe_resume_protocol() {
  if (sendfile_ || !protocol_paused_ || buffered_ > low_) return;
  protocol_paused_ = false;
  try {
    protocol_->resume_writing();
  } catch (...) {
    report(std::current_exception(), "protocol.resume_writing() failed");
  }
}

// ---- Sendfile ---------------------------------------------------------------

void StreamTransport::begin_sendfile() {
  if (sendfile_) throw std::runtime_error("sendfile is already in progress on this transport");
  sendfile_ = true;
}

void StreamTransport::end_sendfile() {
  sendfile_ = false;
  sendfile_waiter_ = Future<void>();  // a wait its cancelled task left behind
  if (lost_scheduled_) return;
  if (buffered_ == 0) engine_stop_writing();  // likewise
  maybe_pause_protocol();
  maybe_resume_protocol();
}

void StreamTransport::sendfile_write(std::string_view data) { send_or_buffer(data); }

void StreamTransport::sendfile_check_open() const {
  if (closing_) std::rethrow_exception(sendfile_error());
}

Future<void> StreamTransport::sendfile_wait(std::size_t level, bool writable) {
  Future<void> waiter = loop_.create_future<void>();
  if (closing_) {
    waiter.set_exception(sendfile_error());
  } else if (!writable && buffered_ <= level) {
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
  if (lost_error_) return lost_error_;
  return std::make_exception_ptr(
      std::system_error(std::make_error_code(std::errc::connection_aborted), "sendfile: the transport was closed"));
}

// ---- Closing ----------------------------------------------------------------

void StreamTransport::close() {
  if (closing_) return;
  closing_ = true;
  // A sendfile stops at once; the data it buffered still goes out.
  wake_sendfile(sendfile_error());
  engine_stop_reading();
  if (buffered_ == 0) {
    lost_scheduled_ = true;
    loop_.call_soon([self = shared_from_this()] { self->call_connection_lost(nullptr); });
  }
}

void StreamTransport::abort() { force_close(nullptr); }

void StreamTransport::fatal_error(std::exception_ptr error, const char* message) {
  // A peer resetting the connection is an event, not a bug: it goes to
  // connection_lost only.
  if (!is_connection_reset(error)) report(error, message);
  force_close(error);
}

void StreamTransport::force_close(std::exception_ptr error) {
  if (lost_scheduled_) return;
  lost_error_ = error;
  wake_sendfile(sendfile_error());
  if (buffered_) {
    buffer_.clear();
    buffer_offset_ = buffered_ = 0;
    engine_stop_writing();
  }
  if (!closing_) {
    closing_ = true;
    engine_stop_reading();
  }
  lost_scheduled_ = true;
  loop_.call_soon([self = shared_from_this(), error] { self->call_connection_lost(error); });
}

void StreamTransport::call_connection_lost(std::exception_ptr error) {
  if (lost_) return;
  lost_ = true;
  try {
    if (protocol_connected_) protocol_->connection_lost(error);
  } catch (...) {
    report(std::current_exception(), "Fatal error: protocol.connection_lost() call failed.");
  }
  engine_close();
  if (Callback on_lost = std::move(on_lost_)) on_lost();
}

void StreamTransport::report(std::exception_ptr error, const char* message) {
  ExceptionContext context;
  context.message = message;
  context.exception = std::move(error);
  context.transport = shared_from_this();
  context.protocol = protocol_;
  loop_.call_exception_handler(context);
}

}  // namespace aio::detail
