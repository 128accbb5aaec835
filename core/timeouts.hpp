// aio::timeout / aio::timeout_at: asyncio 3.11's Timeout.
//
// A Timeout limits how long its body may run. Where asyncio writes
//
//   async with asyncio.timeout(10) as cm:
//       await long_running()
//
// aiocpp writes
//
//   aio::Timeout cm = aio::timeout(10);
//   co_await cm.run(long_running());
//
// The body is a Task (run inline by the calling task, as `await coro()`) or
// a future. When the deadline passes, the calling task is cancelled: the
// body sees CancelledError where it waits, and once it has finished, run()
// throws TimeoutError instead (unless the task was also cancelled by someone
// else, then CancelledError goes on). The body may reschedule() the deadline
// through its copy of the Timeout; copies share one state.
#pragma once

#include <core/errors.hpp>
#include <core/event_loop.hpp>
#include <core/task.hpp>

#include <memory>
#include <optional>
#include <string>
#include <utility>

namespace aio {

namespace detail {

// Shared by the copies of one Timeout and its scheduled expiry.
class TimeoutState : public std::enable_shared_from_this<TimeoutState> {
 public:
  enum class State { created, entered, expiring, expired, exited };

  explicit TimeoutState(std::optional<double> when) noexcept : when_(when) {}

  std::optional<double> when() const noexcept { return when_; }
  void reschedule(std::optional<double> when);
  bool expired() const noexcept { return state_ == State::expiring || state_ == State::expired; }
  std::string repr() const;

  // __aenter__: binds the current task (std::runtime_error outside one) and
  // schedules the expiry.
  void enter();
  // __aexit__, with whether the body ended in CancelledError: true when that
  // cancellation was the expiry's own (run() then throws TimeoutError).
  bool exit(bool cancelled) noexcept;

 private:
  void on_timeout();

  State state_ = State::created;
  std::optional<double> when_;
  Handle handler_;  // the expiry, scheduled with call_at (or call_soon when past)
  // The task running the body; not owned (its frame holds this state, and
  // exit() runs before that frame goes), so a task pending when its loop
  // closes is not kept alive by a cycle.
  FutureStateBase* task_ = nullptr;
};

}  // namespace detail

class Timeout {
 public:
  // A deadline on the loop's time() clock; none: no limit (until rescheduled).
  explicit Timeout(std::optional<double> when) : state_(std::make_shared<detail::TimeoutState>(when)) {}

  // The deadline, or none.
  std::optional<double> when() const noexcept { return state_->when(); }
  // Moves the deadline (none: no limit); a deadline already past expires at
  // the next iteration. std::runtime_error unless the body is running.
  void reschedule(std::optional<double> when) { state_->reschedule(when); }
  // True once the deadline passed while the body ran.
  bool expired() const noexcept { return state_->expired(); }
  // "<Timeout [active] when=12.5>", as asyncio's.
  std::string repr() const { return state_->repr(); }

  // Awaits `body` under the deadline (once per Timeout): its result, or
  // TimeoutError. std::runtime_error outside a task or for a second run().
  template <class T>
  Task<T> run(Task<T> body) const {
    return run_under<T>(state_, std::move(body));
  }
  template <class T>
  Task<T> run(Future<T> body) const {
    return run_under<T>(state_, std::move(body));
  }

 private:
  // A separate coroutine holding the state, so that a temporary Timeout
  // (`co_await aio::timeout(1).run(f())`) is safe.
  template <class T, class Awaitable>
  static Task<T> run_under(std::shared_ptr<detail::TimeoutState> state, Awaitable body) {
    state->enter();
    // Also when the frame is destroyed mid-way: the expiry must not fire.
    struct Exit {
      detail::TimeoutState* state;
      bool done = false;
      ~Exit() {
        if (!done) state->exit(false);
      }
    } guard{state.get()};
    bool timed_out = false;
    try {
      if constexpr (std::is_void_v<T>) {
        co_await body;
        guard.done = true;
        state->exit(false);
        co_return;
      } else {
        T result = co_await body;
        guard.done = true;
        state->exit(false);
        co_return result;
      }
    } catch (const CancelledError&) {
      guard.done = true;
      if (!state->exit(true)) throw;
      timed_out = true;
    }
    if (timed_out) throw TimeoutError("the timeout expired");
    throw TimeoutError();  // not reached
  }

  std::shared_ptr<detail::TimeoutState> state_;
};

// A Timeout `delay` seconds from now (none: no limit); needs a running loop.
Timeout timeout(std::optional<double> delay);
// A Timeout at `when`, on the loop's time() clock (none: no limit).
Timeout timeout_at(std::optional<double> when);

}  // namespace aio
