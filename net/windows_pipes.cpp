// Named pipes on the proactor loop (asyncio's start_serving_pipe and
// create_pipe_connection): overlapped ConnectNamedPipe, ReadFile and
// WriteFile on the loop's completion port, and a stream transport whose
// buffer, flow control and close states are detail::StreamTransport's.
//
// A pipe has no zero-byte read that waits for data, so each ReadFile has a
// buffer of its own; what it brought is handed to the protocol (in as many
// pieces as a BufferedProtocol's buffers need), and the next ReadFile is
// posted once the protocol has taken all of it.
#include <backends/syscall.hpp>
#include <core/errors.hpp>
#include <core/tasks.hpp>
#include <net/iocp_operation.hpp>
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
// Per ReadFile, and the pipe's buffer sizes (asyncio uses 8 KiB for both).
constexpr DWORD read_size = 64 * 1024;
constexpr DWORD pipe_buffer = 64 * 1024;

struct HandleCloser {
  void operator()(void* handle) const noexcept { CloseHandle(handle); }
};
using UniqueHandle = std::unique_ptr<void, HandleCloser>;

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

std::shared_ptr<BaseProtocol> make_protocol(const ProtocolFactory& factory, const char* method) {
  if (!factory) throw std::invalid_argument(std::string(method) + ": the protocol factory is empty");
  std::shared_ptr<BaseProtocol> protocol = factory();
  if (!protocol) throw std::invalid_argument(std::string(method) + ": the protocol factory returned null");
  if (!dynamic_cast<Protocol*>(protocol.get()) && !dynamic_cast<BufferedProtocol*>(protocol.get()))
    throw std::invalid_argument(std::string(method) +
                                ": the protocol factory must make an aio::Protocol or aio::BufferedProtocol");
  return protocol;
}

// The other end closed (or never was): end of file for a reader.
bool is_pipe_eof(std::uint32_t error) noexcept {
  return error == ERROR_BROKEN_PIPE || error == ERROR_PIPE_NOT_CONNECTED || error == ERROR_NO_DATA;
}

class PipeTransport final : public detail::ProactorStreamTransport {
 public:
  PipeTransport(ProactorEventLoop& loop, UniqueHandle pipe, std::string address, std::shared_ptr<BaseProtocol> protocol)
      : ProactorStreamTransport(loop, std::move(protocol), "Fatal write error on pipe transport"),
        pipe_(std::move(pipe)),
        address_(std::move(address)) {
    proactor_.associate(as_fd(pipe_.get()));
  }

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
  void engine_start_reading() override {
    reading_ = true;
    deliver();
    if (!read_op_ && !closed_ && data_.empty() && !eof_) post_read();
  }
  void engine_stop_reading() override { reading_ = false; }

  void engine_shutdown_write() override {}  // never called: write_eof() throws
  void engine_close() noexcept override {
    closed_ = true;
    // The operations own their buffers and keep this transport alive until
    // their packets arrive.
    CancelIoEx(pipe_.get(), nullptr);
    pipe_.reset();
  }

  void post_read() {
    auto op = std::make_shared<IocpOperation>(as_fd(pipe_.get()), false);
    op->buffer.resize(read_size);
    if (!ReadFile(pipe_.get(), op->buffer.data(), read_size, nullptr, op->overlapped())) {
      DWORD err = GetLastError();
      if (err != ERROR_IO_PENDING) {
        read_done(err, 0, *op);
        return;
      }
    }
    op->on_complete = [this, self = shared_from_this()](ProactorOperation& done) {
      read_op_.reset();
      if (closed_) return;
      read_done(done.error, done.bytes, static_cast<IocpOperation&>(done));
    };
    read_op_ = op;
    proactor_.started(std::move(op));
  }

  void read_done(std::uint32_t error, std::size_t bytes, IocpOperation& op) {
    if (error != 0 && !is_pipe_eof(error)) {
      try {
        detail::throw_os_error(static_cast<int>(error), "ReadFile (pipe " + address_ + ")");
      } catch (const std::system_error&) {
        fatal_error(std::current_exception(), "Fatal read error on pipe transport");
      }
      return;
    }
    eof_ = error != 0;  // a read of 0 bytes is a writer's empty write, not the end
    data_.assign(op.buffer.data(), bytes);
    deliver();
    if (!eof_ && reading_ && !closed_ && data_.empty() && !read_op_ && !lost_scheduled()) post_read();
  }

  // Hands what the last ReadFile brought to the protocol while it reads,
  // then the end of file, once, if that came.
  void deliver() {
    while (reading_ && !closed_ && !lost_scheduled() && (!data_.empty() || (eof_ && !eof_delivered_))) {
      eof_delivered_ = data_.empty();
      on_readable([this](std::span<char> buffer) -> std::optional<std::size_t> {
        std::size_t n = std::min(buffer.size(), data_.size());
        std::memcpy(buffer.data(), data_.data(), n);
        data_.erase(0, n);
        return n;
      });
    }
  }

  bool start_overlapped_write(IocpOperation& op) override {
    return WriteFile(pipe_.get(), op.buffer.data(), static_cast<DWORD>(op.buffer.size()), nullptr, op.overlapped()) !=
           FALSE;
  }
  fd_t io_handle() const noexcept override { return as_fd(pipe_.get()); }
  bool io_on_socket() const noexcept override { return false; }
  std::string write_call() const override { return "WriteFile (pipe " + address_ + ")"; }

  UniqueHandle pipe_;
  std::string address_;
  std::shared_ptr<IocpOperation> read_op_;
  std::string data_;  // read and not yet taken by the protocol
  bool eof_ = false;  // the other end closed after data_
  bool eof_delivered_ = false;
  bool reading_ = false;
};

// Starts a transport over a connected pipe; returns once connection_made ran.
Task<std::pair<std::shared_ptr<Transport>, std::shared_ptr<BaseProtocol>>> connect_pipe(
    ProactorEventLoop& loop, UniqueHandle pipe, std::string address, std::shared_ptr<BaseProtocol> protocol) {
  auto transport = std::make_shared<PipeTransport>(loop, std::move(pipe), std::move(address), protocol);
  Future<void> made = loop.create_future<void>();
  transport->start([made]() mutable {
    if (!made.done()) made.set_result();
  });
  co_await made;
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
  NamedPipeServer(ProactorEventLoop& loop, ProtocolFactory factory, std::string address, std::wstring name)
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
  static Task<void> accept_loop(std::weak_ptr<NamedPipeServer> weak, ProactorEventLoop& loop) {
    for (;;) {
      std::shared_ptr<IocpOperation> op;
      std::string what;
      if (auto self = weak.lock(); self && !self->closed_) {
        what = "ConnectNamedPipe (" + self->address_ + ")";
        op = detail::new_operation(loop, as_fd(self->waiting_.get()), false);
        bool ok = ConnectNamedPipe(self->waiting_.get(), op->overlapped()) != FALSE;
        // ERROR_PIPE_CONNECTED: a client came before the call; no packet follows.
        if (!ok && GetLastError() == ERROR_PIPE_CONNECTED)
          op.reset();
        else
          detail::check_started(loop, op, ok, what);
      } else {
        co_return;
      }
      try {
        if (op) co_await detail::completion(loop, op, what);
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
      protocol = make_protocol(factory_, "start_serving_pipe");
    } catch (...) {
      report("Protocol factory failed for a client of pipe ");
      return;  // `pipe` closes here
    }
    auto transport = std::make_shared<PipeTransport>(loop_, std::move(pipe), address_, std::move(protocol));
    transport->start({});
  }

  ProactorEventLoop& loop_;
  ProtocolFactory factory_;
  std::string address_;
  std::wstring name_;
  UniqueHandle waiting_;  // the instance a client connects to next
  Task<void> accepting_;
  bool closed_ = false;
};

}  // namespace

Task<std::shared_ptr<PipeServer>> ProactorEventLoop::start_serving_pipe(ProtocolFactory factory, std::string address) {
  check_closed();
  std::wstring name = pipe_name(address, "start_serving_pipe");
  if (!factory) throw std::invalid_argument("start_serving_pipe: the protocol factory is empty");
  auto server = std::make_shared<NamedPipeServer>(*this, std::move(factory), address, name);
  server->start();
  co_return server;
}

Task<std::pair<std::shared_ptr<Transport>, std::shared_ptr<BaseProtocol>>> ProactorEventLoop::create_pipe_connection(
    ProtocolFactory factory, std::string address) {
  check_closed();
  std::wstring name = pipe_name(address, "create_pipe_connection");
  if (!factory) throw std::invalid_argument("create_pipe_connection: the protocol factory is empty");
  double delay = 0.001;
  for (;;) {
    HANDLE pipe = CreateFileW(name.c_str(), GENERIC_READ | GENERIC_WRITE, 0, nullptr, OPEN_EXISTING,
                              FILE_FLAG_OVERLAPPED, nullptr);
    if (pipe != INVALID_HANDLE_VALUE) {
      UniqueHandle connected(pipe);
      std::shared_ptr<BaseProtocol> protocol = make_protocol(factory, "create_pipe_connection");
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
