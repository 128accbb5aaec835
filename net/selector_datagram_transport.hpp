// Private: the selector loops' datagram transport (SelectorEventLoop's
// make_datagram_transport hook).
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

}  // namespace aio::detail
