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

struct Slab {
  static constexpr std::size_t capacity = 256;
  // Slots not yet given back, plus one while the pool carves from the slab.
  std::atomic<std::size_t> refs{capacity + 1};
  alignas(HandleState) unsigned char slots[capacity][sizeof(HandleState)];

  HandleState* slot(std::size_t i) noexcept { return reinterpret_cast<HandleState*>(slots[i]); }
  void release(std::size_t n = 1) noexcept {
    if (refs.fetch_sub(n, std::memory_order_acq_rel) == n) delete this;
  }
};

namespace {
void give_back(HandleState* state) noexcept {
  Slab* slab = state->slab;
  state->~HandleState();
  slab->release();
}
}  // namespace

HandlePool::~HandlePool() {
  while (free_) give_back(std::exchange(free_, free_->next_free));
  // Slots never carved, and the pool's own reference.
  if (slab_) slab_->release(Slab::capacity - carved_ + 1);
}

HandleState* HandlePool::carve() {
  if (!slab_ || carved_ == Slab::capacity) {
    if (slab_) slab_->release();  // the pool's reference: carved out
    slab_ = new Slab;
    carved_ = 0;
  }
  auto* state = new (slab_->slot(carved_++)) HandleState;
  state->slab = slab_;
  return state;
}

HandleState* HandlePool::acquire() {
  if (!free_) return carve();
  --cached_;
  return std::exchange(free_, free_->next_free);
}

void HandlePool::put(HandleState* state) noexcept {
  if (cached_ >= max_cached) {
    give_back(state);
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
  if (!state->slab)
    delete state;
  else if (tls_pool)
    tls_pool->put(state);
  else
    give_back(state);
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
  // asyncio's order: "<TimerHandle cancelled when=12.5 callback>".
  std::string out = state_->is_timer ? "<TimerHandle" : "<Handle";
  if (state_->cancelled) out += " cancelled";
  if (state_->is_timer) out += " when=" + std::to_string(static_cast<double>(state_->when) * 1e-9);
  if (state_->callback) out += " " + state_->callback.describe();
  return out + ">";
}

}  // namespace aio
