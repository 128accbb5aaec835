// Which backends this build has, which of them work here, and new_event_loop.
#include <backends/proactor_event_loop.hpp>
#include <backends/registry.hpp>
#include <backends/selector_event_loop.hpp>
#include <core/events.hpp>

#if AIO_HAVE_EPOLL
#include <backends/epoll_selector.hpp>
#endif
#if AIO_HAVE_KQUEUE
#include <backends/kqueue_selector.hpp>
#endif
#if AIO_HAVE_POLL
#include <backends/poll_selector.hpp>
#endif
#include <backends/select_selector.hpp>
#if AIO_HAVE_IO_URING
#include <backends/io_uring_proactor.hpp>
#endif
#if AIO_HAVE_IOCP
#include <backends/iocp_proactor.hpp>
#include <backends/windows_event_loop.hpp>
#endif

#include <cstdlib>
#include <exception>
#include <mutex>
#include <stdexcept>

namespace aio {
namespace {

// A readiness backend has `make`, a completion backend `make_proactor`;
// `make_loop`, if set, makes the loop over it (the Windows loop, which adds
// named pipes to the engine-neutral ProactorEventLoop).
struct Backend {
  const char* name;
  std::unique_ptr<Selector> (*make)();
  std::unique_ptr<Proactor> (*make_proactor)() = nullptr;
  std::unique_ptr<EventLoop> (*make_loop)() = nullptr;
  // Never picked as the default, only by name.
  bool by_name_only = false;

  void probe() const {
    if (make)
      make();
    else
      make_proactor();
  }
  std::unique_ptr<EventLoop> new_loop() const {
    if (make_loop) return make_loop();
    if (make) return std::make_unique<SelectorEventLoop>(make());
    return std::make_unique<ProactorEventLoop>(make_proactor());
  }
};

template <class S>
std::unique_ptr<Selector> make() {
  return std::make_unique<S>();
}

#if AIO_HAVE_IOCP
std::unique_ptr<Proactor> make_iocp() { return std::make_unique<IocpProactor>(); }
std::unique_ptr<EventLoop> make_windows_loop() {
  return std::make_unique<WindowsProactorEventLoop>(std::make_unique<IocpProactor>());
}
#endif

#if AIO_HAVE_IO_URING
std::unique_ptr<Proactor> make_io_uring() { return std::make_unique<IoUringProactor>(); }
#endif

// Compiled in, in the order a default is chosen: epoll > kqueue > poll >
// select on POSIX, iocp > select on Windows (as asyncio, whose Windows
// default is the ProactorEventLoop). io_uring is taken only when asked for
// by name: container runtimes and hardened kernels refuse it (Docker's
// seccomp profile, kernel.io_uring_disabled), its kernel side has had a
// long run of security fixes, and asyncio's readiness-shaped workloads gain
// little from it; epoll stays the Linux default.
constexpr Backend backends[] = {
#if AIO_HAVE_IOCP
    {"iocp", nullptr, make_iocp, make_windows_loop},
#endif
#if AIO_HAVE_EPOLL
    {"epoll", make<EpollSelector>},
#endif
#if AIO_HAVE_IO_URING
    {"io_uring", nullptr, make_io_uring, nullptr, true},
#endif
#if AIO_HAVE_KQUEUE
    {"kqueue", make<KqueueSelector>},
#endif
#if AIO_HAVE_POLL
    {"poll", make<PollSelector>},
#endif
    {"select", make<SelectSelector>},
};

// Every name AIO_BACKEND may carry, built here or not.
constexpr std::string_view known_names[] = {"epoll", "kqueue", "poll", "select", "iocp", "io_uring"};

struct Probe {
  std::vector<const Backend*> usable;
  std::vector<std::pair<std::string, std::string>> unusable;  // name, why
};

// Probed once: creating a selector or proactor is what fails where a
// mechanism is missing or refused at run time (kqueue under some sandboxes,
// epoll under gVisor, io_uring under kernel.io_uring_disabled or a seccomp
// filter). The failure's message is kept as the reason.
const Probe& probe() {
  static const Probe result = [] {
    Probe found;
    for (const Backend& b : backends) {
      try {
        b.probe();
        found.usable.push_back(&b);
      } catch (const std::exception& e) {
        found.unusable.emplace_back(b.name, e.what());
      }
    }
    return found;
  }();
  return result;
}

const std::vector<const Backend*>& usable() { return probe().usable; }

std::string join(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out.empty() ? "none" : out;
}

std::string trim(std::string_view s) {
  auto b = s.find_first_not_of(" \t");
  if (b == std::string_view::npos) return {};
  return std::string(s.substr(b, s.find_last_not_of(" \t") - b + 1));
}

}  // namespace

const char* version() noexcept { return AIOCPP_VERSION; }

std::vector<std::string> compiled_backends() {
  std::vector<std::string> names;
  for (const Backend& b : backends) names.emplace_back(b.name);
  return names;
}

std::vector<std::string> available_backends() {
  std::vector<std::string> names;
  for (const Backend* b : usable()) names.emplace_back(b->name);
  return names;
}

std::vector<std::pair<std::string, std::string>> unusable_backends() { return probe().unusable; }

std::string default_backend() {
  for (const Backend* b : usable())
    if (!b->by_name_only) return b->name;
  throw std::runtime_error("no usable event loop backend on this machine");
}

std::unique_ptr<Selector> detail::make_selector(std::string_view name) {
  for (const Backend& b : backends)
    if (name == b.name && b.make) return b.make();
  throw std::invalid_argument("make_selector: no selector named '" + std::string(name) + "' in this build");
}

std::unique_ptr<Proactor> detail::make_proactor(std::string_view name) {
  for (const Backend& b : backends)
    if (name == b.name && b.make_proactor) return b.make_proactor();
  throw std::invalid_argument("make_proactor: no proactor named '" + std::string(name) + "' in this build");
}

std::unique_ptr<EventLoop> new_event_loop(const LoopOptions& options) {
  std::string spec = options.backend;
  const char* source = "new_event_loop";
  if (spec.empty()) {
    if (const char* env = std::getenv("AIO_BACKEND"); env && *env) {
      spec = env;
      source = "AIO_BACKEND";
    }
  }
  if (trim(spec).empty()) spec = default_backend();

  // Every name is checked before any is tried: a typo later in the list is
  // an error even when an earlier name works here.
  std::vector<std::string> names;
  std::string_view rest = spec;
  for (;;) {
    auto comma = rest.find(',');
    std::string name = trim(rest.substr(0, comma));
    if (name.empty())
      throw std::invalid_argument(std::string(source) + ": empty backend name in '" + spec +
                                  "'; usable backends here: " + join(available_backends()));
    bool known = false;
    for (auto k : known_names) known = known || k == name;
    if (!known)
      throw std::invalid_argument(std::string(source) + ": unknown backend '" + name +
                                  "'; usable backends here: " + join(available_backends()));
    names.push_back(std::move(name));
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
  }
  for (const std::string& name : names) {
    for (const Backend* b : usable()) {
      if (name == b->name) {
        auto loop = b->new_loop();
        if (options.debug) loop->set_debug(*options.debug);
        return loop;
      }
    }
  }
  // Why each one asked for cannot be used.
  std::vector<std::string> why;
  for (const std::string& name : names) {
    std::string reason = "not built in";
    for (const auto& [refused, what] : probe().unusable)
      if (refused == name) reason = "failed its probe: " + what;
    why.push_back(name + " (" + reason + ")");
  }
  throw std::invalid_argument(std::string(source) + ": backend " + join(why) +
                              " not usable here; usable backends here: " + join(available_backends()));
}

}  // namespace aio
