// EventLoop: asyncio's event loop API, independent of the I/O engine.
//
// The loop owns the ready queue, the timer heap, the clock, the exception
// handler, debug mode, the default executor and the run state. Engines
// (SelectorEventLoop over a Selector, ProactorEventLoop over a Proactor)
// derive from it and supply only the wait for I/O and the wakeup; run_once()
// here is the only place where callbacks run, as asyncio's
// BaseEventLoop._run_once.
//
// Every method follows the asyncio documentation of the same name. Unless
// stated otherwise, methods must be called on the thread that runs the loop
// (debug mode checks it); call_soon_threadsafe is the way in from elsewhere.
#pragma once

#include <core/address.hpp>
#include <core/callback.hpp>
#include <core/context.hpp>
#include <core/errors.hpp>
#include <core/executor.hpp>
#include <core/fd.hpp>
#include <core/future.hpp>
#include <core/handle.hpp>
#include <core/task.hpp>

#include <cmath>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <tuple>
#include <type_traits>
#include <unordered_set>
#include <vector>

namespace aio {

class Socket;         // net/socket.hpp
struct AddrInfo;      // net/dns.hpp
class BaseProtocol;   // net/protocols.hpp
class BaseTransport;  // net/transports.hpp
class Transport;
class ReadTransport;
class WriteTransport;
class SubprocessTransport;
class SubprocessProtocol;
struct SubprocessOptions;  // process/subprocess.hpp
class DatagramProtocol;
class DatagramTransport;
class Server;      // net/server.hpp
class SSLContext;  // net/ssl.hpp
class EventLoop;
namespace detail {
class SignalTable;  // core/signals.hpp
class SignalListener;
struct ListenOptions;
SignalListener listen_signal(EventLoop& loop, int sig, Callback callback, ListenOptions options);
}  // namespace detail

// What the exception handler receives (asyncio's context dict). Members that
// do not apply are empty.
struct ExceptionContext {
  std::string message;
  std::exception_ptr exception;
  Handle handle;                             // the callback that raised
  AnyFuture future;                          // a future whose exception was never retrieved
  AnyFuture task;                            // a task that failed, or was destroyed while pending
  std::shared_ptr<BaseTransport> transport;  // a transport that hit a fatal error
  std::shared_ptr<BaseProtocol> protocol;    // and its protocol
};

// Makes the protocol of a new connection (asyncio's protocol_factory): a
// Protocol or a BufferedProtocol (a DatagramProtocol for datagram endpoints).
using ProtocolFactory = std::function<std::shared_ptr<BaseProtocol>()>;

// create_server's and create_connection's keyword arguments, as asyncio's
// (OS AF_* / AI_* values). Both are trivially destructible on purpose: GCC 12
// destroys an aggregate temporary written inside a co_await expression twice,
// which is harmless only for such types.
struct ServerOptions {
  int family = 0;  // 0: every family the host resolves to
  int flags = 0;   // getaddrinfo flags; AI_PASSIVE is always added
  int backlog = 100;
  std::optional<bool> reuse_address = std::nullopt;  // default: true on POSIX (never set on Windows)
  bool reuse_port = false;
  bool keep_alive = false;
  bool start_serving = true;
  // TLS: a server context (create_default_context(Purpose::client_auth) with
  // load_cert_chain), kept alive by the server. Each connection's protocol
  // gets connection_made once its handshake is done; a connection whose
  // handshake fails is closed quietly (SSLError is an OS error).
  SSLContext* ssl = nullptr;
  // Seconds, > 0; only with ssl (std::invalid_argument otherwise). Defaults
  // 60 and 30, as asyncio's: how long a handshake may take, and how long
  // close() waits for the peer's close_notify before aborting.
  std::optional<double> ssl_handshake_timeout = std::nullopt;
  std::optional<double> ssl_shutdown_timeout = std::nullopt;
};

// create_unix_server's keyword arguments.
struct UnixServerOptions {
  int backlog = 100;
  bool start_serving = true;
  // Remove the socket file when the server closes, unless another socket
  // has replaced it meanwhile.
  bool cleanup_socket = true;
  // TLS, as ServerOptions.
  SSLContext* ssl = nullptr;
  std::optional<double> ssl_handshake_timeout = std::nullopt;
  std::optional<double> ssl_shutdown_timeout = std::nullopt;
};

// start_tls's keyword arguments: which side of the handshake to run, and
// as SSLOptions.
struct StartTLSOptions {
  bool server_side = false;
  std::optional<std::string_view> server_hostname = std::nullopt;
  std::optional<double> ssl_handshake_timeout = std::nullopt;
  std::optional<double> ssl_shutdown_timeout = std::nullopt;
};

// The TLS keyword arguments of the calls that take a socket or a path
// rather than a host (asyncio's ssl, server_hostname,
// ssl_handshake_timeout, ssl_shutdown_timeout). `ssl`: a client context for
// create_connection and create_unix_connection, a server one for
// connect_accepted_socket (which then makes the server side of the
// handshake). server_hostname is what the server's certificate is checked
// against (and the SNI sent, unless an address); a client whose context
// checks host names must give one here, as there is no host to default to.
// Each of the others only with ssl; timeouts > 0. Everything else is a
// std::invalid_argument naming the argument.
struct SSLOptions {
  SSLContext* ssl = nullptr;
  std::optional<std::string_view> server_hostname = std::nullopt;
  std::optional<double> ssl_handshake_timeout = std::nullopt;
  std::optional<double> ssl_shutdown_timeout = std::nullopt;
};

// create_connection's keyword arguments.
struct ConnectOptions {
  int family = 0;
  int proto = 0;
  int flags = 0;
  std::optional<SocketAddress> local_addr = std::nullopt;  // bound before connecting
  // Happy Eyeballs (RFC 8305): with a delay (seconds, >= 0; 0.25 is the
  // RFC's value), the next address is tried once the current attempt has
  // been pending that long, and the first connection wins. Without one,
  // addresses are tried one after another.
  std::optional<double> happy_eyeballs_delay = std::nullopt;
  // Reorders the addresses so that families alternate, after `interleave`
  // addresses of the first family (RFC 8305's "First Address Family
  // Count"); 0 keeps the resolver's order. Default: 1 with a
  // happy_eyeballs_delay, else 0.
  std::optional<int> interleave = std::nullopt;
  bool all_errors = false;  // on failure throw ConnectionErrors with every attempt's error
  // TLS: a client context (create_default_context()); the call then returns
  // once the handshake is done, with an SSLTransport (net/transports.hpp),
  // or fails with the handshake's error (SSLError, SSLCertVerificationError
  // for a certificate that does not verify or does not match the name).
  SSLContext* ssl = nullptr;
  // What the certificate is checked against and the SNI sent (none for an
  // address, RFC 6066): default `host`. Only with ssl.
  std::optional<std::string_view> server_hostname = std::nullopt;
  // Seconds, > 0, only with ssl: as ServerOptions.
  std::optional<double> ssl_handshake_timeout = std::nullopt;
  std::optional<double> ssl_shutdown_timeout = std::nullopt;
};

// A host and a port, as asyncio's (host, port) address tuples. The host is
// numeric ("127.0.0.1", "::1") or a name for getaddrinfo; with family AF_UNIX
// it is a socket path and the port must be 0.
struct HostPort {
  std::string_view host;
  int port = 0;
};

// create_datagram_endpoint's keyword arguments, as asyncio's (OS AF_* /
// AI_* values). Trivially destructible like the others: the hosts are
// views, which create_datagram_endpoint copies before it returns, so both
// `co_await loop.create_datagram_endpoint(f, {.local_addr = aio::HostPort{"::1", 0}})`
// and a host from a temporary std::string in that expression are safe.
struct DatagramOptions {
  // Bound to; and connected to (sendto's default, and the only peer).
  std::optional<HostPort> local_addr = std::nullopt;
  std::optional<HostPort> remote_addr = std::nullopt;
  // AF_INET, AF_INET6, AF_UNIX; 0: whatever the addresses resolve to.
  int family = 0;
  int proto = 0;
  int flags = 0;  // getaddrinfo flags
  // SO_REUSEPORT: endpoints of the same user may share the address.
  bool reuse_port = false;
  // SO_BROADCAST. With remote_addr the socket is then not connected: the
  // remote is only sendto's default destination (as asyncio).
  bool allow_broadcast = false;
  // Refused (std::invalid_argument) when true: SO_REUSEADDR on UDP lets any
  // other process bind the same address and take a share of its datagrams,
  // which is why asyncio removed it (bpo-37228). Use reuse_port.
  bool reuse_address = false;
};

// Every attempt's error when create_connection(all_errors = true) fails.
class ConnectionErrors : public std::runtime_error {
 public:
  ConnectionErrors(const std::string& message, std::vector<std::exception_ptr> errors)
      : std::runtime_error(message), errors(std::move(errors)) {}
  std::vector<std::exception_ptr> errors;
};

using ExceptionHandler = std::function<void(EventLoop&, const ExceptionContext&)>;

// Receives every task create_task makes, before it runs. It may name or record
// the task, and must start it by calling EventLoop::start_task(task) exactly
// once (create_task throws std::logic_error if it did not).
using TaskFactory = std::function<void(EventLoop&, AnyTask)>;

namespace detail {
class Inbox;
class StreamTransport;        // net/stream_transport.hpp
class DatagramTransportBase;  // net/datagram_transport.hpp
struct LoopAccess;            // net/loop_access.hpp
class TimerHeap;
bool post_threadsafe(const std::shared_ptr<Inbox>& inbox, Callback callback);
// The loop's inbox, for work posted from other threads that may outlive it.
std::shared_ptr<Inbox> inbox_of(EventLoop& loop);

template <class F, class... Args>
Callback bind_callback(F&& f, Args&&... args) {
  if constexpr (sizeof...(Args) == 0) {
    return Callback(std::forward<F>(f));
  } else {
    return Callback([fn = std::forward<F>(f), tuple = std::make_tuple(std::forward<Args>(args)...)]() mutable {
      std::apply(fn, tuple);
    });
  }
}

// f(args...) run inside `context` (a callback given asyncio's context=).
template <class F, class... Args>
Callback in_context(const Context& context, F&& f, Args&&... args) {
  return Callback([context, callback = bind_callback(std::forward<F>(f), std::forward<Args>(args)...)]() mutable {
    ContextScope scope(context.impl().get());
    callback();
  });
}

// A callable's result, or the exception it threw, carried between threads.
template <class R>
struct Outcome {
  std::optional<std::conditional_t<std::is_void_v<R>, bool, R>> value;
  std::exception_ptr error;
};

// One run_in_executor call, as the executor holds it: runs the callable and
// posts its outcome to the loop. Destroyed without having run (an executor
// dropping queued work at shutdown), it cancels the future instead, as
// concurrent.futures does, so nobody waits for it forever.
template <class F, class R>
struct ExecutorWork {
  F fn;
  Future<R> future;
  std::shared_ptr<std::atomic<bool>> cancelled;
  std::shared_ptr<Inbox> inbox;

  ExecutorWork(F f, Future<R> fut, std::shared_ptr<std::atomic<bool>> flag, std::shared_ptr<Inbox> box)
      : fn(std::move(f)), future(std::move(fut)), cancelled(std::move(flag)), inbox(std::move(box)) {}
  ExecutorWork(ExecutorWork&&) noexcept = default;
  ExecutorWork& operator=(ExecutorWork&&) = delete;

  ~ExecutorWork() {
    if (!future) return;  // ran, or moved from
    // Dropped if the loop closed meanwhile: nobody can observe the future then.
    post_threadsafe(inbox, [future = std::move(future)]() mutable { future.cancel(); });
  }

  void operator()() {
    Future<R> target = std::move(future);
    if (cancelled->load(std::memory_order_relaxed)) return;
    auto outcome = std::make_unique<Outcome<R>>();
    try {
      if constexpr (std::is_void_v<R>) {
        fn();
        outcome->value.emplace(true);
      } else {
        outcome->value.emplace(fn());
      }
    } catch (...) {
      outcome->error = std::current_exception();
    }
    post_threadsafe(inbox, [target = std::move(target), outcome = std::move(outcome)]() mutable {
      if (target.done()) return;
      if (outcome->error)
        target.set_exception(outcome->error);
      else if constexpr (std::is_void_v<R>)
        target.set_result();
      else
        target.set_result(std::move(*outcome->value));
    });
  }
};
}  // namespace detail

class EventLoop {
 public:
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;
  virtual ~EventLoop();

  // ---- Running and stopping the loop ----------------------------------

  // Runs until stop() is called. If stop() was called before, polls for I/O
  // once with a zero timeout, runs what is ready, and returns.
  void run_forever();

  // Runs until `future` is done and returns its result (or rethrows its
  // exception). An unstarted Task is scheduled first.
  template <class T>
  T run_until_complete(Future<T> future);

  // Stops the loop after the current batch of callbacks.
  void stop() noexcept { stopping_ = true; }
  bool is_running() const noexcept { return running_; }
  bool is_closed() const noexcept { return closed_; }

  // Discards pending callbacks, drops pending tasks, shuts the default
  // executor down without waiting and releases the engine's OS resources.
  // Idempotent; throws std::runtime_error if the loop is running.
  void close();

  // Joins the default executor's threads (on a helper thread, so the loop
  // keeps running); after it, run_in_executor(nullptr, ...) throws. With a
  // timeout, stops waiting after that many seconds and logs a warning.
  Task<void> shutdown_default_executor(std::optional<double> timeout = std::nullopt);

  // ---- Scheduling callbacks -------------------------------------------

  // Schedules f(args...) for the next iteration; callbacks run in FIFO order
  // (call_soon_threadsafe's among them, in the order they were made).
  // Every scheduling method also takes a Context first (asyncio's context=
  // argument): the callback then runs inside it. Without one, a callback
  // scheduled while a context variable has a value runs in a copy of the
  // current context, as asyncio's (core/context.hpp).
  template <class F, class... Args>
  requires(!std::is_same_v<std::remove_cvref_t<F>, Context>) Handle call_soon(F&& f, Args&&... args) {
    if (detail::current_context_has_values()) [[unlikely]]
      return call_soon(copy_context(), std::forward<F>(f), std::forward<Args>(args)...);
    return call_soon_impl(detail::bind_callback(std::forward<F>(f), std::forward<Args>(args)...), "call_soon");
  }
  template <class F, class... Args>
  Handle call_soon(const Context& context, F&& f, Args&&... args) {
    return call_soon_impl(detail::in_context(context, std::forward<F>(f), std::forward<Args>(args)...), "call_soon");
  }

  // call_soon from any thread; wakes the loop. Not from a signal handler:
  // it allocates and takes a lock, which are not async-signal-safe (signals
  // reach a loop through add_signal_handler).
  template <class F, class... Args>
  requires(!std::is_same_v<std::remove_cvref_t<F>, Context>) Handle call_soon_threadsafe(F&& f, Args&&... args) {
    if (detail::current_context_has_values()) [[unlikely]]
      return call_soon_threadsafe(copy_context(), std::forward<F>(f), std::forward<Args>(args)...);
    return call_soon_threadsafe_impl(detail::bind_callback(std::forward<F>(f), std::forward<Args>(args)...));
  }
  template <class F, class... Args>
  Handle call_soon_threadsafe(const Context& context, F&& f, Args&&... args) {
    return call_soon_threadsafe_impl(detail::in_context(context, std::forward<F>(f), std::forward<Args>(args)...));
  }

  // Schedules f(args...) after `delay` seconds (a negative delay means now).
  template <class F, class... Args>
  requires(!std::is_same_v<std::remove_cvref_t<F>, Context>) TimerHandle
      call_later(double delay, F&& f, Args&&... args) {
    if (detail::current_context_has_values()) [[unlikely]]
      return call_later(delay, copy_context(), std::forward<F>(f), std::forward<Args>(args)...);
    return call_at_impl(deadline_after(delay, "call_later"),
                        detail::bind_callback(std::forward<F>(f), std::forward<Args>(args)...), "call_later");
  }
  template <class F, class... Args>
  TimerHandle call_later(double delay, const Context& context, F&& f, Args&&... args) {
    return call_at_impl(deadline_after(delay, "call_later"),
                        detail::in_context(context, std::forward<F>(f), std::forward<Args>(args)...), "call_later");
  }

  // Schedules f(args...) at `when`, on the time() clock.
  template <class F, class... Args>
  requires(!std::is_same_v<std::remove_cvref_t<F>, Context>) TimerHandle call_at(double when, F&& f, Args&&... args) {
    if (detail::current_context_has_values()) [[unlikely]]
      return call_at(when, copy_context(), std::forward<F>(f), std::forward<Args>(args)...);
    return call_at_impl(deadline_at(when, "call_at"),
                        detail::bind_callback(std::forward<F>(f), std::forward<Args>(args)...), "call_at");
  }
  template <class F, class... Args>
  TimerHandle call_at(double when, const Context& context, F&& f, Args&&... args) {
    return call_at_impl(deadline_at(when, "call_at"),
                        detail::in_context(context, std::forward<F>(f), std::forward<Args>(args)...), "call_at");
  }

  // Timers in the heap, cancelled ones not purged yet included (diagnostics:
  // the heap is compacted once cancelled timers are most of it).
  std::size_t timer_count() const noexcept;

  // The loop's monotonic clock, in seconds.
  double time() const noexcept { return static_cast<double>(now_ns()) * 1e-9; }

  // ---- Futures and tasks ----------------------------------------------

  template <class T = void>
  Future<T> create_future() {
    check_closed();
    return Future<T>(*this);
  }

  // Schedules the coroutine to run as a task and returns it. Throws
  // std::invalid_argument if the coroutine was already started.
  template <class T>
  Task<T> create_task(Task<T> coro, std::string name = {}) {
    create_task_impl(coro.state(), std::move(name));
    return coro;
  }
  // The task runs in `context` instead of a copy of the current one.
  template <class T>
  Task<T> create_task(Task<T> coro, std::string name, const Context& context) {
    detail::TaskStateBase* task = coro.state()->as_task();
    if (!task->started()) task->set_context(context.impl());
    create_task_impl(coro.state(), std::move(name));
    return coro;
  }

  // What a task factory calls to start the task it was given.
  void start_task(const AnyTask& task);
  void set_task_factory(TaskFactory factory) { task_factory_ = std::move(factory); }
  const TaskFactory& get_task_factory() const noexcept { return task_factory_; }

  // Tasks of this loop that are not done yet (asyncio.all_tasks).
  std::vector<AnyTask> all_tasks() const;

  // ---- Watching file descriptors --------------------------------------

  // Calls f(args...) whenever `fd` is readable, until remove_reader(fd).
  // Replaces an earlier reader of the same fd. Throws std::invalid_argument for
  // a negative fd and std::system_error if the fd cannot be watched (closed,
  // or a regular file); NotImplementedError on engines without readiness.
  template <class F, class... Args>
  void add_reader(fd_t fd, F&& f, Args&&... args) {
    check_fd(fd, "add_reader");
    add_reader_impl(fd, detail::bind_callback(std::forward<F>(f), std::forward<Args>(args)...));
  }
  // Stops watching; true if a reader was registered. Always false on
  // engines without readiness (nothing can be registered there; cleanup
  // paths call it, so it does not throw).
  virtual bool remove_reader(fd_t fd);

  template <class F, class... Args>
  void add_writer(fd_t fd, F&& f, Args&&... args) {
    check_fd(fd, "add_writer");
    add_writer_impl(fd, detail::bind_callback(std::forward<F>(f), std::forward<Args>(args)...));
  }
  virtual bool remove_writer(fd_t fd);

  // ---- Working with socket objects directly (net/socket.hpp) ----------
  //
  // asyncio's sock_* coroutines, for non-blocking sockets (Socket::create
  // makes them so). Each engine implements them its way (a selector loop
  // tries the call, then waits for readiness; a proactor loop starts the
  // operation and waits for its completion). Cancelling one while it waits
  // is prompt, loses no data and leaves the socket usable, also for the
  // next sock_* call on it; an empty Socket is a std::invalid_argument, an
  // OS failure a std::system_error. In debug mode a blocking socket is a
  // std::invalid_argument, as asyncio's ValueError. The socket must outlive
  // the call.

  // Up to `nbytes` bytes; empty at end of file.
  Task<std::string> sock_recv(Socket& sock, std::size_t nbytes);
  // Reads into `buffer` (which must outlive the call); 0 at end of file.
  virtual Task<std::size_t> sock_recv_into(Socket& sock, std::span<char> buffer) = 0;
  Task<std::pair<std::string, SocketAddress>> sock_recvfrom(Socket& sock, std::size_t bufsize);
  virtual Task<std::pair<std::size_t, SocketAddress>> sock_recvfrom_into(Socket& sock, std::span<char> buffer) = 0;
  // Sends all of `data`; on an error some of it may have been sent.
  virtual Task<void> sock_sendall(Socket& sock, std::string data) = 0;
  virtual Task<std::size_t> sock_sendto(Socket& sock, std::string data, SocketAddress address) = 0;
  virtual Task<void> sock_connect(Socket& sock, SocketAddress address) = 0;
  // Resolves `host` first (numeric hosts without a lookup), then connects to
  // the first address of the socket's family.
  Task<void> sock_connect(Socket& sock, std::string host, int port);
  // A connection on a listening socket, and the peer's address.
  virtual Task<std::pair<Socket, SocketAddress>> sock_accept(Socket& sock) = 0;

  // Sends `count` bytes of `file` from `offset` (std::nullopt: up to the end
  // of the file) and returns how many were sent: fewer if the file ends
  // first, 0 for an empty range. `file` is a file descriptor open for
  // reading: POSIX, or on Windows a C runtime one (_open, _pipe) in binary
  // mode; the caller keeps it open and owns it. Afterwards a regular file's
  // position is offset + the bytes sent, even when the call fails or is
  // cancelled (a pipe has no position).
  //
  // Natively, with the OS's sendfile, for a regular file on Linux, FreeBSD
  // and macOS. Elsewhere (Windows' selector loop, a pipe, a socket the OS
  // refuses) SendfileNotAvailableError, or, with `fallback`, the file is
  // read on the loop's thread in chunks of 256 KiB, each sent as by
  // sock_sendall; a pipe must then have its data ready, as a read of it
  // blocks the loop. std::invalid_argument for an empty socket, one that is
  // not SOCK_STREAM or (POSIX) is blocking, a negative or closed `file`, a
  // count of 0, an offset off_t cannot hold, or a nonzero offset into a
  // pipe.
  Task<std::size_t> sock_sendfile(Socket& sock, int file, std::size_t offset = 0,
                                  std::optional<std::size_t> count = std::nullopt, bool fallback = true);

  // ---- Transports (net/transports.hpp) -----------------------------------

  // Wraps an already connected stream socket (e.g. from sock_accept) in a
  // transport with a new protocol from `factory`; returns once
  // connection_made has run. std::invalid_argument for a socket that is not
  // a connected stream socket or a factory that makes no stream protocol.
  // With options.ssl (a server context) the server side of a TLS handshake
  // runs first, and the transport returned is an SSLTransport.
  Task<std::pair<std::shared_ptr<Transport>, std::shared_ptr<BaseProtocol>>> connect_accepted_socket(
      ProtocolFactory factory, Socket sock, SSLOptions options = {});

  // Opens a TCP connection to the first address of `host` that accepts it
  // (host names are resolved on the executor; see ConnectOptions for Happy
  // Eyeballs) and returns (transport, protocol) once connection_made ran.
  // TCP_NODELAY is set. std::invalid_argument for a negative or non-finite
  // happy_eyeballs_delay or a negative interleave. Failing every
  // address throws that error (one attempt, or all alike) or, with several
  // different ones, a std::system_error naming them all (ConnectionErrors
  // with all_errors).
  Task<std::pair<std::shared_ptr<Transport>, std::shared_ptr<BaseProtocol>>> create_connection(
      ProtocolFactory factory, std::string host, int port, ConnectOptions options = {});
  // With an already connected socket (TLS with options.ssl).
  Task<std::pair<std::shared_ptr<Transport>, std::shared_ptr<BaseProtocol>>> create_connection(ProtocolFactory factory,
                                                                                               Socket sock,
                                                                                               SSLOptions options = {});

  // A TCP server listening on `host` (empty: every interface, one socket per
  // family) or on each of `hosts`, at `port` (0: any free port). Each
  // connection gets a transport and a protocol from `factory`.
  Task<std::shared_ptr<Server>> create_server(ProtocolFactory factory, std::string host, int port,
                                              ServerOptions options = {});
  Task<std::shared_ptr<Server>> create_server(ProtocolFactory factory, std::vector<std::string> hosts, int port,
                                              ServerOptions options = {});
  // On an already bound stream socket.
  Task<std::shared_ptr<Server>> create_server(ProtocolFactory factory, Socket sock, ServerOptions options = {});

  // Unix-domain stream sockets (POSIX; a path starting with '\0' is a Linux
  // abstract name). The server first removes a socket file left at `path`
  // (any other kind of file makes bind fail, "already in use"). A bad path
  // is std::invalid_argument, as is a Socket that is not a Unix stream
  // socket; where Unix sockets do not exist (Windows), every path is.
  Task<std::shared_ptr<Server>> create_unix_server(ProtocolFactory factory, std::string path,
                                                   UnixServerOptions options = {});
  // On an already bound AF_UNIX stream socket.
  Task<std::shared_ptr<Server>> create_unix_server(ProtocolFactory factory, Socket sock,
                                                   UnixServerOptions options = {});
  Task<std::pair<std::shared_ptr<Transport>, std::shared_ptr<BaseProtocol>>> create_unix_connection(
      ProtocolFactory factory, std::string path, SSLOptions options = {});
  // With an already connected AF_UNIX stream socket.
  Task<std::pair<std::shared_ptr<Transport>, std::shared_ptr<BaseProtocol>>> create_unix_connection(
      ProtocolFactory factory, Socket sock, SSLOptions options = {});
  // A datagram endpoint (UDP; Unix datagram sockets on POSIX) whose
  // protocol, from `factory`, must be a DatagramProtocol; returns (transport,
  // protocol) once connection_made ran. The socket binds to local_addr and
  // connects to remote_addr when given; both are resolved like
  // getaddrinfo(host, port, family, SOCK_DGRAM, proto, flags) (numeric hosts
  // without a lookup), and the first (family, proto) that both resolve to and
  // that binds and connects is used, as asyncio does. SO_REUSEADDR is never
  // set. std::invalid_argument for: no address and no family (asyncio's
  // "unexpected address family"), a port outside 0..65535, addresses with no
  // family in common, reuse_address, reuse_port where SO_REUSEPORT does not
  // exist, a factory that is empty, returns null or makes another kind of
  // protocol. std::system_error for what the OS or getaddrinfo refuse (the
  // first failed attempt's error).
  Task<std::pair<std::shared_ptr<DatagramTransport>, std::shared_ptr<DatagramProtocol>>> create_datagram_endpoint(
      ProtocolFactory factory, DatagramOptions options);
  // Over an existing datagram socket, taken over as it is (bound, connected
  // or neither; made non-blocking). `options` must stay at their defaults:
  // any other is a std::invalid_argument naming them, as is an empty or a
  // non-datagram socket.
  Task<std::pair<std::shared_ptr<DatagramTransport>, std::shared_ptr<DatagramProtocol>>> create_datagram_endpoint(
      ProtocolFactory factory, Socket sock, DatagramOptions options = {});

  // Sends `file` over a stream transport, after the data it holds already,
  // and returns the number of bytes sent; `file`, `offset`, `count` and the
  // file position afterwards are as for sock_sendfile. A selector transport
  // waits until its buffer is flushed, then sends natively on its socket
  // where sock_sendfile would. Otherwise SendfileNotAvailableError, or, with
  // `fallback`, the file is read in 256 KiB chunks written through the
  // transport, waiting while its buffer is above the high-water mark, and
  // the call returns once the buffer is flushed. A TLS transport sends
  // through that fallback only (SendfileNotAvailableError without it), as
  // asyncio's, with the protocol's writing callbacks held back meanwhile.
  //
  // While it runs, reading is paused (and resumed afterwards if it was on),
  // write() and writelines() throw std::runtime_error("unable to write;
  // sendfile is in progress"), and the protocol's pause_writing /
  // resume_writing wait until the end. Closing or aborting the transport
  // meanwhile makes the call fail with the error the connection was lost
  // with, or std::system_error(std::errc::connection_aborted).
  // std::runtime_error for a transport that is closing, not a stream
  // transport of this library, or in a sendfile already; bad arguments are
  // std::invalid_argument as for sock_sendfile. The transport is kept alive
  // from the start of the call to its end.
  // Upgrades a live connection to TLS (asyncio's start_tls): the handshake
  // runs over `transport`, and `protocol` (a Protocol or BufferedProtocol;
  // usually the one the connection had) receives the decrypted stream from
  // the SSLTransport returned, without a second connection_made. Bytes the
  // transport already has in flight go to TLS, none to the old protocol.
  // The plain transport must not be used afterwards. `transport` must be a
  // socket transport of this library or a TLS one (TLS over TLS);
  // std::invalid_argument for a pipe transport, a null context, or the
  // option errors of SSLOptions. A failed or cancelled handshake closes
  // `transport` and throws.
  Task<std::shared_ptr<Transport>> start_tls(Transport& transport, std::shared_ptr<BaseProtocol> protocol,
                                             SSLContext* sslcontext, StartTLSOptions options = {});

  Task<std::size_t> sendfile(Transport& transport, int file, std::size_t offset = 0,
                             std::optional<std::size_t> count = std::nullopt, bool fallback = true);

  // ---- Pipes (process/pipes.cpp) ---------------------------------------

  // asyncio's connect_read_pipe / connect_write_pipe: a transport over one
  // end of a pipe, FIFO, socket or character device (a pty, a tty), whose
  // protocol, from `factory`, must be an aio::Protocol or
  // aio::BufferedProtocol; returns (transport, protocol) once
  // connection_made ran. `fd` (on Windows a pipe HANDLE opened for
  // overlapped I/O) is made non-blocking, and the transport owns it from
  // then on: closing the transport closes it. A read pipe delivers
  // data_received, then at end of file (a pty's EIO included)
  // eof_received and connection_lost(nullptr). A write pipe buffers with
  // flow control as a socket transport; write_eof() closes it once flushed;
  // a reader going away is noticed even while nothing is written, and is
  // connection_lost(nullptr), or a std::system_error(broken_pipe) if data
  // was still waiting; no write raises SIGPIPE. std::invalid_argument for
  // a descriptor that is not open, one of another kind (a regular file),
  // and an empty factory, a null protocol or one of another kind; fd is
  // then left as it was. NotImplementedError on a loop without pipe
  // transports (a selector loop on Windows, as asyncio's).
  Task<std::pair<std::shared_ptr<ReadTransport>, std::shared_ptr<BaseProtocol>>> connect_read_pipe(
      ProtocolFactory factory, fd_t fd);
  Task<std::pair<std::shared_ptr<WriteTransport>, std::shared_ptr<BaseProtocol>>> connect_write_pipe(
      ProtocolFactory factory, fd_t fd);

  // ---- Subprocesses (process/subprocess.hpp) -------------------------

  // asyncio's subprocess_exec: runs `program` (searched in PATH unless it
  // holds a '/') with `args` after it (argv is program, args...), its
  // streams as `options` say (all three PIPE by default), and returns
  // (transport, protocol) once the pipes are connected and connection_made
  // ran; the protocol, from `factory`, must be an aio::SubprocessProtocol.
  // The child starts with an empty signal mask and default signal
  // dispositions, and inherits no descriptor but 0, 1, 2 and
  // options.pass_fds. The exit is watched through the loop (a Linux pidfd;
  // on Windows a wait on the process handle); only this child is ever
  // reaped. Windows: CreateProcessW, the arguments quoted so that the C
  // runtime reads them back unchanged; the child inherits no handle but its
  // three streams. A child that cannot run throws its
  // exact errno as std::system_error naming the program (ENOENT for a
  // missing program or cwd, EACCES for a file that is not executable), and
  // leaves no process and no descriptor behind; so does cancelling the call.
  // std::invalid_argument for an empty program, a NUL in any string,
  // STDOUT for anything but stderr, an empty factory or a protocol of
  // another kind.
  Task<std::pair<std::shared_ptr<SubprocessTransport>, std::shared_ptr<SubprocessProtocol>>> subprocess_exec(
      ProtocolFactory factory, std::string program, std::vector<std::string> args, SubprocessOptions options);
  Task<std::pair<std::shared_ptr<SubprocessTransport>, std::shared_ptr<SubprocessProtocol>>> subprocess_exec(
      ProtocolFactory factory, std::string program, std::vector<std::string> args = {});
  // The same with `/bin/sh -c cmd` (Windows: `%COMSPEC% /c "cmd"`).
  Task<std::pair<std::shared_ptr<SubprocessTransport>, std::shared_ptr<SubprocessProtocol>>> subprocess_shell(
      ProtocolFactory factory, std::string cmd, SubprocessOptions options);
  Task<std::pair<std::shared_ptr<SubprocessTransport>, std::shared_ptr<SubprocessProtocol>>> subprocess_shell(
      ProtocolFactory factory, std::string cmd);

  // ---- Signals (core/signals.hpp; POSIX) -------------------------------

  // asyncio's add_signal_handler: f(args...) runs on this loop's thread, in
  // the context current now, each time `sig` arrives (several arrivals
  // before the loop looks are one call); it replaces this loop's previous
  // handler for `sig`. Delivery is async-signal-safe (a flag and the loop's
  // wakeup) and reaches the loop whichever thread the kernel picked, and
  // system calls interrupted by it restart (SA_RESTART). Unlike asyncio
  // (main thread only), any loop in any thread may add handlers, as libuv
  // allows: every loop with a handler for a signal runs it. SIGCHLD is the
  // user's too (the child watchers chain to it). Throws std::invalid_argument
  // for a number that is not a signal here, std::runtime_error for SIGKILL
  // and SIGSTOP (they cannot be caught) and for a closed loop,
  // NotImplementedError on Windows (as asyncio).
  template <class F, class... Args>
  void add_signal_handler(int sig, F&& f, Args&&... args) {
    add_signal_handler_impl(sig, detail::in_context(copy_context(), std::forward<F>(f), std::forward<Args>(args)...));
  }
  // Removes this loop's handler for `sig`: true if there was one. Once no
  // loop watches a signal, the disposition it had before the first
  // (SIG_DFL, or another library's handler) is restored. close() removes
  // them all. std::invalid_argument for a number that is not a signal.
  bool remove_signal_handler(int sig);

  // For the engine's signal handler only: marks `sig` arrived and wakes the
  // loop. Async-signal-safe.
  void deliver_signal(int sig) noexcept;

  // ---- DNS (net/dns.hpp) -----------------------------------------------

  // getaddrinfo on the default executor, with asyncio's keyword arguments;
  // an empty host or port means none. Failures are std::system_error in
  // aio::gai_category() naming the host and port.
  Task<std::vector<AddrInfo>> getaddrinfo(std::string host, std::string port, int family = 0, int type = 0,
                                          int proto = 0, int flags = 0);
  Task<std::vector<AddrInfo>> getaddrinfo(std::string host, int port, int family = 0, int type = 0, int proto = 0,
                                          int flags = 0);
  // (host, service) for an address, on the default executor.
  Task<std::pair<std::string, std::string>> getnameinfo(SocketAddress address, int flags = 0);

  // ---- Executing code in thread pools ---------------------------------

  // Runs func() on `executor` (nullptr: the default thread pool, created on
  // first use) and delivers its result or exception as a future. Cancelling
  // the future before the work starts keeps it from running. With GCC 12,
  // name a lambda that captures non-trivial values before co_await-ing this
  // call on it: that compiler destroys a capturing lambda created in the same
  // expression as a co_await twice.
  template <class F>
  requires std::invocable < std::decay_t<F>
  & > auto run_in_executor(Executor* executor, F&& func) -> Future<std::invoke_result_t<std::decay_t<F>&>>;

  void set_default_executor(std::shared_ptr<Executor> executor);

  // ---- Error handling -------------------------------------------------

  // An empty handler restores the default.
  void set_exception_handler(ExceptionHandler handler) { exception_handler_ = std::move(handler); }
  const ExceptionHandler& get_exception_handler() const noexcept { return exception_handler_; }
  // Logs the context at error level.
  void default_exception_handler(const ExceptionContext& context);
  // Calls the handler; an exception thrown by a custom handler is logged
  // with the default one, never propagated.
  void call_exception_handler(const ExceptionContext& context) noexcept;

  // ---- Debug mode -----------------------------------------------------

  // In debug mode the loop reports callbacks slower than
  // slow_callback_duration() and throws std::runtime_error when a
  // non-threadsafe method is called from another thread. AIO_DEBUG=1 in the
  // environment turns it on for new loops.
  void set_debug(bool enabled) noexcept { debug_ = enabled; }
  bool get_debug() const noexcept { return debug_; }
  double slow_callback_duration() const noexcept { return static_cast<double>(slow_callback_ns_) * 1e-9; }
  void set_slow_callback_duration(double seconds);

  // The engine's name ("epoll", "poll", "select", ...).
  virtual std::string_view backend() const noexcept = 0;

 protected:
  // A replacement for the monotonic clock, in nanoseconds (for simulations
  // and deterministic tests); empty means std::chrono::steady_clock.
  using Clock = std::function<std::int64_t()>;
  explicit EventLoop(Clock clock = {});

  // ---- What an engine provides ----------------------------------------

  // Waits for I/O at most `timeout_ns` (0: poll, -1: no limit) and hands each
  // ready callback to add_ready(). Returning early is allowed.
  virtual void poll_io(std::int64_t timeout_ns) = 0;
  // Makes a concurrent or later poll_io return soon. Thread- and
  // async-signal-safe.
  virtual void wakeup() noexcept = 0;
  // Releases the engine's OS resources (called once, by close()).
  virtual void close_io() noexcept = 0;
  // add_reader / add_writer. These defaults throw NotImplementedError, as
  // asyncio's BaseEventLoop: only a loop with readiness (SelectorEventLoop)
  // overrides them.
  virtual void add_reader_impl(fd_t fd, detail::Callback callback);
  virtual void add_writer_impl(fd_t fd, detail::Callback callback);

  // ---- The engine seam: how net/ reaches the engine (asyncio's
  // _make_*_transport hooks). Code above the engines calls these through
  // detail::LoopAccess and never asks which engine it runs on. Each engine
  // defines them beside its transports (net/selector_loop.cpp,
  // net/proactor_loop.cpp).

  // A stream transport over a connected stream socket, not started yet.
  virtual std::shared_ptr<detail::StreamTransport> make_socket_transport(Socket sock,
                                                                         std::shared_ptr<BaseProtocol> protocol) = 0;
  // A datagram transport over a datagram socket (bound, connected or
  // neither), not started yet. `remote`: sendto's default destination when
  // the socket is not connected.
  virtual std::shared_ptr<detail::DatagramTransportBase> make_datagram_transport(
      Socket sock, std::shared_ptr<BaseProtocol> protocol, std::optional<SocketAddress> remote) = 0;
  // A read-only / write-only stream transport over a pipe end that
  // connect_read_pipe / connect_write_pipe checked and made non-blocking,
  // not started yet; it owns `fd`. `watch_reader`: the write end is a FIFO
  // or socket, which turns readable when its reader goes away (never a
  // character device). The defaults throw NotImplementedError, as
  // asyncio's BaseEventLoop.
  virtual std::shared_ptr<detail::StreamTransport> make_read_pipe_transport(fd_t fd,
                                                                            std::shared_ptr<BaseProtocol> protocol);
  virtual std::shared_ptr<detail::StreamTransport> make_write_pipe_transport(fd_t fd,
                                                                             std::shared_ptr<BaseProtocol> protocol,
                                                                             bool watch_reader);
  // Completes when `handle` is signalled: a descriptor turns readable (a
  // Linux pidfd, once its process exits) or, on Windows, a process handle
  // is signalled. Cancelling the task stops the wait. The default throws
  // NotImplementedError.
  virtual Task<void> wait_for_handle(fd_t handle);
  // The transport of a new child process (asyncio's
  // _make_subprocess_transport): spawns `program` with `args` (argv[1:])
  // and `options`, connects its pipes and watches its exit; completes once
  // the protocol's connection_made has run. subprocess_exec has checked
  // the protocol and the standard streams' kinds. A loop that runs
  // children overrides it with start_subprocess (process/*_pipes.cpp). The
  // default throws NotImplementedError before anything is spawned, as
  // asyncio's BaseEventLoop (Windows' selector loop keeps it).
  virtual Task<std::shared_ptr<SubprocessTransport>> make_subprocess_transport(
      std::shared_ptr<SubprocessProtocol> protocol, std::string program, std::vector<std::string> args,
      SubprocessOptions options);
  // What the default pipe, handle and subprocess hooks throw: a
  // NotImplementedError naming `method` and this loop's backend.
  [[noreturn]] void throw_no_pipes(const char* method) const;
  // What those overrides run: the child over make_*_pipe_transport and
  // wait_for_handle (process/subprocess.cpp).
  Task<std::shared_ptr<SubprocessTransport>> start_subprocess(std::shared_ptr<SubprocessProtocol> protocol,
                                                              std::string program, std::vector<std::string> args,
                                                              SubprocessOptions options);
  // Starts (or updates) delivery of `sig` to this loop: the engine's
  // process-wide handler then calls deliver_signal(sig) on each arrival.
  // `once`: the disposition may reset to the default as the signal
  // arrives (detail::SignalEntry::once). With `only_over_default`, returns
  // false (and subscribes nothing) unless this is the main thread and `sig`
  // has its default disposition. Validates `sig` as add_signal_handler
  // says. The default throws NotImplementedError (false with
  // only_over_default): no signals on this platform.
  virtual bool watch_signal(int sig, bool once, bool only_over_default);
  // Stops delivery of `sig` to this loop.
  virtual void unwatch_signal(int sig) noexcept;
  // Starts accepting connections on listening socket `index` of `server`,
  // handing each to the server, until the server stops serving. The default
  // (net/server.cpp) accepts one connection at a time through sock_accept,
  // as asyncio's proactor loop; a loop with readiness accepts whatever is
  // pending whenever the socket is readable.
  virtual void start_accepting(Server& server, std::size_t index);
  // One native transfer of sock_sendfile and sendfile (net/sendfile.cpp):
  // up to `count` (> 0) bytes of the regular file `file` from `offset` to
  // the connected stream socket `sock`; returns how many were sent, 0 when
  // `offset` is at or past the end of the file. With a `transport` (which
  // owns `sock` and has flushed its buffer) waits go through it, so that its
  // close fails them. The default calls the OS's sendfile when the socket is
  // writable; SendfileNotAvailableError where the OS has none for this loop.
  virtual Task<std::size_t> sendfile_native(fd_t sock, int file, std::uint64_t offset, std::size_t count,
                                            detail::StreamTransport* transport) = 0;

  // ---- What the loop offers engines -----------------------------------

  // Queues a handle to run in this iteration's batch (takes a new reference).
  void add_ready(detail::HandleState* state) {
    detail::add_ref(state);
    push_ready(state);
  }
  // A handle for a callback the engine will queue repeatedly (readers, writers).
  Handle make_handle(detail::Callback callback);
  void check_closed() const {
    if (closed_) throw_closed();
  }
  void check_thread(const char* method) const {
    if (debug_ && running_ && std::this_thread::get_id() != thread_id_) throw_wrong_thread(method);
  }
  std::int64_t now_ns() const noexcept;

 private:
  friend class Handle;
  friend class detail::Inbox;
  friend class detail::TaskStateBase;
  friend class detail::FutureStateBase;
  friend struct detail::LoopAccess;
  friend std::shared_ptr<detail::Inbox> detail::inbox_of(EventLoop& loop);
  friend detail::LoopLink* detail::link_of(EventLoop& loop) noexcept;

  void run_once();
  void drop_scheduled() noexcept;
  void add_signal_handler_impl(int sig, detail::Callback callback);
  void dispatch_signals();
  void remove_all_signal_handlers() noexcept;
  friend class detail::SignalListener;
  friend detail::SignalListener detail::listen_signal(EventLoop&, int, detail::Callback, detail::ListenOptions);
  void run_handle(detail::HandleState* state);
  void push_ready(detail::HandleState* state);
  Handle call_soon_impl(detail::Callback callback, const char* method);
  Handle call_soon_threadsafe_impl(detail::Callback callback);
  TimerHandle call_at_impl(std::int64_t when_ns, detail::Callback callback, const char* method);
  std::int64_t deadline_after(double delay, const char* method) const;
  std::int64_t deadline_at(double when, const char* method) const;
  void timer_cancelled() noexcept { ++cancelled_timers_; }
  void create_task_impl(detail::FutureStateBase* task, std::string name);
  void task_done(detail::TaskStateBase* task) noexcept;
  void check_not_running() const;
  template <class T>
  void start_if_unstarted(Future<T>& future);
  static void check_fd(fd_t fd, const char* method);
  [[noreturn]] static void throw_closed();
  [[noreturn]] static void throw_wrong_thread(const char* method);
  Executor& default_executor();
  void report_slow_callback(detail::HandleState* state, std::int64_t took_ns);

  Clock clock_;
  detail::LoopLink* link_;  // what futures and servers hold; detached when the loop is destroyed
  detail::HandlePool pool_;
  // Ready queue: a ring buffer of handle states (each holds one reference).
  std::vector<detail::HandleState*> ready_;
  std::size_t ready_head_ = 0;
  std::size_t ready_size_ = 0;
  std::unique_ptr<detail::TimerHeap> timers_;
  std::size_t cancelled_timers_ = 0;
  std::uint64_t timer_seq_ = 0;
  std::shared_ptr<detail::Inbox> inbox_;
  // Created by the first signal handler or listener, kept until the loop
  // is destroyed (a late signal may still mark it).
  std::unique_ptr<detail::SignalTable> signals_;
  std::unordered_set<detail::TaskStateBase*> pending_tasks_;  // each holds a reference
  TaskFactory task_factory_;
  ExceptionHandler exception_handler_;
  std::shared_ptr<Executor> default_executor_;
  bool executor_shutdown_called_ = false;
  bool running_ = false;
  bool stopping_ = false;
  bool closed_ = false;
  bool debug_ = false;
  std::int64_t slow_callback_ns_ = 100'000'000;
  std::thread::id thread_id_;
};

// ---- Template definitions -------------------------------------------------

template <class T>
void EventLoop::start_if_unstarted(Future<T>& future) {
  if (auto* task = future.state()->as_task(); task && !task->started()) create_task_impl(future.state(), {});
}

template <class T>
T EventLoop::run_until_complete(Future<T> future) {
  check_closed();
  check_not_running();
  if (future.state()->loop() && future.state()->loop() != this)
    throw std::invalid_argument("run_until_complete: the future belongs to a different loop");
  start_if_unstarted(future);
  auto id = future.add_done_callback([this](const AnyFuture&) { stop(); });
  try {
    run_forever();
  } catch (...) {
    future.remove_done_callback(id);
    throw;
  }
  future.remove_done_callback(id);
  if (!future.done()) throw std::runtime_error("Event loop stopped before Future completed.");
  future.state()->check_result();
  if constexpr (!std::is_void_v<T>) return detail::take_value<T>(*future.state());
}

template <class F>
requires std::invocable < std::decay_t<F>
& > auto EventLoop::run_in_executor(Executor* executor, F&& func) -> Future<std::invoke_result_t<std::decay_t<F>&>> {
  using R = std::invoke_result_t<std::decay_t<F>&>;
  check_closed();
  Executor& target = executor ? *executor : default_executor();
  Future<R> future = create_future<R>();
  // Lets a cancelled future keep work that has not started from running.
  auto cancelled = std::make_shared<std::atomic<bool>>(false);
  future.add_done_callback([cancelled](const AnyFuture& f) {
    if (f.cancelled()) cancelled->store(true, std::memory_order_relaxed);
  });
  target.submit(detail::ExecutorWork<std::decay_t<F>, R>{std::forward<F>(func), future, std::move(cancelled), inbox_});
  return future;
}

}  // namespace aio
