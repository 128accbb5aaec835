// Coroutine utilities of asyncio.tasks: sleep, wait_for, gather.
#pragma once

#include <core/event_loop.hpp>
#include <core/events.hpp>

#include <cmath>
#include <cstddef>
#include <memory>
#include <optional>
#include <stdexcept>
#include <tuple>
#include <type_traits>
#include <variant>
#include <vector>

namespace aio {

namespace detail {

// Gives the loop one iteration (asyncio's bare `yield` in sleep(0)).
class YieldAwaiter {
 public:
  bool await_ready() const noexcept { return false; }
  template <std::derived_from<TaskStateBase> P>
  void await_suspend(std::coroutine_handle<P> h) {
    task_ = &root_of(h.promise());
    yield_to_loop(*task_, h);
  }
  void await_resume() { resume_from(*task_); }

 private:
  TaskStateBase* task_ = nullptr;
};

// Runs a callable when the scope ends (also when a coroutine frame is destroyed).
template <class F>
class ScopeExit {
 public:
  explicit ScopeExit(F f) : f_(std::move(f)) {}
  ScopeExit(const ScopeExit&) = delete;
  ScopeExit& operator=(const ScopeExit&) = delete;
  ~ScopeExit() { f_(); }

 private:
  F f_;
};

template <class T>
using result_or_monostate = std::conditional_t<std::is_void_v<T>, std::monostate, T>;

// Completes when every child is done, or at the first failure.
Task<void> gather_all(std::vector<AnyFuture> children);

template <class T>
Task<result_or_monostate<T>> result_of(Future<T> future) {
  if constexpr (std::is_void_v<T>) {
    co_await future;
    co_return std::monostate{};
  } else {
    co_return co_await future;
  }
}

}  // namespace detail

// Schedules `future` if it is a Task that has not started (asyncio.ensure_future);
// returns it either way.
template <class T>
Future<T> ensure_future(Future<T> future) {
  if (auto* task = future.state()->as_task(); task && !task->started()) {
    future.state()->add_ref();
    get_event_loop().create_task(Task<T>(future.state()));
  }
  return future;
}

// Suspends the calling task for `delay` seconds; 0 or less yields to the loop
// once. Throws std::invalid_argument for NaN.
Task<void> sleep(double delay);

template <class T>
Task<T> sleep(double delay, T result) {
  co_await sleep(delay);
  co_return result;
}

// Waits for `future` (a Task is scheduled first if it did not start) at most
// `timeout` seconds; on timeout cancels it, waits until it has finished
// cancelling, and throws TimeoutError. Without a timeout it just waits.
// Cancelling the caller cancels `future` too.
template <class T>
Task<T> wait_for(Future<T> future, std::optional<double> timeout) {
  if (timeout && std::isnan(*timeout)) throw std::invalid_argument("wait_for: timeout is NaN");
  future = ensure_future(std::move(future));
  if (!timeout || future.done()) co_return co_await future;
  bool timed_out = false;
  TimerHandle timer;
  if (*timeout <= 0) {
    // Cancelled at once, as asyncio's: a task not started yet never runs
    // (a 0 s timer would let its first step run before it fires).
    timed_out = true;
    future.cancel();
  } else {
    timer = get_running_loop().call_later(*timeout, [&timed_out, future]() mutable {
      timed_out = true;
      future.cancel();
    });
  }
  detail::ScopeExit cancel_timer([&timer] { timer.cancel(); });
  try {
    co_return co_await future;
  } catch (const CancelledError&) {
    if (timed_out) throw TimeoutError("wait_for: timed out after " + std::to_string(*timeout) + " seconds");
    throw;
  }
}

template <class T>
Task<T> wait_for(Task<T> task, std::optional<double> timeout) {
  return wait_for(static_cast<Future<T>>(task), timeout);
}

// Runs the futures concurrently (Tasks not started yet are scheduled) and
// returns their results in argument order. The first exception propagates at
// once (the others keep running); cancelling gather() cancels them all. A
// child that ends cancelled makes gather() throw CancelledError.
template <class T>
Task<std::conditional_t<std::is_void_v<T>, void, std::vector<T>>> gather(std::vector<Future<T>> futures);

template <class T>
Task<std::conditional_t<std::is_void_v<T>, void, std::vector<T>>> gather(std::vector<Task<T>> tasks) {
  return gather(std::vector<Future<T>>(tasks.begin(), tasks.end()));
}

template <class T>
Task<std::conditional_t<std::is_void_v<T>, void, std::vector<T>>> gather(std::vector<Future<T>> futures) {
  std::vector<AnyFuture> children;
  children.reserve(futures.size());
  for (auto& f : futures) children.push_back(ensure_future(f));
  co_await detail::gather_all(std::move(children));
  if constexpr (std::is_void_v<T>) {
    for (auto& f : futures) co_await f;
  } else {
    std::vector<T> results;
    results.reserve(futures.size());
    for (auto& f : futures) results.push_back(co_await f);
    co_return results;
  }
}

template <class... T>
Task<std::tuple<detail::result_or_monostate<T>...>> gather(Future<T>... futures) {
  (ensure_future(futures), ...);
  // Built outside the co_await: GCC 12 rejects a braced pack expansion inside
  // a co_await expression ("array used as initializer").
  std::vector<AnyFuture> children{futures...};
  co_await detail::gather_all(std::move(children));
  co_return std::tuple<detail::result_or_monostate<T>...>{co_await detail::result_of(futures)...};
}

}  // namespace aio
