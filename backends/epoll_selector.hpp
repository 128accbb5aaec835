// EpollSelector: the Selector contract over Linux epoll.
#pragma once

#include <backends/selector.hpp>

#include <memory>

namespace aio {

class EpollSelector final : public Selector {
 public:
  EpollSelector();  // throws std::system_error if epoll is unavailable
  ~EpollSelector() override;
  std::string_view name() const noexcept override { return "epoll"; }
  void register_fd(fd_t fd, std::uint32_t events, void* data) override;
  void modify(fd_t fd, std::uint32_t events, void* data) override;
  void unregister(fd_t fd) noexcept override;
  void select(std::int64_t timeout_ns, std::vector<SelectorEvent>& out) override;

 private:
  struct Buffer;
  int epfd_;
  std::unique_ptr<Buffer> buffer_;
};

}  // namespace aio
