#include <core/event_loop.hpp>
#include <core/future.hpp>
#include <core/task.hpp>

#include <algorithm>

namespace aio::detail {

FutureStateBase::~FutureStateBase() = default;

void FutureStateBase::release() noexcept {
  if (refs_.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
  TaskStateBase* task = as_task();
  bool unretrieved = status_ == Status::finished && exception_ && !exception_retrieved_;
  bool pending_task = task && task->is_root_task() && status_ == Status::pending;
  if (loop_ && (unretrieved || pending_task)) {
    report_unretrieved();
    return;
  }
  destroy();
}

// asyncio reports these from __del__; here the last release resurrects the
// state for the handler's context, which releases it again on its way out.
void FutureStateBase::report_unretrieved() noexcept {
  EventLoop* loop = std::exchange(loop_, nullptr);  // also keeps the second release from reporting
  refs_.store(1, std::memory_order_relaxed);
  exception_retrieved_ = true;
  ExceptionContext context;
  context.exception = exception_;
  if (as_task()) {
    context.message =
        status_ == Status::pending ? "Task was destroyed but it is pending!" : "Task exception was never retrieved";
    context.task = AnyFuture(this);
  } else {
    context.message = "Future exception was never retrieved";
    context.future = AnyFuture(this);
  }
  loop->call_exception_handler(context);
}

bool FutureStateBase::cancel(std::string message) {
  exception_retrieved_ = true;  // as asyncio's cancel(): whoever cancels has seen to it
  if (done()) return false;
  status_ = Status::cancelled;
  cancel_message_ = std::move(message);
  schedule_callbacks();
  return true;
}

void FutureStateBase::check_result() {
  if (status_ == Status::cancelled) throw CancelledError(cancel_message_);
  if (status_ == Status::pending) throw InvalidStateError("Result is not ready.");
  exception_retrieved_ = true;
  if (exception_) std::rethrow_exception(exception_);
}

std::exception_ptr FutureStateBase::exception() {
  if (status_ == Status::cancelled) throw CancelledError(cancel_message_);
  if (status_ == Status::pending) throw InvalidStateError("Exception is not set.");
  exception_retrieved_ = true;
  return exception_;
}

void FutureStateBase::ensure_pending(const char* method) const {
  // A task is completed only by its coroutine (asyncio raises RuntimeError).
  if (const_cast<FutureStateBase*>(this)->as_task())
    throw std::runtime_error(std::string("Task does not support ") + method + "() operation");
  if (done())
    throw InvalidStateError(std::string(method) + "() on a future that is already " +
                            (status_ == Status::cancelled ? "cancelled" : "finished"));
}

void FutureStateBase::set_exception(std::exception_ptr error) {
  ensure_pending("set_exception");
  if (!error) throw std::invalid_argument("set_exception() needs an exception, got a null exception_ptr");
  exception_ = std::move(error);
  mark_finished();
}

void FutureStateBase::mark_finished() {
  status_ = Status::finished;
  schedule_callbacks();
}

void FutureStateBase::finish_task(bool cancelled, std::string message) {
  if (cancelled) {
    status_ = Status::cancelled;
    cancel_message_ = std::move(message);
  } else {
    status_ = Status::finished;
  }
  schedule_callbacks();
}

std::uint64_t FutureStateBase::add_done_callback(DoneCallback callback) {
  std::uint64_t id = next_callback_id_++;
  if (done()) {
    add_ref();
    loop_->call_soon_impl([self = AnyFuture(this), cb = std::move(callback)]() mutable { cb(*self.state()); },
                          "add_done_callback");
  } else {
    callbacks_.push_back(Entry{id, nullptr, std::move(callback)});
  }
  return id;
}

std::uint64_t FutureStateBase::add_waiter(TaskStateBase* task) {
  std::uint64_t id = next_callback_id_++;
  callbacks_.push_back(Entry{id, task, {}});
  return id;
}

std::size_t FutureStateBase::remove_done_callback(std::uint64_t id) noexcept {
  auto it = std::remove_if(callbacks_.begin(), callbacks_.end(), [id](const Entry& e) { return e.id == id; });
  std::size_t removed = static_cast<std::size_t>(callbacks_.end() - it);
  callbacks_.erase(it, callbacks_.end());
  return removed;
}

void FutureStateBase::schedule_callbacks() {
  if (callbacks_.empty()) return;
  // Taken out first: callbacks may add or remove callbacks of this future.
  std::vector<Entry> entries = std::move(callbacks_);
  callbacks_.clear();
  if (!loop_ || loop_->is_closed()) return;  // nothing can run them any more
  for (Entry& e : entries) {
    if (e.waiter) {
      e.waiter->schedule_step();
    } else {
      add_ref();
      loop_->call_soon_impl([self = AnyFuture(this), cb = std::move(e.callback)]() mutable { cb(*self.state()); },
                            "call_soon");
    }
  }
}

std::string FutureStateBase::repr() {
  if (TaskStateBase* task = as_task()) return task->repr();
  switch (status_) {
    case Status::pending:
      return "<Future pending>";
    case Status::cancelled:
      return "<Future cancelled>";
    case Status::finished:
      break;
  }
  return exception_ ? "<Future finished exception=" + describe_exception(exception_) + ">" : "<Future finished>";
}

std::string describe_exception(const std::exception_ptr& error) {
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& e) {
    return callable_name(typeid(e)) + ": " + e.what();
  } catch (const CancelledError& e) {
    return std::string("aio::CancelledError: ") + e.what();
  } catch (...) {
    return "unknown exception";
  }
}

}  // namespace aio::detail
