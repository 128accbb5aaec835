// Private: closing a kqueue descriptor (the kqueue selector's, the kqueue
// child watcher's).
#pragma once

#include <fcntl.h>
#include <unistd.h>

#ifdef AIO_HAVE_LIBKQUEUE_DRAIN
extern "C" void libkqueue_drain_pending_close(void);
#endif

namespace aio::detail {

// close(kq). libkqueue (Linux) frees a closed kqueue later, from its
// monitor thread, and until then its fork handler closes that kqueue's old
// descriptor number in every child that fork() makes: by then perhaps the
// number of another descriptor, such as a new child's stdio pipe (EBADF in
// the child). So the number stays taken, by /dev/null, until libkqueue has
// let the kqueue go.
inline void close_kqueue(int kq) noexcept {
#ifdef AIO_HAVE_LIBKQUEUE_DRAIN
  int placeholder = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (placeholder >= 0) {
    if (::dup3(placeholder, kq, O_CLOEXEC) == kq) libkqueue_drain_pending_close();  // the kqueue is closed
    ::close(placeholder);
  }
#endif
  ::close(kq);
}

}  // namespace aio::detail
