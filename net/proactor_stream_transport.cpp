#include <backends/pipe_io.hpp>
#include <backends/syscall.hpp>
#include <net/proactor_stream_transport.hpp>
#include <net/socket_extra_info.hpp>

#include <system_error>
#include <utility>

namespace aio::detail {
namespace {

// The most one socket receive brings (a mechanism may bring less), and
// what one pipe read asks for.
constexpr std::size_t recv_size = 256 * 1024;
constexpr std::size_t pipe_read_size = 64 * 1024;
// From this size on, a write of bytes just received (an echo) is sent from
// the receive's own memory where the proactor can lend it: copying less
// costs under a microsecond, and each lent buffer is one fewer for
// receives meanwhile.
constexpr std::size_t lend_min = 16 * 1024;

bool within(std::string_view part, std::span<const char> whole) {
  return !whole.empty() && part.data() >= whole.data() && part.data() + part.size() <= whole.data() + whole.size();
}

}  // namespace

ProactorStreamTransport::ProactorStreamTransport(ProactorEventLoop& loop, std::shared_ptr<BaseProtocol> protocol,
                                                 fd_t handle, bool socket, std::string what, Direction direction,
                                                 bool watch_reader)
    : StreamTransport(loop, std::move(protocol), direction),
      proactor_(loop.proactor()),
      handle_(handle),
      socket_(socket),
      watch_reader_(watch_reader),
      what_(std::move(what)),
      read_op_(proactor_.make_operation()),
      write_op_(proactor_.make_operation()) {
  // Set once: each start gives the operation a reference to this transport
  // (keep_alive), so `this` is alive whenever these run.
  read_op_->on_complete = [this](ProactorOperation& op) { read_done(op); };
  write_op_->on_complete = [this](ProactorOperation& op) { write_done(op); };
}

// ---- Reading ------------------------------------------------------------------

void ProactorStreamTransport::engine_start_reading() {
  if (direction() == Direction::write) {
    // The transport starts "reading" once: the reader watch, if any.
    if (watch_reader_ && !read_op_->in_flight() && !closed_ && !lost_scheduled()) {
      read_op_->keep_alive = shared_from_this();
      try {
        proactor_.wait_readable(*read_op_, handle_);
      } catch (const std::system_error&) {
        read_op_->keep_alive.reset();
        fatal_error(std::current_exception(), "Fatal error on pipe transport");
      }
    }
    return;
  }
  reading_ = true;
  if (!held_.empty() || held_eof_) {
    // What came while paused goes first, from the loop: resume_reading()
    // does not call the protocol back from inside itself.
    if (!held_pending_) {
      held_pending_ = true;
      loop_.call_soon([this, self = shared_from_this()] { deliver_held(); });
    }
    return;
  }
  if (!read_op_->in_flight() && !closed_ && !lost_scheduled()) post_read();
}

void ProactorStreamTransport::post_read() {
  read_op_->keep_alive = shared_from_this();
  try {
    if (socket_) {
      proactor_.recv(*read_op_, handle_, recv_size);
    } else {
      read_op_->buffer.resize(pipe_read_size);
      proactor_.read(*read_op_, handle_);
    }
  } catch (const std::system_error&) {
    read_op_->keep_alive.reset();
    fatal_error(std::current_exception(),
                socket_ ? "Fatal read error on socket transport" : "Fatal read error on pipe transport");
  }
}

void ProactorStreamTransport::read_done(ProactorOperation& op) {
  if (closed_ || lost_scheduled()) return;
  if (direction() == Direction::write) {
    on_reader_gone();  // the write end turned readable, or failed: either way its reader is gone
    return;
  }
  if (!socket_ && pipe_read_error_is_eof(op.error)) {
    op.error = 0;
    op.bytes = 0;
  }
  if (op.error != 0) {
    fatal_error(os_error(op.error, (socket_ ? "recv (" : "read (") + what_ + ")"),
                socket_ ? "Fatal read error on socket transport" : "Fatal read error on pipe transport");
    return;
  }
  std::span<const char> data = socket_ ? op.data : std::span<const char>(op.buffer.data(), op.bytes);
  if (!reading_) {
    held_.append(data.data(), data.size());
    held_eof_ = data.empty();
    return;
  }
  on_received(data);
  if (!data.empty() && reading_ && !closed_ && !lost_scheduled() && !read_op_->in_flight()) post_read();
}

void ProactorStreamTransport::deliver_held() {
  held_pending_ = false;
  if (!reading_ || closed_ || lost_scheduled()) return;
  std::string data = std::move(held_);
  held_.clear();
  bool eof = std::exchange(held_eof_, false);
  if (!data.empty()) on_received(data);
  if (eof)
    on_received({});
  else if (reading_ && !closed_ && !lost_scheduled() && !read_op_->in_flight())
    post_read();
}

// ---- Writing ------------------------------------------------------------------

StreamTransport::Sent ProactorStreamTransport::engine_send(std::string_view data) {
  // One send in flight at a time; the rest waits in the transport's buffer.
  if (write_op_->in_flight()) return {};
  // Called from the protocol's data_received with (part of) what it got:
  // an echo, which the proactor may send from the receive's own memory.
  if (socket_ && data.size() >= lend_min && within(data, read_op_->data)) {
    start_write(data);
  } else {
    write_op_->buffer.assign(data);
    start_write();
  }
  return {0, data.size()};
}

void ProactorStreamTransport::start_write(std::string_view lend) {
  write_op_->keep_alive = shared_from_this();
  try {
    if (!lend.empty()) {
      if (proactor_.send_received(*write_op_, handle_, *read_op_, lend)) {
        lent_ = lend;
        return;
      }
      write_op_->buffer.assign(lend);  // the proactor cannot lend it
    }
    if (socket_)
      proactor_.send(*write_op_, handle_);
    else
      proactor_.write(*write_op_, handle_);
  } catch (...) {
    write_op_->keep_alive.reset();
    throw;  // engine_send's caller reports it
  }
}

void ProactorStreamTransport::write_done(ProactorOperation& op) {
  if (closed_ || lost_scheduled()) return;  // lent_ no longer matters either
  const char* failed = socket_ ? "Fatal write error on socket transport" : "Fatal write error on pipe transport";
  if (op.error != 0) {
    fatal_error(os_error(op.error, (socket_ ? "send (" : "write (") + what_ + ")"), failed);
    return;
  }
  std::size_t sent = op.bytes;                            // restarting the operation clears it
  std::span<const char> lent = std::exchange(lent_, {});  // the proactor's until this returns
  if (sent < (lent.empty() ? op.buffer.size() : lent.size())) {
    // A short send: the rest goes next, from the operation's own copy.
    if (lent.empty())
      op.buffer.erase(0, sent);
    else
      op.buffer.assign(lent.data() + sent, lent.size() - sent);
    try {
      start_write();
    } catch (const std::system_error&) {
      fatal_error(std::current_exception(), failed);
      return;
    }
  }
  on_sent(sent);
}

// ---- Closing ------------------------------------------------------------------

void ProactorStreamTransport::engine_close() noexcept {
  closed_ = true;
  // The operations keep this transport alive until they complete; their
  // completions then find it closed and do nothing.
  proactor_.cancel_all(handle_);
  close_handle();
}

// ---- The socket transport -------------------------------------------------------

namespace {

class ProactorSocketTransport final : public ProactorStreamTransport {
 public:
  ProactorSocketTransport(ProactorEventLoop& loop, Socket sock, std::shared_ptr<BaseProtocol> protocol)
      : ProactorStreamTransport(loop, std::move(protocol), sock.fileno(), true,
                                "socket " + std::to_string(sock.fileno())),
        sock_(std::move(sock)),
        info_(sock_) {}

  fd_t sendfile_socket() const noexcept override { return sock_ ? sock_.fileno() : -1; }
  std::any get_extra_info(std::string_view name) const override { return info_.get(name, sock_); }

 private:
  void engine_shutdown_write() override { shutdown_socket_write(sock_); }
  // Shut down first, as asyncio's proactor transport: the peer sees the end
  // even while another descriptor of the socket stays open (a dup, a child's
  // copy), and on Windows a receive the peer has in flight ends cleanly
  // rather than with ERROR_NETNAME_DELETED. Pipes are only closed.
  void close_handle() noexcept override {
    sock_.shutdown_both();
    sock_.close();
  }

  Socket sock_;
  StreamSocketInfo info_;
};

}  // namespace

std::shared_ptr<StreamTransport> make_proactor_socket_transport(ProactorEventLoop& loop, Socket sock,
                                                                std::shared_ptr<BaseProtocol> protocol) {
  return std::make_shared<ProactorSocketTransport>(loop, std::move(sock), std::move(protocol));
}

}  // namespace aio::detail
