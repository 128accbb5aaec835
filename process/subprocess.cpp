// subprocess_exec / subprocess_shell, and start_subprocess, what the loops
// that run children give as their make_subprocess_transport hook (asyncio's
// _make_subprocess_transport): the child is started by backends/spawn, its pipes are the loop's pipe transports
// (through the make_read_pipe_transport / make_write_pipe_transport hooks) and its exit is watched by
// backends/child_watch (pidfd, kqueue or SIGCHLD on POSIX, a wait on the process handle on Windows, each through the
// loop's hooks); so the subprocess transport is written once for every engine and OS, as asyncio's
// BaseSubprocessTransport.
#include <process/subprocess.hpp>

#include <backends/child_watch.hpp>
#include <backends/pipe_io.hpp>
#include <backends/spawn.hpp>
#include <core/errors.hpp>
#include <core/event_loop.hpp>
#include <core/tasks.hpp>
#include <net/protocols.hpp>
#include <net/stream_transport.hpp>
#include <net/transports.hpp>

#include <array>
#include <cerrno>
#include <memory>
#include <stdexcept>
#include <string>
#include <system_error>
#include <tuple>
#include <utility>
#include <vector>

namespace aio {
namespace {

class ChildTransport;

// One pipe of the child, forwarding its events to the subprocess transport
// (asyncio's ReadSubprocessPipeProto / WriteSubprocessPipeProto).
class PipeProtocol final : public Protocol {
 public:
  PipeProtocol(std::weak_ptr<ChildTransport> owner, int fd) : owner_(std::move(owner)), fd_(fd) {}
  void data_received(std::string_view data) override;
  bool eof_received() override { return false; }
  void pause_writing() override;
  void resume_writing() override;
  void connection_lost(std::exception_ptr error) override;

 private:
  std::weak_ptr<ChildTransport> owner_;
  int fd_;
};

class ChildTransport final : public SubprocessTransport, public std::enable_shared_from_this<ChildTransport> {
 public:
  ChildTransport(EventLoop& loop, std::shared_ptr<SubprocessProtocol> protocol, detail::SpawnedChild child)
      : loop_(loop), loop_ref_(loop), protocol_(std::move(protocol)), child_(child) {}
  ~ChildTransport() override { detail::close_fd(child_.handle); }

  // ---- BaseTransport ----
  void close() override {
    if (closed_) return;
    closed_ = true;
    for (auto& pipe : pipes_)
      if (pipe && !pipe->is_closing()) pipe->close();
    // asyncio 3.11: a child still running is killed; the watcher reaps it.
    if (!returncode_ && loop_ref_.get()) {
      try {
        detail::signal_child(child_, detail::kill_signal());
      } catch (const std::system_error&) {
      }
    }
  }
  bool is_closing() const noexcept override { return closed_; }
  std::any get_extra_info(std::string_view) const override { return {}; }
  void set_protocol(std::shared_ptr<BaseProtocol> protocol) override {
    SubprocessProtocol* subprocess = protocol ? protocol->as_subprocess_protocol() : nullptr;
    if (!subprocess) throw std::invalid_argument("a subprocess transport needs an aio::SubprocessProtocol");
    protocol_ = std::shared_ptr<SubprocessProtocol>(std::move(protocol), subprocess);
  }
  std::shared_ptr<BaseProtocol> get_protocol() const override { return protocol_; }

  // ---- SubprocessTransport ----
  int get_pid() const noexcept override { return child_.pid; }
  std::optional<int> get_returncode() const noexcept override { return returncode_; }
  std::shared_ptr<Transport> get_pipe_transport(int fd) const override {
    if (fd < 0 || fd > 2) return nullptr;
    return pipes_[static_cast<std::size_t>(fd)];
  }
  void send_signal(int signal) override {
    // Once reaped, nothing (contract 76, as Popen.send_signal): its pid may
    // already be another process's.
    if (returncode_) return;
    detail::signal_child(child_, signal);
  }
  void terminate() override { send_signal(detail::terminate_signal()); }
  void kill() override { send_signal(detail::kill_signal()); }

  // ---- Set-up (subprocess_exec) ----
  void set_pipe(int fd, std::shared_ptr<detail::StreamTransport> pipe) {
    pipes_[static_cast<std::size_t>(fd)] = std::move(pipe);
    ++open_pipes_;
  }
  // Starts watching for the exit (`exit`: the child watcher's, completing
  // with the returncode), then calls connection_made and what came before
  // it, in order; returns once connection_made ran.
  Task<void> start(Task<int> exit) {
    self_ = shared_from_this();
    watcher_ = loop_.create_task(watch(shared_from_this(), std::move(exit)));
    Future<void> made = loop_.create_future<void>();
    loop_.call_soon([self = shared_from_this(), made]() mutable {
      self->connected_ = true;
      try {
        self->protocol_->connection_made(*self);
      } catch (...) {
        self->report(std::current_exception(), "Exception in callback SubprocessProtocol.connection_made()");
      }
      for (auto& call : std::exchange(self->pending_, {})) self->queue(std::move(call));
      if (!made.done()) made.set_result();
    });
    co_await made;
  }
  // A failed or cancelled set-up: no process and no descriptor stays. A
  // protocol whose connection_made ran still gets process_exited and
  // connection_lost; one whose did not, nothing.
  void abandon() noexcept {
    closed_ = true;
    abandoned_ = true;
    if (!connected_) {
      pending_.clear();
      self_.reset();  // nothing will be called: nothing needs it alive
    }
    for (auto& pipe : pipes_)
      if (pipe) pipe->abort();
    if (watcher_) watcher_.cancel();
    if (!returncode_) {
      try {
        detail::signal_child(child_, detail::kill_signal());
      } catch (const std::system_error&) {
      }
      exited(detail::wait_child(child_));
    }
  }

  // ---- From the pipes ----
  void pipe_data(int fd, std::string_view data) {
    // Straight to the protocol when nothing waits before it; else behind
    // what does (the output that came before connection_made, above all),
    // so that the protocol sees the bytes in the order they came.
    if (connected_ && queued_ == 0) {
      protocol_->pipe_data_received(fd, data);
      return;
    }
    call([fd, copy = std::string(data)](ChildTransport& self) { self.protocol_->pipe_data_received(fd, copy); });
  }
  void pipe_lost(int fd, std::exception_ptr error) {
    call([fd, error](ChildTransport& self) {
      self.protocol_->pipe_connection_lost(fd, error);
      --self.open_pipes_;
      self.try_finish();
    });
  }
  void pipe_pause_writing() { protocol_->pause_writing(); }
  void pipe_resume_writing() { protocol_->resume_writing(); }

 private:
  // From the loop, after connection_made (asyncio's _call).
  template <class F>
  void call(F f) {
    auto run = [self = shared_from_this(), f = std::move(f)]() mutable { f(*self); };
    if (connected_)
      queue(std::move(run));
    else if (!abandoned_)
      pending_.emplace_back(std::move(run));
  }
  void queue(detail::Callback run) {
    ++queued_;
    loop_.call_soon([self = shared_from_this(), run = std::move(run)]() mutable {
      --self->queued_;
      run();
    });
  }

  static Task<void> watch(std::shared_ptr<ChildTransport> self, Task<int> exit) {
    int code = 0;
    try {
      code = co_await exit;
    } catch (const CancelledError&) {
      throw;
    } catch (...) {
      // The watch could not be set up (out of descriptors, say): the child
      // is killed and reaped rather than left unwatched.
      self->report(std::current_exception(), "Cannot watch the child process; it is killed");
      try {
        detail::signal_child(self->child_, detail::kill_signal());
      } catch (const std::system_error&) {
      }
      code = detail::wait_child(self->child_);
    }
    self->exited(code);
  }

  void exited(int code) {
    returncode_ = code;
    call([](ChildTransport& self) {
      try {
        self.protocol_->process_exited();
      } catch (...) {
        self.report(std::current_exception(), "Exception in callback SubprocessProtocol.process_exited()");
      }
      self.try_finish();
    });
  }

  void try_finish() {
    if (!returncode_ || open_pipes_ > 0 || finished_) return;
    finished_ = true;
    closed_ = true;
    loop_.call_soon([self = shared_from_this()] {
      try {
        self->protocol_->connection_lost(nullptr);
      } catch (...) {
        self->report(std::current_exception(), "Exception in callback SubprocessProtocol.connection_lost()");
      }
      self->watcher_ = Task<void>();
      self->self_.reset();
    });
  }

  void report(std::exception_ptr error, const char* message) {
    ExceptionContext context;
    context.message = message;
    context.exception = std::move(error);
    context.protocol = protocol_;
    loop_.call_exception_handler(context);
  }

  EventLoop& loop_;
  detail::LoopRef loop_ref_;
  std::shared_ptr<SubprocessProtocol> protocol_;
  detail::SpawnedChild child_;
  std::array<std::shared_ptr<detail::StreamTransport>, 3> pipes_;
  int open_pipes_ = 0;
  std::optional<int> returncode_;
  bool connected_ = false;
  bool closed_ = false;
  bool finished_ = false;
  bool abandoned_ = false;
  std::vector<detail::Callback> pending_;
  // Calls queued with call_soon that have not run yet: pipe data waits
  // behind them (asyncio queues every call; only the order matters).
  std::size_t queued_ = 0;
  Task<void> watcher_;
  // The transport keeps itself alive from start() until connection_lost
  // ran, whoever else lets it go (asyncio's loop holds it likewise).
  std::shared_ptr<ChildTransport> self_;
};

void PipeProtocol::data_received(std::string_view data) {
  if (auto owner = owner_.lock()) owner->pipe_data(fd_, data);
}
void PipeProtocol::pause_writing() {
  if (auto owner = owner_.lock()) owner->pipe_pause_writing();
}
void PipeProtocol::resume_writing() {
  if (auto owner = owner_.lock()) owner->pipe_resume_writing();
}
void PipeProtocol::connection_lost(std::exception_ptr error) {
  if (auto owner = owner_.lock()) owner->pipe_lost(fd_, std::move(error));
}

// The parent's and the child's ends of the three streams, closed unless
// handed on.
struct StdioEnds {
  std::array<fd_t, 3> parent{-1, -1, -1};  // PIPE: the end the parent keeps
  std::array<fd_t, 3> child{-1, -1, -1};   // what the child gets (owned here unless a user's fd)
  std::array<bool, 3> child_owned{false, false, false};
  bool stderr_to_stdout = false;
  ~StdioEnds() {
    for (int i = 0; i < 3; ++i) {
      detail::close_fd(parent[static_cast<std::size_t>(i)]);
      if (child_owned[static_cast<std::size_t>(i)]) detail::close_fd(child[static_cast<std::size_t>(i)]);
    }
  }
  void close_child_ends() {
    for (std::size_t i = 0; i < 3; ++i)
      if (child_owned[i]) detail::close_fd(std::exchange(child[i], -1));
  }
};

void open_stdio(StdioEnds& ends, std::size_t i, const Stdio& stdio) {
  bool child_reads = i == 0;
  switch (stdio.kind()) {
    case Stdio::Kind::inherit:
      return;
    case Stdio::Kind::pipe: {
      std::tie(ends.parent[i], ends.child[i]) = detail::make_stdio_pipe(child_reads);
      ends.child_owned[i] = true;
      return;
    }
    case Stdio::Kind::devnull:
      ends.child[i] = detail::open_devnull(!child_reads);
      ends.child_owned[i] = true;
      return;
    case Stdio::Kind::to_stdout:
      if (i != 2) throw std::invalid_argument("subprocess: STDOUT is only for stderr");
      ends.stderr_to_stdout = true;
      return;
    case Stdio::Kind::fd:
      if (stdio.fd() < 0) throw std::invalid_argument("subprocess: a standard stream's descriptor is negative");
      ends.child[i] = stdio.fd();
      return;
  }
}

}  // namespace

Task<std::pair<std::shared_ptr<SubprocessTransport>, std::shared_ptr<SubprocessProtocol>>> EventLoop::subprocess_exec(
    ProtocolFactory factory, std::string program, std::vector<std::string> args, SubprocessOptions options) {
  check_closed();
  if (!factory) throw std::invalid_argument("subprocess_exec: the protocol factory is empty");
  if (options.env)
    for (const auto& [name, value] : *options.env)
      if (name.empty() || name.find('=') != std::string::npos)
        throw std::invalid_argument(
            "subprocess_exec: an environment variable name must be non-empty, without '=' (got '" + name + "')");
  if (options.stdin_.kind() == Stdio::Kind::to_stdout || options.stdout_.kind() == Stdio::Kind::to_stdout)
    throw std::invalid_argument("subprocess_exec: STDOUT is only for stderr");
  std::shared_ptr<BaseProtocol> base = factory();
  SubprocessProtocol* face = base ? base->as_subprocess_protocol() : nullptr;
  if (!face)
    throw std::invalid_argument(base ? "subprocess_exec: the protocol factory must make an aio::SubprocessProtocol"
                                     : "subprocess_exec: the protocol factory returned null");
  std::shared_ptr<SubprocessProtocol> protocol(base, face);
  std::shared_ptr<SubprocessTransport> transport =
      co_await make_subprocess_transport(protocol, std::move(program), std::move(args), std::move(options));
  co_return std::pair<std::shared_ptr<SubprocessTransport>, std::shared_ptr<SubprocessProtocol>>{std::move(transport),
                                                                                                 std::move(protocol)};
}

Task<std::shared_ptr<SubprocessTransport>> EventLoop::make_subprocess_transport(std::shared_ptr<SubprocessProtocol>,
                                                                                std::string, std::vector<std::string>,
                                                                                SubprocessOptions) {
  throw_no_pipes("subprocess_exec");
}

Task<std::shared_ptr<SubprocessTransport>> EventLoop::start_subprocess(std::shared_ptr<SubprocessProtocol> protocol,
                                                                       std::string program,
                                                                       std::vector<std::string> args,
                                                                       SubprocessOptions options) {
  detail::SpawnRequest request;
  request.program = program;
  request.args.push_back(program);
  for (std::string& arg : args) request.args.push_back(std::move(arg));
  request.cwd = options.cwd;
  if (options.env) {
    request.env.emplace();
    for (const auto& [name, value] : *options.env) request.env->push_back(name + "=" + value);
  }
  request.pass_fds = options.pass_fds;
  request.start_new_session = options.start_new_session;
  request.process_group = options.process_group;

  StdioEnds ends;
  open_stdio(ends, 0, options.stdin_);
  open_stdio(ends, 1, options.stdout_);
  open_stdio(ends, 2, options.stderr_);
  for (std::size_t i = 0; i < 3; ++i) request.stdio[i] = ends.child[i];
  request.stderr_to_stdout = ends.stderr_to_stdout;
  detail::child_watcher_name();  // refuses a bad AIO_CHILD_WATCHER before anything is spawned
  detail::SpawnedChild child = detail::spawn(request);
  ends.close_child_ends();
  auto transport = std::make_shared<ChildTransport>(*this, protocol, child);
  std::exception_ptr failure;
  try {
    for (int fd = 0; fd < 3; ++fd) {
      fd_t end = ends.parent[static_cast<std::size_t>(fd)];
      if (end == -1) continue;
      detail::prepare_pipe(end, "subprocess_exec");
      auto pipe_protocol = std::make_shared<PipeProtocol>(transport, fd);
      std::shared_ptr<detail::StreamTransport> pipe =
          // stdin is our own pipe, whose reader's leaving can be watched
          // (a FIFO; on Windows a duplex named pipe).
          fd == 0 ? make_write_pipe_transport(end, pipe_protocol, true) : make_read_pipe_transport(end, pipe_protocol);
      ends.parent[static_cast<std::size_t>(fd)] = -1;  // the pipe transport owns it now
      transport->set_pipe(fd, pipe);
      co_await detail::start_transport(*this, pipe);
    }
    detail::WaitForHandle wait = [this](fd_t handle) { return wait_for_handle(handle); };
    Task<int> exit = detail::watch_child(*this, std::move(wait), child);
    co_await transport->start(std::move(exit));
  } catch (...) {
    failure = std::current_exception();
  }
  if (failure) {
    transport->abandon();
    std::rethrow_exception(failure);
  }
  co_return transport;
}

Task<std::pair<std::shared_ptr<SubprocessTransport>, std::shared_ptr<SubprocessProtocol>>> EventLoop::subprocess_exec(
    ProtocolFactory factory, std::string program, std::vector<std::string> args) {
  return subprocess_exec(std::move(factory), std::move(program), std::move(args), SubprocessOptions{});
}

Task<std::pair<std::shared_ptr<SubprocessTransport>, std::shared_ptr<SubprocessProtocol>>> EventLoop::subprocess_shell(
    ProtocolFactory factory, std::string cmd, SubprocessOptions options) {
  auto [shell, args] = detail::shell_command(std::move(cmd));
  return subprocess_exec(std::move(factory), std::move(shell), std::move(args), std::move(options));
}

Task<std::pair<std::shared_ptr<SubprocessTransport>, std::shared_ptr<SubprocessProtocol>>> EventLoop::subprocess_shell(
    ProtocolFactory factory, std::string cmd) {
  return subprocess_shell(std::move(factory), std::move(cmd), SubprocessOptions{});
}

}  // namespace aio
