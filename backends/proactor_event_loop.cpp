#include <backends/proactor_event_loop.hpp>
#ifndef _WIN32
#include <backends/signals.hpp>
#endif
#include <backends/syscall.hpp>
#include <core/errors.hpp>

#include <string>

namespace aio {

ProactorEventLoop::ProactorEventLoop(std::unique_ptr<Proactor> proactor, Clock clock)
    : EventLoop(std::move(clock)), proactor_(std::move(proactor)), name_(proactor_->name()) {}

ProactorEventLoop::~ProactorEventLoop() {
  if (!is_running()) close();
}

void ProactorEventLoop::poll_io(std::int64_t timeout_ns) { proactor_->wait(timeout_ns); }

void ProactorEventLoop::wakeup() noexcept { proactor_->wakeup(); }

// The proactor is closed but kept: tasks still suspended on an operation hold
// references to operations, never to the proactor, and the name stays valid.
void ProactorEventLoop::close_io() noexcept { proactor_->close(); }

Task<void> ProactorEventLoop::wait_for_handle(fd_t handle) {
  std::shared_ptr<ProactorOperation> op = proactor_->make_operation();
  std::string what = "wait for handle " + std::to_string(handle);
  co_await perform(
      *op, [&] { proactor_->wait_handle(*op, handle); }, std::move(what));
}

Task<void> ProactorEventLoop::completion(std::shared_ptr<ProactorOperation> op, std::string what) {
  bool cancelled = false;
  while (op->in_flight()) {
    Future<void> done = create_future<void>();
    op->on_complete = [done](ProactorOperation&) mutable {
      if (!done.done()) done.set_result();
    };
    try {
      co_await done;
    } catch (const CancelledError&) {
      cancelled = true;
    }
    if (op->in_flight()) proactor_->cancel(*op);
  }
  // Even if the operation won the race: the task was cancelled. The loop's
  // coroutines pick operations that take nothing a cancel would lose (a
  // stream receive waits for readiness, then reads).
  if (cancelled) throw CancelledError();
  if (op->error != 0) detail::throw_os_error(op->error, what);
}

#ifndef _WIN32
bool ProactorEventLoop::watch_signal(int sig, bool once, bool only_over_default) {
  return detail::subscribe_signal(*this, sig, once, only_over_default);
}
void ProactorEventLoop::unwatch_signal(int sig) noexcept { detail::unsubscribe_signal(*this, sig); }
#endif

}  // namespace aio
