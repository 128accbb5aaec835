#include <core/events.hpp>
#include <core/timeouts.hpp>

#include <cmath>
#include <cstdio>
#include <stdexcept>

namespace aio {
namespace detail {

void TimeoutState::reschedule(std::optional<double> when) {
  if (state_ == State::created) throw std::runtime_error("Timeout has not been entered");
  if (state_ != State::entered)
    throw std::runtime_error(std::string("Cannot change state of ") + (expired() ? "expired" : "finished") +
                             " Timeout");
  if (when && std::isnan(*when)) throw std::invalid_argument("Timeout.reschedule: when is NaN");
  when_ = when;
  handler_.cancel();
  handler_ = Handle();
  if (!when) return;
  EventLoop& loop = get_running_loop();
  auto self = shared_from_this();
  // The handle holds the state until it runs or exit() cancels it.
  if (*when <= loop.time())
    handler_ = loop.call_soon([self] { self->on_timeout(); });
  else
    handler_ = loop.call_at(*when, [self] { self->on_timeout(); });
}

void TimeoutState::enter() {
  if (state_ != State::created) throw std::runtime_error("Timeout has already been entered");
  AnyTask task = current_task();
  if (!task) throw std::runtime_error("Timeout should be used inside a task");
  task_ = task.state();
  state_ = State::entered;
  reschedule(when_);
}

bool TimeoutState::exit(bool cancelled) noexcept {
  handler_.cancel();
  handler_ = Handle();
  bool ours = false;
  if (state_ == State::expiring) {
    state_ = State::expired;
    // No other cancel() request pending: the CancelledError is the expiry's.
    TaskStateBase& task = *task_->as_task();
    if (task.cancel_requests_ > 0) --task.cancel_requests_;  // Task.uncancel()
    ours = task.cancel_requests_ == 0 && cancelled;
  } else if (state_ == State::entered) {
    state_ = State::exited;
  }
  task_ = nullptr;
  return ours;
}

void TimeoutState::on_timeout() {
  if (state_ != State::entered) return;
  task_->cancel({});
  state_ = State::expiring;
}

std::string TimeoutState::repr() const {
  static constexpr const char* names[] = {"created", "active", "expiring", "expired", "finished"};
  std::string out = std::string("<Timeout [") + names[static_cast<int>(state_)] + "]";
  if (state_ == State::entered) {
    if (when_) {
      char buffer[48];
      std::snprintf(buffer, sizeof buffer, "%.3f", *when_);
      out += std::string(" when=") + buffer;
    } else {
      out += " when=None";
    }
  }
  return out + ">";
}

}  // namespace detail

Timeout timeout(std::optional<double> delay) {
  if (delay && std::isnan(*delay)) throw std::invalid_argument("timeout: delay is NaN; give a number of seconds");
  EventLoop& loop = get_running_loop();
  return Timeout(delay ? std::optional<double>(loop.time() + *delay) : std::nullopt);
}

Timeout timeout_at(std::optional<double> when) {
  if (when && std::isnan(*when)) throw std::invalid_argument("timeout_at: when is NaN; give a time() value");
  return Timeout(when);
}

}  // namespace aio
