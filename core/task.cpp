#include <core/event_loop.hpp>
#include <core/task.hpp>

namespace aio {
namespace detail {
namespace {
thread_local TaskStateBase* tls_current_task = nullptr;

// What a task's scheduled step is (a type of its own, so that slow-callback
// reports and handle reprs name the task).
struct TaskStep {
  AnyFuture task;
  void operator()() const { task.state()->as_task()->step(); }
  std::string describe() const { return task.state()->as_task()->repr(); }
};
}  // namespace

void TaskStateBase::step() {
  {
    ContextScope context(context_.get());
    TaskStateBase* previous = std::exchange(tls_current_task, this);
    resume_point_.resume();
    tls_current_task = previous;
  }
  // cancel() ran while the task was running: the future it now waits on is
  // cancelled, so the task wakes with CancelledError (asyncio Task.__step).
  if (must_cancel_ && !self_.done() && fut_waiter_ && fut_waiter_.cancel(cancel_message_)) must_cancel_ = false;
}

void TaskStateBase::schedule_step() {
  scheduled_ = true;
  self_.add_ref();
  self_.loop()->call_soon_impl(TaskStep{AnyFuture(&self_)}, "call_soon");
}

bool TaskStateBase::cancel_task(std::string message) {
  self_.exception_retrieved_ = true;  // as asyncio's Task.cancel(): no "never retrieved" report
  if (self_.done()) return false;
  if (root_ != this) return root_->cancel_task(std::move(message));  // awaited inline: cancel what runs it
  ++cancel_requests_;
  if (fut_waiter_ && fut_waiter_.cancel(message)) return true;  // it wakes us with CancelledError
  must_cancel_ = true;
  cancel_message_ = std::move(message);
  return true;
}

void TaskStateBase::start_as_task(EventLoop& loop) {
  if (!context_) context_ = copy_current_context();  // asyncio: a copy of the creator's context
  started_ = true;
  root_ = this;
  self_.set_loop(&loop);
}

std::coroutine_handle<> TaskStateBase::start_inline(TaskStateBase& parent, std::coroutine_handle<> continuation) {
  started_ = true;
  root_ = parent.root_;
  continuation_ = continuation;
  self_.set_loop(root_->self_.loop());
  return resume_point_;
}

std::coroutine_handle<> TaskStateBase::on_final_suspend() noexcept {
  // cancel() while the task ran, and it returned without awaiting again: it
  // ends cancelled all the same, as asyncio's Task.__step does.
  if (root_ == this && must_cancel_ && !ended_cancelled_ && !self_.exception_) {
    must_cancel_ = false;
    ended_cancelled_ = true;
  }
  self_.finish_task(ended_cancelled_, cancel_message_);
  if (is_root_task()) self_.loop()->task_done(this);
  return continuation_ ? continuation_ : std::noop_coroutine();
}

void TaskStateBase::on_exception() noexcept {
  try {
    throw;
  } catch (const CancelledError& e) {
    ended_cancelled_ = true;
    cancel_message_ = e.message();
  } catch (...) {
    self_.exception_ = std::current_exception();
  }
}

void TaskStateBase::check_cancel() {
  // Only a scheduled task's first step is a cancellation point; a coroutine
  // awaited inline starts without one, as `await coro()` does.
  if (root_ == this && must_cancel_) {
    must_cancel_ = false;
    throw CancelledError(cancel_message_);
  }
}

std::uint64_t suspend_on(FutureStateBase& future, TaskStateBase& task, std::coroutine_handle<> h) {
  if (&future == &task.self_) throw std::runtime_error("Task cannot await on itself");
  if (future.loop() != task.self_.loop()) throw std::runtime_error("Task got a Future attached to a different loop");
  task.resume_point_ = h;
  future.add_ref();
  task.fut_waiter_ = AnyFuture(&future);
  return future.add_waiter(&task);
}

void resume_from(TaskStateBase& task) {
  task.fut_waiter_ = AnyFuture();
  if (task.must_cancel_) {
    task.must_cancel_ = false;
    throw CancelledError(task.cancel_message_);
  }
}

std::string TaskStateBase::repr() {
  std::string out = "<Task ";
  switch (self_.status()) {
    case FutureStateBase::Status::pending:
      out += "pending";
      break;
    case FutureStateBase::Status::cancelled:
      out += "cancelled";
      break;
    case FutureStateBase::Status::finished:
      out += "finished";
      break;
  }
  out += " name='" + name_ + "' coro=<";
  if (where_.function_name()[0]) {
    out += where_.function_name();
    out += " defined at ";
    out += where_.file_name();
    out += ":" + std::to_string(where_.line());
  } else {
    out += "coroutine";
  }
  out += ">";
  if (self_.status() == FutureStateBase::Status::finished && self_.exception_)
    out += " exception=" + describe_exception(self_.exception_);
  if (fut_waiter_) out += " wait_for=" + fut_waiter_.state()->repr();
  return out + ">";
}

TaskStateBase& root_of(TaskStateBase& promise) noexcept { return *promise.root_; }

void yield_to_loop(TaskStateBase& task, std::coroutine_handle<> h) {
  task.resume_point_ = h;
  task.schedule_step();
}

}  // namespace detail

AnyTask current_task() {
  detail::TaskStateBase* task = detail::tls_current_task;
  if (!task) return AnyTask();
  task->as_future().add_ref();
  return AnyTask(&task->as_future());
}

}  // namespace aio
