// Private: the selector loops' stream transport (SelectorEventLoop's
// make_socket_transport hook).
#pragma once

#include <net/socket.hpp>
#include <net/stream_transport.hpp>

#include <memory>

namespace aio::detail {

// A transport over a connected stream socket; call start() on it.
std::shared_ptr<StreamTransport> make_selector_transport(EventLoop& loop, Socket sock,
                                                         std::shared_ptr<BaseProtocol> protocol);

}  // namespace aio::detail
