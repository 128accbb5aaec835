// Named pipes on the Windows loop (asyncio's start_serving_pipe and
// create_pipe_connection): an overlapped ConnectNamedPipe on the loop's
// IocpProactor, and the proactor stream transport over the pipe handle (its
// reads and writes are the proactor's read and write operations).
#include <backends/syscall.hpp>
#include <backends/windows_event_loop.hpp>
#include <backends/windows_handle.hpp>
#include <core/errors.hpp>
#include <core/tasks.hpp>
#include <net/proactor_stream_transport.hpp>
#include <net/protocols.hpp>

#include <windows.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

namespace aio {
namespace {

constexpr std::string_view pipe_prefix = R"(\\.\pipe\)";
// The pipe's buffer sizes (asyncio uses 8 KiB for both).
constexpr DWORD pipe_buffer = 64 * 1024;

using detail::UniqueHandle;

fd_t as_fd(HANDLE handle) { return reinterpret_cast<fd_t>(handle); }

std::wstring pipe_name(const std::string& address, const char* method) {
  if (address.size() <= pipe_prefix.size() || address.compare(0, pipe_prefix.size(), pipe_prefix) != 0)
    throw std::invalid_argument(std::string(method) + ": a pipe name has the form \\\\.\\pipe\\NAME (got '" + address +
                                "')");
  int n =
      MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, address.data(), static_cast<int>(address.size()), nullptr, 0);
  if (n <= 0) throw std::invalid_argument(std::string(method) + ": the pipe name is not valid UTF-8");
  std::wstring wide(static_cast<std::size_t>(n), L'\0');
  MultiByteToWideChar(CP_UTF8, 0, address.data(), static_cast<int>(address.size()), wide.data(), n);
  return wide;
}

class PipeTransport final : public detail::ProactorStreamTransport {
 public:
  PipeTransport(WindowsProactorEventLoop& loop, UniqueHandle pipe, std::string address,
                std::shared_ptr<BaseProtocol> protocol)
      : ProactorStreamTransport(loop, std::move(protocol), as_fd(pipe.get()), false, "pipe " + address),
        pipe_(std::move(pipe)),
        address_(std::move(address)) {}

  std::any get_extra_info(std::string_view name) const override {
    if (name == "pipe" && pipe_) return as_fd(pipe_.get());
    if (name == "addr") return address_;
    return {};
  }
  bool can_write_eof() const noexcept override { return false; }
  void write_eof() override {
    throw NotImplementedError("write_eof: a named pipe has no half-close (can_write_eof() is false)");
  }

 private:
  void engine_shutdown_write() override {}  // never called: write_eof() throws
  void close_handle() noexcept override { pipe_.reset(); }

  UniqueHandle pipe_;
  std::string address_;
};

// Starts a transport over a connected pipe; returns once connection_made ran.
Task<std::pair<std::shared_ptr<Transport>, std::shared_ptr<BaseProtocol>>> connect_pipe(
    WindowsProactorEventLoop& loop, UniqueHandle pipe, std::string address, std::shared_ptr<BaseProtocol> protocol) {
  auto transport = std::make_shared<PipeTransport>(loop, std::move(pipe), std::move(address), protocol);
  co_await detail::start_transport(loop, transport);
  co_return std::pair<std::shared_ptr<Transport>, std::shared_ptr<BaseProtocol>>{std::move(transport),
                                                                                 std::move(protocol)};
}

UniqueHandle create_instance(const std::wstring& name, const std::string& address, bool first) {
  DWORD open_mode = PIPE_ACCESS_DUPLEX | FILE_FLAG_OVERLAPPED | (first ? FILE_FLAG_FIRST_PIPE_INSTANCE : 0);
  HANDLE pipe = CreateNamedPipeW(name.c_str(), open_mode,
                                 PIPE_TYPE_BYTE | PIPE_READMODE_BYTE | PIPE_WAIT | PIPE_REJECT_REMOTE_CLIENTS,
                                 PIPE_UNLIMITED_INSTANCES, pipe_buffer, pipe_buffer, 0, nullptr);
  if (pipe == INVALID_HANDLE_VALUE) {
    DWORD err = GetLastError();
    // FILE_FLAG_FIRST_PIPE_INSTANCE fails so when the name exists already.
    std::string why = first && err == ERROR_ACCESS_DENIED ? " (is the name taken?)" : "";
    detail::throw_os_error(static_cast<int>(err), "CreateNamedPipe (" + address + ")" + why);
  }
  return UniqueHandle(pipe);
}

class NamedPipeServer final : public PipeServer, public std::enable_shared_from_this<NamedPipeServer> {
 public:
  NamedPipeServer(WindowsProactorEventLoop& loop, ProtocolFactory factory, std::string address, std::wstring name)
      : loop_(loop), factory_(std::move(factory)), address_(std::move(address)), name_(std::move(name)) {}

  const std::string& address() const noexcept override { return address_; }
  bool closed() const noexcept override { return closed_; }
  void close() override {
    if (closed_) return;
    closed_ = true;
    // Closed here, not when the accepting task gets to run: a client that
    // opens the pipe from now on must not find this instance. Its pending
    // ConnectNamedPipe still completes (aborted) into the operation.
    CancelIoEx(waiting_.get(), nullptr);
    waiting_.reset();
    accepting_.cancel();
  }

  void start() {
    waiting_ = create_instance(name_, address_, true);
    accepting_ = loop_.create_task(accept_loop(weak_from_this(), loop_));
  }

 private:
  // The server is not kept alive while it waits; close() cancels this task.
  static Task<void> accept_loop(std::weak_ptr<NamedPipeServer> weak, WindowsProactorEventLoop& loop) {
    std::shared_ptr<ProactorOperation> op = loop.proactor().make_operation();
    for (;;) {
      std::string what;
      fd_t instance = -1;
      if (auto self = weak.lock(); self && !self->closed_) {
        what = "ConnectNamedPipe (" + self->address_ + ")";
        instance = as_fd(self->waiting_.get());
      } else {
        co_return;
      }
      try {
        co_await loop.perform(
            *op, [&] { loop.iocp().connect_pipe(*op, instance); }, std::move(what));
      } catch (const std::system_error&) {
        if (auto self = weak.lock(); self && !self->closed_) self->report("Accept failed on pipe server ");
        co_return;
      }
      auto self = weak.lock();
      if (!self || self->closed_) co_return;
      UniqueHandle connected;
      try {
        connected = std::exchange(self->waiting_, create_instance(self->name_, self->address_, false));
      } catch (const std::system_error&) {
        self->report("Cannot make the next instance of pipe ");
        co_return;
      }
      self->attach(std::move(connected));
    }
  }

  // From a handler: the current exception to the loop's exception handler.
  void report(const std::string& what) {
    ExceptionContext context;
    context.message = what + address_;
    context.exception = std::current_exception();
    loop_.call_exception_handler(context);
  }

  void attach(UniqueHandle pipe) {
    std::shared_ptr<BaseProtocol> protocol;
    try {
      protocol = detail::make_stream_protocol(factory_, "start_serving_pipe");
    } catch (...) {
      report("Protocol factory failed for a client of pipe ");
      return;  // `pipe` closes here
    }
    auto transport = std::make_shared<PipeTransport>(loop_, std::move(pipe), address_, std::move(protocol));
    transport->start({});
  }

  WindowsProactorEventLoop& loop_;
  ProtocolFactory factory_;
  std::string address_;
  std::wstring name_;
  UniqueHandle waiting_;  // the instance a client connects to next
  Task<void> accepting_;
  bool closed_ = false;
};

}  // namespace

Task<std::shared_ptr<PipeServer>> WindowsProactorEventLoop::start_serving_pipe(ProtocolFactory factory,
                                                                               std::string address) {
  check_closed();
  std::wstring name = pipe_name(address, "start_serving_pipe");
  if (!factory) throw std::invalid_argument("start_serving_pipe: the protocol factory is empty");
  auto server = std::make_shared<NamedPipeServer>(*this, std::move(factory), address, name);
  server->start();
  co_return server;
}

Task<std::pair<std::shared_ptr<Transport>, std::shared_ptr<BaseProtocol>>>
WindowsProactorEventLoop::create_pipe_connection(ProtocolFactory factory, std::string address) {
  check_closed();
  std::wstring name = pipe_name(address, "create_pipe_connection");
  if (!factory) throw std::invalid_argument("create_pipe_connection: the protocol factory is empty");
  double delay = 0.001;
  for (;;) {
    HANDLE pipe = CreateFileW(name.c_str(), GENERIC_READ | GENERIC_WRITE, 0, nullptr, OPEN_EXISTING,
                              FILE_FLAG_OVERLAPPED, nullptr);
    if (pipe != INVALID_HANDLE_VALUE) {
      UniqueHandle connected(pipe);
      std::shared_ptr<BaseProtocol> protocol = detail::make_stream_protocol(factory, "create_pipe_connection");
      co_return co_await connect_pipe(*this, std::move(connected), std::move(address), std::move(protocol));
    }
    DWORD err = GetLastError();
    if (err != ERROR_PIPE_BUSY) detail::throw_os_error(static_cast<int>(err), "CreateFile (pipe " + address + ")");
    // Every instance has a client: the server makes the next one soon.
    co_await aio::sleep(delay);
    delay = std::min(delay * 2, 0.1);
  }
}

}  // namespace aio
