// Private: what the loop's sock_* coroutines share (net/sock_ops.cpp,
// net/sendfile.cpp).
#pragma once

#include <core/event_loop.hpp>
#include <net/socket.hpp>

namespace aio::detail {

// std::invalid_argument for an empty Socket; `method` names the caller.
void check_socket_open(const Socket& sock, const char* method);

// Waits until `fd` is readable (or writable); the watch is removed however
// the wait ends, cancellation included.
Task<void> wait_ready(EventLoop& loop, fd_t fd, bool writable);

}  // namespace aio::detail
