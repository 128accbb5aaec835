#include <core/tasks.hpp>

namespace aio {

Task<void> sleep(double delay) {
  if (std::isnan(delay)) throw std::invalid_argument("sleep: delay is NaN; give a number of seconds");
  if (delay <= 0) {
    co_await detail::YieldAwaiter{};
    co_return;
  }
  EventLoop& loop = get_running_loop();
  Future<void> done = loop.create_future<void>();
  TimerHandle timer = loop.call_later(delay, [done]() mutable {
    if (!done.done()) done.set_result();
  });
  detail::ScopeExit cancel_timer([&timer] { timer.cancel(); });
  co_await done;
}

EventLoop& loop_for(const std::vector<AnyFuture>& futures) {
  try {
    return get_running_loop();
  } catch (const std::runtime_error&) {
  }
  for (const AnyFuture& f : futures)
    if (EventLoop* loop = f.state()->loop()) return *loop;
  return get_event_loop();
}

namespace detail {

GatheringBase::GatheringBase(EventLoop& loop, std::vector<AnyFuture> children, bool return_exceptions)
    : FutureStateBase(&loop), children_(std::move(children)), return_exceptions_(return_exceptions) {}

void GatheringBase::start() {
  if (children_.empty()) {
    store_results(children_);
    mark_finished();
    return;
  }
  for (AnyFuture& child : children_) {
    add_ref();
    AnyFuture self(this);
    child.state()->add_done_callback(
        [self](FutureStateBase& c) { static_cast<GatheringBase*>(self.state())->child_done(c); });
  }
}

bool GatheringBase::cancel(std::string message) {
  if (done()) return false;
  bool any = false;
  for (AnyFuture& child : children_)
    if (child.cancel(message)) any = true;
  // Each child's cancellation comes back through child_done: the gather
  // then fails with CancelledError (asyncio issue 32684).
  if (any) cancel_requested_ = true;
  return any;
}

void GatheringBase::child_done(FutureStateBase& child) {
  ++finished_;
  if (done()) {
    if (child.status() != Status::cancelled) (void)child.exception();  // marks it retrieved
    return;
  }
  if (!return_exceptions_) {
    if (child.status() == Status::cancelled) {
      set_exception(std::make_exception_ptr(CancelledError(child.cancel_message())));
      children_.clear();
      return;
    }
    if (std::exception_ptr error = child.exception()) {
      set_exception(std::move(error));
      children_.clear();
      return;
    }
  }
  if (finished_ < children_.size()) return;
  if (cancel_requested_) {
    std::string message = child.status() == Status::cancelled ? child.cancel_message() : std::string();
    set_exception(std::make_exception_ptr(CancelledError(std::move(message))));
  } else {
    try {
      store_results(children_);
    } catch (...) {
      set_exception(std::current_exception());
      children_.clear();
      return;
    }
    mark_finished();
  }
  children_.clear();
}

}  // namespace detail
}  // namespace aio
