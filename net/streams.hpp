// Streams: asyncio's high-level coroutine API over a transport and protocol
// (open_connection, start_server, StreamReader, StreamWriter).
#pragma once

#include <core/event_loop.hpp>
#include <net/server.hpp>
#include <net/transports.hpp>

#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace aio {

namespace detail {
struct ReaderState;
class StreamProtocol;
}  // namespace detail

inline constexpr std::size_t stream_default_limit = 64 * 1024;  // asyncio's _DEFAULT_LIMIT

// The reading half of a stream connection. A copyable handle: copies share
// one buffer. Reads throw the connection's error if it broke, and only one
// coroutine may wait for data at a time (std::runtime_error otherwise).
class StreamReader {
 public:
  // Up to `n` bytes (at least one unless at end of file, then empty); with
  // n < 0, everything until end of file.
  Task<std::string> read(long long n = -1);
  // Up to and including the next '\n'; at end of file what is left (maybe
  // empty). LimitOverrunError when the line exceeds the limit (the data is
  // then dropped, up to the separator if it was found).
  Task<std::string> readline();
  // Exactly `n` bytes, or IncompleteReadError at end of file;
  // std::invalid_argument for n < 0 (asyncio's ValueError).
  Task<std::string> readexactly(long long n);
  // Up to and including `separator`; IncompleteReadError at end of file,
  // LimitOverrunError past the limit (the data stays in the buffer).
  Task<std::string> readuntil(std::string separator = "\n");
  // True once end of file was reached and the buffer is empty.
  bool at_eof() const noexcept;

  // What the protocol feeds (public as in asyncio, for tests and adapters).
  void feed_data(std::string_view data);
  void feed_eof();
  void set_exception(std::exception_ptr error);

  explicit StreamReader(std::size_t limit = stream_default_limit);

 private:
  friend class detail::StreamProtocol;
  friend class StreamWriter;
  Task<void> wait_for_data(const char* method);
  std::shared_ptr<detail::ReaderState> state_;
};

// The writing half. A copyable handle to the transport: copies share it,
// including the TLS transport start_tls puts in its place.
class StreamWriter {
 public:
  void write(std::string_view data) { current().write(data); }
  void writelines(std::span<const std::string_view> lines) { current().writelines(lines); }
  void write_eof() { current().write_eof(); }
  bool can_write_eof() const noexcept { return current().can_write_eof(); }
  void close() { current().close(); }
  bool is_closing() const noexcept { return current().is_closing(); }
  // Waits until the write buffer is below its low-water mark; throws the
  // connection's error (std::system_error connection_reset if it was lost
  // without one) once the connection is gone.
  Task<void> drain();
  // Waits until the connection is closed.
  Task<void> wait_closed();
  std::any get_extra_info(std::string_view name) const { return current().get_extra_info(name); }
  Transport& transport() const noexcept { return current(); }
  // Upgrades the connection to TLS (asyncio's StreamWriter.start_tls): the
  // server side of the handshake on a connection start_server accepted, the
  // client side otherwise. Drains first; bytes the StreamReader holds
  // unread go to TLS (a ClientHello that came with a PROXY line). Arguments
  // and errors as EventLoop::start_tls.
  Task<void> start_tls(SSLContext* sslcontext, std::optional<std::string_view> server_hostname = std::nullopt,
                       std::optional<double> ssl_handshake_timeout = std::nullopt,
                       std::optional<double> ssl_shutdown_timeout = std::nullopt);

  StreamWriter(std::shared_ptr<Transport> transport, std::shared_ptr<detail::StreamProtocol> protocol,
               StreamReader reader);

 private:
  Transport& current() const noexcept { return **transport_; }

  std::shared_ptr<std::shared_ptr<Transport>> transport_;
  std::shared_ptr<detail::StreamProtocol> protocol_;
  StreamReader reader_;
};

// Connects to host:port and returns the stream pair.
Task<std::pair<StreamReader, StreamWriter>> open_connection(std::string host, int port, ConnectOptions options = {},
                                                            std::size_t limit = stream_default_limit);

// Connects to the Unix-domain stream socket at `path` (POSIX); TLS with
// options.ssl.
Task<std::pair<StreamReader, StreamWriter>> open_unix_connection(std::string path, SSLOptions options = {},
                                                                 std::size_t limit = stream_default_limit);

// Runs `client_connected(reader, writer)` as a task for each connection. An
// exception escaping it is reported and closes that connection. An empty
// client_connected is std::invalid_argument (thrown at once, not by the task).
using ClientConnected = std::function<Task<void>(StreamReader, StreamWriter)>;
Task<std::shared_ptr<Server>> start_server(ClientConnected client_connected, std::string host, int port,
                                           ServerOptions options = {}, std::size_t limit = stream_default_limit);
// The same on a Unix-domain stream socket at `path` (POSIX).
Task<std::shared_ptr<Server>> start_unix_server(ClientConnected client_connected, std::string path,
                                                UnixServerOptions options = {},
                                                std::size_t limit = stream_default_limit);

}  // namespace aio
