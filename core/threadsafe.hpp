// Crossing threads with futures: run_coroutine_threadsafe (another thread
// hands a coroutine to a loop and blocks on its result) and wrap_future (a
// std::future from elsewhere becomes an awaitable aio::Future).
#pragma once

#include <core/errors.hpp>
#include <core/event_loop.hpp>
#include <core/task.hpp>

#include <chrono>
#include <condition_variable>
#include <exception>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <type_traits>
#include <utility>

namespace aio {

namespace detail {

template <class T>
struct ConcurrentState {
  std::mutex mutex;
  std::condition_variable changed;
  std::optional<std::conditional_t<std::is_void_v<T>, bool, T>> value;
  std::exception_ptr error;
  bool cancelled = false;
  bool done = false;
  std::string cancel_message;
  std::shared_ptr<Inbox> inbox;  // the loop's, for cancel()
  AnyTask task;                  // touched on the loop's thread only
};

}  // namespace detail

// What run_coroutine_threadsafe returns: asyncio's concurrent.futures.Future,
// usable from any thread.
template <class T>
class ConcurrentFuture {
 public:
  explicit ConcurrentFuture(std::shared_ptr<detail::ConcurrentState<T>> state) : state_(std::move(state)) {}

  bool done() const {
    std::lock_guard lock(state_->mutex);
    return state_->done;
  }
  bool cancelled() const {
    std::lock_guard lock(state_->mutex);
    return state_->cancelled;
  }

  // Blocks until the coroutine finished (at most `timeout` seconds, then
  // TimeoutError) and returns its result, or rethrows its exception
  // (CancelledError if it was cancelled). Never call it on the loop's own
  // thread: the loop could not run the coroutine meanwhile.
  T result(std::optional<double> timeout = std::nullopt) {
    std::unique_lock lock(state_->mutex);
    auto is_done = [this] { return state_->done; };
    if (timeout) {
      if (!state_->changed.wait_for(lock, std::chrono::duration<double>(*timeout), is_done))
        throw TimeoutError("ConcurrentFuture.result: timed out");
    } else {
      state_->changed.wait(lock, is_done);
    }
    if (state_->cancelled) throw CancelledError(state_->cancel_message);
    if (state_->error) std::rethrow_exception(state_->error);
    if constexpr (!std::is_void_v<T>) {
      if constexpr (std::is_copy_constructible_v<T>)
        return *state_->value;
      else
        return std::move(*state_->value);
    }
  }

  // Asks the loop to cancel the task (asyncio: future.cancel() from the
  // other thread); false if it is done already or the loop is closed.
  bool cancel(std::string message = {}) {
    if (done()) return false;
    return detail::post_threadsafe(state_->inbox, [state = state_, message = std::move(message)]() mutable {
      if (state->task) state->task.cancel(std::move(message));
    });
  }

 private:
  std::shared_ptr<detail::ConcurrentState<T>> state_;
};

// Submits `coro` to `loop` from another thread (asyncio.run_coroutine_threadsafe):
// it is scheduled as a task with call_soon_threadsafe, and the returned
// future completes with its outcome. std::runtime_error if the loop is closed.
template <class T>
ConcurrentFuture<T> run_coroutine_threadsafe(Task<T> coro, EventLoop& loop) {
  auto state = std::make_shared<detail::ConcurrentState<T>>();
  state->inbox = detail::inbox_of(loop);
  auto complete = [state](const Future<T>& done) {
    {
      std::lock_guard lock(state->mutex);
      if (done.cancelled()) {
        state->cancelled = true;
        state->cancel_message = done.state()->cancel_message();
      } else if (std::exception_ptr error = done.exception()) {
        state->error = error;
      } else if constexpr (std::is_void_v<T>) {
        state->value.emplace(true);
      } else {
        state->value.emplace(detail::take_value<T>(*done.state()));
      }
      state->done = true;
    }
    state->task = AnyTask();
    state->changed.notify_all();
  };
  loop.call_soon_threadsafe([&loop, state, coro = std::move(coro), complete]() mutable {
    try {
      Task<T> task = loop.create_task(std::move(coro));
      state->task = task;
      task.add_done_callback(complete);
    } catch (...) {
      {
        std::lock_guard lock(state->mutex);
        state->error = std::current_exception();
        state->done = true;
      }
      state->changed.notify_all();
    }
  });
  return ConcurrentFuture<T>(std::move(state));
}

// An aio::Future on `loop` that completes with `future`'s outcome
// (asyncio.wrap_future). A std::future has no completion callback, so a
// thread of the loop's default executor waits for it: meant for results of
// work running elsewhere (another executor, a thread of the program).
template <class T>
Future<T> wrap_future(std::future<T> future, EventLoop& loop) {
  auto shared = std::make_shared<std::future<T>>(std::move(future));
  return loop.run_in_executor(nullptr, [shared]() -> T { return shared->get(); });
}

template <class T>
Future<T> wrap_future(std::shared_future<T> future, EventLoop& loop) {
  return loop.run_in_executor(nullptr, [future]() -> T { return future.get(); });
}

}  // namespace aio
