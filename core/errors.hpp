// asyncio's own exceptions, under asyncio's names.
//
// OS failures are std::system_error carrying the errno / WSA / Win32 code;
// misuse of the loop ("Event loop is closed", "This event loop is already
// running") is std::runtime_error, as asyncio raises RuntimeError.
#pragma once

#include <cstddef>
#include <exception>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

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

// What aio::run and aio::Runner::run throw when Ctrl-C (SIGINT) interrupted
// the main task (asyncio's KeyboardInterrupt). Not a std::exception, as
// CancelledError and for the same reason: a program exits with it.
class KeyboardInterrupt {
 public:
  const char* what() const noexcept { return "KeyboardInterrupt"; }
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

// A stream ended before the read was satisfied (StreamReader.readexactly,
// readuntil); `partial` holds what was read.
class IncompleteReadError : public std::runtime_error {
 public:
  IncompleteReadError(std::string partial, std::optional<std::size_t> expected)
      : std::runtime_error(std::to_string(partial.size()) + " bytes read on a total of " +
                           (expected ? std::to_string(*expected) : std::string("undefined")) + " expected bytes"),
        partial(std::move(partial)),
        expected(expected) {}
  std::string partial;
  std::optional<std::size_t> expected;
};

// A StreamReader's buffer limit was reached while looking for a separator;
// `consumed` bytes are still in the buffer.
class LimitOverrunError : public std::runtime_error {
 public:
  LimitOverrunError(const std::string& message, std::size_t consumed)
      : std::runtime_error(message), consumed(consumed) {}
  std::size_t consumed;
};

// sock_sendfile / sendfile cannot send natively here and fallback is false:
// the file is not a regular file, the socket is one the OS's sendfile
// refuses, or the OS (or this loop, e.g. a selector loop on Windows) has no
// sendfile. what() says which. A RuntimeError in asyncio.
class SendfileNotAvailableError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// An asyncio method the running engine does not offer (add_reader on the
// proactor), as asyncio's NotImplementedError.
class NotImplementedError : public std::logic_error {
 public:
  using std::logic_error::logic_error;
};

// Several errors at once (Python's BaseExceptionGroup): what a TaskGroup
// throws when its tasks (or its body) failed. exceptions() holds each, in
// the order they happened.
class ExceptionGroup : public std::runtime_error {
 public:
  ExceptionGroup(const std::string& message, std::vector<std::exception_ptr> exceptions)
      : std::runtime_error(message + " (" + std::to_string(exceptions.size()) +
                           (exceptions.size() == 1 ? " sub-exception)" : " sub-exceptions)")),
        exceptions_(std::move(exceptions)) {}
  const std::vector<std::exception_ptr>& exceptions() const noexcept { return exceptions_; }

 private:
  std::vector<std::exception_ptr> exceptions_;
};

}  // namespace aio
