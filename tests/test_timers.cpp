// Timers (CONTRACTS.md 3-7): order, never early, the wait timeout, heap
// compaction, no busy spin. Ordering and timeouts use the fake selector and
// virtual clock; "never early" and "no busy spin" run on the real backend.
#include "support.hpp"

#include <backends/registry.hpp>

#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

namespace {

// Wraps the backend under test and counts its waits.
class CountingSelector final : public aio::Selector {
 public:
  explicit CountingSelector(std::unique_ptr<aio::Selector> inner) : inner_(std::move(inner)) {}
  std::string_view name() const noexcept override { return inner_->name(); }
  void register_fd(aio::fd_t fd, std::uint32_t events, void* data) override { inner_->register_fd(fd, events, data); }
  void modify(aio::fd_t fd, std::uint32_t events, void* data) override { inner_->modify(fd, events, data); }
  void unregister(aio::fd_t fd) noexcept override { inner_->unregister(fd); }
  void select(std::int64_t timeout_ns, std::vector<aio::SelectorEvent>& out) override {
    ++*selects;
    inner_->select(timeout_ns, out);
  }
  std::shared_ptr<int> selects = std::make_shared<int>(0);

 private:
  std::unique_ptr<aio::Selector> inner_;
};

std::string backend_under_test() { return aio::new_event_loop()->backend().data(); }

}  // namespace

TEST_CASE("timers fire in deadline order; equal deadlines in scheduling order") {
  auto v = test::make_virtual_loop();
  auto& loop = *v.loop;
  std::vector<int> order;
  double t = loop.time();
  loop.call_at(t + 0.3, [&] { order.push_back(3); });
  loop.call_at(t + 0.1, [&] { order.push_back(1); });
  loop.call_at(t + 0.2, [&] { order.push_back(20); });
  loop.call_at(t + 0.2, [&] { order.push_back(21); });
  loop.call_at(t + 0.2, [&] { order.push_back(22); });
  loop.call_later(0.1, [&] { order.push_back(10); });  // same deadline as the first, scheduled later
  loop.call_at(t + 0.4, [&] { loop.stop(); });
  loop.run_forever();
  CHECK(order == std::vector<int>{1, 10, 20, 21, 22, 3});
  loop.close();
}

TEST_CASE("many random timers fire sorted by deadline") {
  auto v = test::make_virtual_loop();
  auto& loop = *v.loop;
  std::vector<double> fired;
  std::uint64_t x = 88172645463325252ull;
  for (int i = 0; i < 2000; ++i) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    double delay = static_cast<double>(x % 1000) / 1000.0;
    loop.call_later(delay, [&, delay] { fired.push_back(delay); });
  }
  loop.call_later(1.5, [&] { loop.stop(); });
  loop.run_forever();
  REQUIRE(fired.size() == 2000);
  for (std::size_t i = 1; i < fired.size(); ++i) REQUIRE(fired[i - 1] <= fired[i]);
  loop.close();
}

TEST_CASE("negative delays are allowed and mean now, in scheduling order") {
  auto v = test::make_virtual_loop();
  auto& loop = *v.loop;
  std::vector<int> order;
  loop.call_later(-1.0, [&] { order.push_back(1); });
  loop.call_later(-5.0, [&] { order.push_back(2); });  // earlier deadline: runs first
  loop.call_later(0.0, [&] { order.push_back(3); });
  loop.call_soon([&] { order.push_back(0); });
  loop.call_later(0.001, [&] { loop.stop(); });
  loop.run_forever();
  // call_soon runs in the first batch; the overdue timers join the same batch after it.
  CHECK(order == std::vector<int>{0, 2, 1, 3});
  loop.close();
}

TEST_CASE("the wait timeout comes from the earliest non-cancelled timer") {
  auto v = test::make_virtual_loop();
  auto& loop = *v.loop;
  bool ran_cancelled = false;
  aio::TimerHandle early = loop.call_later(0.5, [&] { ran_cancelled = true; });
  aio::TimerHandle later = loop.call_later(2.0, [&] { loop.stop(); });
  CHECK(early.when() == doctest::Approx(loop.time() + 0.5));
  early.cancel();
  loop.run_forever();
  CHECK_FALSE(ran_cancelled);
  REQUIRE_FALSE(v.selector->timeouts.empty());
  // The first wait went straight for the 2 s timer.
  CHECK(v.selector->timeouts.front() == 2'000'000'000);
  loop.close();
}

TEST_CASE("with nothing scheduled but a far timer the loop waits for it, not less") {
  auto v = test::make_virtual_loop();
  auto& loop = *v.loop;
  loop.call_later(3600.0, [&] { loop.stop(); });
  loop.run_forever();
  CHECK(v.selector->timeouts == std::vector<std::int64_t>{3'600'000'000'000});
  loop.close();
}

TEST_CASE("call_later / call_at reject NaN; infinite delays never fire") {
  auto v = test::make_virtual_loop();
  auto& loop = *v.loop;
  CHECK_THROWS_AS(loop.call_later(std::nan(""), [] {}), std::invalid_argument);
  CHECK_THROWS_AS(loop.call_at(std::nan(""), [] {}), std::invalid_argument);
  bool fired = false;
  loop.call_later(INFINITY, [&] { fired = true; });
  loop.call_later(1.0, [&] { loop.stop(); });
  loop.run_forever();
  CHECK_FALSE(fired);
  loop.close();
}

TEST_CASE("cancelled timers are purged once they are most of at least 100") {
  auto v = test::make_virtual_loop();
  auto& loop = *v.loop;
  std::vector<aio::TimerHandle> handles;
  for (int i = 0; i < 200; ++i) handles.push_back(loop.call_later(100.0 + i, [] {}));
  CHECK(loop.timer_count() == 200);
  // Half or fewer cancelled: kept (lazily dropped when they reach the top).
  for (int i = 100; i < 200; ++i) handles[i].cancel();
  loop.call_soon([&] { loop.stop(); });
  loop.run_forever();
  CHECK(loop.timer_count() == 200);
  // More than half: compacted in the next iteration.
  handles[99].cancel();
  loop.call_soon([&] { loop.stop(); });
  loop.run_forever();
  CHECK(loop.timer_count() == 99);
  loop.close();
}

TEST_CASE("a cancelled timer at the top is dropped before computing the timeout") {
  auto v = test::make_virtual_loop();
  auto& loop = *v.loop;
  auto a = loop.call_later(1.0, [] {});
  loop.call_later(5.0, [&] { loop.stop(); });
  a.cancel();
  loop.run_forever();
  CHECK(loop.timer_count() == 0);
  CHECK(v.selector->timeouts.front() == 5'000'000'000);
  loop.close();
}

TEST_CASE("a timer cancelled after it became due but before it ran does not run") {
  auto v = test::make_virtual_loop();
  auto& loop = *v.loop;
  bool second = false;
  aio::TimerHandle b;
  loop.call_later(1.0, [&] { b.cancel(); });
  b = loop.call_later(1.0, [&] { second = true; });  // due in the same batch
  loop.call_later(2.0, [&] { loop.stop(); });
  loop.run_forever();
  CHECK_FALSE(second);
  loop.close();
}

TEST_CASE("a timer never fires early (real clock)") {
  auto loop = test::make_loop();
  const double delays[] = {0.001, 0.005, 0.01, 0.02, 0.0123};
  int done = 0;
  for (double delay : delays) {
    double scheduled = loop->time();
    loop->call_later(delay, [&, delay, scheduled] {
      double elapsed = loop->time() - scheduled;
      CHECK(elapsed >= delay - 1e-9);  // steady_clock resolution is 1 ns
      if (++done == 5) loop->stop();
    });
  }
  auto guard = loop->call_later(10.0, [&] { loop->stop(); });
  loop->run_forever();
  guard.cancel();
  CHECK(done == 5);
  loop->close();
}

TEST_CASE("no busy spin for sub-resolution delays (1e-2 ... 1e-10 s)") {
  // Selectors only (make_selector); the proactor's twin is in test_proactor.cpp.
  if (!test::loop_has_readiness(*test::make_loop()))
    return test::skip("selectors only: the proactor's twin is in test_proactor.cpp");
  for (double delay = 1e-2; delay > 1e-11; delay /= 10) {
    auto selector = std::make_unique<CountingSelector>(aio::detail::make_selector(backend_under_test()));
    auto selects = selector->selects;
    aio::SelectorEventLoop loop(std::move(selector));
    int before = *selects;
    bool fired = false;
    loop.call_later(delay, [&] {
      fired = true;
      loop.stop();
    });
    loop.run_forever();
    CHECK(fired);
    CAPTURE(delay);
    CHECK(*selects - before <= 20);
    loop.close();
  }
}

TEST_CASE("call_at uses time()'s clock") {
  auto v = test::make_virtual_loop();
  auto& loop = *v.loop;
  double fired_at = 0;
  double target = loop.time() + 12.5;
  loop.call_at(target, [&] {
    fired_at = loop.time();
    loop.stop();
  });
  loop.run_forever();
  CHECK(fired_at == doctest::Approx(target));
  loop.close();
}
