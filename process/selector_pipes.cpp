// The pipe transports of a selector loop on POSIX (its
// make_read_pipe_transport / make_write_pipe_transport hooks), as asyncio's
// _UnixReadPipeTransport and _UnixWritePipeTransport: read(2) and write(2)
// on readiness. A write end that is a FIFO or a socket is also watched for
// reading: it turns readable when its reader goes away, which is noticed
// so even while nothing is being written.
#include <backends/pipe_io.hpp>
#include <backends/selector_event_loop.hpp>
#include <net/selector_watch.hpp>
#include <net/stream_transport.hpp>
#include <process/subprocess.hpp>

#include <any>
#include <memory>
#include <span>
#include <utility>

namespace aio {
namespace {

class SelectorPipeTransport final : public detail::StreamTransport {
 public:
  SelectorPipeTransport(EventLoop& loop, fd_t fd, std::shared_ptr<BaseProtocol> protocol, Direction direction,
                        bool watch_reader)
      : StreamTransport(loop, std::move(protocol), direction), fd_(fd), watch_reader_(watch_reader), watch_(loop, fd) {}
  ~SelectorPipeTransport() override {
    if (fd_ != -1) detail::close_pipe(fd_);
  }

  std::any get_extra_info(std::string_view name) const override {
    if (name == "pipe" && fd_ != -1) return fd_;
    return {};
  }

 private:
  void engine_start_reading() override {
    if (direction() == Direction::read) {
      watch_.start_reading([this, self = shared_from_this()] {
        on_readable(
            [this](std::span<char> buffer) { return detail::read_pipe_some(fd_, buffer.data(), buffer.size()); });
      });
    } else if (watch_reader_) {
      watch_.start_reading([this, self = shared_from_this()] { on_reader_gone(); });
    }
  }
  void engine_stop_reading() override { watch_.stop_reading(); }
  Sent engine_send(std::string_view data) override {
    std::size_t n = detail::write_pipe_some(fd_, data.data(), data.size()).value_or(0);
    return {n, n};
  }
  void engine_start_writing() override {
    watch_.start_writing([this, self = shared_from_this()] { on_writable(); });
  }
  void engine_stop_writing() override { watch_.stop_writing(); }
  void engine_shutdown_write() override {}  // never called: a write pipe's write_eof() closes it
  void engine_close() noexcept override {
    watch_.stop();
    detail::close_pipe(std::exchange(fd_, -1));
  }

  fd_t fd_;
  bool watch_reader_;
  detail::SelectorWatch watch_;
};

}  // namespace

std::shared_ptr<detail::StreamTransport> SelectorEventLoop::make_read_pipe_transport(
    fd_t fd, std::shared_ptr<BaseProtocol> protocol) {
  return std::make_shared<SelectorPipeTransport>(*this, fd, std::move(protocol),
                                                 detail::StreamTransport::Direction::read, false);
}

std::shared_ptr<detail::StreamTransport> SelectorEventLoop::make_write_pipe_transport(
    fd_t fd, std::shared_ptr<BaseProtocol> protocol, bool watch_reader) {
  return std::make_shared<SelectorPipeTransport>(*this, fd, std::move(protocol),
                                                 detail::StreamTransport::Direction::write, watch_reader);
}

Task<std::shared_ptr<SubprocessTransport>> SelectorEventLoop::make_subprocess_transport(
    std::shared_ptr<SubprocessProtocol> protocol, std::string program, std::vector<std::string> args,
    SubprocessOptions options) {
  return start_subprocess(std::move(protocol), std::move(program), std::move(args), std::move(options));
}

}  // namespace aio
