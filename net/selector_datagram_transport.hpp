// Private: the selector loops' datagram transport, for
// create_datagram_endpoint.
#pragma once

#include <net/datagram_transport.hpp>
#include <net/socket.hpp>

#include <memory>
#include <optional>

namespace aio::detail {

// A transport over a datagram socket (bound, connected, or neither); call
// start() on it. `remote` is sendto's default destination when the socket
// is not connected (a connected socket's peer is always its remote).
std::shared_ptr<DatagramTransportBase> make_selector_datagram_transport(EventLoop& loop, Socket sock,
                                                                        std::shared_ptr<BaseProtocol> protocol,
                                                                        std::optional<SocketAddress> remote);

// The datagram transport of `loop`'s engine: the proactor's on a
// ProactorEventLoop (net/proactor_datagram_transport.cpp), the selector's
// otherwise.
std::shared_ptr<DatagramTransportBase> make_datagram_transport(EventLoop& loop, Socket sock,
                                                               std::shared_ptr<BaseProtocol> protocol,
                                                               std::optional<SocketAddress> remote);

}  // namespace aio::detail
