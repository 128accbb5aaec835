#include <backends/syscall.hpp>
#include <net/proactor_stream_transport.hpp>

#include <system_error>
#include <utility>

namespace aio::detail {

ProactorStreamTransport::ProactorStreamTransport(ProactorEventLoop& loop, std::shared_ptr<BaseProtocol> protocol,
                                                 const char* write_error)
    : StreamTransport(loop, std::move(protocol)),
      proactor_(static_cast<IocpProactor&>(loop.proactor())),
      write_error_(write_error) {}

std::size_t ProactorStreamTransport::engine_send(std::string_view data) {
  if (sent_ready_) {
    sent_ready_ = false;
    std::size_t n = std::exchange(sent_, 0);
    if (n < data.size()) start_write(data.substr(n));
    return n;
  }
  if (!write_op_) start_write(data);
  return 0;
}

void ProactorStreamTransport::start_write(std::string_view data) {
  auto op = std::make_shared<IocpOperation>(io_handle(), io_on_socket());
  op->buffer.assign(data);
  if (!start_overlapped_write(*op)) {
    auto err = static_cast<int>(GetLastError());
    if (err != ERROR_IO_PENDING) throw_os_error(err, write_call());
  }
  op->on_complete = [this, self = shared_from_this()](ProactorOperation& done) {
    write_op_.reset();
    if (closed_) return;
    if (done.error != 0) {
      try {
        throw_os_error(static_cast<int>(done.error), write_call());
      } catch (const std::system_error&) {
        fatal_error(std::current_exception(), write_error_);
      }
      return;
    }
    sent_ = done.bytes;
    sent_ready_ = true;
    on_writable();
  };
  write_op_ = op;
  proactor_.started(std::move(op));
}

}  // namespace aio::detail
