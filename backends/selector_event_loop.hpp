// SelectorEventLoop: the event loop over a readiness Selector.
#pragma once

#include <backends/selector.hpp>
#include <core/event_loop.hpp>

#include <memory>
#include <unordered_map>
#include <vector>

namespace aio::detail {
class Waker;  // private: backends/waker.hpp
}  // namespace aio::detail

namespace aio {

class SelectorEventLoop final : public EventLoop {
 public:
  // `clock` replaces the monotonic clock (simulations and deterministic tests).
  explicit SelectorEventLoop(std::unique_ptr<Selector> selector, Clock clock = {});
  ~SelectorEventLoop() override;

  bool remove_reader(fd_t fd) override;
  bool remove_writer(fd_t fd) override;
  std::string_view backend() const noexcept override { return selector_->name(); }

 protected:
  void poll_io(std::int64_t timeout_ns) override;
  void wakeup() noexcept override;
  void close_io() noexcept override;
  void add_reader_impl(fd_t fd, detail::Callback callback) override;
  void add_writer_impl(fd_t fd, detail::Callback callback) override;

 private:
  struct Watch {
    fd_t fd;
    std::uint32_t events = 0;
    Handle reader;
    Handle writer;
  };
  void add_watch(fd_t fd, std::uint32_t event, detail::Callback callback);
  bool remove_watch(fd_t fd, std::uint32_t event);

  std::unique_ptr<Selector> selector_;
  std::unique_ptr<detail::Waker> waker_;
  std::unordered_map<fd_t, std::unique_ptr<Watch>> watches_;
  std::vector<SelectorEvent> events_;
};

}  // namespace aio
