// The TLS layer over two memory BIOs (net/ssl_protocol.hpp, net/ssl_bio.hpp), after asyncio 3.11's
// sslproto.py. Where asyncio and uvloop differ, asyncio's choice is kept and
// said so; where CPython fixed a bug later, the fix is.
#include <core/errors.hpp>
#include <core/log.hpp>
#include <net/ssl_errors.hpp>
#include <net/ssl_protocol.hpp>
#include <net/stream_transport.hpp>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <system_error>
#include <utility>

namespace aio::detail {

namespace {

// asyncio's constants.FLOW_CONTROL_HIGH_WATER_SSL_READ / _WRITE.
constexpr std::size_t ssl_read_high_water = 256 * 1024;
constexpr std::size_t ssl_write_high_water = 512 * 1024;
// asyncio's LOG_THRESHOLD_FOR_CONNLOST_WRITES.
constexpr int connlost_writes_before_warning = 5;
// How much one SSL_read asks for: records are 16 KiB at most.
constexpr std::size_t read_chunk = 64 * 1024;
// How much plain text is encrypted before it goes to the transport, at most.
constexpr std::size_t write_batch = 64 * 1024;

void check_timeout(const char* method, const char* name, std::optional<double> value) {
  if (value && !(std::isfinite(*value) && *value > 0))
    throw std::invalid_argument(std::string(method) + ": " + name + " should be a positive number, got " +
                                std::to_string(*value));
}

// OpenSSL stopped for want of the peer's bytes, not because of an error.
// SSL_ERROR_SYSCALL with nothing queued counts too, as asyncio's
// SSLAgainErrors: with memory BIOs no system call failed.
bool needs_more(int code) {
  return code == SSL_ERROR_WANT_READ || code == SSL_ERROR_WANT_WRITE ||
         (code == SSL_ERROR_SYSCALL && ERR_peek_error() == 0);
}

// Before each SSL call, so that SSL_get_error sees that call's errors only.
// Peeking first: clearing walks the whole queue, on every read and write.
void clear_ssl_errors() {
  if (ERR_peek_error() != 0) ERR_clear_error();
}

std::exception_ptr connection_error(std::errc code, const char* message) {
  return std::make_exception_ptr(std::system_error(std::make_error_code(code), message));
}

}  // namespace

std::optional<SSLSettings> ssl_settings(const char* method, SSLContext* ssl, bool server_side,
                                        std::optional<std::string_view> server_hostname,
                                        std::optional<double> handshake_timeout,
                                        std::optional<double> shutdown_timeout) {
  if (!ssl) {
    if (server_hostname)
      throw std::invalid_argument(std::string(method) + ": server_hostname is only meaningful with ssl");
    if (handshake_timeout)
      throw std::invalid_argument(std::string(method) + ": ssl_handshake_timeout is only meaningful with ssl");
    if (shutdown_timeout)
      throw std::invalid_argument(std::string(method) + ": ssl_shutdown_timeout is only meaningful with ssl");
    return std::nullopt;
  }
  check_timeout(method, "ssl_handshake_timeout", handshake_timeout);
  check_timeout(method, "ssl_shutdown_timeout", shutdown_timeout);
  if (ssl->server_side() != server_side)
    throw std::invalid_argument(std::string(method) + ": a " + (server_side ? "server" : "client") + " needs a " +
                                (server_side ? "server" : "client") + " context (create_default_context(Purpose::" +
                                (server_side ? "client_auth" : "server_auth") + "))");
  if (server_side && server_hostname)
    throw std::invalid_argument(std::string(method) + ": server_hostname is only meaningful for a client");
  std::string hostname(server_hostname.value_or(""));
  if (!server_side && hostname.empty() && ssl->check_hostname())
    throw std::invalid_argument(std::string(method) +
                                ": the context checks host names (check_hostname) but there is no "
                                "server_hostname to check");
  SSLSettings settings;
  settings.context = ssl->shared_from_this();
  settings.server_side = server_side;
  settings.server_hostname = std::move(hostname);
  settings.handshake_timeout = handshake_timeout.value_or(default_ssl_handshake_timeout);
  settings.shutdown_timeout = shutdown_timeout.value_or(default_ssl_shutdown_timeout);
  return settings;
}

SSLProtocol::SSLProtocol(EventLoop& loop, std::shared_ptr<BaseProtocol> app, SSLSettings settings,
                         bool call_connection_made)
    : loop_(loop),
      loop_ref_(loop),
      settings_(std::move(settings)),
      app_state_(call_connection_made ? AppState::init : AppState::connection_made),
      write_flow_(ssl_write_high_water, true),
      read_flow_(ssl_read_high_water, true) {
  set_protocol(std::move(app));
  ssl_ = std::make_shared<SSLObject>(settings_.context, settings_.server_side, settings_.server_hostname);
  SSL_set_bio(ssl_->native_handle(), incoming_.give_bio(), outgoing_.give_bio());
}

SSLProtocol::~SSLProtocol() { cancel_timers(); }

void SSLProtocol::cancel_timers() noexcept {
  if (handshake_timer_) handshake_timer_.cancel();
  if (shutdown_timer_) shutdown_timer_.cancel();
  handshake_timer_ = TimerHandle();
  shutdown_timer_ = TimerHandle();
}

Future<void> SSLProtocol::handshake_done() {
  if (!waiter_) {
    waiter_ = loop_.create_future<void>();
    if (handshake_finished_) {
      if (handshake_error_)
        waiter_->set_exception(handshake_error_);
      else
        waiter_->set_result();
    }
  }
  return *waiter_;
}

void SSLProtocol::wake_waiter(std::exception_ptr error) {
  if (handshake_finished_) return;
  handshake_finished_ = true;
  handshake_error_ = error;
  if (!waiter_ || waiter_->done()) return;  // nobody waits (a server), or the waiter was cancelled
  if (error)
    waiter_->set_exception(error);
  else
    waiter_->set_result();
}

void SSLProtocol::feed_initial(std::string_view data) { incoming_.append(data); }

void SSLProtocol::set_state(State next) {
  bool allowed = next == State::unwrapped || (state_ == State::unwrapped && next == State::do_handshake) ||
                 (state_ == State::do_handshake && next == State::wrapped) ||
                 (state_ == State::wrapped && next == State::flushing) ||
                 (state_ == State::flushing && next == State::shutdown);
  if (!allowed)
    throw std::logic_error("SSLProtocol: cannot switch state from " + std::to_string(static_cast<int>(state_)) +
                           " to " + std::to_string(static_cast<int>(next)));
  state_ = next;
}

// ---- The transport underneath ----------------------------------------------

void SSLProtocol::connection_made(Transport& transport) { attach(share_transport(transport, "SSLProtocol")); }

void SSLProtocol::attach(std::shared_ptr<Transport> transport) {
  transport_ = std::move(transport);
  start_handshake();
}

void SSLProtocol::data_received(std::string_view data) {
  // OpenSSL reads the records straight from the transport's buffer; only
  // what it leaves (part of a record, or all of it while reading is
  // paused) is copied.
  incoming_.lend(data);
  try {
    advance();
  } catch (...) {
    incoming_.keep_lent();
    throw;
  }
  incoming_.keep_lent();
}

void SSLProtocol::advance() {
  switch (state_) {
    case State::do_handshake:
      do_handshake();
      break;
    case State::wrapped:
      do_read();
      break;
    case State::flushing:
      do_flush();
      break;
    case State::shutdown:
      do_shutdown();
      break;
    case State::unwrapped:
      break;
  }
}

bool SSLProtocol::eof_received() {
  // asyncio 3.11's choice (uvloop since #385 skips eof_received here): an
  // end of file without close_notify delivers what was decrypted, then the
  // application's eof_received, then connection_lost(nullptr).
  eof_received_ = true;
  try {
    switch (state_) {
      case State::do_handshake:
        on_handshake_complete(
            connection_error(std::errc::connection_reset, "Connection lost during the TLS handshake"));
        break;
      case State::wrapped:
        set_state(State::flushing);
        if (app_reading_paused_) return true;  // resume_reading() finishes the flush
        do_flush();
        return still_flushing();
      case State::flushing:
        do_flush();
        return still_flushing();
      case State::shutdown:
        do_shutdown();
        break;
      case State::unwrapped:
        break;
    }
  } catch (...) {
    if (auto transport = transport_.lock()) transport->close();
    throw;
  }
  return false;
}

bool SSLProtocol::still_flushing() {
  // An end of file is the peer's half-close: it may still read. Plain text
  // not yet encrypted (the transport underneath was paused) goes out first,
  // so the transport stays open (true) until the flush completes and
  // on_shutdown_complete closes it, or ssl_shutdown_timeout runs out.
  if (state_ != State::flushing) return false;
  if (!shutdown_timer_) arm_shutdown_timer();
  return true;
}

void SSLProtocol::connection_lost(std::exception_ptr error) {
  if (lost_error_) error = lost_error_;
  backlog_.clear();
  backlog_offset_ = backlog_size_ = 0;
  outgoing_.clear();
  closed_ = true;
  auto keep_alive = shared_from_this();
  if (state_ == State::do_handshake || !handshake_finished_)
    wake_waiter(error ? error
                      : connection_error(std::errc::connection_reset, "Connection lost during the TLS handshake"));
  if (state_ != State::do_handshake && (app_state_ == AppState::connection_made || app_state_ == AppState::eof)) {
    app_state_ = AppState::connection_lost;
    try {
      app_->connection_lost(error);
    } catch (...) {
      ExceptionContext context;
      context.message = "Exception in callback connection_lost";
      context.exception = std::current_exception();
      context.protocol = app_;
      loop_.call_exception_handler(context);
    }
  }
  state_ = State::unwrapped;
  transport_.reset();
  held_.reset();
  cancel_timers();
}

void SSLProtocol::resume_writing() {
  ssl_writing_paused_ = false;
  try {
    if (state_ == State::wrapped)
      do_write();
    else if (state_ == State::flushing && !app_reading_paused_)
      do_flush();
    else
      process_outgoing();
  } catch (...) {
    fatal_error(std::current_exception(), "Fatal error on SSL protocol");
  }
}

// ---- Handshake ----------------------------------------------------------------

void SSLProtocol::start_handshake() {
  set_state(State::do_handshake);
  std::weak_ptr<SSLProtocol> weak = weak_from_this();
  handshake_timer_ = loop_.call_later(settings_.handshake_timeout, [weak] {
    auto self = weak.lock();
    if (!self || self->state_ != State::do_handshake) return;
    std::string message = "SSL handshake is taking longer than " + std::to_string(self->settings_.handshake_timeout) +
                          " seconds: aborting the connection";
    self->fatal_error(connection_error(std::errc::connection_aborted, message.c_str()), "SSL handshake timed out");
  });
  do_handshake();
}

void SSLProtocol::do_handshake() {
  clear_ssl_errors();
  int rc = SSL_do_handshake(ssl_->native_handle());
  if (rc == 1) {
    on_handshake_complete(nullptr);
    return;
  }
  int code = SSL_get_error(ssl_->native_handle(), rc);
  if (needs_more(code)) {
    process_outgoing();
    return;
  }
  std::exception_ptr error = handshake_error(ssl_->native_handle(), code);
  // The alert OpenSSL wrote tells the peer why; it goes out before the abort.
  process_outgoing(true);
  on_handshake_complete(error);
}

void SSLProtocol::on_handshake_complete(std::exception_ptr error) {
  if (handshake_timer_) handshake_timer_.cancel();
  handshake_timer_ = TimerHandle();
  if (error) {
    set_state(State::unwrapped);
    bool verify = false;
    try {
      std::rethrow_exception(error);
    } catch (const SSLCertVerificationError&) {
      verify = true;
    } catch (...) {
    }
    fatal_error(error, verify ? "SSL handshake failed on verifying the certificate" : "SSL handshake failed");
    wake_waiter(error);
    return;
  }
  set_state(State::wrapped);
  established_ = true;
  if (app_state_ == AppState::init) {
    app_state_ = AppState::connection_made;
    try {
      if (app_stream_)
        app_stream_->connection_made(*this);
      else
        app_buffered_->connection_made(*this);
    } catch (...) {
      fatal_error(std::current_exception(), "Fatal error: protocol.connection_made() call failed.");
      wake_waiter(lost_error_);
      return;
    }
  }
  wake_waiter(nullptr);
  do_read();
}

// ---- Shutdown ----------------------------------------------------------------

void SSLProtocol::check_loop(const char* method) const {
  if (!loop_ref_.get())
    throw std::runtime_error(std::string("Event loop is closed: ") + method +
                             "() on a TLS transport whose event loop is gone");
}

void SSLProtocol::close() {
  if (closed_) return;
  check_loop("close");
  closed_ = true;
  app_closed_ = true;
  start_shutdown();
}

void SSLProtocol::abort() {
  check_loop("abort");
  closed_ = true;
  abort_connection(nullptr);
}

void SSLProtocol::start_shutdown() {
  // The peer's end of file came while reading was paused (eof_received
  // left the flush to resume_reading): close() finishes it now.
  if (state_ == State::flushing && eof_received_ && app_closed_) {
    do_flush();
    return;
  }
  if (state_ == State::flushing || state_ == State::shutdown || state_ == State::unwrapped) return;
  closed_ = true;
  if (state_ == State::do_handshake) {
    abort_connection(nullptr);
    return;
  }
  set_state(State::flushing);
  arm_shutdown_timer();
  do_flush();
}

void SSLProtocol::arm_shutdown_timer() {
  std::weak_ptr<SSLProtocol> weak = weak_from_this();
  shutdown_timer_ = loop_.call_later(settings_.shutdown_timeout, [weak] {
    auto self = weak.lock();
    if (!self || (self->state_ != State::flushing && self->state_ != State::shutdown)) return;
    // A peer that keeps sending, or never reads what is left, must not
    // hold the connection (contract 56).
    self->abort_connection(std::make_exception_ptr(TimeoutError("SSL shutdown timed out")));
  });
}

void SSLProtocol::do_flush() {
  do_read();
  if (state_ != State::flushing) return;  // do_read failed and closed
  // Everything written before close() goes out before close_notify
  // (contract 55); with the transport underneath paused, resume_writing
  // comes back here.
  try {
    do_write();
  } catch (...) {
    fatal_error(std::current_exception(), "Fatal error on SSL protocol");
    return;
  }
  if (!backlog_.empty()) return;
  set_state(State::shutdown);
  do_shutdown();
}

void SSLProtocol::do_shutdown() {
  SSL* ssl = ssl_->native_handle();
  if (!eof_received_) {
    // Records still unread make SSL_shutdown fail ("application data after
    // close notify"): what the peer sent after our close is discarded.
    read_into_void();
    if (state_ != State::shutdown) return;
    clear_ssl_errors();
    int rc = SSL_shutdown(ssl);
    if (rc == 0) rc = SSL_shutdown(ssl);  // close_notify sent: now look for the peer's
    if (rc != 1) {
      int code = SSL_get_error(ssl, rc);
      if (needs_more(code)) {
        process_outgoing();
        return;
      }
      on_shutdown_complete(std::make_exception_ptr(take_ssl_error(code, "")));
      return;
    }
  }
  process_outgoing();
  call_eof_received();
  on_shutdown_complete(nullptr);
}

void SSLProtocol::on_shutdown_complete(std::exception_ptr error) {
  if (shutdown_timer_) shutdown_timer_.cancel();
  shutdown_timer_ = TimerHandle();
  if (error) {
    fatal_error(error, "Fatal error on SSL protocol");
    return;
  }
  // Whatever is still in the outgoing BIO (its writing was paused) goes to
  // the transport, which flushes it before closing.
  process_outgoing(true);
  auto transport = transport_.lock();
  if (!transport) return;
  loop_.call_soon([transport] { transport->close(); });
}

void SSLProtocol::abort_connection(std::exception_ptr error) {
  if (error && !lost_error_) lost_error_ = error;
  set_state(State::unwrapped);
  if (auto transport = transport_.lock()) transport->abort();
}

void SSLProtocol::fatal_error(std::exception_ptr error, const char* message) {
  // Python's SSLError is an OSError: like every OS error of a transport,
  // it closes the connection without bothering the exception handler.
  bool os_error = false;
  bool cancelled = false;
  try {
    std::rethrow_exception(error);
  } catch (const std::system_error&) {
    os_error = true;
  } catch (const CancelledError&) {
    cancelled = true;
  } catch (...) {
  }
  if (!os_error && !cancelled) {
    ExceptionContext context;
    context.message = message;
    context.exception = error;
    context.transport = shared_from_this();
    context.protocol = app_;
    loop_.call_exception_handler(context);
  }
  if (!lost_error_) lost_error_ = error;
  if (state_ != State::unwrapped) state_ = State::unwrapped;
  if (auto transport = transport_.lock()) transport->abort();
}

// ---- Writing -------------------------------------------------------------------

void SSLProtocol::write(std::string_view data) {
  if (data.empty()) return;
  std::string_view one[] = {data};
  writelines(one);
}

void SSLProtocol::writelines(std::span<const std::string_view> lines) {
  check_loop("write");
  if (closed_ || state_ == State::flushing || state_ == State::shutdown || state_ == State::unwrapped) {
    if (++dropped_writes_ >= connlost_writes_before_warning) log(LogLevel::warning, "SSL connection is closed");
    return;
  }
  // The connection is going underneath (a reset): is_closing() says so and
  // drain() raises; writes meanwhile are dropped without a word (contract 60).
  auto transport = transport_.lock();
  if (!transport || transport->is_closing()) return;
  try {
    for (std::string_view data : lines) {
      // Straight from the caller's memory when nothing waits before it;
      // what is not encrypted now is copied to the backlog.
      if (backlog_.empty() && state_ == State::wrapped) data.remove_prefix(encrypt(data));
      if (data.empty()) continue;
      backlog_.emplace_back(data);
      backlog_size_ += data.size();
    }
    process_outgoing();
  } catch (...) {
    fatal_error(std::current_exception(), "Fatal error on SSL protocol");
  }
}

void SSLProtocol::write_eof() {
  throw NotImplementedError(
      "write_eof: a TLS transport cannot half-close (can_write_eof() is false); close() ends it with close_notify");
}

std::size_t SSLProtocol::encrypt(std::string_view data) {
  SSL* ssl = ssl_->native_handle();
  std::size_t done = 0;
  // Encrypted only as fast as the transport underneath takes it: once it
  // is over its high-water mark the rest waits here as plain text, where it
  // counts towards this transport's flow control (asyncio would encrypt it
  // all into the socket's buffer at once).
  while (done < data.size() && !ssl_writing_paused_) {
    std::size_t piece = std::min(data.size() - done, write_batch);
    clear_ssl_errors();
    // A piece that fits one record leaves in one send from OpenSSL's own
    // buffer, not copied into the BIO first; larger ones are gathered there,
    // up to write_batch, into one send of several records.
    outgoing_.set_pass_through(piece <= SSL3_RT_MAX_PLAIN_LENGTH ? this : nullptr);
    int n = SSL_write(ssl, data.data() + done, static_cast<int>(piece));
    outgoing_.set_pass_through(nullptr);
    if (pass_error_) std::rethrow_exception(std::exchange(pass_error_, nullptr));
    if (n <= 0) {
      int code = SSL_get_error(ssl, n);
      // Mid-renegotiation SSL_write needs the peer's answer first; the rest
      // is retried after the next read (SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER).
      if (needs_more(code)) break;
      throw take_ssl_error(code, "");
    }
    done += static_cast<std::size_t>(n);
    if (outgoing_.pending() >= write_batch) process_outgoing();
  }
  return done;
}

void SSLProtocol::do_write() {
  while (!backlog_.empty() && !ssl_writing_paused_) {
    const std::string& front = backlog_.front();
    std::size_t left = front.size() - backlog_offset_;
    std::size_t n = encrypt(std::string_view(front).substr(backlog_offset_));
    backlog_size_ -= n;
    if (n < left) {
      backlog_offset_ += n;
      break;
    }
    backlog_.pop_front();
    backlog_offset_ = 0;
  }
  process_outgoing();
}

void SSLProtocol::process_outgoing(bool even_if_paused) {
  std::shared_ptr<Transport> transport;
  if ((!ssl_writing_paused_ || even_if_paused) && (transport = transport_.lock())) {
    std::string_view records = outgoing_.kept();
    if (!records.empty()) {
      // The transport sends or copies it before returning: the BIO's memory
      // is then reused, with no copy of ours. Once it is closing (a reset
      // underneath), the records go nowhere: dropped without a word, as the
      // application's writes are then (contract 60).
      if (!transport->is_closing()) transport->write(records);
      outgoing_.clear();
    }
  }
  control_app_writing();
}

bool SSLProtocol::pass(std::string_view records) noexcept {
  if (ssl_writing_paused_) return false;
  auto transport = transport_.lock();
  if (!transport) return false;
  // As process_outgoing: once the transport is closing, dropped.
  try {
    if (!transport->is_closing()) transport->write(records);
  } catch (...) {
    pass_error_ = std::current_exception();  // taken, not kept: the connection fails with it
  }
  return true;
}

std::size_t SSLProtocol::get_write_buffer_size() const noexcept { return backlog_size_ + outgoing_.pending(); }

void SSLProtocol::set_write_buffer_limits(std::optional<long long> high, std::optional<long long> low) {
  write_flow_.set_limits(high, low);
  control_app_writing();
}

void SSLProtocol::control_app_writing() {
  if (app_state_ == AppState::init || app_state_ == AppState::connection_lost) return;
  int change = write_flow_.crossed(get_write_buffer_size());
  if (change == 0) return;
  try {
    if (change > 0)
      app_->pause_writing();
    else
      app_->resume_writing();
  } catch (...) {
    ExceptionContext context;
    context.message = change > 0 ? "protocol.pause_writing() failed" : "protocol.resume_writing() failed";
    context.exception = std::current_exception();
    context.transport = shared_from_this();
    context.protocol = app_;
    loop_.call_exception_handler(context);
  }
}

// ---- Reading -------------------------------------------------------------------

void SSLProtocol::resume_reading() {
  if (!app_reading_paused_) return;
  check_loop("resume_reading");
  app_reading_paused_ = false;
  auto self = shared_from_this();
  loop_.call_soon([self] { self->advance(); });
}

int SSLProtocol::ssl_read(char* into, std::size_t size) {
  SSL* ssl = ssl_->native_handle();
  clear_ssl_errors();
  int n = SSL_read(ssl, into, static_cast<int>(std::min<std::size_t>(size, std::numeric_limits<int>::max())));
  if (n > 0) return n;
  int code = SSL_get_error(ssl, n);
  if (code == SSL_ERROR_ZERO_RETURN) return 0;
  if (needs_more(code)) return -1;
  throw take_ssl_error(code, "");
}

void SSLProtocol::do_read() {
  if (state_ != State::wrapped && state_ != State::flushing) return;
  try {
    if (app_closed_) {
      // After our close() the application gets nothing more (contract 56).
      read_into_void();
    } else if (!app_reading_paused_) {
      if (app_buffered_)
        read_buffered();
      else
        read_copied();
      // A read may have produced records to send (a KeyUpdate reply, a
      // renegotiation's handshake) or let a stalled write go on.
      if (!backlog_.empty())
        do_write();
      else
        process_outgoing();
    }
    control_ssl_reading();
  } catch (...) {
    fatal_error(std::current_exception(), "Fatal error on SSL protocol");
  }
}

void SSLProtocol::read_copied() {
  std::size_t used = 0;
  int n = 1;
  for (;;) {
    if (plain_capacity_ - used < read_chunk) {
      // Grown without zero-filling what SSL_read overwrites anyway.
      std::size_t capacity = std::max(2 * plain_capacity_, used + read_chunk);
      auto bigger = std::make_unique_for_overwrite<char[]>(capacity);
      if (used) std::memcpy(bigger.get(), plain_.get(), used);
      plain_ = std::move(bigger);
      plain_capacity_ = capacity;
    }
    n = ssl_read(plain_.get() + used, plain_capacity_ - used);
    if (n <= 0) break;
    used += static_cast<std::size_t>(n);
  }
  if (used) app_stream_->data_received(std::string_view(plain_.get(), used));
  if (plain_capacity_ > 4 * read_chunk) {  // a connection that goes idle keeps little
    plain_.reset();
    plain_capacity_ = 0;
  }
  if (n == 0) {  // close_notify
    call_eof_received();
    start_shutdown();
  }
}

void SSLProtocol::read_buffered() {
  std::span<char> buffer = app_buffered_->get_buffer(get_read_buffer_size());
  if (buffer.empty()) throw std::runtime_error("get_buffer() returned an empty buffer");
  std::size_t filled = 0;
  int n = 1;
  while (filled < buffer.size()) {
    n = ssl_read(buffer.data() + filled, buffer.size() - filled);
    if (n <= 0) break;
    filled += static_cast<std::size_t>(n);
  }
  if (filled == buffer.size()) {
    // The buffer is full: the rest comes on the next turn of the loop.
    auto self = shared_from_this();
    loop_.call_soon([self] { self->do_read(); });
  }
  if (filled > 0) app_buffered_->buffer_updated(filled);
  if (n == 0) {  // close_notify
    call_eof_received();
    start_shutdown();
  }
}

void SSLProtocol::read_into_void() {
  char sink[16 * 1024];
  try {
    while (ssl_read(sink, sizeof sink) > 0) {
    }
  } catch (const SSLError&) {
    // What comes after our close_notify does not matter any more; the
    // shutdown reports what is wrong with the connection.
  }
}

void SSLProtocol::call_eof_received() {
  if (app_state_ != AppState::connection_made) return;
  app_state_ = AppState::eof;
  try {
    bool keep_open = app_stream_ ? app_stream_->eof_received() : app_buffered_->eof_received();
    if (keep_open) log(LogLevel::warning, "returning true from eof_received() has no effect when using ssl");
  } catch (...) {
    fatal_error(std::current_exception(), "Error calling eof_received()");
  }
}

std::size_t SSLProtocol::get_read_buffer_size() const noexcept { return incoming_.pending(); }

void SSLProtocol::set_read_buffer_limits(std::optional<long long> high, std::optional<long long> low) {
  read_flow_.set_limits(high, low, "set_read_buffer_limits");
  control_ssl_reading();
}

void SSLProtocol::control_ssl_reading() {
  auto transport = transport_.lock();
  if (!transport) return;
  int change = read_flow_.crossed(get_read_buffer_size());
  if (change > 0) {
    // Paused by this layer, with nothing left to send, the transport
    // underneath has no I/O to keep it alive, and the application may hold
    // only a reference: the layer holds it until reading resumes.
    held_ = transport;
    transport->pause_reading();
  } else if (change < 0) {
    transport->resume_reading();
    held_.reset();
  }
}

// ---- The rest of the application's transport ---------------------------------

bool SSLProtocol::is_closing() const noexcept {
  // Follows the socket too: a transport lost underneath (a reset) is
  // closing, so that StreamWriter::drain raises instead of waiting (contract 60).
  auto transport = transport_.lock();
  return closed_ || !transport || transport->is_closing();
}

std::any SSLProtocol::get_extra_info(std::string_view name) const {
  if (name == "sslcontext") return settings_.context;
  auto transport = transport_.lock();
  if (established_ && transport) {
    if (name == "ssl_object") return ssl_;
    if (name == "peercert") return ssl_->getpeercert();
    if (name == "cipher") {
      auto cipher = ssl_->cipher();
      return cipher ? std::any(*cipher) : std::any();
    }
    if (name == "compression") return ssl_->compression();
  }
  if (transport) return transport->get_extra_info(name);
  return {};
}

void SSLProtocol::set_protocol(std::shared_ptr<BaseProtocol> protocol) {
  StreamProtocolFace face = stream_protocol_face(protocol.get(), "a TLS transport");
  app_ = std::move(protocol);
  app_stream_ = face.stream;
  app_buffered_ = face.buffered;
}

std::shared_ptr<Transport> SSLProtocol::handle() {
  if (auto transport = transport_.lock()) return std::shared_ptr<Transport>(std::move(transport), this);
  return shared_from_this();
}

std::shared_ptr<Transport> share_transport(Transport& transport, const char* method) {
  if (auto shared = transport.shared_handle()) return shared;
  throw std::invalid_argument(std::string(method) +
                              ": the transport must be a stream or TLS transport of this library, got another "
                              "aio::Transport (its shared_handle() is null)");
}

}  // namespace aio::detail
