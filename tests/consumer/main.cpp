// Runs a task on every backend usable here; exit code 0 when all worked.
#include <core/aio.hpp>

#include <cstdio>

aio::Task<int> add_later(int a, int b) {
  co_await aio::sleep(0.01);
  co_return co_await aio::get_running_loop().run_in_executor(nullptr, [=] { return a + b; });
}

int main() {
  int failures = 0;
  for (const auto& backend : aio::available_backends()) {
    int got = aio::run(add_later(40, 2), {.backend = backend});
    std::printf("%s: %d\n", backend.c_str(), got);
    failures += got != 42;
  }
  return failures;
}
