// connect_read_pipe / connect_write_pipe: a pipe end checked here, wrapped
// in the engine's pipe transport (EventLoop::make_read_pipe_transport /
// make_write_pipe_transport), and started.
#include <backends/pipe_io.hpp>
#include <backends/spawn.hpp>
#include <core/event_loop.hpp>
#include <core/tasks.hpp>
#include <net/protocols.hpp>
#include <net/stream_transport.hpp>
#include <net/transports.hpp>
#include <process/subprocess.hpp>

#include <memory>
#include <stdexcept>
#include <string>
#include <utility>

namespace aio {

// Here rather than beside subprocess_exec: aio-info asks on every platform.
const char* child_watcher() { return detail::child_watcher_name(); }
Task<std::pair<std::shared_ptr<ReadTransport>, std::shared_ptr<BaseProtocol>>> EventLoop::connect_read_pipe(
    ProtocolFactory factory, fd_t fd) {
  check_closed();
  detail::prepare_pipe(fd, "connect_read_pipe");
  std::shared_ptr<BaseProtocol> protocol = detail::make_stream_protocol(factory, "connect_read_pipe");
  std::shared_ptr<detail::StreamTransport> transport = make_read_pipe_transport(fd, protocol);
  co_await detail::start_transport(*this, transport);
  co_return std::pair<std::shared_ptr<ReadTransport>, std::shared_ptr<BaseProtocol>>{std::move(transport),
                                                                                     std::move(protocol)};
}

Task<std::pair<std::shared_ptr<WriteTransport>, std::shared_ptr<BaseProtocol>>> EventLoop::connect_write_pipe(
    ProtocolFactory factory, fd_t fd) {
  check_closed();
  detail::PipeKind kind = detail::prepare_pipe(fd, "connect_write_pipe");
  std::shared_ptr<BaseProtocol> protocol = detail::make_stream_protocol(factory, "connect_write_pipe");
  std::shared_ptr<detail::StreamTransport> transport =
      make_write_pipe_transport(fd, protocol, kind == detail::PipeKind::fifo || kind == detail::PipeKind::socket);
  co_await detail::start_transport(*this, transport);
  co_return std::pair<std::shared_ptr<WriteTransport>, std::shared_ptr<BaseProtocol>>{std::move(transport),
                                                                                      std::move(protocol)};
}

}  // namespace aio
