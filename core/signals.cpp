// The loop's side of signals: its handlers and listeners, and running them
// once the engine's handler marked a signal (core/signals.hpp).
#include <core/errors.hpp>
#include <core/event_loop.hpp>
#include <core/signals.hpp>

#include <utility>

namespace aio {
namespace detail {

bool SignalTable::Slot::once() const noexcept {
  if (handler || listeners.empty()) return false;
  for (const auto& listener : listeners)
    if (!listener->once) return false;
  return true;
}

SignalListener& SignalListener::operator=(SignalListener&& other) noexcept {
  if (this != &other) {
    reset();
    entry_ = std::move(other.entry_);
  }
  return *this;
}

void SignalListener::reset() noexcept {
  std::shared_ptr<SignalEntry> entry = std::move(entry_);
  if (!entry || !entry->loop) return;
  EventLoop& loop = *entry->loop;
  entry->loop = nullptr;
  auto found = loop.signals_->slots.find(entry->sig);
  if (found == loop.signals_->slots.end()) return;
  auto& listeners = found->second.listeners;
  std::erase(listeners, entry);
  if (found->second.empty()) {
    loop.signals_->slots.erase(found);
    loop.unwatch_signal(entry->sig);
  } else {
    try {
      loop.watch_signal(entry->sig, found->second.once(), false);  // a change of `once` only: cannot fail
    } catch (...) {
    }
  }
}

SignalListener listen_signal(EventLoop& loop, int sig, Callback callback, ListenOptions options) {
  loop.check_closed();
  if (!loop.signals_) loop.signals_ = std::make_unique<SignalTable>();
  auto entry = std::make_shared<SignalEntry>();
  entry->callback = std::move(callback);
  entry->sig = sig;
  entry->yields_to_handler = options.yields_to_handler;
  entry->once = options.once;
  SignalTable::Slot& slot = loop.signals_->slots[sig];
  slot.listeners.push_back(entry);
  bool watching = false;
  try {
    watching = loop.watch_signal(sig, slot.once(), options.only_over_default);
  } catch (...) {
    slot.listeners.pop_back();
    if (slot.empty()) loop.signals_->slots.erase(sig);
    throw;
  }
  if (!watching) {
    slot.listeners.pop_back();
    if (slot.empty()) loop.signals_->slots.erase(sig);
    return SignalListener();
  }
  entry->loop = &loop;
  return SignalListener(std::move(entry));
}

}  // namespace detail

void EventLoop::add_signal_handler_impl(int sig, detail::Callback callback) {
  check_closed();
  if (!signals_) signals_ = std::make_unique<detail::SignalTable>();
  auto entry = std::make_shared<detail::SignalEntry>();
  entry->callback = std::move(callback);
  entry->sig = sig;
  entry->loop = this;
  detail::SignalTable::Slot& slot = signals_->slots[sig];
  std::shared_ptr<detail::SignalEntry> previous = std::exchange(slot.handler, entry);
  try {
    watch_signal(sig, false, false);
  } catch (...) {
    slot.handler = std::move(previous);
    if (slot.empty()) signals_->slots.erase(sig);
    throw;
  }
  // asyncio cancels the handle it replaces: a call already queued for it
  // does not run.
  if (previous) previous->loop = nullptr;
}

bool EventLoop::remove_signal_handler(int sig) {
  // asyncio checks the number first, even on a loop without handlers.
  if (sig <= 0 || sig >= detail::SignalTable::limit)
    throw std::invalid_argument("remove_signal_handler: " + std::to_string(sig) + " is not a signal number");
  if (!signals_) return false;
  auto found = signals_->slots.find(sig);
  if (found == signals_->slots.end() || !found->second.handler) return false;
  found->second.handler->loop = nullptr;
  found->second.handler.reset();
  if (found->second.empty()) {
    signals_->slots.erase(found);
    unwatch_signal(sig);
  } else {
    watch_signal(sig, found->second.once(), false);
  }
  return true;
}

void EventLoop::deliver_signal(int sig) noexcept {
  if (sig <= 0 || sig >= detail::SignalTable::limit || !signals_) return;
  signals_->mark(sig);
  wakeup();
}

void EventLoop::dispatch_signals() {
  signals_->take([this](int sig) {
    auto found = signals_->slots.find(sig);
    if (found == signals_->slots.end()) return;  // removed after it arrived
    detail::SignalTable::Slot& slot = found->second;
    auto schedule = [this](const std::shared_ptr<detail::SignalEntry>& entry) {
      // A handler removed or replaced before its turn does not run (asyncio
      // cancels its handle).
      call_soon_impl(detail::Callback([entry] {
                       if (entry->loop) entry->callback();
                     }),
                     "add_signal_handler");
    };
    if (slot.handler) schedule(slot.handler);
    for (const auto& listener : slot.listeners)
      if (!(listener->yields_to_handler && slot.handler)) schedule(listener);
  });
}

void EventLoop::remove_all_signal_handlers() noexcept {
  if (!signals_) return;
  for (auto& [sig, slot] : signals_->slots) {
    if (slot.handler) slot.handler->loop = nullptr;
    for (auto& listener : slot.listeners) listener->loop = nullptr;
    unwatch_signal(sig);
  }
  signals_->slots.clear();
}

bool EventLoop::watch_signal(int, bool, bool only_over_default) {
  if (only_over_default) return false;
  throw NotImplementedError(
      "add_signal_handler: this platform has no POSIX signals (asyncio raises the same on Windows)");
}

void EventLoop::unwatch_signal(int) noexcept {}

}  // namespace aio
