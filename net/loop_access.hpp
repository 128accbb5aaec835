// Private: how net/ reaches the engine seam of EventLoop (its protected
// hooks), in one place.
#pragma once

#include <core/event_loop.hpp>
#include <net/datagram_transport.hpp>
#include <net/socket.hpp>
#include <net/stream_transport.hpp>

#include <cstdint>
#include <memory>
#include <optional>

namespace aio::detail {

struct LoopAccess {
  static std::shared_ptr<StreamTransport> make_socket_transport(EventLoop& loop, Socket sock,
                                                                std::shared_ptr<BaseProtocol> protocol) {
    return loop.make_socket_transport(std::move(sock), std::move(protocol));
  }
  static std::shared_ptr<DatagramTransportBase> make_datagram_transport(EventLoop& loop, Socket sock,
                                                                        std::shared_ptr<BaseProtocol> protocol,
                                                                        std::optional<SocketAddress> remote) {
    return loop.make_datagram_transport(std::move(sock), std::move(protocol), std::move(remote));
  }
  static void start_accepting(EventLoop& loop, Server& server, std::size_t index) {
    loop.start_accepting(server, index);
  }
  static Task<std::size_t> sendfile_native(EventLoop& loop, fd_t sock, int file, std::uint64_t offset,
                                           std::size_t count, StreamTransport* transport) {
    return loop.sendfile_native(sock, file, offset, count, transport);
  }
};

}  // namespace aio::detail
