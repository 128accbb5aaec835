// backends/signals.hpp on Windows, which has no POSIX signals: Ctrl-C for
// aio::run only, as a console control handler (asyncio's Runner gets it
// from the C runtime's SIGINT emulation, which is the same handler).
// add_signal_handler itself is refused, as asyncio refuses it on Windows.
//
// The system runs a control handler on a thread of its own, so the one loop
// that takes Ctrl-C is handed over with the same care as on POSIX: a busy
// count lets unsubscribe_signal wait out a handler that already holds it.
#include <backends/signals.hpp>
#include <core/errors.hpp>
#include <core/event_loop.hpp>

#include <atomic>
#include <csignal>
#include <mutex>
#include <thread>

#include <windows.h>

namespace aio::detail {
namespace {

std::mutex ctrl_mutex;
std::atomic<EventLoop*> ctrl_loop{nullptr};
std::atomic<int> ctrl_busy{0};
EventLoop* ctrl_owner = nullptr;  // under ctrl_mutex: who subscribed

// The thread that ran the static initializers: the program's main thread
// (Windows has no other notion of one; Python's is the same).
const DWORD main_thread = GetCurrentThreadId();

BOOL WINAPI on_console_ctrl(DWORD type) {
  if (type != CTRL_C_EVENT) return FALSE;
  ctrl_busy.fetch_add(1);
  // Once: a second Ctrl-C finds nobody and gets the default, which ends
  // the process (as the POSIX side's SA_RESETHAND).
  EventLoop* loop = ctrl_loop.exchange(nullptr);
  if (loop) loop->deliver_signal(SIGINT);
  ctrl_busy.fetch_sub(1);
  return loop ? TRUE : FALSE;
}

// Whether SIGINT is at the C runtime's default (no handler of the user's).
bool sigint_is_default() {
  auto previous = std::signal(SIGINT, SIG_DFL);
  std::signal(SIGINT, previous);
  return previous == SIG_DFL;
}

}  // namespace

bool subscribe_signal(EventLoop& loop, int sig, bool, bool only_over_default) {
  if (!only_over_default)
    throw NotImplementedError("add_signal_handler: Windows has no POSIX signals (asyncio raises the same there)");
  std::lock_guard lock(ctrl_mutex);
  if (sig != SIGINT || ctrl_owner || GetCurrentThreadId() != main_thread || !sigint_is_default()) return false;
  if (!SetConsoleCtrlHandler(on_console_ctrl, TRUE)) return false;
  ctrl_owner = &loop;
  ctrl_loop.store(&loop);
  return true;
}

void unsubscribe_signal(EventLoop& loop, int sig) noexcept {
  std::lock_guard lock(ctrl_mutex);
  if (sig != SIGINT || ctrl_owner != &loop) return;
  ctrl_owner = nullptr;
  ctrl_loop.store(nullptr);
  while (ctrl_busy.load() != 0) std::this_thread::yield();
  SetConsoleCtrlHandler(on_console_ctrl, FALSE);
}

}  // namespace aio::detail
