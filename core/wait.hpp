// aio::wait and aio::as_completed: asyncio's ways to wait for several
// futures at once.
#pragma once

#include <core/tasks.hpp>

#include <cstddef>
#include <deque>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

namespace aio {

// When wait() returns (asyncio.FIRST_COMPLETED, FIRST_EXCEPTION, ALL_COMPLETED).
enum class ReturnWhen { first_completed, first_exception, all_completed };
inline constexpr ReturnWhen FIRST_COMPLETED = ReturnWhen::first_completed;
inline constexpr ReturnWhen FIRST_EXCEPTION = ReturnWhen::first_exception;
inline constexpr ReturnWhen ALL_COMPLETED = ReturnWhen::all_completed;

template <class T>
struct WaitResult {
  std::vector<Future<T>> done;
  std::vector<Future<T>> pending;
};

namespace detail {
// Completes once `return_when` holds for `futures` or after `timeout` seconds.
Task<void> wait_until(std::vector<AnyFuture> futures, std::optional<double> timeout, ReturnWhen return_when);
}  // namespace detail

// Waits until the futures (Tasks not started yet are scheduled) satisfy
// `return_when`, or `timeout` seconds passed, and returns them split into
// done and pending, in argument order. Nothing is cancelled on timeout.
// std::invalid_argument for an empty list or a NaN timeout.
template <class T>
Task<WaitResult<T>> wait(std::vector<Future<T>> futures, std::optional<double> timeout = std::nullopt,
                         ReturnWhen return_when = ALL_COMPLETED) {
  if (futures.empty()) throw std::invalid_argument("wait: the set of futures is empty");
  if (timeout && std::isnan(*timeout)) throw std::invalid_argument("wait: timeout is NaN");
  for (auto& f : futures) f = ensure_future(f);
  std::vector<AnyFuture> any(futures.begin(), futures.end());
  co_await detail::wait_until(std::move(any), timeout, return_when);
  WaitResult<T> result;
  for (auto& f : futures) (f.done() ? result.done : result.pending).push_back(f);
  co_return result;
}

template <class T>
Task<WaitResult<T>> wait(std::vector<Task<T>> tasks, std::optional<double> timeout = std::nullopt,
                         ReturnWhen return_when = ALL_COMPLETED) {
  return wait(std::vector<Future<T>>(tasks.begin(), tasks.end()), timeout, return_when);
}

namespace detail {

template <class T>
struct CompletionQueue {
  std::deque<Future<T>> done;
  std::deque<Future<void>> waiters;
  TimerHandle timer;
  std::size_t left;
  bool timed_out = false;

  void wake_one() {
    while (!waiters.empty()) {
      Future<void> w = std::move(waiters.front());
      waiters.pop_front();
      if (!w.done()) {
        w.set_result();
        return;
      }
    }
  }
};

template <class T>
Task<T> next_completed(std::shared_ptr<CompletionQueue<T>> queue) {
  while (queue->done.empty()) {
    if (queue->timed_out) throw TimeoutError("as_completed: timed out");
    Future<void> waiter = get_running_loop().create_future<void>();
    queue->waiters.push_back(waiter);
    co_await waiter;
  }
  Future<T> f = std::move(queue->done.front());
  queue->done.pop_front();
  if (--queue->left == 0) queue->timer.cancel();
  co_return co_await f;
}

}  // namespace detail

// asyncio.as_completed: one awaitable per future (Tasks not started yet are
// scheduled); awaiting them in order gives the results in the order the
// futures finish (or rethrows their exceptions). After `timeout` seconds the
// ones still waiting throw TimeoutError.
template <class T>
std::vector<Task<T>> as_completed(std::vector<Future<T>> futures, std::optional<double> timeout = std::nullopt) {
  if (timeout && std::isnan(*timeout)) throw std::invalid_argument("as_completed: timeout is NaN");
  auto queue = std::make_shared<detail::CompletionQueue<T>>();
  queue->left = futures.size();
  std::vector<AnyFuture> any(futures.begin(), futures.end());
  EventLoop& loop = loop_for(any);
  for (auto& f : futures) {
    if (auto* task = f.state()->as_task(); task && !task->started())
      loop.create_task(Task<T>(detail::adopt_ref(f.state())));
    // The queue holds the futures only once they are done: no cycle.
    std::weak_ptr<detail::CompletionQueue<T>> weak = queue;
    f.add_done_callback([weak](const Future<T>& done) {
      auto q = weak.lock();
      if (!q) {
        if (!done.cancelled()) (void)done.exception();
        return;
      }
      q->done.push_back(done);
      q->wake_one();
    });
  }
  if (timeout && !futures.empty()) {
    std::weak_ptr<detail::CompletionQueue<T>> weak = queue;
    queue->timer = loop.call_later(*timeout, [weak] {
      auto q = weak.lock();
      if (!q) return;
      q->timed_out = true;
      while (!q->waiters.empty()) q->wake_one();
    });
  }
  std::vector<Task<T>> next;
  next.reserve(futures.size());
  for (std::size_t i = 0; i < futures.size(); ++i) next.push_back(detail::next_completed<T>(queue));
  return next;
}

template <class T>
std::vector<Task<T>> as_completed(std::vector<Task<T>> tasks, std::optional<double> timeout = std::nullopt) {
  return as_completed(std::vector<Future<T>>(tasks.begin(), tasks.end()), timeout);
}

}  // namespace aio
