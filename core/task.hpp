// Task<T>: a coroutine that is also an asyncio.Task.
//
// Calling a function declared `aio::Task<T> f()` creates the coroutine
// suspended, as calling an `async def` creates a coroutine object. Then either
//   - `co_await f()` from another task runs it inline, like `await f()`; or
//   - `loop.create_task(f())` schedules it to run concurrently, like
//     asyncio.create_task; the Task is then a Future<T> (done-callbacks,
//     cancel(), result()).
// A coroutine runs once: awaiting or scheduling a started task again only
// waits for its result.
//
// cancel() on a task makes its pending co_await throw CancelledError; the
// coroutine may catch it. If CancelledError escapes the coroutine the task
// ends cancelled, otherwise it finishes with what it returned.
#pragma once

#include <core/context.hpp>
#include <core/future.hpp>

#include <coroutine>
#include <memory>
#include <source_location>
#include <string>

namespace aio {

template <class T = void>
class Task;

namespace detail {

// The non-template part of every task's promise.
class TaskStateBase {
 public:
  explicit TaskStateBase(FutureStateBase& self, std::coroutine_handle<> coro, std::source_location where = {}) noexcept
      : self_(self), resume_point_(coro), where_(where) {}

  bool started() const noexcept { return started_; }
  // Scheduled with create_task (rather than awaited inline by another task).
  bool is_root_task() const noexcept { return started_ && root_ == this; }
  bool first_step_scheduled() const noexcept { return scheduled_; }
  FutureStateBase& as_future() noexcept { return self_; }

  // Runs the task until it next suspends (called from the loop only).
  void step();
  // Schedules step() with call_soon.
  void schedule_step();
  // asyncio Task.cancel.
  bool cancel_task(std::string message);
  // Makes this (unstarted) coroutine the root of a task scheduled on `loop`.
  void start_as_task(EventLoop& loop);
  // Starts this unstarted coroutine inline under `parent`'s root task;
  // returns the handle to resume.
  std::coroutine_handle<> start_inline(TaskStateBase& parent, std::coroutine_handle<> continuation);
  // Where a finished coroutine goes next: its awaiting parent or nowhere.
  std::coroutine_handle<> on_final_suspend() noexcept;
  void on_exception() noexcept;
  // Throws CancelledError if a cancel() request is pending.
  void check_cancel();
  // asyncio's repr: "<Task pending name='Task-1' coro=<main() defined at main.cpp:12>>".
  std::string repr();
  // The context a scheduled task's steps run in (null: not scheduled yet).
  void set_context(std::shared_ptr<ContextImpl> context) noexcept { context_ = std::move(context); }
  const std::shared_ptr<ContextImpl>& context() const noexcept { return context_; }

  std::string name_;
  int cancel_requests_ = 0;

 private:
  friend std::uint64_t suspend_on(FutureStateBase&, TaskStateBase&, std::coroutine_handle<>);
  friend void resume_from(TaskStateBase&);
  friend TaskStateBase& root_of(TaskStateBase&) noexcept;
  friend void yield_to_loop(TaskStateBase&, std::coroutine_handle<>);

  FutureStateBase& self_;
  TaskStateBase* root_ = this;            // the scheduled task this coroutine runs under
  std::coroutine_handle<> resume_point_;  // root only: innermost suspended coroutine
  std::coroutine_handle<> continuation_;  // inline child only: the awaiting coroutine
  AnyFuture fut_waiter_;                  // root only: what it is suspended on
  std::source_location where_;            // the coroutine function, for repr()
  std::shared_ptr<ContextImpl> context_;  // root only
  std::string cancel_message_;
  bool started_ = false;
  bool scheduled_ = false;
  bool must_cancel_ = false;
  bool ended_cancelled_ = false;
};

// Suspends `task` (running coroutine `h`) for one loop iteration.
void yield_to_loop(TaskStateBase& task, std::coroutine_handle<> h);

template <class T>
class TaskPromise;

template <class T>
struct ReturnValue {
  template <class U = T>
  requires std::constructible_from<T, U&&>
  void return_value(U&& value) { static_cast<TaskPromise<T>*>(this)->slot_.value.emplace(std::forward<U>(value)); }
};
template <>
struct ReturnValue<void> {
  void return_void() noexcept {}
};

template <class T>
class TaskPromise final : public FutureStateBase, public TaskStateBase, public ReturnValue<T> {
  using Handle = std::coroutine_handle<TaskPromise>;

 public:
  // The default argument names the coroutine function itself (GCC and
  // Clang evaluate it where the coroutine's promise is made).
  explicit TaskPromise(std::source_location where = std::source_location::current()) noexcept
      : FutureStateBase(nullptr), TaskStateBase(*this, Handle::from_promise(*this), where) {}

  Task<T> get_return_object() noexcept;

  struct InitialAwaiter {
    TaskPromise& promise;
    bool await_ready() const noexcept { return false; }
    void await_suspend(std::coroutine_handle<>) const noexcept {}
    void await_resume() const { promise.check_cancel(); }
  };
  InitialAwaiter initial_suspend() noexcept { return {*this}; }

  struct FinalAwaiter {
    bool await_ready() const noexcept { return false; }
    std::coroutine_handle<> await_suspend(Handle h) const noexcept { return h.promise().on_final_suspend(); }
    void await_resume() const noexcept {}
  };
  FinalAwaiter final_suspend() noexcept { return {}; }

  void unhandled_exception() noexcept { on_exception(); }

  bool cancel(std::string message) override { return cancel_task(std::move(message)); }
  TaskStateBase* as_task() noexcept override { return this; }
  void* value_slot() noexcept override { return &slot_; }

 private:
  friend struct ReturnValue<T>;
  void destroy() noexcept override { Handle::from_promise(*this).destroy(); }
  ValueSlot<T> slot_;
};

}  // namespace detail

// A type-erased task handle: what task factories, current_task() and
// all_tasks() give.
class AnyTask : public AnyFuture {
 public:
  AnyTask() noexcept = default;
  explicit AnyTask(detail::FutureStateBase* state) noexcept : AnyFuture(state) {}

  const std::string& get_name() const noexcept { return task().name_; }
  void set_name(std::string name) { task().name_ = std::move(name); }
  // Number of pending cancel() requests (asyncio Task.cancelling/uncancel).
  int cancelling() const noexcept { return task().cancel_requests_; }
  int uncancel() noexcept { return task().cancel_requests_ > 0 ? --task().cancel_requests_ : 0; }

 private:
  detail::TaskStateBase& task() const noexcept { return *state_->as_task(); }
};

template <class T>
class Task : public Future<T> {
  using Promise = detail::TaskPromise<T>;

 public:
  using promise_type = Promise;

  Task() noexcept = default;
  explicit Task(detail::FutureStateBase* state) noexcept : Future<T>(state) {}

  const std::string& get_name() const noexcept { return as_any().get_name(); }
  void set_name(std::string name) { as_any().set_name(std::move(name)); }
  int cancelling() const noexcept { return as_any().cancelling(); }
  int uncancel() noexcept { return as_any().uncancel(); }
  // True once the coroutine was scheduled or awaited.
  bool started() const noexcept { return this->state_->as_task()->started(); }

  operator AnyTask() const noexcept {  // NOLINT(google-explicit-constructor)
    this->state_->add_ref();
    return AnyTask(this->state_);
  }

  class Awaiter : public Future<T>::Awaiter {
   public:
    using Future<T>::Awaiter::Awaiter;

    template <std::derived_from<detail::TaskStateBase> P>
    std::coroutine_handle<> await_suspend(std::coroutine_handle<P> h) {
      auto& child = *this->future_.state()->as_task();
      if (!child.started()) return child.start_inline(h.promise(), h);
      Future<T>::Awaiter::await_suspend(h);
      return std::noop_coroutine();
    }
  };
  Awaiter operator co_await() const noexcept { return Awaiter(*this); }

 private:
  AnyTask as_any() const noexcept {
    this->state_->add_ref();
    return AnyTask(this->state_);
  }
};

template <class T>
Task<T> detail::TaskPromise<T>::get_return_object() noexcept {
  return Task<T>(static_cast<FutureStateBase*>(this));
}

// The task running on this thread, or an empty handle (asyncio.current_task).
AnyTask current_task();

}  // namespace aio
