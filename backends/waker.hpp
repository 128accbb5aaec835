// The self-pipe a selector loop watches so that call_soon_threadsafe and
// signal handlers can interrupt its wait: an eventfd on Linux, a pipe on other
// POSIX systems, a connected loopback socket pair on Windows (whose select()
// takes sockets only).
#pragma once

#include <core/fd.hpp>

namespace aio::detail {

class Waker {
 public:
  Waker();
  Waker(const Waker&) = delete;
  Waker& operator=(const Waker&) = delete;
  ~Waker();

  // Watch this for readability.
  fd_t read_fd() const noexcept { return read_; }
  // Makes read_fd() readable. Thread- and async-signal-safe.
  void wake() noexcept;
  // Consumes pending wakeups.
  void drain() noexcept;

 private:
  fd_t read_ = -1;
  fd_t write_ = -1;
};

}  // namespace aio::detail
