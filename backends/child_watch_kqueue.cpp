// The kqueue child watcher: EVFILT_PROC NOTE_EXIT on one process-wide
// kqueue, waited on by one thread that hands each exit to the loop that
// spawned the child (call_soon_threadsafe), so it works under every engine.
// A thread rather than the kqueue descriptor under the loop's own engine:
// libkqueue's kqueue descriptor (the write end of a pipe) never turns
// readable, only the BSDs' does.
#include <backends/child_watch.hpp>

#include <backends/kqueue_close.hpp>
#include <backends/syscall.hpp>
#include <core/event_loop.hpp>

#include <cerrno>
#include <ctime>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <fcntl.h>
#include <sys/event.h>
#include <sys/wait.h>
#include <unistd.h>

namespace aio::detail {
namespace {

// One watched child. `exited` belongs to the loop's thread; the kqueue
// thread only posts a callback that sets it.
struct Waiter {
  EventLoop* loop;
  int pid;
  Future<void> exited;
};

class KqueueWatch {
 public:
  // The process's watcher, made at first use (and again in a forked child,
  // which has neither the thread nor, on the BSDs, the kqueue). Never
  // destroyed: its thread may wait in kevent until the process ends.
  static KqueueWatch& get() {
    static std::mutex mutex;
    static KqueueWatch* current = nullptr;
    static pid_t owner = 0;
    std::lock_guard lock(mutex);
    if (!current || owner != getpid()) {
      int kq = kqueue();
      if (kq < 0) throw_os_error(errno, "kqueue (the child watcher)");
      fcntl(kq, F_SETFD, FD_CLOEXEC);
      current = new KqueueWatch(kq);
      owner = getpid();
      std::thread([watch = current] { watch->run(); }).detach();
    }
    return *current;
  }

  // Arms NOTE_EXIT for the waiter's child; false when the child is gone
  // already (ESRCH: it exited and, on the BSDs, is a zombie, or someone
  // reaped it), to be reaped now (contract 68).
  bool add(const std::shared_ptr<Waiter>& waiter) {
    {
      std::lock_guard lock(mutex_);
      waiting_[waiter->pid] = waiter;  // a stale entry for a reused pid is replaced
    }
    struct kevent change;
    EV_SET(&change, static_cast<uintptr_t>(waiter->pid), EVFILT_PROC, EV_ADD | EV_ONESHOT, NOTE_EXIT, 0, nullptr);
    if (kevent(kq_, &change, 1, nullptr, 0, nullptr) == 0) return true;
    int error = errno;
    forget(waiter);
    if (error == ESRCH) return false;
    throw_os_error(error, "kevent(EVFILT_PROC, " + std::to_string(waiter->pid) + ")");
  }

  // Ends the watch of `waiter` if it is still on (a cancelled watch).
  void remove(const std::shared_ptr<Waiter>& waiter) noexcept {
    if (forget(waiter)) delete_filter(waiter->pid);
  }

 private:
  explicit KqueueWatch(int kq) : kq_(kq) {}

  bool forget(const std::shared_ptr<Waiter>& waiter) noexcept {
    std::lock_guard lock(mutex_);
    auto it = waiting_.find(waiter->pid);
    if (it == waiting_.end() || it->second != waiter) return false;
    waiting_.erase(it);
    return true;
  }

  void delete_filter(int pid) noexcept {
    struct kevent change;
    EV_SET(&change, static_cast<uintptr_t>(pid), EVFILT_PROC, EV_DELETE, 0, 0, nullptr);
    kevent(kq_, &change, 1, nullptr, 0, nullptr);  // gone already after the event: nothing to undo
  }

  void run() {
    std::vector<struct kevent> events(64);
    for (;;) {
      int n = kevent(kq_, nullptr, 0, events.data(), static_cast<int>(events.size()), nullptr);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        // No event from an endless wait: libkqueue wakes so when a child
        // was reaped behind our back (its waitid(WNOWAIT) fails), and
        // keeps waking until that filter is gone.
        sweep();
        continue;
      }
      for (int i = 0; i < n; ++i)
        if (events[static_cast<std::size_t>(i)].filter == EVFILT_PROC)
          exited(static_cast<int>(events[static_cast<std::size_t>(i)].ident));
    }
  }

  // Hands the exit of `pid` to its loop, if it is still watched.
  void exited(int pid) {
    std::lock_guard lock(mutex_);  // held while posting: remove() waits for it
    auto it = waiting_.find(pid);
    if (it == waiting_.end()) return;
    std::shared_ptr<Waiter> waiter = std::move(it->second);
    waiting_.erase(it);
    EventLoop* loop = waiter->loop;
    try {
      // The callback takes this thread's reference: the waiter and its
      // future are let go on the loop's thread.
      loop->call_soon_threadsafe([waiter = std::move(waiter)] {
        if (!waiter->exited.done()) waiter->exited.set_result();
      });
    } catch (...) {
      // The loop is closed: nobody waits any more.
    }
  }

  // Ends the watch of every child that someone else reaped (its watcher
  // reports 255).
  void sweep() {
    std::vector<int> gone;
    {
      std::lock_guard lock(mutex_);
      for (const auto& [pid, waiter] : waiting_) {
        siginfo_t info{};
        if (waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) < 0 && errno == ECHILD)
          gone.push_back(pid);
      }
    }
    for (int pid : gone) {
      delete_filter(pid);
      exited(pid);
    }
    if (gone.empty()) {
      // Nothing to clear: do not spin on whatever woke the wait.
      timespec pause{0, 1000000};
      nanosleep(&pause, nullptr);
    }
  }

  int kq_;
  std::mutex mutex_;
  std::unordered_map<int, std::shared_ptr<Waiter>> waiting_;
};

// Ends the watch on every way out of watch_child_kqueue.
struct Unwatch {
  KqueueWatch& watch;
  std::shared_ptr<Waiter> waiter;
  ~Unwatch() { watch.remove(waiter); }
};

}  // namespace

bool kqueue_watch_available() noexcept {
  int kq = kqueue();
  if (kq < 0) return false;
  // EVFILT_PROC on ourselves: libkqueue has it only where it has pidfd.
  struct kevent change;
  EV_SET(&change, static_cast<uintptr_t>(getpid()), EVFILT_PROC, EV_ADD, NOTE_EXIT, 0, nullptr);
  bool works = kevent(kq, &change, 1, nullptr, 0, nullptr) == 0;
  close_kqueue(kq);
  return works;
}

Task<int> watch_child_kqueue(EventLoop& loop, int pid) {
  KqueueWatch& watch = KqueueWatch::get();
  auto waiter = std::make_shared<Waiter>(Waiter{&loop, pid, loop.create_future<void>()});
  if (!watch.add(waiter)) co_return collect_exit(pid);
  Unwatch unwatch{watch, waiter};
  co_await waiter->exited;
  co_return collect_exit(pid);
}

}  // namespace aio::detail
