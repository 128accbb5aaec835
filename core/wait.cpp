#include <core/wait.hpp>

namespace aio::detail {

Task<void> wait_until(std::vector<AnyFuture> futures, std::optional<double> timeout, ReturnWhen return_when) {
  EventLoop& loop = get_running_loop();
  struct State {
    std::size_t counter;
    ReturnWhen return_when;
    Future<void> waiter;
    TimerHandle timeout_handle;
  };
  auto state = std::make_shared<State>(State{futures.size(), return_when, loop.create_future<void>(), {}});
  if (timeout) {
    // Weak: the timer must not keep the state (and its waiter) alive past the wait.
    std::weak_ptr<State> weak = state;
    state->timeout_handle = loop.call_later(*timeout, [weak] {
      if (auto s = weak.lock(); s && !s->waiter.done()) s->waiter.set_result();
    });
  }
  // As asyncio's _wait: every future gets the callback, done ones too (it
  // then runs at the next iteration).
  std::vector<std::uint64_t> ids;
  ids.reserve(futures.size());
  for (AnyFuture& f : futures) {
    ids.push_back(f.add_done_callback([state](const AnyFuture& done) {
      --state->counter;
      bool failed = state->return_when == ReturnWhen::first_exception && !done.cancelled() && done.exception();
      if (state->counter == 0 || state->return_when == ReturnWhen::first_completed || failed) {
        state->timeout_handle.cancel();
        if (!state->waiter.done()) state->waiter.set_result();
      }
    }));
  }
  ScopeExit unhook([&futures, &ids, state] {
    state->timeout_handle.cancel();
    for (std::size_t i = 0; i < futures.size(); ++i) futures[i].remove_done_callback(ids[i]);
  });
  co_await state->waiter;
}

}  // namespace aio::detail
