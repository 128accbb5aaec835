// The choice of child watcher, and what every watcher does once the child
// exited.
#include <backends/child_watch.hpp>

#include <backends/spawn.hpp>  // child_watcher_name, reap_child
#include <core/log.hpp>

#include <cstdlib>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

namespace aio::detail {
namespace {

enum class Watcher { pidfd, kqueue, sigchld };

const char* name_of(Watcher watcher) noexcept {
  switch (watcher) {
    case Watcher::pidfd:
      return "pidfd";
    case Watcher::kqueue:
      return "kqueue";
    case Watcher::sigchld:
      return "sigchld";
  }
  return "?";
}

bool available(Watcher watcher) noexcept {
  switch (watcher) {
    case Watcher::pidfd:
      return pidfd_watch_available();
    case Watcher::kqueue:
#ifdef AIO_HAVE_KQUEUE
      return kqueue_watch_available();
#else
      return false;
#endif
    case Watcher::sigchld:
      return true;
  }
  return false;
}

constexpr Watcher by_preference[] = {Watcher::pidfd, Watcher::kqueue, Watcher::sigchld};

// The best available watcher, or the one AIO_CHILD_WATCHER names.
Watcher choose() {
  const char* forced = std::getenv("AIO_CHILD_WATCHER");
  if (!forced || !*forced) {
    for (Watcher watcher : by_preference)
      if (available(watcher)) return watcher;
    return Watcher::sigchld;
  }
  std::string usable;
  for (Watcher watcher : by_preference)
    if (available(watcher)) usable += std::string(usable.empty() ? "" : ", ") + name_of(watcher);
  for (Watcher watcher : by_preference) {
    if (std::string_view(forced) != name_of(watcher)) continue;
    if (!available(watcher))
      throw std::invalid_argument("AIO_CHILD_WATCHER=" + std::string(forced) +
                                  ": this system has no such child watcher (available here: " + usable + ")");
    return watcher;
  }
  throw std::invalid_argument("AIO_CHILD_WATCHER=" + std::string(forced) +
                              ": unknown child watcher (allowed: pidfd, kqueue, sigchld; available here: " + usable +
                              ")");
}

// Chosen once per process: every child of every loop is watched the same way.
Watcher chosen() {
  static std::mutex mutex;
  static std::optional<Watcher> watcher;
  std::lock_guard lock(mutex);
  if (!watcher) watcher = choose();  // a refused choice is tried again next time
  return *watcher;
}

}  // namespace

const char* child_watcher_name() { return name_of(chosen()); }

Task<int> watch_child(EventLoop& loop, WaitForHandle wait_for_handle, const SpawnedChild& child) {
  const int pid = child.pid;
  switch (chosen()) {
    case Watcher::pidfd:
      return watch_child_pidfd(std::move(wait_for_handle), pid);
    case Watcher::kqueue:
#ifdef AIO_HAVE_KQUEUE
      return watch_child_kqueue(loop, pid);
#else
      break;  // never chosen: not available
#endif
    case Watcher::sigchld:
      break;
  }
  return watch_child_sigchld(loop, pid);
}

int reaped_elsewhere(int pid) {
  // asyncio's child watchers say the same.
  log(LogLevel::warning, "Unknown child process pid " + std::to_string(pid) + ", will report returncode 255");
  return 255;
}

int collect_exit(int pid) {
  SpawnedChild child;
  child.pid = pid;
  bool elsewhere = false;
  std::optional<int> code = reap_child(child, &elsewhere);
  if (elsewhere) return reaped_elsewhere(pid);
  // The mechanism saw the exit, so the status is there (waitpid will not block).
  return code ? *code : wait_child(child);
}

}  // namespace aio::detail
