// aio::TaskGroup: asyncio 3.11's TaskGroup.
//
// Where asyncio writes
//
//   async with asyncio.TaskGroup() as tg:
//       tg.create_task(one())
//       tg.create_task(two())
//
// aiocpp writes, inside a task,
//
//   aio::TaskGroup tg;
//   tg.create_task(one());
//   tg.create_task(two());
//   co_await tg.wait();
//
// wait() is asyncio's __aexit__: it waits for every task of the group. The
// first task that fails (with anything but CancelledError) cancels the others
// and the task that made the group, and wait() then throws an ExceptionGroup
// holding every failure. If the body between the constructor and wait()
// throws, pass that exception to wait(std::current_exception()) from outside
// the catch block (C++ cannot co_await in one): the group cancels its tasks,
// waits for them, and throws (a CancelledError the group caused itself is
// swallowed, as asyncio's). Or let TaskGroup::run do all of that:
//
//   auto body = [](aio::TaskGroup& tg) -> aio::Task<void> { tg.create_task(one()); co_return; };
//   co_await aio::TaskGroup::run(body);
//
// A group destroyed before wait() finished cancels the tasks still running.
#pragma once

#include <core/context.hpp>
#include <core/event_loop.hpp>
#include <core/task.hpp>

#include <concepts>
#include <exception>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace aio {

namespace detail {

class TaskGroupState : public std::enable_shared_from_this<TaskGroupState> {
 public:
  TaskGroupState(EventLoop& loop, FutureStateBase* parent) : loop_(loop), parent_(parent) {}
  EventLoop& loop() const noexcept { return loop_; }
  // Throws std::runtime_error when the group takes no more tasks.
  void check_open() const;
  void adopt(AnyFuture task);
  Task<void> exit(std::exception_ptr body_error);
  void abort() noexcept;
  // The group object is gone: cancels what still runs, forgets the parent.
  void close() noexcept;

 private:
  void on_task_done(const AnyFuture& task);

  EventLoop& loop_;
  // The task that made the group; not owned (its frame holds the group,
  // which forgets it when destroyed), so that no cycle keeps a task pending
  // at loop close alive.
  FutureStateBase* parent_;
  std::vector<AnyFuture> tasks_;
  std::vector<std::exception_ptr> errors_;
  Future<void> on_completed_;
  bool exiting_ = false;
  bool aborting_ = false;
  bool parent_cancel_requested_ = false;
};

}  // namespace detail

class TaskGroup {
 public:
  // Enters the group on behalf of the current task; std::runtime_error
  // outside a task ("cannot determine the parent task").
  TaskGroup();
  TaskGroup(const TaskGroup&) = delete;
  TaskGroup& operator=(const TaskGroup&) = delete;
  ~TaskGroup();

  // Schedules `coro` as a task of the group (loop.create_task). Throws
  // std::runtime_error once the group is finished or shutting down (a task
  // failed, or the body or the parent was cancelled).
  template <class T>
  Task<T> create_task(Task<T> coro, std::string name = {}) {
    state_->check_open();
    Task<T> task = state_->loop().create_task(std::move(coro), std::move(name));
    state_->adopt(task);
    return task;
  }
  template <class T>
  Task<T> create_task(Task<T> coro, std::string name, const Context& context) {
    state_->check_open();
    Task<T> task = state_->loop().create_task(std::move(coro), std::move(name), context);
    state_->adopt(task);
    return task;
  }

  // asyncio's __aexit__: waits for every task; ExceptionGroup if any failed;
  // `body_error` is what the body threw (null: it ended normally).
  Task<void> wait(std::exception_ptr body_error = nullptr) { return state_->exit(std::move(body_error)); }

  // Runs `body(group)` (a callable returning a Task) under a new group and
  // waits for the group, as an `async with TaskGroup() as tg:` block.
  template <class F>
  requires std::invocable<F&, TaskGroup&>
  static Task<void> run(F body) {
    TaskGroup group;
    std::exception_ptr error;
    try {
      co_await body(group);
    } catch (...) {
      error = std::current_exception();
    }
    co_await group.wait(error);
  }

 private:
  std::shared_ptr<detail::TaskGroupState> state_;
};

}  // namespace aio
