#include <backends/selector_event_loop.hpp>
#ifndef _WIN32
#include <backends/signals.hpp>
#endif
#include <backends/waker.hpp>

namespace aio {

SelectorEventLoop::SelectorEventLoop(std::unique_ptr<Selector> selector, Clock clock)
    : EventLoop(std::move(clock)), selector_(std::move(selector)), waker_(std::make_unique<detail::Waker>()) {
  selector_->register_fd(waker_->read_fd(), EVENT_READ, waker_.get());
}

SelectorEventLoop::~SelectorEventLoop() {
  if (!is_running()) close();
}

void SelectorEventLoop::close_io() noexcept {
  for (auto& [fd, watch] : watches_) {
    watch->reader.cancel();
    watch->writer.cancel();
  }
  watches_.clear();
  selector_.reset();  // before the waker: it still has the waker registered
  waker_.reset();
}

void SelectorEventLoop::wakeup() noexcept { waker_->wake(); }

void SelectorEventLoop::poll_io(std::int64_t timeout_ns) {
  selector_->select(timeout_ns, events_);
  for (const SelectorEvent& event : events_) {
    if (event.data == waker_.get()) {
      waker_->drain();
      continue;
    }
    // Readers and writers are only ever replaced or removed, never left
    // cancelled in place, so whatever is registered runs.
    auto* watch = static_cast<Watch*>(event.data);
    if ((event.events & EVENT_READ) && watch->reader) add_ready(watch->reader.state());
    if ((event.events & EVENT_WRITE) && watch->writer) add_ready(watch->writer.state());
  }
}

void SelectorEventLoop::add_reader_impl(fd_t fd, detail::Callback callback) {
  check_thread("add_reader");
  add_watch(fd, EVENT_READ, std::move(callback));
}

void SelectorEventLoop::add_writer_impl(fd_t fd, detail::Callback callback) {
  check_thread("add_writer");
  add_watch(fd, EVENT_WRITE, std::move(callback));
}

Handle SelectorEventLoop::add_watch(fd_t fd, std::uint32_t event, detail::Callback callback) {
  check_closed();
  Handle handle = make_handle(std::move(callback));
  auto it = watches_.find(fd);
  if (it == watches_.end()) {
    auto watch = std::make_unique<Watch>();
    watch->fd = fd;
    selector_->register_fd(fd, event, watch.get());  // throws for what cannot be watched
    it = watches_.emplace(fd, std::move(watch)).first;
  } else if (!(it->second->events & event)) {
    selector_->modify(fd, it->second->events | event, it->second.get());
  }
  Watch& watch = *it->second;
  watch.events |= event;
  Handle& slot = event == EVENT_READ ? watch.reader : watch.writer;
  slot.cancel();
  slot = handle;
  return handle;
}

bool SelectorEventLoop::remove_reader(fd_t fd) {
  if (is_closed()) return false;
  check_thread("remove_reader");
  return remove_watch(fd, EVENT_READ);
}

bool SelectorEventLoop::remove_writer(fd_t fd) {
  if (is_closed()) return false;
  check_thread("remove_writer");
  return remove_watch(fd, EVENT_WRITE);
}

bool SelectorEventLoop::remove_watch(fd_t fd, std::uint32_t event) {
  auto it = watches_.find(fd);
  if (it == watches_.end() || !(it->second->events & event)) return false;
  Watch& watch = *it->second;
  Handle& slot = event == EVENT_READ ? watch.reader : watch.writer;
  slot.cancel();
  slot = Handle();
  watch.events &= ~event;
  if (watch.events == 0) {
    selector_->unregister(fd);
    watches_.erase(it);
  } else {
    selector_->modify(fd, watch.events, &watch);
  }
  return true;
}

#ifndef _WIN32
bool SelectorEventLoop::watch_signal(int sig, bool once, bool only_over_default) {
  return detail::subscribe_signal(*this, sig, once, only_over_default);
}
void SelectorEventLoop::unwatch_signal(int sig) noexcept { detail::unsubscribe_signal(*this, sig); }
#endif

}  // namespace aio
