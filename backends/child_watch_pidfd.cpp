// The pidfd child watcher (Linux 5.3): a pidfd turns readable once its
// process exits, so the loop's wait_for_handle hook watches it on every
// engine; the pidfd of a child that exited before the watch began is
// readable already (contract 68).
#include <backends/child_watch.hpp>

#include <backends/syscall.hpp>

#include <cerrno>
#include <string>

#include <sys/syscall.h>
#include <unistd.h>

namespace aio::detail {
namespace {

long open_pidfd([[maybe_unused]] int pid) noexcept {
#ifdef SYS_pidfd_open
  return syscall(SYS_pidfd_open, pid, 0);  // close-on-exec by definition
#else
  errno = ENOSYS;
  return -1;
#endif
}

// Closes the pidfd on every way out of the watch, a cancel included
// (python/cpython#151179 leaked it).
struct PidfdCloser {
  int fd;
  ~PidfdCloser() { ::close(fd); }
};

}  // namespace

bool pidfd_watch_available() noexcept {
  long fd = open_pidfd(getpid());
  if (fd < 0) return false;
  ::close(static_cast<int>(fd));
  return true;
}

Task<int> watch_child_pidfd(WaitForHandle wait_for_handle, int pid) {
  long fd = open_pidfd(pid);
  if (fd < 0) {
    // Our own child, not reaped by us, is at worst a zombie with its pid:
    // ESRCH means that some other code reaped it.
    if (errno == ESRCH) co_return reaped_elsewhere(pid);
    throw_os_error(errno, "pidfd_open(" + std::to_string(pid) + ")");
  }
  PidfdCloser closer{static_cast<int>(fd)};
  co_await wait_for_handle(closer.fd);
  co_return collect_exit(pid);
}

}  // namespace aio::detail
