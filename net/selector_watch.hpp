// Private: the readiness watches of one selector transport's socket.
#pragma once

#include <core/event_loop.hpp>

#include <utility>

namespace aio::detail {

// add_reader / add_writer for one socket, each registered at most once:
// a transport may ask to start or stop as often as its state changes, and
// the loop sees only the changes.
class SelectorWatch {
 public:
  SelectorWatch(EventLoop& loop, fd_t fd) noexcept : loop_(loop), fd_(fd) {}

  template <class F>
  void start_reading(F&& on_readable) {
    if (reading_) return;
    loop_.add_reader(fd_, std::forward<F>(on_readable));
    reading_ = true;
  }
  void stop_reading() {
    if (!reading_) return;
    reading_ = false;
    loop_.remove_reader(fd_);
  }
  template <class F>
  void start_writing(F&& on_writable) {
    if (writing_) return;
    loop_.add_writer(fd_, std::forward<F>(on_writable));
    writing_ = true;
  }
  void stop_writing() {
    if (!writing_) return;
    writing_ = false;
    loop_.remove_writer(fd_);
  }
  // Before the socket closes.
  void stop() {
    stop_reading();
    stop_writing();
  }

 private:
  EventLoop& loop_;
  fd_t fd_;
  bool reading_ = false;
  bool writing_ = false;
};

}  // namespace aio::detail
