// Private: the selector loops' stream transport, for the loop methods that
// make one (connect_accepted_socket, create_connection, Server).
#pragma once

#include <net/socket.hpp>
#include <net/stream_transport.hpp>

#include <memory>

namespace aio::detail {

// A transport over a connected stream socket; call start() on it.
std::shared_ptr<StreamTransport> make_selector_transport(EventLoop& loop, Socket sock,
                                                         std::shared_ptr<BaseProtocol> protocol);

// The transport of `loop`'s engine: the proactor's on a ProactorEventLoop
// (net/proactor_transport.cpp), the selector's otherwise.
std::shared_ptr<StreamTransport> make_socket_transport(EventLoop& loop, Socket sock,
                                                       std::shared_ptr<BaseProtocol> protocol);

}  // namespace aio::detail
