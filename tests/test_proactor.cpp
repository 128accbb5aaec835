// What only the proactor engine has (issue 4): no readiness API, operations
// that outlive cancel and close, its own wait count. Each case returns at
// once on a selector backend; the behaviour suite covers the rest.
#include "support.hpp"

#ifdef _WIN32
#include <backends/iocp_proactor.hpp>
#include <backends/proactor_event_loop.hpp>
#endif

#include <memory>
#include <string>

#ifdef _WIN32
namespace {

aio::IocpProactor& iocp(aio::EventLoop& loop) {
  return static_cast<aio::IocpProactor&>(static_cast<aio::ProactorEventLoop&>(loop).proactor());
}

// Wraps an IocpProactor and counts its waits (timers only: the sock_*
// coroutines need the IocpProactor itself).
class CountingProactor final : public aio::Proactor {
 public:
  std::string_view name() const noexcept override { return inner_.name(); }
  void associate(aio::fd_t sock) override { inner_.associate(sock); }
  void cancel(aio::ProactorOperation& op) noexcept override { inner_.cancel(op); }
  void wait(std::int64_t timeout_ns) override {
    ++*waits;
    inner_.wait(timeout_ns);
  }
  void wakeup() noexcept override { inner_.wakeup(); }
  void close() noexcept override { inner_.close(); }
  std::shared_ptr<int> waits = std::make_shared<int>(0);

 private:
  aio::IocpProactor inner_;
};

}  // namespace

TEST_CASE("proactor: add_reader and add_writer raise NotImplementedError; remove_* find nothing") {
  auto loop = test::make_loop();
  if (test::loop_has_readiness(*loop)) return test::skip(test::proactor_only);
  test::SocketPair pair;
  CHECK_THROWS_AS(loop->add_reader(pair.a, [] {}), aio::NotImplementedError);
  CHECK_THROWS_AS(loop->add_writer(pair.a, [] {}), aio::NotImplementedError);
  CHECK_FALSE(loop->remove_reader(pair.a));
  CHECK_FALSE(loop->remove_writer(pair.a));
  loop->close();
}

TEST_CASE("proactor: no busy spin for sub-resolution delays (1e-2 ... 1e-10 s)") {
  if (test::loop_has_readiness(*test::make_loop())) return test::skip(test::proactor_only);
  for (double delay = 1e-2; delay > 1e-11; delay /= 10) {
    auto proactor = std::make_unique<CountingProactor>();
    auto waits = proactor->waits;
    aio::ProactorEventLoop loop(std::move(proactor));
    bool fired = false;
    loop.call_later(delay, [&] {
      fired = true;
      loop.stop();
    });
    loop.run_forever();
    CHECK(fired);
    CAPTURE(delay);
    CHECK(*waits <= 20);
    loop.close();
  }
}

TEST_CASE("proactor: close() with WSARecv and AcceptEx pending waits for them; the sockets stay usable") {
  auto loop = test::make_loop();
  if (test::loop_has_readiness(*loop)) return test::skip(test::proactor_only);
  auto [a, b] = aio::Socket::socketpair();
  auto listener = aio::Socket::create(AF_INET, SOCK_STREAM);
  listener.bind(aio::SocketAddress::parse("127.0.0.1", 0));
  listener.listen(8);
  test::CaptureErrors errors(*loop);
  {
    auto recv = loop->create_task(loop->sock_recv(b, 10));
    auto accept = loop->create_task(loop->sock_accept(listener));
    test::run(*loop, aio::sleep(0.02));
    CHECK_FALSE(recv.done());
    CHECK_FALSE(accept.done());
    CHECK(iocp(*loop).pending() == 2);
    loop->close();  // cancels both and waits for their completion packets
    CHECK(iocp(*loop).pending() == 0);
  }
  // Both tasks were still pending when they went, as asyncio reports too.
  REQUIRE(errors.contexts.size() == 2);
  for (const auto& context : errors.contexts) CHECK(context.message == "Task was destroyed but it is pending!");
  // Not overlapped any more, but the same sockets: nothing was left pending.
  CHECK(a.try_send("x", 1) == 1u);
  char byte = 0;
  for (int i = 0; i < 200 && !b.try_recv(&byte, 1); ++i) Sleep(5);
  CHECK(byte == 'x');
}

TEST_CASE("proactor: cancelling ConnectEx waits for it; nothing stays pending") {
  auto loop = test::make_loop();
  if (test::loop_has_readiness(*loop)) return test::skip(test::proactor_only);
  auto listener = aio::Socket::create(AF_INET, SOCK_STREAM);
  listener.bind(aio::SocketAddress::parse("127.0.0.1", 0));
  listener.listen(8);
  auto address = listener.getsockname();
  auto main = [&]() -> aio::Task<void> {
    auto client = aio::Socket::create(AF_INET, SOCK_STREAM);
    auto connecting = loop->create_task(loop->sock_connect(client, address));
    co_await aio::sleep(0);  // ConnectEx started
    connecting.cancel();
    // Either the cancel won (CancelledError) or the connection did first;
    // both leave no operation pending.
    try {
      co_await connecting;
    } catch (const aio::CancelledError&) {
    }
    CHECK(iocp(*loop).pending() == 0);
    // A fresh socket connects and talks afterwards (to a second listener:
    // the first may hold the connection the cancel lost the race to).
    auto listener2 = aio::Socket::create(AF_INET, SOCK_STREAM);
    listener2.bind(aio::SocketAddress::parse("127.0.0.1", 0));
    listener2.listen(8);
    auto again = aio::Socket::create(AF_INET, SOCK_STREAM);
    auto accepting = loop->create_task(loop->sock_accept(listener2));
    co_await loop->sock_connect(again, listener2.getsockname());
    auto accepted = co_await aio::wait_for(accepting, 5.0);
    co_await loop->sock_sendall(again, "ping");
    CHECK(co_await loop->sock_recv(accepted.first, 4) == "ping");
  };
  test::run(*loop, main());
  loop->close();
}

TEST_CASE("proactor: a task destroyed with its WSARecv pending frees nothing the OS still writes") {
  auto loop = test::make_loop();
  if (test::loop_has_readiness(*loop)) return test::skip(test::proactor_only);
  auto [a, b] = aio::Socket::socketpair();
  {
    auto recv = loop->create_task(loop->sock_recv(b, 1 << 16));
    test::run(*loop, aio::sleep(0.01));
    recv.cancel();
  }  // the operation owns its buffer; the completion arrives later
  test::run(*loop, aio::sleep(0.02));
  CHECK(iocp(*loop).pending() == 0);
  loop->close();
}
TEST_CASE("proactor: a peer reset during WSASend fails sock_sendall with a system_error; nothing stays pending") {
  auto loop = test::make_loop();
  if (test::loop_has_readiness(*loop)) return test::skip(test::proactor_only);
  auto [a, b] = aio::Socket::socketpair();
  auto main = [&]() -> aio::Task<void> {
    // Far more than the socket buffers hold: the send is still in flight.
    auto sending = loop->create_task(loop->sock_sendall(a, std::string(64 << 20, 'x')));
    co_await aio::sleep(0.05);
    linger abortive{1, 0};
    setsockopt(static_cast<SOCKET>(b.fileno()), SOL_SOCKET, SO_LINGER, reinterpret_cast<const char*>(&abortive),
               sizeof(abortive));
    b.close();
    bool failed = false;
    try {
      co_await aio::wait_for(sending, 10.0);
    } catch (const std::system_error&) {
      failed = true;
    }
    CHECK(failed);
    CHECK(iocp(*loop).pending() == 0);
  };
  test::run(*loop, main(), 20.0);
  loop->close();
}
#endif  // _WIN32
