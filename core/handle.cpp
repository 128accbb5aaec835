#include <core/event_loop.hpp>
#include <core/handle.hpp>

#if __has_include(<cxxabi.h>)
#include <cxxabi.h>
#endif
#include <cstdlib>
#include <memory>

namespace aio {
namespace detail {

// The pool of the loop running on this thread: released states go back to it.
thread_local HandlePool* tls_pool = nullptr;

HandlePool::~HandlePool() {
  while (free_) delete std::exchange(free_, free_->next_free);
}

HandleState* HandlePool::acquire() {
  if (!free_) return new HandleState;
  --cached_;
  return std::exchange(free_, free_->next_free);
}

void HandlePool::put(HandleState* state) noexcept {
  if (cached_ >= max_cached) {
    delete state;
    return;
  }
  state->refs.store(1, std::memory_order_relaxed);
  state->cancelled = state->running = state->in_heap = state->is_timer = false;
  state->loop = nullptr;
  state->next_free = free_;
  free_ = state;
  ++cached_;
}

void destroy_handle_state(HandleState* state) noexcept {
  state->callback.reset();
  if (tls_pool)
    tls_pool->put(state);
  else
    delete state;
}

std::string callable_name(const std::type_info& type) {
#if __has_include(<cxxabi.h>)
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> name(abi::__cxa_demangle(type.name(), nullptr, nullptr, &status), std::free);
  if (status == 0 && name) return name.get();
#endif
  return type.name();
}

}  // namespace detail

void Handle::cancel() noexcept {
  detail::HandleState* s = state_;
  if (!s || s->cancelled) return;
  s->cancelled = true;
  if (s->in_heap) s->loop->timer_cancelled();
  if (!s->running) s->callback.reset();
}

std::string Handle::repr() const {
  if (!state_) return "<Handle empty>";
  std::string out = state_->is_timer ? "<TimerHandle" : "<Handle";
  if (state_->cancelled)
    out += " cancelled";
  else
    out += " " + detail::callable_name(state_->callback.target_type());
  if (state_->is_timer) out += " when=" + std::to_string(static_cast<double>(state_->when) * 1e-9);
  return out + ">";
}

}  // namespace aio
