// The process-wide signal handler and the table of loops it serves
// (backends/signals.hpp).
//
// The table is read by the handler, which may run on any thread at any
// moment, so it is a list per signal of nodes that are never freed (at most
// one per loop and signal ever watched at once), linked and unlinked only
// under a mutex by ordinary threads. A node's `busy` count lets
// unsubscribe_signal wait out a handler that already loaded its loop
// pointer, so a loop is never touched after it stopped watching. Nothing
// in the handler allocates, locks or changes errno.
//
// sigaction, not signalfd: a signalfd sees a signal only if every thread
// blocks it, which threads started elsewhere (executor workers, other
// libraries) do not (libuv/libuv#4223).
#include <backends/signals.hpp>
#include <core/event_loop.hpp>
#include <core/signals.hpp>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <mutex>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>

#include <pthread.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/syscall.h>
#elif defined(__FreeBSD__) || defined(__OpenBSD__)
#include <pthread_np.h>
#endif

namespace aio::detail {
namespace {

struct Node {
  std::atomic<EventLoop*> loop{nullptr};
  std::atomic<int> busy{0};
  std::atomic<Node*> next{nullptr};
  bool once = false;  // under `hub_mutex`
};

struct Watched {
  std::atomic<Node*> head{nullptr};
  // Under `hub_mutex`:
  int loops = 0;
  struct sigaction saved {};
};

std::mutex hub_mutex;
Watched watched[SignalTable::limit];

extern "C" void on_signal(int sig) {
  const int saved_errno = errno;
  if (sig > 0 && sig < SignalTable::limit) {
    for (Node* node = watched[sig].head.load(); node; node = node->next.load()) {
      node->busy.fetch_add(1);
      if (EventLoop* loop = node->loop.load()) loop->deliver_signal(sig);
      node->busy.fetch_sub(1);
    }
  }
  errno = saved_errno;
}

Node* find(int sig, const EventLoop* loop) {
  for (Node* node = watched[sig].head.load(); node; node = node->next.load())
    if (node->loop.load() == loop) return node;
  return nullptr;
}

// The handler with the flags the watching loops ask for: SA_RESTART always
// (asyncio's siginterrupt(False)); SA_RESETHAND when every one wants the
// signal once.
int install(int sig, struct sigaction* previous) {
  bool once = true;
  for (Node* node = watched[sig].head.load(); node; node = node->next.load())
    if (node->loop.load() && !node->once) once = false;
  struct sigaction action {};
  action.sa_handler = on_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART | (once ? SA_RESETHAND : 0);
  return sigaction(sig, &action, previous);
}

bool is_main_thread() noexcept {
#if defined(__linux__)
  return syscall(SYS_gettid) == getpid();
#elif defined(__APPLE__) || defined(__FreeBSD__) || defined(__OpenBSD__)
  return pthread_main_np() == 1;
#else
  static const std::thread::id first = std::this_thread::get_id();  // fallback: the first caller's
  return std::this_thread::get_id() == first;
#endif
}

void check_signal(int sig) {
  sigset_t all;
  sigfillset(&all);
  // sigfillset leaves out what the C library reserves (glibc's 32 and 33),
  // as Python's signal.valid_signals() does.
  if (sig <= 0 || sig >= SignalTable::limit || sig >= NSIG || sigismember(&all, sig) != 1)
    throw std::invalid_argument("add_signal_handler: " + std::to_string(sig) + " is not a valid signal number here");
  if (sig == SIGKILL || sig == SIGSTOP)
    throw std::runtime_error("add_signal_handler: signal " + std::to_string(sig) + " cannot be caught");
}

// A forked child does not inherit our watching: its copies of the loops
// must never write into the parent's wakeup (contract 86), and it may make
// loops and add handlers of its own. spawn() blocks signals across fork,
// so no handler of ours runs before this.
void before_fork() { hub_mutex.lock(); }
void after_fork_parent() { hub_mutex.unlock(); }
void after_fork_child() {
  hub_mutex.unlock();
  for (int sig = 1; sig < SignalTable::limit; ++sig) {
    Watched& w = watched[sig];
    if (w.loops == 0) continue;
    for (Node* node = w.head.load(); node; node = node->next.load()) node->loop.store(nullptr);
    w.loops = 0;
    sigaction(sig, &w.saved, nullptr);
  }
}

void register_fork_handlers() {
  static const bool once = (pthread_atfork(before_fork, after_fork_parent, after_fork_child), true);
  (void)once;
}

}  // namespace

bool subscribe_signal(EventLoop& loop, int sig, bool once, bool only_over_default) {
  check_signal(sig);
  register_fork_handlers();
  std::lock_guard lock(hub_mutex);
  Watched& w = watched[sig];
  if (Node* node = find(sig, &loop)) {
    if (node->once != once) {
      node->once = once;
      install(sig, nullptr);
    }
    return true;
  }
  if (only_over_default) {
    struct sigaction current {};
    if (!is_main_thread() || w.loops > 0 || sigaction(sig, nullptr, &current) != 0) return false;
    if ((current.sa_flags & SA_SIGINFO) || current.sa_handler != SIG_DFL) return false;
  }
  Node* node = find(sig, nullptr);
  if (!node) {
    node = new Node;  // never freed: a handler may be reading the list (see above)
    node->next.store(w.head.load());
    w.head.store(node);
  }
  node->once = once;
  node->loop.store(&loop);
  if (install(sig, w.loops == 0 ? &w.saved : nullptr) != 0) {
    const int error = errno;
    node->loop.store(nullptr);
    throw std::runtime_error("add_signal_handler: signal " + std::to_string(sig) +
                             " cannot be caught: " + std::generic_category().message(error));
  }
  ++w.loops;
  return true;
}

void unsubscribe_signal(EventLoop& loop, int sig) noexcept {
  if (sig <= 0 || sig >= SignalTable::limit) return;
  std::lock_guard lock(hub_mutex);
  Watched& w = watched[sig];
  Node* node = find(sig, &loop);
  if (!node) return;
  node->loop.store(nullptr);
  while (node->busy.load() != 0) std::this_thread::yield();
  if (--w.loops == 0)
    sigaction(sig, &w.saved, nullptr);
  else
    install(sig, nullptr);
}

}  // namespace aio::detail
