// Private: the proactor loop's datagram transport (ProactorEventLoop's
// make_datagram_transport hook).
#pragma once

#include <backends/proactor_event_loop.hpp>
#include <net/datagram_transport.hpp>
#include <net/socket.hpp>

#include <memory>
#include <optional>

namespace aio::detail {

// As make_selector_datagram_transport, over the proactor's operations.
std::shared_ptr<DatagramTransportBase> make_proactor_datagram_transport(ProactorEventLoop& loop, Socket sock,
                                                                        std::shared_ptr<BaseProtocol> protocol,
                                                                        std::optional<SocketAddress> remote);

}  // namespace aio::detail
