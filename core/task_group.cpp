#include <core/task_group.hpp>

#include <algorithm>
#include <stdexcept>

namespace aio {
namespace detail {

void TaskGroupState::check_open() const {
  if (exiting_ && tasks_.empty()) throw std::runtime_error("TaskGroup is finished");
  if (aborting_) throw std::runtime_error("TaskGroup is shutting down");
}

void TaskGroupState::adopt(AnyFuture task) {
  tasks_.push_back(task);
  // Weak: a group dropped early must not be kept alive by its tasks.
  std::weak_ptr<TaskGroupState> weak = weak_from_this();
  task.add_done_callback([weak](const AnyFuture& done) {
    if (auto self = weak.lock()) self->on_task_done(done);
  });
}

void TaskGroupState::close() noexcept {
  abort();
  parent_ = nullptr;
}

void TaskGroupState::abort() noexcept {
  aborting_ = true;
  for (AnyFuture& t : tasks_)
    if (!t.done()) t.cancel();
}

void TaskGroupState::on_task_done(const AnyFuture& task) {
  tasks_.erase(std::remove(tasks_.begin(), tasks_.end(), task), tasks_.end());
  if (on_completed_ && tasks_.empty() && !on_completed_.done()) on_completed_.set_result();
  if (task.cancelled()) return;
  std::exception_ptr error = task.exception();
  if (!error) return;
  errors_.push_back(error);
  if (!parent_ || parent_->done()) {
    ExceptionContext context;
    context.message = "Task " + task.repr() + " has errored out but its parent task " +
                      (parent_ ? parent_->repr() : std::string("<Task finished>")) + " is already completed";
    context.exception = error;
    context.task = task;
    loop_.call_exception_handler(context);
    return;
  }
  if (!aborting_ && !parent_cancel_requested_) {
    abort();
    parent_cancel_requested_ = true;
    parent_->cancel({});
  }
}

namespace {
int uncancel(FutureStateBase& task) {  // Task.uncancel()
  TaskStateBase& t = *task.as_task();
  return t.cancel_requests_ > 0 ? --t.cancel_requests_ : 0;
}

bool is_cancelled_error(const std::exception_ptr& error) {
  if (!error) return false;
  try {
    std::rethrow_exception(error);
  } catch (const CancelledError&) {
    return true;
  } catch (...) {
    return false;
  }
}
}  // namespace

Task<void> TaskGroupState::exit(std::exception_ptr body_error) {
  if (exiting_) throw std::runtime_error("TaskGroup.wait: the group was already waited for");
  exiting_ = true;
  auto keep = shared_from_this();
  std::exception_ptr propagate_cancellation = is_cancelled_error(body_error) ? body_error : nullptr;
  if (parent_cancel_requested_ && parent_ && uncancel(*parent_) == 0) propagate_cancellation = nullptr;
  if (body_error && !aborting_) abort();
  while (!tasks_.empty()) {
    if (!on_completed_) on_completed_ = loop_.create_future<void>();
    try {
      co_await on_completed_;
    } catch (const CancelledError&) {
      if (!aborting_) {
        propagate_cancellation = std::current_exception();
        abort();
      }
    }
    on_completed_ = Future<void>();
  }
  parent_ = nullptr;
  if (propagate_cancellation && errors_.empty()) std::rethrow_exception(propagate_cancellation);
  if (body_error && !is_cancelled_error(body_error)) errors_.push_back(body_error);
  if (!errors_.empty()) throw ExceptionGroup("unhandled errors in a TaskGroup", std::move(errors_));
}

}  // namespace detail

TaskGroup::TaskGroup() {
  AnyTask parent = current_task();
  if (!parent) throw std::runtime_error("TaskGroup cannot determine the parent task (create it inside a task)");
  state_ = std::make_shared<detail::TaskGroupState>(parent.get_loop(), parent.state());
}

TaskGroup::~TaskGroup() {
  if (state_) state_->close();
}

}  // namespace aio
