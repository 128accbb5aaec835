#include <backends/syscall.hpp>
#include <core/event_loop.hpp>
#include <net/dns.hpp>
#include <net/sock_ops.hpp>

#ifdef _WIN32
#include <winsock2.h>
#include <ws2tcpip.h>
#else
#include <netdb.h>
#include <sys/socket.h>

#include <cerrno>
#endif

#include <memory>

namespace aio {

namespace {

class GaiCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "getaddrinfo"; }
  std::string message(int code) const override {
#ifdef _WIN32
    // Winsock reports EAI_* as WSA codes: the system messages describe them.
    return std::system_category().message(code);
#else
    return gai_strerror(code);
#endif
  }
};

[[noreturn]] void throw_gai(int code, const std::string& what) {
#ifdef EAI_SYSTEM
  if (code == EAI_SYSTEM) detail::throw_os_error(errno, what);
#endif
  throw std::system_error(code, gai_category(), what);
}

std::string describe(const std::string& host, const std::string& port) {
  return "(" + (host.empty() ? std::string("None") : "'" + host + "'") + ", " +
         (port.empty() ? std::string("None") : port) + ")";
}

}  // namespace

const std::error_category& gai_category() noexcept {
  static const GaiCategory category;
  return category;
}

namespace detail {

std::vector<AddrInfo> getaddrinfo_blocking(const std::string& host, const std::string& port,
                                           const AddrInfoHints& hints) {
  ensure_sockets_ready();
  addrinfo want{};
  want.ai_family = hints.family;
  want.ai_socktype = hints.type;
  want.ai_protocol = hints.protocol;
  want.ai_flags = hints.flags;
  addrinfo* found = nullptr;
  int rc = ::getaddrinfo(host.empty() ? nullptr : host.c_str(), port.empty() ? nullptr : port.c_str(), &want, &found);
  if (rc != 0) throw_gai(rc, "getaddrinfo" + describe(host, port));
  std::unique_ptr<addrinfo, void (*)(addrinfo*)> owner(found, ::freeaddrinfo);
  std::vector<AddrInfo> results;
  for (addrinfo* ai = found; ai; ai = ai->ai_next) {
    AddrInfo info;
    info.family = ai->ai_family;
    info.type = ai->ai_socktype;
    info.protocol = ai->ai_protocol;
    if (ai->ai_canonname) info.canonname = ai->ai_canonname;
    info.address = SocketAddress::from_native(ai->ai_addr, static_cast<unsigned>(ai->ai_addrlen));
    results.push_back(std::move(info));
  }
  return results;
}

std::pair<std::string, std::string> getnameinfo_blocking(const SocketAddress& address, int flags) {
  ensure_sockets_ready();
  char host[NI_MAXHOST], service[NI_MAXSERV];
  int rc = ::getnameinfo(static_cast<const sockaddr*>(address.data()), static_cast<socklen_t>(address.size()), host,
                         sizeof host, service, sizeof service, flags);
  if (rc != 0) throw_gai(rc, "getnameinfo(" + address.to_string() + ")");
  return {host, service};
}

}  // namespace detail

// ---- The loop's methods ----------------------------------------------------

Task<std::vector<AddrInfo>> EventLoop::getaddrinfo(std::string host, std::string port, int family, int type, int proto,
                                                   int flags) {
  AddrInfoHints hints{family, type, proto, flags};
  // Named, not written inside the co_await expression: GCC 12 destroys a
  // capturing lambda created in the same expression as a co_await twice.
  auto resolve = [host = std::move(host), port = std::move(port), hints] {
    return detail::getaddrinfo_blocking(host, port, hints);
  };
  co_return co_await run_in_executor(nullptr, std::move(resolve));
}

Task<std::vector<AddrInfo>> EventLoop::getaddrinfo(std::string host, int port, int family, int type, int proto,
                                                   int flags) {
  detail::check_port(port, "getaddrinfo");
  return getaddrinfo(std::move(host), std::to_string(port), family, type, proto, flags);
}

Task<std::pair<std::string, std::string>> EventLoop::getnameinfo(SocketAddress address, int flags) {
  auto lookup = [address, flags] { return detail::getnameinfo_blocking(address, flags); };  // named: see getaddrinfo
  co_return co_await run_in_executor(nullptr, std::move(lookup));
}

}  // namespace aio
