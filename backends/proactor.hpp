// The Proactor contract: completion notification for ProactorEventLoop.
//
// Where a Selector says "this socket is ready, now call the OS", a Proactor
// performs the operation itself (receive, send, accept, connect, ...) and
// reports it done, with its result, later. One implementation per OS
// mechanism, one file each: IocpProactor (Windows I/O completion ports) and
// IoUringProactor (Linux io_uring). Its methods are the operations, as
// asyncio's IocpProactor; queueing, timers and callbacks stay in the loop,
// and the loop's transports and sock_* coroutines (net/) are written once
// over these operations, for every Proactor.
//
// What every implementation guarantees:
// - Operations are ProactorOperation objects made by make_operation(). The
//   caller keeps one per kind of work it repeats (a transport's read, its
//   write) and starts it again after each completion: starting one
//   allocates nothing in steady state.
// - An operation method starts `op`, which must not be in flight. If the
//   operation cannot even start, the method throws (std::system_error naming
//   the call, NotImplementedError for what the mechanism cannot do) and
//   nothing else happens. Otherwise the operation completes exactly once:
//   its on_complete runs once, from wait(), on the loop's thread, with
//   `error` (0 or the OS code), `bytes` and the operation's other results
//   set. No operation completes inside the method that started it.
// - From its start to its completion the proactor keeps the operation alive
//   (the caller may drop its reference), and with it its buffers and
//   `keep_alive`, whatever happens meanwhile: cancel(), the socket being
//   closed, close(). The OS never writes into freed memory.
// - cancel() asks the OS to stop an operation in flight; the operation still
//   completes, usually with `error` set to the mechanism's "cancelled" code
//   (is_cancelled() says which), possibly with success if it won the race:
//   then its result stands (data received is in it). cancel() of an
//   operation that is not in flight does nothing.
// - Short transfers are results, not errors: a send may complete with fewer
//   bytes than it was given, and the caller sends the rest.
// - wait() blocks at most `timeout_ns` (-1: no limit, 0: poll), rounding a
//   timeout up to the mechanism's resolution so it never wakes early only
//   because of rounding; an early return is allowed. It collects finished
//   operations in batches and runs their on_complete. A completion
//   callback only moves results on (sets a future, hands data to a
//   transport); it must not start a nested wait().
// - wakeup() is thread-safe: it makes a concurrent or the next wait() return
//   soon.
// - close() cancels every operation in flight and waits for each
//   completion before releasing it; on_complete does not run then. It
//   returns within a bounded time. After close() only the destructor may be
//   called. A Proactor is used from one thread (wakeup() excepted); it owns
//   its OS resources and releases them by close() or in its destructor.
#pragma once

#include <core/address.hpp>
#include <core/callback.hpp>
#include <core/fd.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

namespace aio {

class Proactor;

// One operation of a Proactor, reused from one start to the next. A
// mechanism derives from it to add its OS control block.
class ProactorOperation : public std::enable_shared_from_this<ProactorOperation> {
 public:
  ProactorOperation() = default;
  ProactorOperation(const ProactorOperation&) = delete;
  ProactorOperation& operator=(const ProactorOperation&) = delete;
  virtual ~ProactorOperation() = default;

  // ---- Set by the caller ----
  // Runs once per start, when the operation finished. Set once; it stays
  // for the next start.
  detail::UniqueFunction<void(ProactorOperation&), 32> on_complete;
  // Released right after on_complete ran (or when close() dropped the
  // operation): what on_complete needs alive, typically the transport that
  // owns the operation. Set it before each start.
  std::shared_ptr<void> keep_alive;
  // send, sendto, write: the bytes to send. recvfrom, read: resized by the
  // caller to the most to receive; holds what arrived (`bytes` of it).
  std::string buffer;

  // ---- Set by the proactor when the operation completes ----
  // 0, or the OS error code (errno; Windows: a WSA or Win32 code).
  int error = 0;
  // Bytes transferred. 0 with `error` 0 is the end of the stream for recv
  // and read.
  std::size_t bytes = 0;
  // recvfrom: the sender. accept: the peer.
  SocketAddress address;
  // recv: what arrived, in the proactor's own memory, valid only while
  // on_complete runs.
  std::span<const char> data;

  // From a start until on_complete is about to run.
  bool in_flight() const noexcept { return in_flight_; }
  // accept: the new socket, which the operation closes unless taken.
  fd_t take_accepted() noexcept {
    fd_t fd = accepted_;
    accepted_ = -1;
    return fd;
  }

 protected:
  friend class Proactor;
  bool in_flight_ = false;
  fd_t accepted_ = -1;
  // The proactor's own reference while the operation is in flight.
  std::shared_ptr<ProactorOperation> self_;
};

class Proactor {
 public:
  virtual ~Proactor() = default;
  virtual std::string_view name() const noexcept = 0;

  // A new operation for this proactor's methods.
  virtual std::shared_ptr<ProactorOperation> make_operation() = 0;

  // ---- The operations (each as the contract above says) ----
  // Receives up to `max` bytes from a connected stream socket into memory
  // the proactor provides (op.data). A mechanism may wait for readiness
  // first and then read without blocking, so that an idle connection pins
  // no buffer.
  virtual void recv(ProactorOperation& op, fd_t sock, std::size_t max) = 0;
  // Waits until a socket has data (or end of file, or an error) without
  // taking any: `bytes` is 0. A receive cancelled this way loses nothing.
  // On a descriptor that is not a socket it waits as a read of it would
  // (io_uring: a poll; iocp, on a pipe handle with read access: a read of
  // one byte, which it drops), for watching a write pipe's reader.
  virtual void wait_readable(ProactorOperation& op, fd_t sock) = 0;
  // Sends op.buffer on a connected socket (possibly short).
  virtual void send(ProactorOperation& op, fd_t sock) = 0;
  // Sends `data` (possibly short), which lies in the data of `from`, a
  // recv whose on_complete is running (an echo of what just arrived),
  // without copying it: the proactor keeps that memory out of later
  // receives until this send has completed and its on_complete ran. False,
  // with nothing started, where the mechanism cannot lend it (memory that is
  // not its own, already lent, or none to lend: the default); the caller
  // then copies into op.buffer and calls send().
  virtual bool send_received(ProactorOperation& op, fd_t sock, ProactorOperation& from, std::span<const char> data) {
    (void)op, (void)sock, (void)from, (void)data;
    return false;
  }
  // Receives one datagram into op.buffer (its size is the most taken) and
  // its sender into op.address.
  virtual void recvfrom(ProactorOperation& op, fd_t sock) = 0;
  // Sends op.buffer as one datagram to `to` (nullptr: the connected peer).
  virtual void sendto(ProactorOperation& op, fd_t sock, const SocketAddress* to) = 0;
  // Accepts a connection on a listening socket: take_accepted() and
  // op.address. The new socket is non-blocking and close-on-exec
  // (non-inheritable), as Socket makes sockets.
  virtual void accept(ProactorOperation& op, fd_t listener) = 0;
  // Connects a stream socket to `to`.
  virtual void connect(ProactorOperation& op, fd_t sock, const SocketAddress& to) = 0;
  // Sends up to `count` (> 0) bytes of the regular file `file` (a POSIX or
  // C runtime descriptor) from `offset` on a connected stream socket; 0
  // bytes at or past the end of the file. The file's position is not used.
  virtual void sendfile(ProactorOperation& op, fd_t sock, int file, std::uint64_t offset, std::size_t count) = 0;
  // Reads from a pipe or file handle into op.buffer (its size is the most
  // read); writes op.buffer to one (possibly short).
  virtual void read(ProactorOperation& op, fd_t handle) = 0;
  virtual void write(ProactorOperation& op, fd_t handle) = 0;
  // Completes when `handle` is signalled: a process handle (Windows), or a
  // descriptor that becomes readable (a Linux pidfd).
  virtual void wait_handle(ProactorOperation& op, fd_t handle) = 0;

  // Whether a completed operation's `error` means it was cancelled.
  virtual bool is_cancelled(const ProactorOperation& op) const noexcept = 0;
  virtual void cancel(ProactorOperation& op) noexcept = 0;
  // Cancels every operation in flight on `fd` (before the caller closes
  // it): each still completes.
  virtual void cancel_all(fd_t fd) noexcept = 0;

  virtual void wait(std::int64_t timeout_ns) = 0;
  virtual void wakeup() noexcept = 0;
  virtual void close() noexcept = 0;
  // Operations in flight (diagnostics and tests; the loop's own wakeup
  // machinery not counted).
  virtual std::size_t in_flight() const noexcept = 0;

 protected:
  // For implementations: an operation starts being in flight (the
  // proactor's reference taken) and finishes (the reference handed back to
  // the caller of finish(), which runs on_complete and lets it go).
  static void mark_started(ProactorOperation& op) {
    op.in_flight_ = true;
    op.self_ = op.shared_from_this();
  }
  static std::shared_ptr<ProactorOperation> mark_finished(ProactorOperation& op) noexcept {
    op.in_flight_ = false;
    return std::move(op.self_);
  }
  // Runs on_complete (unless `run` is false: close()), then releases
  // keep_alive; the caller's reference from mark_finished() keeps the
  // operation alive meanwhile.
  static void complete(ProactorOperation& op, bool run) {
    std::shared_ptr<void> keep = std::move(op.keep_alive);
    if (run && op.on_complete) op.on_complete(op);
    op.data = {};
  }
  static void set_accepted(ProactorOperation& op, fd_t fd) noexcept { op.accepted_ = fd; }
};

}  // namespace aio
