// The loop's sock_sendfile and sendfile, written once over the OS calls of
// backends/sendfile.cpp: natively where the OS can, else (with fallback)
// reading the file and sending what was read, as asyncio's
// _sock_sendfile_fallback and _sendfile_fallback do.
#include <backends/sendfile.hpp>
#include <core/tasks.hpp>
#include <net/loop_access.hpp>
#include <net/sock_ops.hpp>
#include <net/socket.hpp>
#include <net/ssl_protocol.hpp>
#include <net/stream_transport.hpp>

#ifdef _WIN32
#include <winsock2.h>
#else
#include <sys/socket.h>
#endif

#include <algorithm>
#include <cstdint>
#include <exception>
#include <limits>
#include <stdexcept>
#include <string>

namespace aio {

namespace {

// asyncio's SENDFILE_FALLBACK_READBUFFER_SIZE.
constexpr std::size_t fallback_chunk = 256 * 1024;

// asyncio's _check_sendfile_params, for what the C++ types leave open;
// returns whether `file` is a regular file.
bool check_file(int file, std::size_t offset, std::optional<std::size_t> count, const char* method) {
  std::string name(method);
  if (file < 0) throw std::invalid_argument(name + ": invalid file descriptor " + std::to_string(file));
  if (count && *count == 0) throw std::invalid_argument(name + ": count must be a positive integer (got 0)");
  // A negative offset reaches here converted; off_t holds no more either.
  if (offset > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
    throw std::invalid_argument(name + ": offset must be a non-negative integer (got " +
                                std::to_string(static_cast<std::int64_t>(offset)) + ")");
  return detail::is_regular_file(file, method);
}

// The fallback reads from `offset` on: a regular file is positioned there;
// anything else can only be read from where it is.
void start_reading(int file, bool regular, std::uint64_t offset, const char* method) {
  if (regular)
    detail::seek_file(file, offset);
  else if (offset != 0)
    throw std::invalid_argument(std::string(method) +
                                ": offset must be 0 for a file that cannot seek (not a regular file)");
}

// The fallback's next chunk of `file`, `sent` bytes in: empty at the end of
// the file or of `count`.
std::string next_chunk(int file, std::optional<std::size_t> count, std::size_t sent) {
  std::size_t want = count ? std::min(fallback_chunk, *count - sent) : fallback_chunk;
  std::string chunk(want, '\0');
  if (want) chunk.resize(detail::read_file(file, chunk.data(), want));
  return chunk;
}

// Sends natively (EventLoop::sendfile_native) until `count` bytes (or the
// rest of the file) went, counting them in `sent`. SendfileNotAvailableError
// when the loop cannot, or the OS refuses before the first byte. With a
// `transport`, its buffer is flushed first, and its close fails the call
// with the error the connection was lost with.
Task<void> send_native(EventLoop& loop, fd_t sock, int file, bool regular, std::uint64_t offset,
                       std::optional<std::size_t> count, detail::StreamTransport* transport, std::size_t& sent) {
  if (!regular) throw SendfileNotAvailableError("not a regular file: sendfile reads regular files only");
  if (sock == -1) throw SendfileNotAvailableError("this transport has no socket to sendfile to");
  if (transport) co_await transport->sendfile_flushed();
  while (!count || sent < *count) {
    if (transport) transport->sendfile_check_open();
    std::size_t n = 0;
    try {
      n = co_await detail::LoopAccess::sendfile_native(loop, sock, file, offset + sent,
                                                       count ? *count - sent : SIZE_MAX, transport);
    } catch (const std::system_error& e) {
      if (transport) transport->sendfile_check_open();  // closing it is what failed the send
      if (sent == 0 && detail::sendfile_refused(e.code()))
        throw SendfileNotAvailableError(std::string("the OS refused this file and socket: ") + e.what());
      throw;
    }
    if (n == 0) break;  // end of file
    sent += n;
  }
}

// Reads `file` in chunks on the loop's thread, as the native call reads it
// in the kernel, and sends each: with sock_sendall, or through the transport,
// waiting while its buffer is above the high-water mark, then until it is
// flushed. Counts in `sent` what was sent (or buffered).
Task<void> send_fallback(EventLoop& loop, Socket* sock, detail::StreamTransport* transport, int file, bool regular,
                         std::uint64_t offset, std::optional<std::size_t> count, std::size_t& sent,
                         const char* method) {
  start_reading(file, regular, offset, method);
  for (;;) {
    std::string chunk = next_chunk(file, count, sent);
    if (chunk.empty()) break;  // end of file, or count reached
    std::size_t got = chunk.size();
    if (transport) {
      transport->sendfile_check_open();
      transport->sendfile_write(chunk);
      co_await transport->sendfile_drained();
    } else {
      co_await loop.sock_sendall(*sock, std::move(chunk));
    }
    sent += got;
  }
  if (transport) co_await transport->sendfile_flushed();
}

// Natively, else (if allowed) by the fallback, to `sock` or through
// `transport`; then leaves a regular file's position after what was sent,
// as asyncio does however the call ends (a pipe has none).
Task<std::size_t> send_file(EventLoop& loop, Socket* sock, detail::StreamTransport* transport, int file, bool regular,
                            std::uint64_t offset, std::optional<std::size_t> count, bool fallback, const char* method) {
  std::size_t sent = 0;
  std::exception_ptr error;
  try {
    bool native = true;
    try {
      fd_t native_sock = sock ? sock->fileno() : transport->sendfile_socket();
      co_await send_native(loop, native_sock, file, regular, offset, count, transport, sent);
    } catch (const SendfileNotAvailableError&) {
      if (!fallback) throw;
      native = false;
    }
    if (!native) co_await send_fallback(loop, sock, transport, file, regular, offset, count, sent, method);
  } catch (...) {
    error = std::current_exception();
  }
  if (regular) {
    try {
      detail::seek_file(file, offset + sent);
    } catch (const std::system_error&) {
      if (!error) throw;
    }
  }
  if (error) std::rethrow_exception(error);
  co_return sent;
}

}  // namespace

Task<std::size_t> EventLoop::sock_sendfile(Socket& sock, int file, std::size_t offset, std::optional<std::size_t> count,
                                           bool fallback) {
  detail::check_sock(*this, sock, "sock_sendfile");
  if (sock.get_option(SOL_SOCKET, SO_TYPE) != SOCK_STREAM)
    throw std::invalid_argument("sock_sendfile: only SOCK_STREAM type sockets are supported");
  if (detail::socket_is_blocking(sock.fileno()))
    throw std::invalid_argument("sock_sendfile: the socket must be non-blocking");
  bool regular = check_file(file, offset, count, "sock_sendfile");
  co_return co_await send_file(*this, &sock, nullptr, file, regular, offset, count, fallback, "sock_sendfile");
}

namespace {

// asyncio's _SendfileFallbackProtocol: stands in for the protocol of a
// transport that has no sendfile of its own (a TLS one) while the file goes
// through write(), so that the sendfile, not the application, sees
// pause_writing / resume_writing; the application's protocol gets them
// afterwards if they are owed.
struct FallbackProtocol final : Protocol {
  explicit FallbackProtocol(std::shared_ptr<BaseProtocol> app) : app(std::move(app)) {}
  std::shared_ptr<BaseProtocol> app;
  Future<void> writable;  // pending while the transport is paused
  bool paused = false;
  bool lost = false;
  std::exception_ptr lost_error;

  void pause_writing() override {
    paused = true;
    writable = get_running_loop().create_future<void>();
  }
  void resume_writing() override {
    paused = false;
    if (writable && !writable.done()) writable.set_result();
  }
  void data_received(std::string_view) override {}  // reading is paused meanwhile
  void connection_lost(std::exception_ptr error) override {
    lost = true;
    lost_error = error;
    if (writable && !writable.done()) writable.set_result();
    app->connection_lost(error);  // the connection was the application's
  }
  void check_open(Transport& transport) const {
    if (lost_error) std::rethrow_exception(lost_error);
    if (lost || transport.is_closing())
      throw std::system_error(std::make_error_code(std::errc::connection_aborted), "sendfile: connection closed");
  }
};

// The file, read in chunks and written through `transport`, waiting while
// its buffer is above the high-water mark; returns how much was written.
Task<std::size_t> sendfile_through(std::shared_ptr<Transport> transport, int file, bool regular, std::uint64_t offset,
                                   std::optional<std::size_t> count) {
  start_reading(file, regular, offset, "sendfile");
  std::shared_ptr<BaseProtocol> app = transport->get_protocol();
  auto stand_in = std::make_shared<FallbackProtocol>(app);
  bool was_reading = transport->is_reading();
  transport->pause_reading();
  transport->set_protocol(stand_in);
  std::size_t sent = 0;
  std::exception_ptr error;
  try {
    for (;;) {
      std::string chunk = next_chunk(file, count, sent);
      if (chunk.empty()) break;  // end of file, or count reached
      stand_in->check_open(*transport);
      if (stand_in->paused) co_await stand_in->writable;
      stand_in->check_open(*transport);
      transport->write(chunk);
      sent += chunk.size();
    }
  } catch (...) {
    error = std::current_exception();
  }
  if (!stand_in->lost) {
    transport->set_protocol(app);
    if (was_reading) transport->resume_reading();
    if (stand_in->paused) app->pause_writing();  // the application's turn to wait
  }
  if (regular) detail::seek_file(file, offset + sent);
  if (error) std::rethrow_exception(error);
  co_return sent;
}

}  // namespace

Task<std::size_t> EventLoop::sendfile(Transport& transport, int file, std::size_t offset,
                                      std::optional<std::size_t> count, bool fallback) {
  detail::StreamTransport* stream = transport.stream_transport();
  if (!stream && transport.is_tls()) {
    // A TLS transport encrypts what it sends: only the fallback can (as asyncio's).
    if (transport.is_closing()) throw std::runtime_error("Transport is closing");
    bool regular = check_file(file, offset, count, "sendfile");
    if (!fallback) throw SendfileNotAvailableError("sendfile: a TLS transport has no native sendfile");
    std::shared_ptr<Transport> shared = detail::share_transport(transport, "sendfile");
    co_return co_await sendfile_through(std::move(shared), file, regular, offset, count);
  }
  if (!stream)
    throw std::runtime_error(
        "sendfile is not supported for this transport: it is neither a stream nor a TLS transport of this library");
  if (stream->is_closing()) throw std::runtime_error("Transport is closing");
  bool regular = check_file(file, offset, count, "sendfile");
  std::shared_ptr<Transport> keep_alive = stream->shared_from_this();
  stream->begin_sendfile();
  bool resume_reading = stream->is_reading();
  stream->pause_reading();
  std::size_t sent = 0;
  std::exception_ptr error;
  try {
    sent = co_await send_file(*this, nullptr, stream, file, regular, offset, count, fallback, "sendfile");
  } catch (...) {
    error = std::current_exception();
  }
  stream->end_sendfile();
  if (resume_reading) stream->resume_reading();
  if (error) std::rethrow_exception(error);
  co_return sent;
}

}  // namespace aio
