// The SIGCHLD child watcher, for systems with neither pidfd nor kqueue (and
// for AIO_CHILD_WATCHER=sigchld): each loop with children listens for
// SIGCHLD beside any handler of the user's (contract 84) and, as the signal
// coalesces, tries waitpid(pid, WNOHANG) for each of its own children at
// every delivery; never waitpid(-1), which would steal other code's
// children (joyent/libuv#887). Loops in other threads get the signal too
// and reap their own (contract 70).
#include <backends/child_watch.hpp>

#include <backends/spawn.hpp>
#include <core/event_loop.hpp>
#include <core/signals.hpp>

#include <csignal>
#include <memory>
#include <mutex>
#include <optional>
#include <unordered_map>

namespace aio::detail {
namespace {

// One watched child; on the loop's thread only.
struct Waiter {
  int pid;
  Future<int> exited;
};

// A loop's children watched through SIGCHLD, and its SIGCHLD listener:
// alive while one of them is watched.
class LoopChildren {
 public:
  explicit LoopChildren(EventLoop& loop) : loop_(&loop) {}
  LoopChildren(const LoopChildren&) = delete;
  LoopChildren& operator=(const LoopChildren&) = delete;

  ~LoopChildren() {
    std::lock_guard lock(registry_mutex());
    auto it = registry().find(loop_);
    if (it != registry().end() && it->second.expired()) registry().erase(it);
  }

  // The loop's set, made (and its listener subscribed) by the first watch.
  static std::shared_ptr<LoopChildren> of(EventLoop& loop) {
    std::lock_guard lock(registry_mutex());
    std::weak_ptr<LoopChildren>& slot = registry()[&loop];
    if (std::shared_ptr<LoopChildren> children = slot.lock()) return children;
    auto children = std::make_shared<LoopChildren>(loop);
    std::weak_ptr<LoopChildren> weak = children;
    children->listener_ = listen_signal(loop, SIGCHLD, [weak] {
      if (std::shared_ptr<LoopChildren> self = weak.lock()) self->reap_all();
    });
    slot = children;
    return children;
  }

  void add(const std::shared_ptr<Waiter>& waiter) { children_[waiter->pid] = waiter; }

  void remove(const std::shared_ptr<Waiter>& waiter) noexcept {
    auto it = children_.find(waiter->pid);
    if (it != children_.end() && it->second == waiter) children_.erase(it);
  }

  // waitpid(pid, WNOHANG) for one child: settles its watch once it ended.
  void reap(const std::shared_ptr<Waiter>& waiter) {
    if (try_reap(*waiter)) remove(waiter);
  }

 private:
  // The watches in force, per loop (loops in several threads).
  static std::mutex& registry_mutex() {
    static std::mutex mutex;
    return mutex;
  }
  static std::unordered_map<EventLoop*, std::weak_ptr<LoopChildren>>& registry() {
    static std::unordered_map<EventLoop*, std::weak_ptr<LoopChildren>> loops;
    return loops;
  }

  // True once the watch of `waiter` is over (its child reaped, or the
  // watch cancelled: the child is then its canceller's).
  static bool try_reap(Waiter& waiter) {
    if (waiter.exited.done()) return true;
    SpawnedChild child;
    child.pid = waiter.pid;
    bool elsewhere = false;
    std::optional<int> code = reap_child(child, &elsewhere);
    if (!code) return false;
    waiter.exited.set_result(elsewhere ? reaped_elsewhere(waiter.pid) : *code);
    return true;
  }

  void reap_all() {
    for (auto it = children_.begin(); it != children_.end();)
      it = try_reap(*it->second) ? children_.erase(it) : std::next(it);
  }

  EventLoop* loop_;
  std::unordered_map<int, std::shared_ptr<Waiter>> children_;
  SignalListener listener_;  // last: unsubscribed before the set goes
};

// Ends the watch on every way out of watch_child_sigchld.
struct Unwatch {
  std::shared_ptr<LoopChildren> children;
  std::shared_ptr<Waiter> waiter;
  ~Unwatch() { children->remove(waiter); }
};

}  // namespace

Task<int> watch_child_sigchld(EventLoop& loop, int pid) {
  auto waiter = std::make_shared<Waiter>(Waiter{pid, loop.create_future<int>()});
  Unwatch unwatch{LoopChildren::of(loop), waiter};
  unwatch.children->add(waiter);
  // Its SIGCHLD may have come before the listener was there (contract 68).
  unwatch.children->reap(waiter);
  int code = co_await waiter->exited;
  co_return code;
}

}  // namespace aio::detail
