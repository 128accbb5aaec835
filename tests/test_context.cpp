// Context variables (contextvars), and the context= argument of the loop's
// scheduling methods and create_task, with the semantics of Python's
// contextvars documentation and asyncio's event loop reference.
#include "support.hpp"

#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

aio::ContextVar<std::string> request_id("request_id", "none");
aio::ContextVar<int> counter("counter");

}  // namespace

TEST_CASE("context: get() gives the value, else the default, else LookupError; set() and reset()") {
  aio::Context ctx;
  ctx.run([] {
    CHECK(request_id.get() == "none");
    CHECK_THROWS_AS(counter.get(), aio::LookupError);
    CHECK(counter.get(5) == 5);
    auto token = counter.set(1);
    CHECK(counter.get() == 1);
    CHECK_FALSE(token.old_value().has_value());
    auto second = counter.set(2);
    CHECK(second.old_value() == 1);
    counter.reset(second);
    CHECK(counter.get() == 1);
    CHECK_THROWS_AS(counter.reset(second), std::runtime_error);  // used once already
    counter.reset(token);
    CHECK_THROWS_AS(counter.get(), aio::LookupError);
  });
  CHECK(ctx.size() == 0);
}

TEST_CASE("context: run() keeps what it set in that context; copies are independent") {
  aio::Context ctx;
  ctx.run([] { request_id.set("in ctx"); });
  CHECK(ctx.size() == 1);
  CHECK(ctx.run([] { return request_id.get(); }) == "in ctx");
  aio::Context copy = ctx.copy();
  copy.run([] { request_id.set("in copy"); });
  CHECK(ctx.run([] { return request_id.get(); }) == "in ctx");
  CHECK(copy.run([] { return request_id.get(); }) == "in copy");
  // A context cannot be entered twice at once.
  ctx.run([&] { CHECK_THROWS_AS(ctx.run([] {}), std::runtime_error); });
  // copy_context() inside run() copies the running context.
  aio::Context inner = ctx.run([] { return aio::copy_context(); });
  CHECK(inner.run([] { return request_id.get(); }) == "in ctx");
}

TEST_CASE("context: call_soon, call_later, call_at and call_soon_threadsafe run a callback in the given context") {
  auto loop = test::make_loop();
  aio::Context ctx;
  ctx.run([] { request_id.set("given"); });
  std::vector<std::string> seen;
  loop->call_soon(ctx, [&] { seen.push_back("soon " + request_id.get()); });
  loop->call_later(0.001, ctx, [&] { seen.push_back("later " + request_id.get()); });
  loop->call_at(loop->time() + 0.002, ctx, [&] { seen.push_back("at " + request_id.get()); });
  std::thread other(
      [&] { loop->call_soon_threadsafe(ctx, [&] { seen.push_back("threadsafe " + request_id.get()); }); });
  other.join();
  loop->call_soon([&] { seen.push_back("plain " + request_id.get()); });
  loop->call_later(0.05, [&] { loop->stop(); });
  loop->run_forever();
  CHECK(seen == std::vector<std::string>{"soon given", "threadsafe given", "plain none", "later given", "at given"});
  // A callback's set() stays in its context.
  loop->call_soon(ctx, [&] {
    request_id.set("changed by callback");
    loop->stop();
  });
  loop->run_forever();
  CHECK(ctx.run([] { return request_id.get(); }) == "changed by callback");
  CHECK(request_id.get() == "none");
  loop->close();
}

TEST_CASE("context: without context=, a callback runs in a copy of the context it was scheduled from") {
  auto loop = test::make_loop();
  aio::Context ctx;
  std::string seen;
  ctx.run([&] {
    request_id.set("scheduled here");
    loop->call_soon([&] {
      seen = request_id.get();
      request_id.set("the callback's own");  // in its copy only
      loop->stop();
    });
    request_id.set("changed after scheduling");
  });
  loop->run_forever();
  CHECK(seen == "scheduled here");
  CHECK(ctx.run([] { return request_id.get(); }) == "changed after scheduling");
  loop->close();
}

namespace {
aio::Task<std::string> read_request_id(double delay) {
  co_await aio::sleep(delay);
  co_return request_id.get();
}

aio::Task<std::string> set_then_read(std::string value) {
  request_id.set(value);
  co_await aio::sleep(0.001);
  co_return request_id.get();
}
}  // namespace

TEST_CASE("context: a task runs in a copy of the context current at its creation, or the one given") {
  auto loop = test::make_loop();
  auto main = [&]() -> aio::Task<void> {
    request_id.set("main");
    auto child = loop->create_task(read_request_id(0.001));
    request_id.set("main, later");  // after the copy: the child does not see it
    CHECK(co_await child == "main");
    // Each task's set() is its own.
    auto a = loop->create_task(set_then_read("a"));
    auto b = loop->create_task(set_then_read("b"));
    CHECK(co_await a == "a");
    CHECK(co_await b == "b");
    CHECK(request_id.get() == "main, later");
    // An inline coroutine shares its caller's context.
    CHECK(co_await set_then_read("inline") == "inline");
    CHECK(request_id.get() == "inline");
    // context= given.
    aio::Context ctx;
    ctx.run([] { request_id.set("given"); });
    auto given = loop->create_task(read_request_id(0.001), "given", ctx);
    CHECK(co_await given == "given");
  };
  test::run(*loop, main());
  CHECK(request_id.get() == "none");  // the thread's context was never touched
  loop->close();
}
