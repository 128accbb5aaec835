#include <core/log.hpp>
#include <core/tasks.hpp>
#include <net/ssl_protocol.hpp>
#include <net/start_tls.hpp>
#include <net/stream_protocol.hpp>
#include <net/stream_transport.hpp>
#include <net/streams.hpp>

#include <stdexcept>
#include <system_error>
#include <vector>

namespace aio {

namespace detail {

struct ReaderState {
  std::string buffer;
  std::size_t limit;
  bool eof = false;
  std::exception_ptr error;
  Future<void> waiter;             // the one coroutine waiting for data, if any
  Transport* transport = nullptr;  // for flow control; valid until connection_lost
  bool paused = false;

  void wake() {
    if (waiter && !waiter.done()) waiter.set_result();
  }
  void maybe_resume() {
    if (paused && buffer.size() <= limit) {
      paused = false;
      if (transport) transport->resume_reading();
    }
  }
  void check_error() const {
    if (error) std::rethrow_exception(error);
  }
  std::string take(std::size_t n) {
    std::string out;
    if (n >= buffer.size())
      out.swap(buffer);  // all of it: hand the buffer over instead of copying
    else {
      out = buffer.substr(0, n);
      buffer.erase(0, n);
    }
    maybe_resume();
    return out;
  }
};

void StreamProtocol::connection_made(Transport& transport) {
  loop_ = &get_running_loop();
  reader_.state_->transport = &transport;
  over_ssl_ = transport.get_extra_info("sslcontext").has_value();
  closed_ = loop_->create_future<void>();
  if (!client_connected_) return;
  // The writer shares ownership of the transport.
  std::shared_ptr<Transport> owner = share_transport(transport, "start_server");
  StreamWriter writer(owner, shared_from_this(), reader_);
  auto task = loop_->create_task(client_connected_(reader_, writer));
  task.add_done_callback([owner](const AnyFuture& done) {
    if (done.cancelled() || !done.exception()) return;
    ExceptionContext context;
    context.message = "Unhandled exception in client_connected_cb";
    context.exception = done.exception();
    context.transport = owner;
    done.get_loop().call_exception_handler(context);
    owner->close();
  });
}

void StreamProtocol::connection_lost(std::exception_ptr error) {
  if (error)
    reader_.set_exception(error);
  else
    reader_.feed_eof();
  reader_.state_->transport = nullptr;
  lost_ = true;
  lost_error_ = error;
  wake_drainers();
  if (closed_ && !closed_.done()) closed_.set_result();
}

}  // namespace detail

// ---- StreamReader ---------------------------------------------------------

StreamReader::StreamReader(std::size_t limit) : state_(std::make_shared<detail::ReaderState>()) {
  if (limit == 0) throw std::invalid_argument("StreamReader: limit must be > 0");
  state_->limit = limit;
}

bool StreamReader::at_eof() const noexcept { return state_->eof && state_->buffer.empty(); }

void StreamReader::feed_data(std::string_view data) {
  if (data.empty()) return;
  auto& s = *state_;
  s.buffer += data;
  s.wake();
  if (s.transport && !s.paused && s.buffer.size() > 2 * s.limit) {
    s.transport->pause_reading();
    s.paused = true;
  }
}

void StreamReader::feed_eof() {
  state_->eof = true;
  state_->wake();
}

void StreamReader::set_exception(std::exception_ptr error) {
  auto& s = *state_;
  s.error = error;
  if (s.waiter && !s.waiter.done()) s.waiter.set_exception(error);
}

Task<void> StreamReader::wait_for_data(const char* method) {
  auto& s = *state_;
  if (s.waiter)
    throw std::runtime_error(std::string(method) +
                             "() called while another coroutine is already waiting for incoming data");
  if (s.paused) {
    s.paused = false;
    if (s.transport) s.transport->resume_reading();
  }
  s.waiter = get_running_loop().create_future<void>();
  detail::ScopeExit reset([&s] { s.waiter = Future<void>(); });
  co_await s.waiter;
}

Task<std::string> StreamReader::read(long long n) {
  auto& s = *state_;
  s.check_error();
  if (n == 0) co_return std::string();
  if (n < 0) {
    std::string all;
    for (;;) {
      std::string block = co_await read(static_cast<long long>(s.limit));
      if (block.empty()) break;
      all += block;
    }
    co_return all;
  }
  if (s.buffer.empty() && !s.eof) co_await wait_for_data("read");
  co_return s.take(static_cast<std::size_t>(n));
}

Task<std::string> StreamReader::readexactly(long long n) {
  // A negative size would wait for ever, buffering all the peer sends.
  if (n < 0) throw std::invalid_argument("readexactly: size " + std::to_string(n) + " can not be less than zero");
  const auto want = static_cast<std::size_t>(n);
  auto& s = *state_;
  s.check_error();
  while (s.buffer.size() < want) {
    if (s.eof) {
      std::string partial = std::move(s.buffer);
      s.buffer.clear();
      throw IncompleteReadError(std::move(partial), want);
    }
    co_await wait_for_data("readexactly");
  }
  co_return s.take(want);
}

Task<std::string> StreamReader::readuntil(std::string separator) {
  if (separator.empty()) throw std::invalid_argument("readuntil: the separator must not be empty");
  auto& s = *state_;
  s.check_error();
  std::size_t offset = 0, found;
  for (;;) {
    if (s.buffer.size() - offset >= separator.size()) {
      found = s.buffer.find(separator, offset);
      if (found != std::string::npos) break;
      offset = s.buffer.size() + 1 - separator.size();
      if (offset > s.limit) throw LimitOverrunError("Separator is not found, and chunk exceed the limit", offset);
    }
    if (s.eof) {
      std::string partial = std::move(s.buffer);
      s.buffer.clear();
      throw IncompleteReadError(std::move(partial), std::nullopt);
    }
    co_await wait_for_data("readuntil");
  }
  if (found > s.limit) throw LimitOverrunError("Separator is found, but chunk is longer than limit", found);
  co_return s.take(found + separator.size());
}

Task<std::string> StreamReader::readline() {
  auto& s = *state_;
  std::optional<std::size_t> overrun;
  std::string message;
  try {
    co_return co_await readuntil("\n");
  } catch (const IncompleteReadError& e) {
    co_return e.partial;
  } catch (const LimitOverrunError& e) {
    overrun = e.consumed;
    message = e.what();
  }
  // Drop the overlong line (through its separator when it was found).
  if (s.buffer.compare(*overrun, 1, "\n") == 0)
    s.buffer.erase(0, *overrun + 1);
  else
    s.buffer.clear();
  s.maybe_resume();
  throw LimitOverrunError(message, *overrun);
}

// ---- StreamWriter ---------------------------------------------------------

StreamWriter::StreamWriter(std::shared_ptr<Transport> transport, std::shared_ptr<detail::StreamProtocol> protocol,
                           StreamReader reader)
    : transport_(std::make_shared<std::shared_ptr<Transport>>(std::move(transport))),
      protocol_(std::move(protocol)),
      reader_(std::move(reader)) {}

Task<void> StreamWriter::drain() {
  reader_.state_->check_error();
  if (current().is_closing()) co_await sleep(0);  // let connection_lost run first, as asyncio
  co_await protocol_->drain_helper();
}

Task<void> StreamWriter::start_tls(SSLContext* sslcontext, std::optional<std::string_view> server_hostname,
                                   std::optional<double> ssl_handshake_timeout,
                                   std::optional<double> ssl_shutdown_timeout) {
  StartTLSOptions options;
  options.server_side = protocol_->serving();
  options.server_hostname = server_hostname;
  options.ssl_handshake_timeout = ssl_handshake_timeout;
  options.ssl_shutdown_timeout = ssl_shutdown_timeout;
  co_await drain();
  // What the reader holds unread is the start of the TLS stream (contract 61).
  std::string already_read;
  already_read.swap(reader_.state_->buffer);
  Task<std::shared_ptr<Transport>> upgrade =
      detail::start_tls(get_running_loop(), current(), protocol_, sslcontext, options, std::move(already_read));
  std::shared_ptr<Transport> tls = co_await std::move(upgrade);
  *transport_ = tls;
  reader_.state_->transport = tls.get();
  protocol_->set_over_ssl();
}

Task<void> StreamWriter::wait_closed() { return protocol_->wait_closed(); }

// ---- Functions ------------------------------------------------------------

namespace {

// The stream pair over a connection that `connect(factory)` makes.
template <class Connect>
Task<std::pair<StreamReader, StreamWriter>> open_streams(std::size_t limit, Connect connect) {
  StreamReader reader(limit);
  auto protocol = std::make_shared<detail::StreamProtocol>(reader, nullptr);
  ProtocolFactory factory = [protocol] { return protocol; };
  auto [transport, made] = co_await connect(std::move(factory));
  co_return std::pair<StreamReader, StreamWriter>{reader, StreamWriter(transport, protocol, reader)};
}

// A protocol factory running `client_connected` for each connection.
ProtocolFactory serving_factory(ClientConnected client_connected, std::size_t limit, const char* method) {
  if (!client_connected) throw std::invalid_argument(std::string(method) + ": client_connected is empty");
  return [client_connected = std::move(client_connected), limit] {
    return std::make_shared<detail::StreamProtocol>(StreamReader(limit), client_connected);
  };
}

}  // namespace

Task<std::pair<StreamReader, StreamWriter>> open_connection(std::string host, int port, ConnectOptions options,
                                                            std::size_t limit) {
  return open_streams(limit, [host = std::move(host), port, options](ProtocolFactory factory) {
    return get_running_loop().create_connection(std::move(factory), host, port, options);
  });
}

Task<std::pair<StreamReader, StreamWriter>> open_unix_connection(std::string path, SSLOptions options,
                                                                 std::size_t limit) {
  return open_streams(limit, [path = std::move(path), options](ProtocolFactory factory) {
    return get_running_loop().create_unix_connection(std::move(factory), path, options);
  });
}

Task<std::shared_ptr<Server>> start_server(ClientConnected client_connected, std::string host, int port,
                                           ServerOptions options, std::size_t limit) {
  // A coroutine, not a function returning create_server's task: nothing
  // (not even get_running_loop) happens before it is awaited or scheduled.
  ProtocolFactory factory = serving_factory(std::move(client_connected), limit, "start_server");
  co_return co_await get_running_loop().create_server(std::move(factory), std::move(host), port, options);
}

Task<std::shared_ptr<Server>> start_unix_server(ClientConnected client_connected, std::string path,
                                                UnixServerOptions options, std::size_t limit) {
  ProtocolFactory factory = serving_factory(std::move(client_connected), limit, "start_unix_server");
  co_return co_await get_running_loop().create_unix_server(std::move(factory), std::move(path), options);
}

}  // namespace aio
