// PollSelector: the Selector contract over poll(2).
#pragma once

#include <backends/selector.hpp>

#include <memory>

namespace aio {

class PollSelector final : public Selector {
 public:
  PollSelector();
  ~PollSelector() override;
  std::string_view name() const noexcept override { return "poll"; }
  void register_fd(fd_t fd, std::uint32_t events, void* data) override;
  void modify(fd_t fd, std::uint32_t events, void* data) override;
  void unregister(fd_t fd) noexcept override;
  void select(std::int64_t timeout_ns, std::vector<SelectorEvent>& out) override;

 private:
  struct Table;
  std::unique_ptr<Table> table_;
};

}  // namespace aio
