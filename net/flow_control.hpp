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

  // With another default high-water mark (asyncio's TLS layer: 512 KiB for
  // writes, 256 KiB for reads); `at_high`: pause once the buffer holds high
  // bytes or more, as the TLS layer does, rather than more than high.
  explicit FlowControl(std::size_t default_high = FlowControl::default_high, bool at_high = false)
      : default_high_(default_high), high_(default_high), low_(default_high / 4), at_high_(at_high) {}

  // asyncio's rule: high defaults to the default (or 4 * low when only low
  // is given), low to high / 4. std::invalid_argument naming `method` for
  // negative values or high < low, leaving the limits as they were.
  void set_limits(std::optional<long long> high, std::optional<long long> low,
                  const char* method = "set_write_buffer_limits");
  // (low, high), as get_write_buffer_limits returns them.
  std::pair<std::size_t, std::size_t> limits() const noexcept { return {low_, high_}; }

  // Re-evaluates after the buffer changed to `buffered` bytes (or the limits
  // did): calls protocol.pause_writing() once it holds more than high, and
  // protocol.resume_writing() once a paused buffer is back at low or below.
  // The state changes before the call: an exception from the protocol
  // propagates with the pause or resume already counted as done.
  void update(std::size_t buffered, BaseProtocol& protocol);
  // The same decision for another kind of reaction (the TLS layer pausing
  // its transport's reading): +1 to pause, -1 to resume, 0 for neither;
  // the state is updated.
  int crossed(std::size_t buffered) noexcept;
  // Between pause_writing() and resume_writing().
  bool paused() const noexcept { return paused_; }

 private:
  std::size_t default_high_;
  std::size_t high_;
  std::size_t low_;
  bool at_high_;
  bool paused_ = false;  // pause_writing() was called, resume_writing() not yet
};

}  // namespace aio::detail
