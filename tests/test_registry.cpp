// Choosing the backend at run time: the registry and new_event_loop.
#include "support.hpp"

#include <backends/selector_event_loop.hpp>
#ifdef _WIN32
#include <backends/proactor_event_loop.hpp>
#endif

#include <algorithm>
#include <cstdlib>
#include <stdexcept>
#include <string>

namespace {

bool contains(const std::vector<std::string>& list, const std::string& name) {
  return std::find(list.begin(), list.end(), name) != list.end();
}

}  // namespace

TEST_CASE("the backend under test is the one AIO_BACKEND names") {
  const char* wanted = std::getenv("AIO_BACKEND");
  auto loop = test::make_loop();
  if (wanted) CHECK(loop->backend() == wanted);
  CHECK(contains(aio::available_backends(), std::string(loop->backend())));
  loop->close();
}

TEST_CASE("available backends are compiled in, select always, the default first") {
  auto compiled = aio::compiled_backends();
  auto available = aio::available_backends();
  CHECK(contains(compiled, "select"));
  CHECK(contains(available, "select"));
  for (const auto& name : available) CHECK(contains(compiled, name));
  REQUIRE_FALSE(available.empty());
  CHECK(aio::default_backend() == available.front());
}

TEST_CASE("the platform default: a ProactorEventLoop on iocp on Windows, epoll on Linux; select is a selector loop") {
  test::ScopedEnv env("AIO_BACKEND", "");
  auto loop = aio::new_event_loop();
#ifdef _WIN32
  CHECK(loop->backend() == "iocp");
  CHECK(dynamic_cast<aio::ProactorEventLoop*>(loop.get()) != nullptr);
#elif defined(__linux__)
  CHECK(loop->backend() == "epoll");
  CHECK(dynamic_cast<aio::SelectorEventLoop*>(loop.get()) != nullptr);
#endif
  loop->close();
  auto select = aio::new_event_loop({.backend = "select"});
  CHECK(dynamic_cast<aio::SelectorEventLoop*>(select.get()) != nullptr);
  select->close();
}

TEST_CASE("every available backend makes a working loop through the API") {
  for (const auto& name : aio::available_backends()) {
    CAPTURE(name);
    auto loop = aio::new_event_loop({.backend = name});
    CHECK(loop->backend() == name);
    bool ran = false;
    loop->call_soon([&] {
      ran = true;
      loop->stop();
    });
    loop->run_forever();
    CHECK(ran);
    loop->close();
  }
}

TEST_CASE("an unknown backend name is an error listing the usable ones") {
  std::string usable;
  for (const auto& n : aio::available_backends()) usable += (usable.empty() ? "" : ", ") + n;
  CHECK_THROWS_WITH_AS(aio::new_event_loop({.backend = "nope"}),
                       ("new_event_loop: unknown backend 'nope'; usable backends here: " + usable).c_str(),
                       std::invalid_argument);
  test::ScopedEnv env("AIO_BACKEND", "nope");
  CHECK_THROWS_WITH_AS(aio::new_event_loop(),
                       ("AIO_BACKEND: unknown backend 'nope'; usable backends here: " + usable).c_str(),
                       std::invalid_argument);
}

TEST_CASE("a known backend that is not usable here is an error listing the usable ones") {
  std::string missing;
  for (const char* name : {"iocp", "io_uring", "kqueue", "epoll"})
    if (!contains(aio::available_backends(), name)) missing = name;
  REQUIRE_FALSE(missing.empty());  // iocp or io_uring are never built by this release
  try {
    aio::new_event_loop({.backend = missing});
    FAIL("no exception");
  } catch (const std::invalid_argument& e) {
    std::string what = e.what();
    CHECK(what.find(missing) != std::string::npos);
    CHECK(what.find("usable backends here: " + aio::available_backends().front()) != std::string::npos);
  }
}

TEST_CASE("a comma list is tried in order; the first usable wins") {
  // iocp is built on Windows only, io_uring on Linux only.
  auto available = aio::available_backends();
  std::string first = contains(available, "io_uring") ? "io_uring" : contains(available, "iocp") ? "iocp" : "select";
  auto loop = aio::new_event_loop({.backend = "io_uring, iocp ,select,poll"});
  CHECK(loop->backend() == first);
  loop->close();
  std::string first_of_two = contains(available, "iocp") ? "iocp" : "select";
  test::ScopedEnv env("AIO_BACKEND", "iocp,select");
  auto from_env = aio::new_event_loop();
  CHECK(from_env->backend() == first_of_two);
  from_env->close();
  // An explicit option wins over the environment.
  auto explicit_choice = aio::new_event_loop({.backend = aio::available_backends().front()});
  CHECK(explicit_choice->backend() == aio::available_backends().front());
  explicit_choice->close();
}

TEST_CASE("a typo inside a comma list is still an error") {
  CHECK_THROWS_AS(aio::new_event_loop({.backend = "select,epol"}), std::invalid_argument);
  CHECK_THROWS_AS(aio::new_event_loop({.backend = "select,,poll"}), std::invalid_argument);
  CHECK_THROWS_AS(aio::new_event_loop({.backend = ","}), std::invalid_argument);
}

TEST_CASE("an empty AIO_BACKEND means the default") {
  test::ScopedEnv env("AIO_BACKEND", "");
  auto loop = aio::new_event_loop();
  CHECK(loop->backend() == aio::default_backend());
  loop->close();
}

TEST_CASE("LoopOptions.debug turns debug mode on or off") {
  auto on = aio::new_event_loop({.debug = true});
  CHECK(on->get_debug());
  on->close();
  auto off = aio::new_event_loop({.debug = false});
  CHECK_FALSE(off->get_debug());
  off->close();
}
