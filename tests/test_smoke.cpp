#include <core/aio.hpp>
#include <doctest.h>

#include <cstdio>

namespace {
aio::Task<int> main_task() {
  auto& loop = aio::get_running_loop();
  int later = 0;
  loop.call_later(0.05, [&] { later = 1; });
  co_await aio::sleep(0.1);
  int v = co_await loop.run_in_executor(nullptr, [] { return 42; });
  co_return v + later - 1;
}
}  // namespace

TEST_CASE("smoke") { CHECK(aio::run(main_task()) == 42); }
