// asyncio's own exceptions, under asyncio's names.
//
// OS failures are std::system_error carrying the errno / WSA / Win32 code;
// misuse of the loop ("Event loop is closed", "This event loop is already
// running") is std::runtime_error, as asyncio raises RuntimeError.
#pragma once

#include <stdexcept>
#include <string>

namespace aio {

// Raised at the pending co_await of a cancelled task.
//
// Deliberately not derived from std::exception, for the reason asyncio made
// CancelledError a BaseException in 3.8: a `catch (const std::exception&)`
// written to handle errors must not swallow cancellation by accident.
class CancelledError {
 public:
  CancelledError() = default;
  explicit CancelledError(std::string message) : message_(std::move(message)) {}
  // The message given to cancel(), or empty.
  const std::string& message() const noexcept { return message_; }
  const char* what() const noexcept { return message_.empty() ? "CancelledError" : message_.c_str(); }

 private:
  std::string message_;
};

// An operation not allowed in the future's current state (set_result on a
// done future, result() of a pending one).
class InvalidStateError : public std::logic_error {
 public:
  using std::logic_error::logic_error;
};

// wait_for() ran out of time.
class TimeoutError : public std::runtime_error {
 public:
  TimeoutError() : std::runtime_error("TimeoutError") {}
  using std::runtime_error::runtime_error;
};

// An asyncio method the running engine does not offer (add_reader on the
// proactor), as asyncio's NotImplementedError.
class NotImplementedError : public std::logic_error {
 public:
  using std::logic_error::logic_error;
};

}  // namespace aio
