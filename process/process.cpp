// create_subprocess_exec / create_subprocess_shell and Process, over
// subprocess_exec: a SubprocessProtocol that feeds the StreamReaders of the
// child's stdout and stderr and lets the StreamWriter of its stdin drain
// (asyncio's SubprocessStreamProtocol), through the same stream protocol
// the sockets' streams use.
#include <process/process.hpp>

#include <backends/spawn.hpp>
#include <core/tasks.hpp>
#include <net/protocols.hpp>
#include <net/stream_protocol.hpp>
#include <net/transports.hpp>

#include <array>
#include <stdexcept>
#include <system_error>
#include <utility>
#include <vector>

namespace aio {
namespace detail {

class ProcessProtocol final : public SubprocessProtocol {
 public:
  explicit ProcessProtocol(std::size_t limit) : limit_(limit) {}

  void connection_made(SubprocessTransport& transport) override {
    loop_ = &get_running_loop();
    for (int fd = 0; fd < 3; ++fd) {
      std::shared_ptr<Transport> pipe = transport.get_pipe_transport(fd);
      if (!pipe) continue;
      auto i = static_cast<std::size_t>(fd);
      readers_[i].emplace(limit_);
      streams_[i] = std::make_shared<StreamProtocol>(*readers_[i], ClientConnected{});
      streams_[i]->connection_made(*pipe);  // the reader pauses this pipe when it holds too much
      if (fd == 0) stdin_.emplace(pipe, streams_[0], *readers_[0]);
    }
  }
  void pipe_data_received(int fd, std::string_view data) override {
    if (auto& stream = streams_[static_cast<std::size_t>(fd)]) stream->data_received(data);
  }
  void pipe_connection_lost(int fd, std::exception_ptr error) override {
    if (auto& stream = streams_[static_cast<std::size_t>(fd)]) stream->connection_lost(error);
  }
  void pause_writing() override {
    if (streams_[0]) streams_[0]->pause_writing();
  }
  void resume_writing() override {
    if (streams_[0]) streams_[0]->resume_writing();
  }
  void process_exited() override {
    exited_ = true;
    for (Future<void>& waiter : std::exchange(waiters_, {}))
      if (!waiter.done()) waiter.set_result();
  }

  std::size_t limit_;
  EventLoop* loop_ = nullptr;
  std::array<std::optional<StreamReader>, 3> readers_;  // [0]: only for the writer's error checks
  std::array<std::shared_ptr<StreamProtocol>, 3> streams_;
  std::optional<StreamWriter> stdin_;
  bool exited_ = false;
  std::vector<Future<void>> waiters_;
  // What communicate() read so far: a cancelled call leaves it for the next.
  std::string out_, err_;
};

}  // namespace detail

namespace {

Task<void> feed_stdin(StreamWriter writer, std::optional<std::string> input) {
  try {
    if (input && !input->empty()) {
      writer.write(*input);
      co_await writer.drain();
    }
  } catch (const std::system_error& e) {
    // The child may exit, or close its stdin, without reading everything.
    if (e.code() != std::errc::broken_pipe && e.code() != std::errc::connection_reset) throw;
  }
  writer.close();
}

Task<void> read_to_end(StreamReader reader, std::string& into) {
  for (;;) {
    std::string chunk = co_await reader.read(64 * 1024);
    if (chunk.empty()) co_return;
    into += chunk;
  }
}

}  // namespace

Process::Process(std::shared_ptr<SubprocessTransport> transport, std::shared_ptr<detail::ProcessProtocol> protocol)
    : transport_(std::move(transport)), protocol_(std::move(protocol)) {
  stdin_ = protocol_->stdin_;
  stdout_ = protocol_->readers_[1];
  stderr_ = protocol_->readers_[2];
}

int Process::pid() const noexcept { return transport_->get_pid(); }
std::optional<int> Process::returncode() const noexcept { return transport_->get_returncode(); }

Task<int> Process::wait() {
  while (!protocol_->exited_) {
    Future<void> exited = get_running_loop().create_future<void>();
    protocol_->waiters_.push_back(exited);
    co_await exited;
  }
  co_return *transport_->get_returncode();
}

Task<std::pair<std::string, std::string>> Process::communicate(std::optional<std::string> input) {
  EventLoop& loop = get_running_loop();
  std::vector<Task<void>> parts;
  if (stdin_) parts.push_back(loop.create_task(feed_stdin(*stdin_, std::move(input))));
  if (stdout_) parts.push_back(loop.create_task(read_to_end(*stdout_, protocol_->out_)));
  if (stderr_) parts.push_back(loop.create_task(read_to_end(*stderr_, protocol_->err_)));
  std::exception_ptr failure;
  for (Task<void>& part : parts) {
    try {
      co_await part;
    } catch (...) {
      failure = std::current_exception();
      break;
    }
  }
  if (failure) {
    // Cancelled (or a part failed): the others stop too, keeping what they read.
    for (Task<void>& part : parts) part.cancel();
    for (Task<void>& part : parts) {
      try {
        co_await part;
      } catch (...) {
      }
    }
    std::rethrow_exception(failure);
  }
  co_await wait();
  co_return std::pair<std::string, std::string>{std::exchange(protocol_->out_, {}), std::exchange(protocol_->err_, {})};
}

void Process::send_signal(int signal) { transport_->send_signal(signal); }
void Process::terminate() { transport_->terminate(); }
void Process::kill() { transport_->kill(); }

Task<Process> create_subprocess_exec(std::string program, std::vector<std::string> args, ProcessOptions options,
                                     std::size_t limit) {
  if (limit == 0) throw std::invalid_argument("create_subprocess_exec: limit must be > 0");
  EventLoop& loop = get_running_loop();
  auto protocol = std::make_shared<detail::ProcessProtocol>(limit);
  ProtocolFactory factory = [protocol] { return protocol; };
  auto started = co_await loop.subprocess_exec(factory, std::move(program), std::move(args),
                                               static_cast<SubprocessOptions&&>(std::move(options)));
  co_return Process(std::move(started.first), std::move(protocol));
}

Task<Process> create_subprocess_shell(std::string cmd, ProcessOptions options, std::size_t limit) {
  auto [shell, args] = detail::shell_command(std::move(cmd));
  return create_subprocess_exec(std::move(shell), std::move(args), std::move(options), limit);
}

}  // namespace aio
