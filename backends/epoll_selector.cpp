#include <backends/epoll_selector.hpp>
#include <backends/syscall.hpp>

#include <sys/epoll.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <string>

namespace aio {

struct EpollSelector::Buffer {
  std::vector<epoll_event> events = std::vector<epoll_event>(256);
};

namespace {

std::uint32_t to_epoll(std::uint32_t events) {
  return ((events & EVENT_READ) ? EPOLLIN : 0u) | ((events & EVENT_WRITE) ? EPOLLOUT : 0u);
}

}  // namespace

EpollSelector::EpollSelector() : epfd_(epoll_create1(EPOLL_CLOEXEC)), buffer_(std::make_unique<Buffer>()) {
  detail::check_socket_call(epfd_ < 0, "epoll_create1");
}

EpollSelector::~EpollSelector() { close(epfd_); }

void EpollSelector::register_fd(fd_t fd, std::uint32_t events, void* data) {
  epoll_event ev{};
  ev.events = to_epoll(events);
  ev.data.ptr = data;
  if (epoll_ctl(epfd_, EPOLL_CTL_ADD, static_cast<int>(fd), &ev) != 0) {
    int error = errno;
    if (error == EPERM)
      detail::throw_os_error(error, "epoll: fd " + std::to_string(fd) +
                                        " cannot be watched (regular files and directories are always ready)");
    detail::throw_os_error(error, "epoll_ctl(ADD, fd " + std::to_string(fd) + ")");
  }
}

void EpollSelector::modify(fd_t fd, std::uint32_t events, void* data) {
  epoll_event ev{};
  ev.events = to_epoll(events);
  ev.data.ptr = data;
  detail::check_socket_call(epoll_ctl(epfd_, EPOLL_CTL_MOD, static_cast<int>(fd), &ev) != 0,
                            "epoll_ctl(MOD, fd " + std::to_string(fd) + ")");
}

void EpollSelector::unregister(fd_t fd) noexcept {
  // Fails with EBADF/ENOENT when the caller closed the fd first; epoll has
  // dropped it already then.
  epoll_ctl(epfd_, EPOLL_CTL_DEL, static_cast<int>(fd), nullptr);
}

void EpollSelector::select(std::int64_t timeout_ns, std::vector<SelectorEvent>& out) {
  out.clear();
  int timeout_ms = -1;
  if (timeout_ns >= 0) {
    // Round up: epoll_wait has millisecond resolution.
    std::int64_t ms = (timeout_ns + 999'999) / 1'000'000;
    timeout_ms = ms > INT_MAX ? INT_MAX : static_cast<int>(ms);
  }
  auto& events = buffer_->events;
  int n = epoll_wait(epfd_, events.data(), static_cast<int>(events.size()), timeout_ms);
  if (n < 0) {
    if (errno == EINTR) return;
    detail::throw_os_error(errno, "epoll_wait");
  }
  for (int i = 0; i < n; ++i) {
    std::uint32_t got = events[i].events;
    std::uint32_t ready = 0;
    if (got & (EPOLLIN | EPOLLHUP | EPOLLERR)) ready |= EVENT_READ;
    if (got & (EPOLLOUT | EPOLLHUP | EPOLLERR)) ready |= EVENT_WRITE;
    out.push_back({events[i].data.ptr, ready});
  }
  // A full buffer may have left events behind: take more next time.
  if (static_cast<std::size_t>(n) == events.size()) events.resize(events.size() * 2);
}

}  // namespace aio
