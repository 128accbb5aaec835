// The Proactor contract: completion notification for ProactorEventLoop.
//
// Where a Selector says "this socket is ready, now call the OS", a Proactor
// starts the operation itself (receive, send, accept, connect) and reports it
// done, with its result, later. One implementation per OS mechanism, one file
// each: IocpProactor (Windows I/O completion ports); an IoUringProactor may
// follow. It only starts, cancels and collects operations; queueing, timers
// and callbacks stay in the loop.
//
// What every implementation guarantees:
// - associate() makes a socket able to carry operations; calling it again
//   for the same socket is harmless. A socket that cannot be associated
//   (closed, invalid) is a std::system_error.
// - An operation is an object the proactor keeps alive from its start until
//   the OS reports it finished, whatever happens meanwhile: the caller
//   dropping its reference, cancel(), close(). Its OS control block and its
//   buffers live inside it, so the OS never writes into freed memory.
// - Each started operation completes exactly once: its `on_complete` runs
//   once, from wait(), on the loop's thread, with `error` (0 or the OS code)
//   and `bytes` set. A completion callback only schedules work (sets a
//   future); it never runs user code itself.
// - cancel() asks the OS to stop an operation that has not completed; the
//   operation still completes (usually with the mechanism's "aborted" code,
//   possibly with success if it won the race) and its callback still runs.
//   cancel() of a finished operation does nothing.
// - wait() blocks at most `timeout_ns` (-1: no limit, 0: poll), rounding a
//   timeout up to the mechanism's resolution so it never wakes early only
//   because of rounding; an early return is allowed. It collects finished
//   operations in batches and runs their callbacks.
// - wakeup() is thread-safe: it makes a concurrent or the next wait() return
//   soon.
// - close() cancels every pending operation and waits for each completion
//   before freeing it; callbacks do not run then. After close() only the
//   destructor may be called. A Proactor is used from one thread (wakeup()
//   excepted); it owns its OS resources and releases them by close() or in
//   its destructor.
#pragma once

#include <core/event_loop.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string_view>

namespace aio {

// The part of an operation every mechanism shares; a mechanism derives from
// it to add its control block and buffers.
class ProactorOperation {
 public:
  virtual ~ProactorOperation() = default;
  // Runs once when the operation finished (see the contract above).
  std::function<void(ProactorOperation&)> on_complete;
  // The OS error code the operation ended with; 0 for success.
  std::uint32_t error = 0;
  // Bytes transferred.
  std::size_t bytes = 0;
  // True once the completion arrived.
  bool finished = false;
};

class Proactor {
 public:
  virtual ~Proactor() = default;
  virtual std::string_view name() const noexcept = 0;
  virtual void associate(fd_t sock) = 0;
  virtual void cancel(ProactorOperation& op) noexcept = 0;
  virtual void wait(std::int64_t timeout_ns) = 0;
  virtual void wakeup() noexcept = 0;
  virtual void close() noexcept = 0;
};

}  // namespace aio
