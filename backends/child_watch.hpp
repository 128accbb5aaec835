// Private: learning when a child exits and reaping it, for process/'s
// subprocess transport. On Windows (child_watch_windows.cpp) a wait on the
// process handle through the proactor. On POSIX three mechanisms, one file
// each, chosen
// once per process at run time (the best one here unless
// AIO_CHILD_WATCHER=pidfd|kqueue|sigchld forces one):
//   pidfd   (child_watch_pidfd.cpp; Linux 5.3): a descriptor that turns
//           readable once the child exits, waited on through the loop's
//           wait_for_handle hook, so on every engine;
//   kqueue  (child_watch_kqueue.cpp; the BSDs, macOS, libkqueue on Linux):
//           EVFILT_PROC NOTE_EXIT on one process-wide kqueue;
//   sigchld (child_watch_sigchld.cpp; every POSIX system): the loop's SIGCHLD
//           listener, beside any handler of the user's, then
//           waitpid(pid, WNOHANG) for each of this loop's own children.
// None ever calls waitpid(-1): other code's children keep their status.
#pragma once

#include <core/fd.hpp>
#include <core/task.hpp>

#include <functional>

namespace aio {
class EventLoop;
}

namespace aio::detail {

struct SpawnedChild;  // backends/spawn.hpp

// The watcher in use is named by child_watcher_name() (backends/spawn.hpp,
// defined in child_watch.cpp): "pidfd", "kqueue" or "sigchld". It throws
// std::invalid_argument when AIO_CHILD_WATCHER names an unknown watcher or
// one this system lacks, listing the allowed and the available ones.

// The loop's wait_for_handle hook (protected in EventLoop: the caller,
// EventLoop::subprocess_exec, hands it on).
using WaitForHandle = std::function<Task<void>(fd_t)>;

// Watches `child` (a child of this process that nobody reaped yet) on `loop`
// with the watcher in use and completes with its returncode once it exited
// and was reaped: the exit status, or -N for a child killed by signal N;
// 255, with a warning logged, for a child some other code reaped behind
// our back. Cancelling it stops the watch and frees what it held (the child
// is then the caller's to reap).
Task<int> watch_child(EventLoop& loop, WaitForHandle wait_for_handle, const SpawnedChild& child);

// ---- The POSIX mechanisms (for watch_child) ----
bool pidfd_watch_available() noexcept;
Task<int> watch_child_pidfd(WaitForHandle wait_for_handle, int pid);
bool kqueue_watch_available() noexcept;
Task<int> watch_child_kqueue(EventLoop& loop, int pid);
Task<int> watch_child_sigchld(EventLoop& loop, int pid);

// The returncode of `pid`, which a mechanism said has exited, reaped now:
// 255 and a warning when it was reaped elsewhere.
int collect_exit(int pid);
// 255 and the warning, for a child found reaped elsewhere.
int reaped_elsewhere(int pid);

}  // namespace aio::detail
