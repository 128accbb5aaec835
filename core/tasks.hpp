// Coroutine utilities of asyncio.tasks: sleep, wait_for, gather, ensure_future.
#pragma once

#include <core/event_loop.hpp>
#include <core/events.hpp>
#include <core/timeouts.hpp>

#include <cmath>
#include <cstddef>
#include <memory>
#include <optional>
#include <stdexcept>
#include <tuple>
#include <type_traits>
#include <utility>
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

// The loop gather(), shield() and wait() attach to: the running one, else
// the loop of the first future that has one, else the current loop
// (get_event_loop). Throws std::runtime_error if there is none.
EventLoop& loop_for(const std::vector<AnyFuture>& futures);

namespace detail {

// asyncio's _GatheringFuture: done when the children are (or at the first
// failure); cancel() cancels the children and returns false once it is done.
class GatheringBase : public FutureStateBase {
 public:
  GatheringBase(EventLoop& loop, std::vector<AnyFuture> children, bool return_exceptions);
  bool cancel(std::string message) override;
  // Hooks the children up (after the state is owned: the callbacks hold it).
  void start();

 protected:
  // Every child is done and the gather succeeds: store the result.
  virtual void store_results(std::vector<AnyFuture>& children) = 0;

 private:
  void child_done(FutureStateBase& child);

  std::vector<AnyFuture> children_;  // cleared once done (nothing needs them then)
  std::size_t finished_ = 0;
  bool return_exceptions_;
  bool cancel_requested_ = false;
};

template <class R, class Collect>
class Gathering final : public GatheringBase {
 public:
  Gathering(EventLoop& loop, std::vector<AnyFuture> children, bool return_exceptions, Collect collect)
      : GatheringBase(loop, std::move(children), return_exceptions), collect_(std::move(collect)) {}
  void* value_slot() noexcept override { return &slot_; }

 private:
  ~Gathering() override = default;
  void destroy() noexcept override { delete this; }
  void store_results(std::vector<AnyFuture>& children) override {
    if constexpr (std::is_void_v<R>)
      collect_(children);
    else
      slot_.value.emplace(collect_(children));
  }

  ValueSlot<R> slot_;
  Collect collect_;
};

template <class R, class Collect>
Future<R> make_gathering(std::vector<AnyFuture> children, bool return_exceptions, Collect collect) {
  EventLoop& loop = loop_for(children);
  for (AnyFuture& child : children)
    if (auto* task = child.state()->as_task(); task && !task->started()) {
      child.state()->add_ref();
      loop.create_task(Task<void>(child.state()));  // create_task only reads the state
    }
  auto* state = new Gathering<R, Collect>(loop, std::move(children), return_exceptions, std::move(collect));
  Future<R> outer(state);
  state->start();
  return outer;
}

template <class T>
result_or_monostate<T> value_of(const AnyFuture& child) {
  if constexpr (std::is_void_v<T>)
    return std::monostate{};
  else
    return take_value<T>(*child.state());
}

// A child's outcome for gather(..., return_exceptions): its value, or the
// exception it failed with (a CancelledError if it was cancelled).
template <class T>
std::variant<result_or_monostate<T>, std::exception_ptr> outcome_of(const AnyFuture& child) {
  if (child.cancelled()) return std::make_exception_ptr(CancelledError(child.state()->cancel_message()));
  if (std::exception_ptr error = child.exception()) return error;
  return value_of<T>(child);
}

template <class... T, std::size_t... I>
std::tuple<result_or_monostate<T>...> collect_tuple(std::vector<AnyFuture>& children, std::index_sequence<I...>) {
  return {value_of<T>(children[I])...};
}

template <class... T, std::size_t... I>
std::tuple<std::variant<result_or_monostate<T>, std::exception_ptr>...> outcome_tuple(std::vector<AnyFuture>& children,
                                                                                      std::index_sequence<I...>) {
  return {outcome_of<T>(children[I])...};
}

// A new reference to `state`, for a handle to adopt.
inline FutureStateBase* adopt_ref(FutureStateBase* state) noexcept {
  state->add_ref();
  return state;
}

template <class T>
std::vector<AnyFuture> as_any(std::vector<T> futures) {
  return std::vector<AnyFuture>(std::make_move_iterator(futures.begin()), std::make_move_iterator(futures.end()));
}

// Cancels `future` and waits until it is done; its value if it swallowed the
// cancellation, else TimeoutError (wait_for with a timeout <= 0).
template <class T>
Task<T> cancel_and_wait(Future<T> future, double timeout) {
  future.cancel();
  try {
    co_return co_await future;
  } catch (const CancelledError&) {
    if (!future.cancelled()) throw;
  }
  throw TimeoutError("wait_for: timed out after " + std::to_string(timeout) + " seconds");
}

}  // namespace detail

// The outcome of each child of gather(..., return_exceptions).
template <class T>
using GatherOutcome = std::variant<detail::result_or_monostate<T>, std::exception_ptr>;

// Tag for gather's return_exceptions=True.
struct ReturnExceptions {};
inline constexpr ReturnExceptions return_exceptions{};

// Runs the futures concurrently (Tasks not started yet are scheduled on the
// running loop, else on the loop of the other futures, else on the current
// loop) and gives their results in argument order, as asyncio.gather: the
// returned future is done at the first child that fails (with its exception)
// or is cancelled (with CancelledError as its exception, not cancelled
// itself); the others keep running. cancel() on it cancels every child not
// done yet and returns whether one was; once it is done, cancel() returns
// false and its result stands. Like asyncio's, it is a future, not a
// coroutine: calling gather() starts the children.
template <class T>
Future<std::conditional_t<std::is_void_v<T>, void, std::vector<T>>> gather(std::vector<Future<T>> futures) {
  using R = std::conditional_t<std::is_void_v<T>, void, std::vector<T>>;
  if constexpr (std::is_void_v<T>) {
    return detail::make_gathering<void>(detail::as_any(std::move(futures)), false, [](std::vector<AnyFuture>&) {});
  } else {
    return detail::make_gathering<R>(detail::as_any(std::move(futures)), false, [](std::vector<AnyFuture>& children) {
      R results;
      results.reserve(children.size());
      for (AnyFuture& child : children) results.push_back(detail::take_value<T>(*child.state()));
      return results;
    });
  }
}

template <class T>
Future<std::conditional_t<std::is_void_v<T>, void, std::vector<T>>> gather(std::vector<Task<T>> tasks) {
  return gather(std::vector<Future<T>>(tasks.begin(), tasks.end()));
}

// return_exceptions=True: never fails for a child; each child's value or
// exception (a cancelled child's CancelledError), in argument order.
template <class T>
Future<std::vector<GatherOutcome<T>>> gather(std::vector<Future<T>> futures, ReturnExceptions) {
  return detail::make_gathering<std::vector<GatherOutcome<T>>>(detail::as_any(std::move(futures)), true,
                                                               [](std::vector<AnyFuture>& children) {
                                                                 std::vector<GatherOutcome<T>> results;
                                                                 results.reserve(children.size());
                                                                 for (AnyFuture& child : children)
                                                                   results.push_back(detail::outcome_of<T>(child));
                                                                 return results;
                                                               });
}

template <class T>
Future<std::vector<GatherOutcome<T>>> gather(std::vector<Task<T>> tasks, ReturnExceptions tag) {
  return gather(std::vector<Future<T>>(tasks.begin(), tasks.end()), tag);
}

// Futures of different types: a tuple of their results (std::monostate for void).
template <class... T>
Future<std::tuple<detail::result_or_monostate<T>...>> gather(Future<T>... futures) {
  using R = std::tuple<detail::result_or_monostate<T>...>;
  return detail::make_gathering<R>(std::vector<AnyFuture>{futures...}, false, [](std::vector<AnyFuture>& children) {
    return detail::collect_tuple<T...>(children, std::index_sequence_for<T...>{});
  });
}

template <class... T>
Future<std::tuple<GatherOutcome<T>...>> gather(ReturnExceptions, Future<T>... futures) {
  using R = std::tuple<GatherOutcome<T>...>;
  return detail::make_gathering<R>(std::vector<AnyFuture>{futures...}, true, [](std::vector<AnyFuture>& children) {
    return detail::outcome_tuple<T...>(children, std::index_sequence_for<T...>{});
  });
}

// Waits for `awaitable` at most `timeout` seconds, as asyncio 3.12's wait_for:
// a Task that has not started runs inline in the caller (as `await coro()`),
// under aio::timeout(timeout); when time runs out it is cancelled where it
// waits and TimeoutError is thrown once it has finished. A started task or a
// future is awaited the same way (cancelling the caller cancels it). With a
// timeout <= 0 the awaitable is cancelled at once (a Task not started yet
// never runs) and waited for; without one, wait_for just awaits.
template <class T>
Task<T> wait_for(Task<T> task, std::optional<double> timeout) {
  if (timeout && std::isnan(*timeout)) throw std::invalid_argument("wait_for: timeout is NaN");
  if (timeout && *timeout <= 0) {
    Future<T> future = ensure_future(static_cast<Future<T>>(task));
    if (!future.done()) co_return co_await detail::cancel_and_wait(std::move(future), *timeout);
    co_return co_await future;
  }
  Timeout limit = aio::timeout(timeout);
  co_return co_await limit.run(std::move(task));
}

template <class T>
Task<T> wait_for(Future<T> future, std::optional<double> timeout) {
  if (future.state()->as_task()) {
    co_return co_await wait_for(Task<T>(detail::adopt_ref(future.state())), timeout);
  }
  if (timeout && std::isnan(*timeout)) throw std::invalid_argument("wait_for: timeout is NaN");
  if (timeout && *timeout <= 0) {
    if (!future.done()) co_return co_await detail::cancel_and_wait(std::move(future), *timeout);
    co_return co_await future;
  }
  Timeout limit = aio::timeout(timeout);
  co_return co_await limit.run(std::move(future));
}

}  // namespace aio
