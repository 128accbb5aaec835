// KqueueSelector: the Selector contract over BSD/macOS kqueue (and libkqueue
// on Linux).
#pragma once

#include <backends/selector.hpp>

#include <memory>

namespace aio {

class KqueueSelector final : public Selector {
 public:
  KqueueSelector();  // throws std::system_error if kqueue is unavailable
  ~KqueueSelector() override;
  std::string_view name() const noexcept override { return "kqueue"; }
  void register_fd(fd_t fd, std::uint32_t events, void* data) override;
  void modify(fd_t fd, std::uint32_t events, void* data) override;
  void unregister(fd_t fd) noexcept override;
  void select(std::int64_t timeout_ns, std::vector<SelectorEvent>& out) override;

 private:
  struct State;
  int kq_;
  std::unique_ptr<State> state_;
};

}  // namespace aio
