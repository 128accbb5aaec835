// The loop's create_datagram_endpoint: resolving the addresses, making and
// binding the socket, and starting a datagram transport on it.
#include <net/dns.hpp>
#include <net/loop_access.hpp>
#include <net/socket.hpp>
#include <net/transport_core.hpp>
#include <net/unix_socket_file.hpp>

#ifdef _WIN32
#include <winsock2.h>
#include <ws2tcpip.h>
#else
#include <netinet/in.h>
#include <sys/socket.h>
#endif

#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

namespace aio {

namespace {

using Endpoint = std::pair<std::shared_ptr<DatagramTransport>, std::shared_ptr<DatagramProtocol>>;

// A HostPort whose host the coroutine owns (the caller's view may be gone
// by the time it runs).
struct OwnedHostPort {
  std::string host;
  int port = 0;
};

std::optional<OwnedHostPort> own(const std::optional<HostPort>& address) {
  if (!address) return std::nullopt;
  return OwnedHostPort{std::string(address->host), address->port};
}

std::string describe(const char* name, const OwnedHostPort& address) {
  return std::string(name) + "=('" + address.host + "', " + std::to_string(address.port) + ")";
}

// One way to make the socket: a (family, proto) and its addresses.
struct Candidate {
  int family = 0;
  int proto = 0;
  std::optional<SocketAddress> local;
  std::optional<SocketAddress> remote;
};

// Numeric hosts without a lookup (asyncio's _ipaddr_info), names with
// getaddrinfo on the executor.
Task<std::vector<AddrInfo>> resolve(EventLoop& loop, OwnedHostPort address, DatagramOptions options) {
  std::vector<AddrInfo> infos;
  try {
    AddrInfo info;
    info.address = SocketAddress::parse(address.host, address.port);
    info.family = info.address.family();
    info.type = SOCK_DGRAM;
    info.protocol = options.proto ? options.proto : IPPROTO_UDP;
    if (options.family == 0 || options.family == info.family) infos.push_back(std::move(info));
  } catch (const std::invalid_argument&) {
    // A host name (or an address getaddrinfo should judge).
  }
  if (infos.empty())
    infos =
        co_await loop.getaddrinfo(address.host, address.port, options.family, SOCK_DGRAM, options.proto, options.flags);
  // Wine 8.0's getaddrinfo leaves ai_protocol 0 where Windows and glibc say
  // IPPROTO_UDP: the local and remote results must pair up all the same.
  for (AddrInfo& info : infos)
    if (info.protocol == 0 && (info.family == AF_INET || info.family == AF_INET6)) info.protocol = IPPROTO_UDP;
  co_return infos;
}

// asyncio's pairing: every (family, proto) that each given address resolves
// to, in the order getaddrinfo gave them.
std::vector<Candidate> pair_up(const std::vector<AddrInfo>& locals, const std::vector<AddrInfo>& remotes,
                               bool want_local, bool want_remote) {
  std::vector<Candidate> all;
  auto slot = [&all](const AddrInfo& info) -> Candidate& {
    for (Candidate& c : all)
      if (c.family == info.family && c.proto == info.protocol) return c;
    return all.emplace_back(Candidate{info.family, info.protocol, std::nullopt, std::nullopt});
  };
  for (const AddrInfo& info : locals) {
    Candidate& c = slot(info);
    if (!c.local) c.local = info.address;
  }
  for (const AddrInfo& info : remotes) {
    Candidate& c = slot(info);
    if (!c.remote) c.remote = info.address;
  }
  std::vector<Candidate> complete;
  for (Candidate& c : all)
    if ((!want_local || c.local) && (!want_remote || c.remote)) complete.push_back(std::move(c));
  return complete;
}

void check_port(const char* name, const OwnedHostPort& address) {
  if (address.port < 0 || address.port > 65535)
    throw std::invalid_argument("create_datagram_endpoint: invalid port " + std::to_string(address.port) + " in " +
                                name + ": must be 0..65535");
}

SocketAddress unix_address(const char* name, const OwnedHostPort& address) {
  if (address.port != 0)
    throw std::invalid_argument(std::string("create_datagram_endpoint: ") + name + " '" + address.host +
                                "' is a Unix socket path with family AF_UNIX: its port must be 0");
  return SocketAddress::unix_path(address.host);
}

// The transport and protocol over a ready socket, once connection_made ran.
Task<Endpoint> start_endpoint(EventLoop& loop, ProtocolFactory factory, Socket sock,
                              std::optional<SocketAddress> remote) {
  std::shared_ptr<BaseProtocol> made = factory();
  if (!made) throw std::invalid_argument("create_datagram_endpoint: the protocol factory returned null");
  DatagramProtocol* datagram = made->as_datagram_protocol();
  if (!datagram)
    throw std::invalid_argument(
        "create_datagram_endpoint: the protocol factory must make an aio::DatagramProtocol (stream protocols cannot "
        "receive datagrams), got " +
        detail::describe_protocol(made.get()));
  std::shared_ptr<DatagramProtocol> protocol(made, datagram);
  auto transport = detail::LoopAccess::make_datagram_transport(loop, std::move(sock), protocol, std::move(remote));
  Future<void> connected = loop.create_future<void>();
  transport->start([connected]() mutable {
    if (!connected.done()) connected.set_result();
  });
  try {
    co_await connected;
  } catch (...) {
    transport->close();  // cancelled while connection_made was pending
    throw;
  }
  co_return Endpoint{transport, protocol};
}

Task<Endpoint> open_endpoint(EventLoop& loop, ProtocolFactory factory, std::optional<OwnedHostPort> local,
                             std::optional<OwnedHostPort> remote, DatagramOptions options) {
  if (!factory) throw std::invalid_argument("create_datagram_endpoint: the protocol factory is empty");
  if (options.reuse_address)
    throw std::invalid_argument(
        "create_datagram_endpoint: reuse_address is not allowed for UDP: with SO_REUSEADDR any other process may bind "
        "the same address and receive a share of its datagrams (asyncio removed it, bpo-37228); use reuse_port, "
        "which only endpoints of the same user can share");
  if (options.reuse_port) check_reuse_port("create_datagram_endpoint");
  std::vector<Candidate> candidates;
  if (!local && !remote) {
    if (options.family == 0)
      throw std::invalid_argument(
          "create_datagram_endpoint: unexpected address family: give local_addr, remote_addr or a family");
    candidates.push_back(Candidate{options.family, options.proto, std::nullopt, std::nullopt});
  } else if (options.family == AF_UNIX) {
    Candidate unix_socket{AF_UNIX, options.proto, std::nullopt, std::nullopt};
    if (local) {
      unix_socket.local = unix_address("local_addr", *local);
      detail::remove_stale_unix_socket(local->host);  // as asyncio does before binding
    }
    if (remote) unix_socket.remote = unix_address("remote_addr", *remote);
    candidates.push_back(std::move(unix_socket));
  } else {
    if (local) check_port("local_addr", *local);
    if (remote) check_port("remote_addr", *remote);
    std::vector<AddrInfo> locals, remotes;
    if (local) locals = co_await resolve(loop, *local, options);
    if (remote) remotes = co_await resolve(loop, *remote, options);
    candidates = pair_up(locals, remotes, local.has_value(), remote.has_value());
    if (candidates.empty()) {
      std::string what = local && remote ? describe("local_addr", *local) + " and " + describe("remote_addr", *remote) +
                                               " have no address family in common"
                                         : std::string("getaddrinfo found no usable address");
      throw std::invalid_argument("create_datagram_endpoint: " + what);
    }
  }
  std::exception_ptr first_error;
  for (Candidate& candidate : candidates) {
    Socket sock;
    std::exception_ptr failed;
    try {
      sock = Socket::create(candidate.family, SOCK_DGRAM, candidate.proto);
      if (options.reuse_port) sock.set_reuse_port();
      if (options.allow_broadcast) sock.set_option(SOL_SOCKET, SO_BROADCAST, 1);
      if (candidate.local) sock.bind(*candidate.local);
    } catch (const std::system_error&) {
      failed = std::current_exception();
    }
    // With allow_broadcast the remote is only sendto's default (asyncio).
    if (!failed && candidate.remote && !options.allow_broadcast) {
      try {
        co_await loop.sock_connect(sock, *candidate.remote);
      } catch (const std::system_error&) {
        failed = std::current_exception();
      }
    }
    if (!failed) co_return co_await start_endpoint(loop, std::move(factory), std::move(sock), candidate.remote);
    if (!first_error) first_error = failed;
  }
  std::rethrow_exception(first_error);
}

Task<Endpoint> open_socket_endpoint(EventLoop& loop, ProtocolFactory factory, Socket sock, std::string conflicts) {
  if (!sock) throw std::invalid_argument("create_datagram_endpoint: the socket is closed (an empty aio::Socket)");
  if (sock.get_option(SOL_SOCKET, SO_TYPE) != SOCK_DGRAM)
    throw std::invalid_argument("create_datagram_endpoint: a datagram socket (SOCK_DGRAM) was expected");
  if (!conflicts.empty())
    throw std::invalid_argument("create_datagram_endpoint: socket options cannot be used when a socket is given (" +
                                conflicts + ")");
  if (!factory) throw std::invalid_argument("create_datagram_endpoint: the protocol factory is empty");
  sock.set_blocking(false);
  co_return co_await start_endpoint(loop, std::move(factory), std::move(sock), std::nullopt);
}

}  // namespace

// Not coroutines themselves: they copy what the options only point to
// before returning the task that does the work.

Task<Endpoint> EventLoop::create_datagram_endpoint(ProtocolFactory factory, DatagramOptions options) {
  std::optional<OwnedHostPort> local = own(options.local_addr);
  std::optional<OwnedHostPort> remote = own(options.remote_addr);
  options.local_addr.reset();
  options.remote_addr.reset();
  return open_endpoint(*this, std::move(factory), std::move(local), std::move(remote), options);
}

Task<Endpoint> EventLoop::create_datagram_endpoint(ProtocolFactory factory, Socket sock, DatagramOptions options) {
  std::vector<std::string> given;
  if (auto local = own(options.local_addr)) given.push_back(describe("local_addr", *local));
  if (auto remote = own(options.remote_addr)) given.push_back(describe("remote_addr", *remote));
  if (options.family) given.push_back("family=" + std::to_string(options.family));
  if (options.proto) given.push_back("proto=" + std::to_string(options.proto));
  if (options.flags) given.push_back("flags=" + std::to_string(options.flags));
  if (options.reuse_port) given.push_back("reuse_port=true");
  if (options.allow_broadcast) given.push_back("allow_broadcast=true");
  if (options.reuse_address) given.push_back("reuse_address=true");
  std::string conflicts;
  for (const std::string& option : given) conflicts += (conflicts.empty() ? "" : ", ") + option;
  return open_socket_endpoint(*this, std::move(factory), std::move(sock), std::move(conflicts));
}

}  // namespace aio
