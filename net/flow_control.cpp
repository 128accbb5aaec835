#include <net/flow_control.hpp>

#include <stdexcept>
#include <string>

namespace aio::detail {

void FlowControl::set_limits(std::optional<long long> high, std::optional<long long> low, const char* method) {
  if ((high && *high < 0) || (low && *low < 0))
    throw std::invalid_argument(std::string(method) + ": high and low must be >= 0");
  long long h = high ? *high : (low ? 4 * *low : static_cast<long long>(default_high_));
  long long l = low ? *low : h / 4;
  if (h < l)
    throw std::invalid_argument(std::string(method) + ": high (" + std::to_string(h) + ") must be >= low (" +
                                std::to_string(l) + ")");
  high_ = static_cast<std::size_t>(h);
  low_ = static_cast<std::size_t>(l);
}

int FlowControl::crossed(std::size_t buffered) noexcept {
  if (!paused_ && (buffered > high_ || (at_high_ && buffered == high_))) {
    paused_ = true;
    return 1;
  }
  if (paused_ && buffered <= low_) {
    paused_ = false;
    return -1;
  }
  return 0;
}

void FlowControl::update(std::size_t buffered, BaseProtocol& protocol) {
  int change = crossed(buffered);
  if (change > 0)
    protocol.pause_writing();
  else if (change < 0)
    protocol.resume_writing();
}

}  // namespace aio::detail
