// The Selector contract: readiness notification for SelectorEventLoop.
//
// A Selector watches file descriptors (sockets on Windows) for readability and
// writability, as Python's `selectors` module. One implementation per OS
// mechanism, one file each: EpollSelector, KqueueSelector, PollSelector,
// SelectSelector. It only translates interest bits and calls the OS; queueing,
// timers and callbacks stay in the loop.
//
// What every implementation guarantees:
// - Level-triggered results: a descriptor that stays ready is reported by
//   every select() call while its interest stays registered (an
//   implementation may use edge triggers inside if it keeps this true).
// - register_fd() on a descriptor that cannot be watched throws
//   std::system_error: a closed or invalid one (EBADF), a regular file or
//   directory, which are always ready (EPERM, as epoll reports), or one
//   already registered (EEXIST). Nothing is registered then.
// - modify() and unregister() apply only to registered descriptors (the loop
//   guarantees it). unregister() tolerates a descriptor the caller already
//   closed.
// - select() waits at most `timeout_ns` (-1: no limit, 0: poll), rounding a
//   timeout up to the mechanism's resolution so that it never wakes early
//   only because of rounding; an early return (signal, spurious wakeup) is
//   allowed. It clears `out`, then appends events for the ready descriptors
//   (one ready both ways may come as one event or two), each carrying the
//   `data` given at registration and the ready subset of its
//   interest; an error or hang-up may be reported as both, whatever the
//   interest (the loop runs only what is registered).
// - A Selector is used from one thread; it owns its OS resources and
//   releases them in its destructor.
#pragma once

#include <core/fd.hpp>

#include <cstdint>
#include <string_view>
#include <vector>

namespace aio {

inline constexpr std::uint32_t EVENT_READ = 1;
inline constexpr std::uint32_t EVENT_WRITE = 2;

struct SelectorEvent {
  void* data;
  std::uint32_t events;
};

class Selector {
 public:
  virtual ~Selector() = default;
  virtual std::string_view name() const noexcept = 0;
  virtual void register_fd(fd_t fd, std::uint32_t events, void* data) = 0;
  virtual void modify(fd_t fd, std::uint32_t events, void* data) = 0;
  virtual void unregister(fd_t fd) noexcept = 0;
  virtual void select(std::int64_t timeout_ns, std::vector<SelectorEvent>& out) = 0;
};

}  // namespace aio
