#include <backends/kqueue_close.hpp>
#include <backends/kqueue_selector.hpp>
#include <backends/syscall.hpp>

#include <fcntl.h>
#include <sys/event.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <unordered_map>

namespace aio {

// kqueue has one filter per direction; a change of interest adds or deletes
// filters, so the current interest of each fd is kept here.
struct KqueueSelector::State {
  struct Interest {
    std::uint32_t events;
    void* data;
  };
  std::unordered_map<fd_t, Interest> interest;
  std::vector<struct kevent> changes;
  std::vector<struct kevent> events = std::vector<struct kevent>(256);
};

KqueueSelector::KqueueSelector() : kq_(kqueue()), state_(std::make_unique<State>()) {
  detail::check_socket_call(kq_ < 0, "kqueue");
  // Not inherited across fork() anyway, but exec() must not see it either.
  fcntl(kq_, F_SETFD, FD_CLOEXEC);
}

namespace {

void change(std::vector<struct kevent>& changes, fd_t fd, short filter, unsigned short flags, void* data) {
  struct kevent ev;
  EV_SET(&ev, static_cast<uintptr_t>(fd), filter, flags, 0, 0, data);
  changes.push_back(ev);
}

// Applies the filter changes for going from `from` to `to`, touching only
// the filters that change (or all present ones, when the data changes).
int apply(int kq, std::vector<struct kevent>& changes, fd_t fd, std::uint32_t from, std::uint32_t to, bool new_data,
          void* data) {
  changes.clear();
  for (auto [bit, filter] : {std::pair{EVENT_READ, short(EVFILT_READ)}, std::pair{EVENT_WRITE, short(EVFILT_WRITE)}}) {
    if ((to & bit) && (!(from & bit) || new_data))
      change(changes, fd, filter, EV_ADD, data);  // EV_ADD on a present filter updates its udata
    else if (!(to & bit) && (from & bit))
      change(changes, fd, filter, EV_DELETE, nullptr);
  }
  if (changes.empty()) return 0;
  return kevent(kq, changes.data(), static_cast<int>(changes.size()), nullptr, 0, nullptr);
}

}  // namespace

KqueueSelector::~KqueueSelector() {
  // libkqueue 2.7 leaks its state for a descriptor still registered when it
  // frees the kqueue (a transport kept past its loop): unregistered first.
  for (const auto& [fd, interest] : state_->interest)
    apply(kq_, state_->changes, fd, interest.events, 0, false, nullptr);
  detail::close_kqueue(kq_);
}

void KqueueSelector::register_fd(fd_t fd, std::uint32_t events, void* data) {
  // kqueue accepts regular files (always readable); refuse them as epoll does.
  detail::check_watchable(fd, "kqueue");
  if (state_->interest.count(fd))
    detail::throw_os_error(EEXIST, "kqueue: fd " + std::to_string(fd) + " is already registered");
  if (apply(kq_, state_->changes, fd, 0, events, true, data) != 0) {
    int error = errno;
    apply(kq_, state_->changes, fd, events, 0, false, nullptr);  // undo a half-done registration
    detail::throw_os_error(error, "kevent(EV_ADD, fd " + std::to_string(fd) + ")");
  }
  state_->interest.emplace(fd, State::Interest{events, data});
}

void KqueueSelector::modify(fd_t fd, std::uint32_t events, void* data) {
  State::Interest& current = state_->interest.at(fd);
  detail::check_socket_call(apply(kq_, state_->changes, fd, current.events, events, data != current.data, data) != 0,
                            "kevent(modify, fd " + std::to_string(fd) + ")");
  current = {events, data};
}

void KqueueSelector::unregister(fd_t fd) noexcept {
  auto it = state_->interest.find(fd);
  if (it == state_->interest.end()) return;
  // Fails with EBADF/ENOENT if the caller closed the fd first: closing
  // already removed its filters.
  apply(kq_, state_->changes, fd, it->second.events, 0, false, nullptr);
  state_->interest.erase(it);
}

void KqueueSelector::select(std::int64_t timeout_ns, std::vector<SelectorEvent>& out) {
  out.clear();
  timespec ts{};
  if (timeout_ns > 0) {
    ts.tv_sec = static_cast<time_t>(timeout_ns / 1'000'000'000);
    ts.tv_nsec = static_cast<long>(timeout_ns % 1'000'000'000);
  }
  auto& events = state_->events;
  int n = kevent(kq_, nullptr, 0, events.data(), static_cast<int>(events.size()), timeout_ns < 0 ? nullptr : &ts);
  if (n < 0) {
    if (errno == EINTR) return;
    detail::throw_os_error(errno, "kevent");
  }
  for (int i = 0; i < n; ++i) {
    const struct kevent& ev = events[i];
    std::uint32_t ready = 0;
    if (ev.flags & EV_ERROR)
      ready = EVENT_READ | EVENT_WRITE;
    else
      ready = ev.filter == EVFILT_READ ? EVENT_READ : ev.filter == EVFILT_WRITE ? EVENT_WRITE : 0;
    if (ready) out.push_back({ev.udata, ready});
  }
  if (static_cast<std::size_t>(n) == events.size()) events.resize(events.size() * 2);
}

}  // namespace aio
