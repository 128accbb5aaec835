// Getting, setting and creating event loops (asyncio.events), and choosing
// the I/O backend at run time.
#pragma once

#include <core/event_loop.hpp>

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace aio {

// The loop running on this thread; throws std::runtime_error if none is.
EventLoop& get_running_loop();

// The running loop, else the one set_event_loop() set for this thread; throws
// std::runtime_error if there is neither.
EventLoop& get_event_loop();

// Sets (or, with nullptr, clears) this thread's current loop. Does not own it.
void set_event_loop(EventLoop* loop);

struct LoopOptions {
  // A backend name or a comma list tried in order ("epoll", "poll,select").
  // Empty: the AIO_BACKEND environment variable, else the platform default.
  std::string backend = {};
  // Debug mode; unset: AIO_DEBUG=1 in the environment turns it on.
  std::optional<bool> debug = std::nullopt;
};

// A new loop on the chosen backend. Throws std::invalid_argument naming the
// usable backends when the choice is unknown or unusable here.
std::unique_ptr<EventLoop> new_event_loop(const LoopOptions& options = {});

// The library's version ("0.1.0").
const char* version() noexcept;

// Backends built into this library, in preference order.
std::vector<std::string> compiled_backends();
// The compiled-in backends that work on this machine now (probed once).
std::vector<std::string> available_backends();
// The compiled-in backends that do not work on this machine, each with the
// reason its probe gave (e.g. {"io_uring", "io_uring_setup: Operation not
// permitted"} where kernel.io_uring_disabled=2); probed once, like
// available_backends().
std::vector<std::pair<std::string, std::string>> unusable_backends();
// What new_event_loop() picks without AIO_BACKEND or options: the first
// available backend, except io_uring, which is used only when asked for.
std::string default_backend();

}  // namespace aio
