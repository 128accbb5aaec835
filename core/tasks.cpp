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

namespace detail {

Task<void> gather_all(std::vector<AnyFuture> children) {
  if (children.empty()) co_return;
  // Shared with the children's callbacks, which outlive this frame when a
  // child fails first: they still mark the others' exceptions retrieved, as
  // asyncio's gather does.
  struct State {
    std::size_t remaining;
    Future<void> all;
  };
  auto state = std::make_shared<State>(State{children.size(), get_running_loop().create_future<void>()});
  for (AnyFuture& child : children) {
    child.add_done_callback([state](const AnyFuture& c) {
      std::exception_ptr error;
      if (!c.cancelled()) error = c.exception();
      if (state->all.done()) return;
      if (c.cancelled())
        state->all.set_exception(std::make_exception_ptr(CancelledError()));
      else if (error)
        state->all.set_exception(error);
      else if (--state->remaining == 0)
        state->all.set_result();
    });
  }
  bool outer_cancelled = false;
  std::string message;
  try {
    co_await state->all;
  } catch (const CancelledError& e) {
    if (!state->all.cancelled()) throw;  // a child was cancelled
    outer_cancelled = true;
    message = e.message();
  }
  if (outer_cancelled) {
    // As asyncio's gather: cancel every child, with the message, and end only
    // once all of them are done (a child may take time to clean up, or even
    // swallow the cancellation; gather() is cancelled all the same).
    auto left = std::make_shared<std::size_t>(0);
    Future<void> all_done = get_running_loop().create_future<void>();
    for (AnyFuture& child : children) {
      child.cancel(message);
      if (child.done()) continue;
      ++*left;
      child.add_done_callback([left, all_done](const AnyFuture&) mutable {
        if (--*left == 0 && !all_done.done()) all_done.set_result();
      });
    }
    if (*left) co_await all_done;
    throw CancelledError(std::move(message));
  }
}

}  // namespace detail
}  // namespace aio
