// Private: connecting to the first of several addresses that accepts, with
// RFC 8305 ("Happy Eyeballs v2") ordering and staggered attempts; the engine
// of create_connection.
#pragma once

#include <core/event_loop.hpp>
#include <net/dns.hpp>
#include <net/socket.hpp>

#include <exception>
#include <optional>
#include <vector>

namespace aio::detail {

// RFC 8305 section 4: the addresses reordered so that address families
// alternate, starting with `first_family_count` addresses of the first
// family; the order within a family is kept. 0 keeps the order as it is.
std::vector<AddrInfo> interleave_addrinfos(std::vector<AddrInfo> infos, int first_family_count);

// Connects a stream socket to one of `infos`, in order. Without `delay` an
// attempt starts only when the one before failed; with it, the next attempt
// also starts once `delay` seconds pass without an answer, and the first to
// connect wins (the others are cancelled and their sockets closed). Each
// socket is bound to `local_addr` first, when given and of its family.
// Returns the connected socket; when every attempt fails, returns an empty
// one and `errors` holds every attempt's error, in the order they failed.
// Cancelling the call cancels every attempt.
Task<Socket> connect_staggered(EventLoop& loop, std::vector<AddrInfo> infos, std::optional<SocketAddress> local_addr,
                               std::optional<double> delay, std::vector<std::exception_ptr>& errors);

}  // namespace aio::detail
