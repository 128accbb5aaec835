// The pipe transports of a ProactorEventLoop (its make_read_pipe_transport /
// make_write_pipe_transport hooks): the proactor stream transport in its
// pipe mode, over any Proactor's read and write operations, owning the
// descriptor (a HANDLE on Windows).
#include <backends/pipe_io.hpp>
#include <backends/proactor_event_loop.hpp>
#include <net/proactor_stream_transport.hpp>
#include <process/subprocess.hpp>

#include <any>
#include <memory>
#include <string>
#include <utility>

namespace aio {
namespace {

class ProactorPipeTransport final : public detail::ProactorStreamTransport {
 public:
  ProactorPipeTransport(ProactorEventLoop& loop, fd_t fd, std::shared_ptr<BaseProtocol> protocol, Direction direction,
                        bool watch_reader)
      : ProactorStreamTransport(loop, std::move(protocol), fd, false, "pipe fd " + std::to_string(fd), direction,
                                watch_reader),
        fd_(fd) {}
  ~ProactorPipeTransport() override { close_handle(); }

  std::any get_extra_info(std::string_view name) const override {
    if (name == "pipe" && fd_ != -1) return fd_;
    return {};
  }

 private:
  void engine_shutdown_write() override {}  // never called: a write pipe's write_eof() closes it
  void close_handle() noexcept override {
    if (fd_ != -1) detail::close_pipe(std::exchange(fd_, -1));
  }

  fd_t fd_;
};

}  // namespace

std::shared_ptr<detail::StreamTransport> ProactorEventLoop::make_read_pipe_transport(
    fd_t fd, std::shared_ptr<BaseProtocol> protocol) {
  return std::make_shared<ProactorPipeTransport>(*this, fd, std::move(protocol),
                                                 detail::StreamTransport::Direction::read, false);
}

std::shared_ptr<detail::StreamTransport> ProactorEventLoop::make_write_pipe_transport(
    fd_t fd, std::shared_ptr<BaseProtocol> protocol, bool watch_reader) {
  return std::make_shared<ProactorPipeTransport>(*this, fd, std::move(protocol),
                                                 detail::StreamTransport::Direction::write, watch_reader);
}

Task<std::shared_ptr<SubprocessTransport>> ProactorEventLoop::make_subprocess_transport(
    std::shared_ptr<SubprocessProtocol> protocol, std::string program, std::vector<std::string> args,
    SubprocessOptions options) {
  return start_subprocess(std::move(protocol), std::move(program), std::move(args), std::move(options));
}

}  // namespace aio
