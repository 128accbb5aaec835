#include <backends/select_selector.hpp>
#include <backends/syscall.hpp>

// macOS caps select() at FD_SETSIZE descriptors unless asked not to; the sets
// below are sized to the largest registered descriptor instead.
#define _DARWIN_UNLIMITED_SELECT 1

#ifdef _WIN32
#include <winsock2.h>
#else
#include <sys/select.h>
#include <cerrno>
#endif

#include <algorithm>
#include <climits>
#include <cstring>
#include <string>
#include <unordered_map>

namespace aio {

namespace {

struct Interest {
  std::uint32_t events;
  void* data;
};

timeval to_timeval(std::int64_t timeout_ns) {
  std::int64_t us = (timeout_ns + 999) / 1000;  // round up: microsecond resolution
  timeval tv{};
  tv.tv_sec = static_cast<decltype(tv.tv_sec)>(std::min<std::int64_t>(us / 1'000'000, INT_MAX));
  tv.tv_usec = static_cast<decltype(tv.tv_usec)>(us % 1'000'000);
  return tv;
}

}  // namespace

#ifdef _WIN32

// Winsock's fd_set is a count followed by an array of sockets, FD_SETSIZE (64)
// long by default: FD_SET silently drops the 65th. These sets are allocated to
// hold every registered socket instead.
class SocketSet {
 public:
  void fill(const std::unordered_map<fd_t, Interest>& interests, std::uint32_t event) {
    words_.assign(1 + interests.size(), 0);  // word 0 holds fd_count (and padding)
    u_int count = 0;
    for (const auto& [fd, interest] : interests)
      if (interest.events & event) words_[1 + count++] = static_cast<SOCKET>(fd);
    get()->fd_count = count;
  }
  fd_set* get() noexcept { return reinterpret_cast<fd_set*>(words_.data()); }
  u_int size() noexcept { return get()->fd_count; }
  SOCKET at(u_int i) noexcept { return words_[1 + i]; }

 private:
  static_assert(offsetof(fd_set, fd_array) == sizeof(SOCKET), "fd_set layout: a count then the sockets");
  std::vector<SOCKET> words_;
};

struct SelectSelector::Sets {
  std::unordered_map<fd_t, Interest> interests;
  SocketSet read, write, except;
};

SelectSelector::SelectSelector() : sets_(std::make_unique<Sets>()) { detail::ensure_sockets_ready(); }

void SelectSelector::register_fd(fd_t fd, std::uint32_t events, void* data) {
  int type = 0, len = sizeof type;
  // Winsock's select() takes sockets only.
  if (getsockopt(static_cast<SOCKET>(fd), SOL_SOCKET, SO_TYPE, reinterpret_cast<char*>(&type), &len) != 0)
    detail::throw_os_error(WSAGetLastError(), "select: handle " + std::to_string(fd) + " is not a socket");
  if (!sets_->interests.emplace(fd, Interest{events, data}).second)
    detail::throw_os_error(WSAEINVAL, "select: socket " + std::to_string(fd) + " is already registered");
}

void SelectSelector::select(std::int64_t timeout_ns, std::vector<SelectorEvent>& out) {
  out.clear();
  auto& s = *sets_;
  if (s.interests.empty()) {
    // select() with no sockets fails with WSAEINVAL instead of sleeping.
    if (timeout_ns != 0)
      Sleep(timeout_ns < 0
                ? INFINITE
                : static_cast<DWORD>(std::min<std::int64_t>((timeout_ns + 999'999) / 1'000'000, INFINITE - 1)));
    return;
  }
  s.read.fill(s.interests, EVENT_READ);
  s.write.fill(s.interests, EVENT_WRITE);
  // A failed non-blocking connect() is reported in the exception set, not the
  // write set, on Windows.
  s.except.fill(s.interests, EVENT_WRITE);
  timeval tv = to_timeval(timeout_ns);
  int n = ::select(0, s.read.get(), s.write.get(), s.except.get(), timeout_ns < 0 ? nullptr : &tv);
  if (n == SOCKET_ERROR) detail::throw_os_error(WSAGetLastError(), "select");
  std::unordered_map<fd_t, std::uint32_t> ready;
  for (u_int i = 0; i < s.read.size(); ++i) ready[static_cast<fd_t>(s.read.at(i))] |= EVENT_READ;
  for (u_int i = 0; i < s.write.size(); ++i) ready[static_cast<fd_t>(s.write.at(i))] |= EVENT_WRITE;
  for (u_int i = 0; i < s.except.size(); ++i) ready[static_cast<fd_t>(s.except.at(i))] |= EVENT_WRITE;
  for (const auto& [fd, events] : ready) out.push_back({s.interests.at(fd).data, events});
}

#else

// Bit sets in the kernel's fd_set layout, sized to the largest registered
// descriptor: glibc's FD_SET would write past a 1024-bit fd_set.
class DescriptorSet {
 public:
  void resize(std::size_t nfds) { bits_.resize((nfds + bits_per_word - 1) / bits_per_word); }
  void assign(const DescriptorSet& other) { bits_ = other.bits_; }
  void set(fd_t fd, bool on) {
    auto bit = static_cast<std::size_t>(fd);
    if (on)
      bits_[bit / bits_per_word] |= word(1) << (bit % bits_per_word);
    else
      bits_[bit / bits_per_word] &= ~(word(1) << (bit % bits_per_word));
  }
  bool test(fd_t fd) const {
    auto bit = static_cast<std::size_t>(fd);
    return (bits_[bit / bits_per_word] >> (bit % bits_per_word)) & 1;
  }
  fd_set* get() noexcept { return reinterpret_cast<fd_set*>(bits_.data()); }

 private:
  using word = unsigned long;
  static constexpr std::size_t bits_per_word = sizeof(word) * CHAR_BIT;
  std::vector<word> bits_;
};

struct SelectSelector::Sets {
  std::unordered_map<fd_t, Interest> interests;
  DescriptorSet want_read, want_write, read, write;
  fd_t max_fd = -1;

  void update(fd_t fd, std::uint32_t events) {
    if (fd > max_fd) {
      max_fd = fd;
      // Never shorter than an fd_set: select() may read that much.
      std::size_t nfds = std::max<std::size_t>(static_cast<std::size_t>(fd) + 1, FD_SETSIZE);
      for (DescriptorSet* set : {&want_read, &want_write, &read, &write}) set->resize(nfds);
    }
    want_read.set(fd, events & EVENT_READ);
    want_write.set(fd, events & EVENT_WRITE);
  }
};

SelectSelector::SelectSelector() : sets_(std::make_unique<Sets>()) {}

void SelectSelector::register_fd(fd_t fd, std::uint32_t events, void* data) {
  detail::check_watchable(fd, "select");
  if (!sets_->interests.emplace(fd, Interest{events, data}).second)
    detail::throw_os_error(EEXIST, "select: fd " + std::to_string(fd) + " is already registered");
  sets_->update(fd, events);
}

void SelectSelector::select(std::int64_t timeout_ns, std::vector<SelectorEvent>& out) {
  out.clear();
  auto& s = *sets_;
  s.read.assign(s.want_read);
  s.write.assign(s.want_write);
  timeval tv = to_timeval(timeout_ns);
  int n =
      ::select(static_cast<int>(s.max_fd + 1), s.read.get(), s.write.get(), nullptr, timeout_ns < 0 ? nullptr : &tv);
  if (n < 0) {
    if (errno == EINTR) return;
    detail::throw_os_error(errno, "select");
  }
  for (auto it = s.interests.begin(); n > 0 && it != s.interests.end(); ++it) {
    std::uint32_t ready = (s.read.test(it->first) ? EVENT_READ : 0u) | (s.write.test(it->first) ? EVENT_WRITE : 0u);
    if (ready) {
      out.push_back({it->second.data, ready});
      n -= (ready & EVENT_READ ? 1 : 0) + (ready & EVENT_WRITE ? 1 : 0);
    }
  }
}

#endif

SelectSelector::~SelectSelector() = default;

void SelectSelector::modify(fd_t fd, std::uint32_t events, void* data) {
  sets_->interests.at(fd) = Interest{events, data};
#ifndef _WIN32
  sets_->update(fd, events);
#endif
}

void SelectSelector::unregister(fd_t fd) noexcept {
  if (!sets_->interests.erase(fd)) return;
#ifndef _WIN32
  sets_->update(fd, 0);
#endif
}

}  // namespace aio
