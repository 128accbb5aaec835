#include <backends/poll_selector.hpp>
#include <backends/syscall.hpp>

#include <fcntl.h>
#include <poll.h>

#include <cerrno>
#include <climits>
#include <string>
#include <unordered_map>

namespace aio {

// pollfd entries packed for poll(2), with each entry's data alongside and an
// index by fd for modify/unregister.
struct PollSelector::Table {
  std::vector<pollfd> fds;
  std::vector<void*> data;
  std::unordered_map<fd_t, std::size_t> index;
};

namespace {

short to_poll(std::uint32_t events) {
  return static_cast<short>(((events & EVENT_READ) ? POLLIN : 0) | ((events & EVENT_WRITE) ? POLLOUT : 0));
}

}  // namespace

PollSelector::PollSelector() : table_(std::make_unique<Table>()) {}
PollSelector::~PollSelector() = default;

void PollSelector::register_fd(fd_t fd, std::uint32_t events, void* data) {
  // poll() would report a closed fd as POLLNVAL and a regular file as always
  // ready, forever; refuse them up front, as epoll does.
  detail::check_watchable(fd, "poll");
  if (table_->index.count(fd))
    detail::throw_os_error(EEXIST, "poll: fd " + std::to_string(fd) + " is already registered");
  table_->index.emplace(fd, table_->fds.size());
  table_->fds.push_back(pollfd{static_cast<int>(fd), to_poll(events), 0});
  table_->data.push_back(data);
}

void PollSelector::modify(fd_t fd, std::uint32_t events, void* data) {
  std::size_t i = table_->index.at(fd);
  table_->fds[i].events = to_poll(events);
  table_->data[i] = data;
}

void PollSelector::unregister(fd_t fd) noexcept {
  auto it = table_->index.find(fd);
  if (it == table_->index.end()) return;
  std::size_t i = it->second, last = table_->fds.size() - 1;
  table_->index.erase(it);
  if (i != last) {
    table_->fds[i] = table_->fds[last];
    table_->data[i] = table_->data[last];
    table_->index[table_->fds[i].fd] = i;
  }
  table_->fds.pop_back();
  table_->data.pop_back();
}

void PollSelector::select(std::int64_t timeout_ns, std::vector<SelectorEvent>& out) {
  out.clear();
  int timeout_ms = -1;
  if (timeout_ns >= 0) {
    std::int64_t ms = (timeout_ns + 999'999) / 1'000'000;  // round up: millisecond resolution
    timeout_ms = ms > INT_MAX ? INT_MAX : static_cast<int>(ms);
  }
  int n = ::poll(table_->fds.data(), static_cast<nfds_t>(table_->fds.size()), timeout_ms);
  if (n < 0) {
    if (errno == EINTR) return;
    detail::throw_os_error(errno, "poll");
  }
  for (std::size_t i = 0; n > 0 && i < table_->fds.size(); ++i) {
    short got = table_->fds[i].revents;
    if (!got) continue;
    --n;
    std::uint32_t ready = 0;
    if (got & (POLLIN | POLLHUP | POLLERR | POLLNVAL)) ready |= EVENT_READ;
    if (got & (POLLOUT | POLLHUP | POLLERR | POLLNVAL)) ready |= EVENT_WRITE;
    short wanted = table_->fds[i].events;
    ready &= ((wanted & POLLIN) ? EVENT_READ : 0u) | ((wanted & POLLOUT) ? EVENT_WRITE : 0u);
    if (ready) out.push_back({table_->data[i], ready});
  }
}

}  // namespace aio
