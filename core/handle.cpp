#include <core/event_loop.hpp>
#include <core/handle.hpp>

#if __has_include(<cxxabi.h>)
#include <cxxabi.h>
#endif
#include <cstdlib>
#include <memory>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace aio {
namespace detail {

// The pool of the loop running on this thread: released states go back to it.
thread_local HandlePool* tls_pool = nullptr;

struct Slab {
  static constexpr std::size_t capacity = 256;

  explicit Slab(HandlePool* owner) noexcept : pool(owner) {}

  // Slots given back off the pool's thread (destroyed in place), minus, once
  // the pool has let go of the slab, the slots it had handed out then: the
  // last slot to come back after that finds zero and frees the slab.
  std::atomic<std::int64_t> orphans{0};
  std::atomic<HandlePool*> pool;  // null once the pool is gone
  HandleState* free = nullptr;    // states put back, still constructed
  std::uint32_t used = 0;         // handed out and not put back (orphans included)
  std::uint32_t carved = 0;       // slots constructed so far
  bool listed = false;            // in the pool's list of slabs with free slots
  Slab* prev = nullptr;           // that list
  Slab* next = nullptr;
  Slab* all_prev = nullptr;  // every slab of the pool
  Slab* all_next = nullptr;
  alignas(HandleState) unsigned char slots[capacity][sizeof(HandleState)];

  HandleState* slot(std::size_t i) noexcept { return reinterpret_cast<HandleState*>(slots[i]); }
  bool empty() const noexcept { return used == orphans.load(std::memory_order_acquire); }
  bool has_room() const noexcept { return free || carved < capacity; }
  // Forgets the states put back. Their destructors have nothing left to do
  // (the callback was reset before put), and walking a slab's free list to
  // run them costs a cache miss per slot, a fifth of a timer's cost.
  void clear_free() noexcept { free = nullptr; }
};

namespace {
constexpr std::size_t trim_after_slabs = 64;  // 2 MiB of handle states

void give_back(HandleState* state) noexcept {
  Slab* slab = state->slab;
  state->~HandleState();
  if (slab->orphans.fetch_add(1, std::memory_order_acq_rel) + 1 == 0) delete slab;
}
}  // namespace

HandlePool::~HandlePool() {
  for (Slab* slab = all_; slab;) {
    Slab* next = slab->all_next;
    slab->pool.store(nullptr, std::memory_order_release);
    slab->clear_free();
    const auto out = static_cast<std::int64_t>(slab->used);
    if (slab->orphans.fetch_sub(out, std::memory_order_acq_rel) == out) delete slab;
    slab = next;
  }
}

void HandlePool::unlink(Slab* slab) noexcept {
  if (!slab->listed) return;
  if (slab->prev)
    slab->prev->next = slab->next;
  else
    partial_ = slab->next;
  if (slab->next) slab->next->prev = slab->prev;
  slab->prev = slab->next = nullptr;
  slab->listed = false;
}

HandleState* HandlePool::acquire() {
  Slab* slab = current_;
  if (!slab || !slab->has_room()) slab = current_ = next_slab();
  HandleState* state;
  if (slab->free) {
    state = std::exchange(slab->free, slab->free->next_free);
  } else {
    state = new (slab->slot(slab->carved++)) HandleState;
    state->slab = slab;
  }
  ++slab->used;
  return state;
}

// The slab in use is full: its slots join the others' free lists as they
// come back (put).
Slab* HandlePool::next_slab() {
  if (Slab* slab = partial_) {
    unlink(slab);
    return slab;
  }
  if (spare_) return std::exchange(spare_, nullptr);
  auto* slab = new Slab(this);
  slab->all_next = all_;
  if (all_) all_->all_prev = slab;
  all_ = slab;
  if (++slabs_ > peak_slabs_) peak_slabs_ = slabs_;
  return slab;
}

void HandlePool::put(HandleState* state) noexcept {
  state->refs.store(1, std::memory_order_relaxed);
  state->cancelled.store(false, std::memory_order_relaxed);
  state->running = state->in_heap = state->is_timer = false;
  state->loop = nullptr;
  Slab* slab = state->slab;
  state->next_free = slab->free;
  slab->free = state;
  --slab->used;
  if (slab == current_) return;
  if (slab->empty()) {
    emptied(slab);
  } else if (!slab->listed) {
    slab->listed = true;
    slab->next = partial_;
    if (partial_) partial_->prev = slab;
    partial_ = slab;
  }
}

// Keeps one empty slab for the next burst and frees the others, so that
// memory comes back once a burst of handles is over.
void HandlePool::emptied(Slab* slab) noexcept {
  unlink(slab);
  slab->clear_free();
  if (!spare_) {
    slab->used = slab->carved = 0;
    slab->orphans.store(0, std::memory_order_relaxed);
    spare_ = slab;
    return;
  }
  if (slab->all_prev)
    slab->all_prev->all_next = slab->all_next;
  else
    all_ = slab->all_next;
  if (slab->all_next) slab->all_next->all_prev = slab->all_prev;
  --slabs_;
  delete slab;
  // Slabs (30 KiB) come from the heap, whose free pages glibc keeps mapped:
  // once a burst is three quarters gone, hand them back, so that the RSS
  // comes back too, not only the heap.
  if (peak_slabs_ >= trim_after_slabs && slabs_ * 4 <= peak_slabs_) {
#if defined(__GLIBC__)
    malloc_trim(0);
#endif
    peak_slabs_ = slabs_;
  }
}

void destroy_handle_state(HandleState* state) noexcept {
  state->callback.reset();
  Slab* slab = state->slab;
  if (!slab)
    delete state;
  else if (tls_pool && slab->pool.load(std::memory_order_relaxed) == tls_pool)
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
  if (!s) return;
  if (s->threadsafe()) {
    // Maybe another thread than the loop's, which may be running the
    // callback now: only flag it; the loop drops the callback.
    s->cancelled.store(true, std::memory_order_release);
    return;
  }
  if (s->cancelled.load(std::memory_order_relaxed)) return;
  s->cancelled.store(true, std::memory_order_relaxed);
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
