// Handle and TimerHandle: what call_soon, call_later and call_at return.
//
// A handle is a cheap reference to a scheduled callback; cancel() keeps it
// from running. The loop recycles handle states through a per-loop free list,
// so scheduling a callback allocates nothing in steady state.
#pragma once

#include <core/callback.hpp>

#include <atomic>
#include <cstdint>
#include <string>
#include <utility>

namespace aio {

class EventLoop;

namespace detail {

struct Slab;

struct HandleState {
  // Atomic because call_soon_threadsafe hands a handle to another thread
  // while the loop holds its own reference.
  std::atomic<std::uint32_t> refs{1};
  // Atomic for the same reason: another thread may cancel a threadsafe handle
  // while the loop looks at it (it then runs or not, never half destroyed).
  std::atomic<bool> cancelled{false};
  bool running = false;  // its callback is on the stack: cancel() must not destroy it
  bool in_heap = false;  // a timer still waiting in its loop's heap
  bool is_timer = false;
  std::int64_t when = 0;  // timers: deadline in ns on the loop's clock
  std::uint64_t seq = 0;  // timers: scheduling order, breaks ties between equal deadlines
  EventLoop* loop = nullptr;
  HandleState* next_free = nullptr;
  // Null: allocated alone by call_soon_threadsafe, shared with another thread.
  Slab* slab = nullptr;
  Callback callback;

  bool threadsafe() const noexcept { return slab == nullptr; }
};

// Handle states of one loop, carved from slabs of many states (one
// allocation for all of them). Each slab keeps its own free list, and new
// states come from the slab in use, then from slabs with free slots, so a
// burst of handles leaves whole slabs empty afterwards; an empty slab is freed
// (one is kept as a spare). Only the thread running the loop touches the
// pool; a state released anywhere else, or after the pool is gone, is
// destroyed in place and its slot counted on the slab, which is freed when
// its last slot comes back.
class HandlePool {
 public:
  HandlePool() = default;
  HandlePool(const HandlePool&) = delete;
  HandlePool& operator=(const HandlePool&) = delete;
  ~HandlePool();

  HandleState* acquire();
  void put(HandleState* state) noexcept;

  // Slabs allocated now (for tests of memory coming back).
  std::size_t slab_count() const noexcept { return slabs_; }

 private:
  Slab* next_slab();
  void unlink(Slab* slab) noexcept;
  void emptied(Slab* slab) noexcept;

  Slab* all_ = nullptr;      // every slab, through Slab::all_next
  Slab* current_ = nullptr;  // where states come from
  Slab* partial_ = nullptr;  // other slabs with free slots, most recently freed into first
  Slab* spare_ = nullptr;    // one empty slab kept for the next burst
  std::size_t slabs_ = 0;
  std::size_t peak_slabs_ = 0;  // since memory was last handed back to the OS
};

inline void add_ref(HandleState* state) noexcept { state->refs.fetch_add(1, std::memory_order_relaxed); }

void destroy_handle_state(HandleState* state) noexcept;

inline void release(HandleState* state) noexcept {
  // A sole owner needs no read-modify-write: nobody else can touch the count.
  if (state->refs.load(std::memory_order_acquire) == 1 || state->refs.fetch_sub(1, std::memory_order_acq_rel) == 1)
    destroy_handle_state(state);
}

}  // namespace detail

class Handle {
 public:
  Handle() noexcept = default;
  // Adopts one reference to `state` (for the loop's use).
  explicit Handle(detail::HandleState* state) noexcept : state_(state) {}
  Handle(const Handle& other) noexcept : state_(other.state_) {
    if (state_) detail::add_ref(state_);
  }
  Handle(Handle&& other) noexcept : state_(std::exchange(other.state_, nullptr)) {}
  Handle& operator=(Handle other) noexcept {
    std::swap(state_, other.state_);
    return *this;
  }
  ~Handle() {
    if (state_) detail::release(state_);
  }

  // Keeps the callback from running; a no-op if it already ran or was cancelled.
  // The callback object is destroyed at once unless it is running now.
  void cancel() noexcept;
  bool cancelled() const noexcept { return state_ && state_->cancelled; }

  // False for a default-constructed handle.
  explicit operator bool() const noexcept { return state_ != nullptr; }

  // "<Handle lambda in main()>", "<TimerHandle when=12.5 ...>", for messages.
  std::string repr() const;

  detail::HandleState* state() const noexcept { return state_; }

 protected:
  detail::HandleState* state_ = nullptr;
};

class TimerHandle : public Handle {
 public:
  TimerHandle() noexcept = default;
  explicit TimerHandle(detail::HandleState* state) noexcept : Handle(state) {}

  // The scheduled time, on the loop's time() clock.
  double when() const noexcept { return state_ ? static_cast<double>(state_->when) * 1e-9 : 0.0; }
};

}  // namespace aio
