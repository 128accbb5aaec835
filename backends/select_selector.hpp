// SelectSelector: the Selector contract over select(), on POSIX and Winsock.
#pragma once

#include <backends/selector.hpp>

#include <memory>

namespace aio {

class SelectSelector final : public Selector {
 public:
  SelectSelector();
  ~SelectSelector() override;
  std::string_view name() const noexcept override { return "select"; }
  void register_fd(fd_t fd, std::uint32_t events, void* data) override;
  void modify(fd_t fd, std::uint32_t events, void* data) override;
  void unregister(fd_t fd) noexcept override;
  void select(std::int64_t timeout_ns, std::vector<SelectorEvent>& out) override;

 private:
  struct Sets;
  std::unique_ptr<Sets> sets_;
};

}  // namespace aio
