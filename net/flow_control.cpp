#include <net/flow_control.hpp>

#include <stdexcept>
#include <string>

namespace aio::detail {

void FlowControl::set_limits(std::optional<long long> high, std::optional<long long> low) {
  if ((high && *high < 0) || (low && *low < 0))
    throw std::invalid_argument("set_write_buffer_limits: high and low must be >= 0");
  long long h = high ? *high : (low ? 4 * *low : static_cast<long long>(default_high));
  long long l = low ? *low : h / 4;
  if (h < l)
    throw std::invalid_argument("set_write_buffer_limits: high (" + std::to_string(h) + ") must be >= low (" +
                                std::to_string(l) + ")");
  high_ = static_cast<std::size_t>(h);
  low_ = static_cast<std::size_t>(l);
}

void FlowControl::update(std::size_t buffered, BaseProtocol& protocol) {
  if (!paused_ && buffered > high_) {
    paused_ = true;
    protocol.pause_writing();
  } else if (paused_ && buffered <= low_) {
    paused_ = false;
    protocol.resume_writing();
  }
}

}  // namespace aio::detail
