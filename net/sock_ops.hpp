// Private: the argument checks the loop's socket methods share
// (net/sock_ops.cpp).
#pragma once

#include <core/event_loop.hpp>
#include <net/socket.hpp>

namespace aio::detail {

// std::invalid_argument, naming `method`, for an empty Socket, and in debug
// mode for a blocking one (asyncio's ValueError).
void check_sock(const EventLoop& loop, const Socket& sock, const char* method);

// std::invalid_argument naming `method` for a port outside 0..65535.
void check_port(int port, const char* method);

// std::invalid_argument naming `method` unless `sock` is an open stream
// socket of `family` (AF_UNSPEC: any family).
void check_stream_socket(const Socket& sock, int family, const char* method);

}  // namespace aio::detail
