// A loop's signal handlers (add_signal_handler / remove_signal_handler) and
// the library's own listeners (the SIGCHLD child watcher, the Runner's
// Ctrl-C), with the half of signal delivery that belongs to the loop.
//
// Delivery has two halves. The engine's process-wide signal handler
// (backends/signals.cpp) runs on whatever thread the kernel picked; it only
// calls mark(): a per-signal flag and the loop's wakeup, both
// async-signal-safe. The loop then sees the flags after its wait and
// schedules every callback of each signal that arrived, once however many
// times it arrived meanwhile (signals coalesce; the flags never overflow,
// unlike a wakeup pipe that carries signal numbers: python/cpython#74224).
#pragma once

#include <core/callback.hpp>

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <vector>

namespace aio {

class EventLoop;

namespace detail {

struct SignalEntry {
  Callback callback;
  EventLoop* loop = nullptr;  // null once removed (or the loop closed)
  int sig = 0;
  // A listener that steps aside while the loop has a user handler for the
  // same signal (the Runner's SIGINT: a user's own handler replaces it, as
  // in asyncio).
  bool yields_to_handler = false;
  // A listener that wants the signal once: the disposition goes back to
  // the default as the signal arrives (SA_RESETHAND), so a second one acts
  // even while the loop is stuck (the Runner's second Ctrl-C).
  bool once = false;
};

class SignalTable {
 public:
  // Signal numbers below this fit (FreeBSD's realtime signals reach 128).
  static constexpr int limit = 129;

  // From a signal handler: async-signal-safe, lock- and allocation-free.
  void mark(int sig) noexcept {
    flags_[static_cast<std::size_t>(sig)].store(true, std::memory_order_relaxed);
    any_.store(true, std::memory_order_release);
  }
  bool pending() const noexcept { return any_.load(std::memory_order_acquire); }
  // Clears the flags and calls visit(sig) for each signal that arrived.
  template <class F>
  void take(F visit) {
    any_.store(false, std::memory_order_release);  // a mark from now on sets it again
    for (int sig = 1; sig < limit; ++sig)
      if (flags_[static_cast<std::size_t>(sig)].exchange(false, std::memory_order_acq_rel)) visit(sig);
  }

  struct Slot {
    std::shared_ptr<SignalEntry> handler;  // the user's (add_signal_handler)
    std::vector<std::shared_ptr<SignalEntry>> listeners;
    bool empty() const noexcept { return !handler && listeners.empty(); }
    // Whether the disposition may reset itself on delivery (see SignalEntry::once).
    bool once() const noexcept;
  };
  std::map<int, Slot> slots;

 private:
  std::array<std::atomic<bool>, limit> flags_{};
  std::atomic<bool> any_{false};
};

// A library-internal listener for signal `sig` on `loop`, beside (never
// instead of) a user's add_signal_handler for the same signal. `callback`
// runs on the loop's thread after deliveries (coalesced, as signals are).
// It unsubscribes when destroyed or reset; one that outlives its loop's
// close() is inert. Not thread-safe: the loop's thread only.
class SignalListener {
 public:
  SignalListener() = default;
  explicit SignalListener(std::shared_ptr<SignalEntry> entry) : entry_(std::move(entry)) {}
  SignalListener(SignalListener&&) noexcept = default;
  SignalListener& operator=(SignalListener&& other) noexcept;
  ~SignalListener() { reset(); }
  void reset() noexcept;
  explicit operator bool() const noexcept { return entry_ && entry_->loop; }

 private:
  std::shared_ptr<SignalEntry> entry_;
};

struct ListenOptions {
  bool yields_to_handler = false;
  bool once = false;
  // Subscribe only on the process's main thread, and only while `sig` has
  // its default disposition (asyncio.Runner's condition for Ctrl-C);
  // otherwise return an empty listener instead of throwing.
  bool only_over_default = false;
};

// Throws as add_signal_handler does (except with only_over_default).
SignalListener listen_signal(EventLoop& loop, int sig, Callback callback, ListenOptions options = {});

}  // namespace detail
}  // namespace aio
