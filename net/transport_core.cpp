#include <core/log.hpp>
#include <net/transport_core.hpp>

#include <stdexcept>
#include <string>
#include <system_error>

namespace aio::detail {

namespace {

// asyncio's LOG_THRESHOLD_FOR_CONNLOST_WRITES.
constexpr int connlost_writes_before_warning = 5;

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

std::string describe_protocol(BaseProtocol* protocol) {
  if (!protocol) return "null";
  if (protocol->as_protocol()) return "an aio::Protocol";
  if (protocol->as_buffered_protocol()) return "an aio::BufferedProtocol";
  if (protocol->as_datagram_protocol()) return "an aio::DatagramProtocol";
  return "another kind of aio::BaseProtocol (a SubprocessProtocol, or one derived from BaseProtocol alone)";
}

template <class Interface>
TransportCore<Interface>::~TransportCore() = default;

template <class Interface>
void TransportCore<Interface>::start(Callback on_made) {
  auto self = this->shared_from_this();
  loop_.call_soon([this, self] {
    protocol_connected_ = true;
    try {
      call_connection_made();
    } catch (...) {
      fatal_error(std::current_exception(), "Fatal error: protocol.connection_made() call failed.");
    }
  });
  // A separate step, so that pause_reading() or close() in connection_made is honoured.
  loop_.call_soon([this, self] {
    if (!closing_ && !reading_paused()) engine_start_reading();
  });
  if (on_made) loop_.call_soon(std::move(on_made));
}

// ---- Writing ----------------------------------------------------------------

template <class Interface>
bool TransportCore<Interface>::drop_write() {
  if (!lost_scheduled_ && !closing_) return false;
  if (++dropped_writes_ >= connlost_writes_before_warning)
    log(LogLevel::warning, "socket.send() raised exception.");  // asyncio's words, for the same event
  return true;
}

template <class Interface>
void TransportCore<Interface>::buffered_grew(std::size_t n) {
  buffered_ += n;
  update_flow();
}

template <class Interface>
bool TransportCore<Interface>::flushed() {
  update_flow();
  // resume_writing may have written again, or aborted.
  if (buffered_ || lost_scheduled_) return false;
  engine_stop_writing();
  if (!closing_) return true;
  lost_scheduled_ = true;
  call_connection_lost(nullptr);
  return false;
}

template <class Interface>
void TransportCore<Interface>::check_loop(const char* method) const {
  if (!loop_ref_.get())
    throw std::runtime_error(std::string("Event loop is closed: ") + method +
                             "() on a transport whose event loop is gone");
}

template <class Interface>
void TransportCore<Interface>::set_write_buffer_limits(std::optional<long long> high, std::optional<long long> low) {
  check_loop("set_write_buffer_limits");
  flow_.set_limits(high, low);
  update_flow();
}

template <class Interface>
void TransportCore<Interface>::update_flow() {
  if (flow_control_held()) return;
  try {
    flow_.update(buffered_, *protocol_);
  } catch (...) {
    // Reported, not fatal: asyncio's _maybe_pause_protocol does the same.
    report(std::current_exception(),
           flow_.paused() ? "protocol.pause_writing() failed" : "protocol.resume_writing() failed");
  }
}

// ---- Closing ----------------------------------------------------------------

template <class Interface>
void TransportCore<Interface>::close() {
  if (closing_) return;
  check_loop("close");
  // Called from outside any callback, the reader registration may be the
  // last owner: stopping it must not destroy the transport under this call.
  auto keep_alive = this->weak_from_this().lock();
  closing_ = true;
  closing_started();
  engine_stop_reading();
  if (buffered_ == 0) {
    lost_scheduled_ = true;
    loop_.call_soon([self = this->shared_from_this()] { self->call_connection_lost(nullptr); });
  }
}

template <class Interface>
void TransportCore<Interface>::fatal_error(std::exception_ptr error, const char* message) {
  // A peer resetting the connection is an event, not a bug: it goes to
  // connection_lost only.
  if (!is_connection_reset(error)) report(error, message);
  force_close(error);
}

template <class Interface>
void TransportCore<Interface>::force_close(std::exception_ptr error) {
  if (lost_scheduled_) return;
  auto keep_alive = this->weak_from_this().lock();  // as in close()
  lost_error_ = error;
  closing_started();
  if (buffered_) {
    clear_write_buffer();
    buffered_ = 0;
    engine_stop_writing();
  }
  if (!closing_) {
    closing_ = true;
    engine_stop_reading();
  }
  lost_scheduled_ = true;
  loop_.call_soon([self = this->shared_from_this(), error] { self->call_connection_lost(error); });
}

template <class Interface>
void TransportCore<Interface>::call_connection_lost(std::exception_ptr error) {
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

template <class Interface>
void TransportCore<Interface>::report(std::exception_ptr error, const char* message) {
  ExceptionContext context;
  context.message = message;
  context.exception = std::move(error);
  context.transport = this->shared_from_this();
  context.protocol = protocol_;
  loop_.call_exception_handler(context);
}

template class TransportCore<Transport>;
template class TransportCore<DatagramTransport>;

}  // namespace aio::detail
