// Happy Eyeballs (RFC 8305): address interleaving and staggered connection
// attempts, as asyncio's _interleave_addrinfos and staggered_race.
#include <core/tasks.hpp>
#include <net/happy_eyeballs.hpp>

#ifdef _WIN32
#include <winsock2.h>
#else
#include <sys/socket.h>
#endif

#include <algorithm>
#include <cstdint>
#include <system_error>
#include <utility>

namespace aio::detail {

std::vector<AddrInfo> interleave_addrinfos(std::vector<AddrInfo> infos, int first_family_count) {
  if (first_family_count <= 0 || infos.empty()) return infos;
  // One queue per family, in the order the families first appear.
  std::vector<std::vector<AddrInfo>> families;
  for (AddrInfo& info : infos) {
    auto it = std::find_if(families.begin(), families.end(),
                           [&](const std::vector<AddrInfo>& f) { return f.front().family == info.family; });
    if (it == families.end())
      families.push_back({std::move(info)});
    else
      it->push_back(std::move(info));
  }
  std::vector<AddrInfo> ordered;
  ordered.reserve(infos.size());
  std::vector<std::size_t> taken(families.size(), 0);
  // count - 1 of the first family, then one of each family in turn (which
  // starts with the first family again).
  std::size_t head = std::min<std::size_t>(static_cast<std::size_t>(first_family_count) - 1, families[0].size());
  for (; taken[0] < head; ++taken[0]) ordered.push_back(std::move(families[0][taken[0]]));
  while (ordered.size() < infos.size()) {
    for (std::size_t f = 0; f < families.size(); ++f)
      if (taken[f] < families[f].size()) ordered.push_back(std::move(families[f][taken[f]++]));
  }
  return ordered;
}

namespace {

Task<Socket> attempt(EventLoop& loop, AddrInfo info, std::optional<SocketAddress> local_addr) {
  Socket sock = Socket::create(info.family, SOCK_STREAM, info.protocol);
  if (local_addr) {
    if (local_addr->family() != info.family)
      throw std::system_error(std::make_error_code(std::errc::address_family_not_supported),
                              "create_connection: local_addr " + local_addr->to_string() + " is not of the family of " +
                                  info.address.to_string());
    sock.bind(*local_addr);
  }
  co_await loop.sock_connect(sock, info.address);
  co_return sock;
}

}  // namespace

Task<Socket> connect_staggered(EventLoop& loop, std::vector<AddrInfo> infos, std::optional<SocketAddress> local_addr,
                               std::optional<double> delay, std::vector<std::exception_ptr>& errors) {
  std::vector<Task<Socket>> running;
  // A winner, every attempt failed, or the caller was cancelled: no attempt
  // outlives this call (a cancelled attempt closes its socket).
  ScopeExit cancel_losers([&running] {
    for (Task<Socket>& t : running) t.cancel();
  });
  std::size_t next = 0;
  while (next < infos.size() || !running.empty()) {
    if (next < infos.size()) running.push_back(loop.create_task(attempt(loop, std::move(infos[next++]), local_addr)));

    // Sleep until an attempt ends or, with more to start, the delay passes.
    Future<void> wake = loop.create_future<void>();
    auto wake_up = [wake]() mutable {
      if (!wake.done()) wake.set_result();
    };
    std::vector<std::uint64_t> ids;
    for (Task<Socket>& t : running)
      ids.push_back(t.add_done_callback([wake_up](const Future<Socket>&) mutable { wake_up(); }));
    TimerHandle timer;
    if (delay && next < infos.size()) timer = loop.call_later(*delay, wake_up);
    ScopeExit unhook([&] {
      timer.cancel();
      for (std::size_t i = 0; i < ids.size(); ++i) running[i].remove_done_callback(ids[i]);
    });
    co_await wake;

    for (std::size_t i = 0; i < running.size();) {
      if (!running[i].done()) {
        ++i;
      } else if (std::exception_ptr error = running[i].exception()) {
        errors.push_back(std::move(error));
        running.erase(running.begin() + static_cast<std::ptrdiff_t>(i));
        ids.erase(ids.begin() + static_cast<std::ptrdiff_t>(i));
      } else {
        co_return co_await running[i];
      }
    }
    // A failed attempt starts the next one at once (the top of the loop).
  }
  co_return Socket();
}

}  // namespace aio::detail
