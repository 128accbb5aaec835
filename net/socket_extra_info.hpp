// Private: what every socket transport, selector or proactor, reports
// through get_extra_info, and the set-up its socket gets.
#pragma once

#include <core/address.hpp>
#include <net/socket.hpp>

#include <any>
#include <optional>
#include <string_view>

namespace aio::detail {

// A stream socket's names, taken once when its transport starts.
class StreamSocketInfo {
 public:
  // Sets TCP_NODELAY on a TCP socket (contract 37), then records its names.
  explicit StreamSocketInfo(Socket& sock);
  // "peername" (if it was connected), "sockname", "socket" (while open);
  // empty for any other name.
  std::any get(std::string_view name, const Socket& sock) const;

 private:
  SocketAddress peername_;
  SocketAddress sockname_;
};

// get_extra_info of a datagram socket: "peername" if connected, "sockname"
// asked each time (an unbound socket gets its name at its first send),
// "socket" while open; empty for any other name.
std::any datagram_extra_info(std::string_view name, const Socket& sock, const std::optional<SocketAddress>& peername);

}  // namespace aio::detail
