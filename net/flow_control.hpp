// Write flow control of a transport (asyncio's _FlowControlMixin): high and
// low water marks over the size of the write buffer, and the protocol's
// pause_writing / resume_writing when the buffer crosses them. Shared by the
// stream and datagram transports; it knows nothing of how bytes move.
#pragma once

#include <net/protocols.hpp>

#include <cstddef>
#include <optional>
#include <utility>

namespace aio::detail {

class FlowControl {
 public:
  // asyncio's defaults: high 64 KiB, low high / 4.
  static constexpr std::size_t default_high = 64 * 1024;

  // asyncio's rule: high defaults to 64 KiB (or 4 * low when only low is
  // given), low to high / 4. std::invalid_argument for negative values or
  // high < low, leaving the limits as they were.
  void set_limits(std::optional<long long> high, std::optional<long long> low);
  // (low, high), as get_write_buffer_limits returns them.
  std::pair<std::size_t, std::size_t> limits() const noexcept { return {low_, high_}; }

  // Re-evaluates after the buffer changed to `buffered` bytes (or the limits
  // did): calls protocol.pause_writing() once it holds more than high, and
  // protocol.resume_writing() once a paused buffer is back at low or below.
  // The state changes before the call: an exception from the protocol
  // propagates with the pause or resume already counted as done.
  void update(std::size_t buffered, BaseProtocol& protocol);
  // Between pause_writing() and resume_writing().
  bool paused() const noexcept { return paused_; }

 private:
  std::size_t high_ = default_high;
  std::size_t low_ = default_high / 4;
  bool paused_ = false;  // pause_writing() was called, resume_writing() not yet
};

}  // namespace aio::detail
