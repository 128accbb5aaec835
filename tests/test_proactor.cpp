// What only a completion engine has (every ProactorEventLoop: iocp, io_uring):
// no readiness API, operations that outlive cancel and close, its own wait
// count. Each case returns at once on a selector backend; the behaviour suite
// covers the rest.
#include "support.hpp"

#include <backends/proactor_event_loop.hpp>
#include <backends/registry.hpp>

#ifdef _WIN32
#include <winsock2.h>
#else
#include <sys/socket.h>
#endif

#include <chrono>
#include <memory>
#include <string>
#include <thread>

namespace {

aio::Proactor& proactor(aio::EventLoop& loop) { return static_cast<aio::ProactorEventLoop&>(loop).proactor(); }

// Wraps the backend's Proactor and counts its waits.
class CountingProactor final : public aio::Proactor {
 public:
  explicit CountingProactor(std::unique_ptr<aio::Proactor> inner) : inner_(std::move(inner)) {}
  std::string_view name() const noexcept override { return inner_->name(); }
  std::shared_ptr<aio::ProactorOperation> make_operation() override { return inner_->make_operation(); }
  void recv(aio::ProactorOperation& op, aio::fd_t sock, std::size_t max) override { inner_->recv(op, sock, max); }
  void wait_readable(aio::ProactorOperation& op, aio::fd_t sock) override { inner_->wait_readable(op, sock); }
  void send(aio::ProactorOperation& op, aio::fd_t sock) override { inner_->send(op, sock); }
  void recvfrom(aio::ProactorOperation& op, aio::fd_t sock) override { inner_->recvfrom(op, sock); }
  void sendto(aio::ProactorOperation& op, aio::fd_t sock, const aio::SocketAddress* to) override {
    inner_->sendto(op, sock, to);
  }
  void accept(aio::ProactorOperation& op, aio::fd_t listener) override { inner_->accept(op, listener); }
  void connect(aio::ProactorOperation& op, aio::fd_t sock, const aio::SocketAddress& to) override {
    inner_->connect(op, sock, to);
  }
  void sendfile(aio::ProactorOperation& op, aio::fd_t sock, int file, std::uint64_t offset,
                std::size_t count) override {
    inner_->sendfile(op, sock, file, offset, count);
  }
  void read(aio::ProactorOperation& op, aio::fd_t handle) override { inner_->read(op, handle); }
  void write(aio::ProactorOperation& op, aio::fd_t handle) override { inner_->write(op, handle); }
  void wait_handle(aio::ProactorOperation& op, aio::fd_t handle) override { inner_->wait_handle(op, handle); }
  bool is_cancelled(const aio::ProactorOperation& op) const noexcept override { return inner_->is_cancelled(op); }
  void cancel(aio::ProactorOperation& op) noexcept override { inner_->cancel(op); }
  void cancel_all(aio::fd_t fd) noexcept override { inner_->cancel_all(fd); }
  void wait(std::int64_t timeout_ns) override {
    ++*waits;
    inner_->wait(timeout_ns);
  }
  void wakeup() noexcept override { inner_->wakeup(); }
  void close() noexcept override { inner_->close(); }
  std::size_t in_flight() const noexcept override { return inner_->in_flight(); }
  std::shared_ptr<int> waits = std::make_shared<int>(0);

 private:
  std::unique_ptr<aio::Proactor> inner_;
};

aio::Socket listening_socket() {
  auto listener = aio::Socket::create(AF_INET, SOCK_STREAM);
  listener.bind(aio::SocketAddress::parse("127.0.0.1", 0));
  listener.listen(8);
  return listener;
}

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
  std::string name(test::make_loop()->backend());
  if (test::loop_has_readiness(*test::make_loop())) return test::skip(test::proactor_only);
  for (double delay = 1e-2; delay > 1e-11; delay /= 10) {
    auto counting = std::make_unique<CountingProactor>(aio::detail::make_proactor(name));
    auto waits = counting->waits;
    aio::ProactorEventLoop loop(std::move(counting));
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

TEST_CASE("proactor: close() with a receive and an accept in flight waits for them; the sockets stay usable") {
  auto loop = test::make_loop();
  if (test::loop_has_readiness(*loop)) return test::skip(test::proactor_only);
  auto [a, b] = aio::Socket::socketpair();
  auto listener = listening_socket();
  test::CaptureErrors errors(*loop);
  {
    auto recv = loop->create_task(loop->sock_recv(b, 10));
    auto accept = loop->create_task(loop->sock_accept(listener));
    test::run(*loop, aio::sleep(0.02));
    CHECK_FALSE(recv.done());
    CHECK_FALSE(accept.done());
    CHECK(proactor(*loop).in_flight() == 2);
    loop->close();  // cancels both and waits for their completions
    CHECK(proactor(*loop).in_flight() == 0);
  }
  // Both tasks were still pending when they went, as asyncio reports too.
  REQUIRE(errors.contexts.size() == 2);
  for (const auto& context : errors.contexts) CHECK(context.message == "Task was destroyed but it is pending!");
  // The same sockets, with nothing left in flight on them.
  CHECK(a.try_send("x", 1) == 1u);
  char byte = 0;
  for (int i = 0; i < 200 && !b.try_recv(&byte, 1); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  CHECK(byte == 'x');
}

TEST_CASE("proactor: cancelling a connect waits for it; nothing stays in flight") {
  auto loop = test::make_loop();
  if (test::loop_has_readiness(*loop)) return test::skip(test::proactor_only);
  auto listener = listening_socket();
  auto address = listener.getsockname();
  auto main = [&]() -> aio::Task<void> {
    auto client = aio::Socket::create(AF_INET, SOCK_STREAM);
    auto connecting = loop->create_task(loop->sock_connect(client, address));
    co_await aio::sleep(0);  // the connect started
    connecting.cancel();
    // Either the cancel won (CancelledError) or the connection did first;
    // both leave no operation in flight.
    try {
      co_await connecting;
    } catch (const aio::CancelledError&) {
    }
    CHECK(proactor(*loop).in_flight() == 0);
    // A fresh socket connects and talks afterwards (to a second listener:
    // the first may hold the connection the cancel lost the race to).
    auto listener2 = listening_socket();
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

TEST_CASE("proactor: a task destroyed with its receive in flight frees nothing the OS still writes") {
  auto loop = test::make_loop();
  if (test::loop_has_readiness(*loop)) return test::skip(test::proactor_only);
  auto [a, b] = aio::Socket::socketpair();
  {
    auto recv = loop->create_task(loop->sock_recv(b, 1 << 16));
    test::run(*loop, aio::sleep(0.01));
    recv.cancel();
  }  // the operation is the proactor's until it completes
  test::run(*loop, aio::sleep(0.02));
  CHECK(proactor(*loop).in_flight() == 0);
  loop->close();
}

TEST_CASE("proactor: a peer reset during a send fails sock_sendall with a system_error; nothing stays in flight") {
  auto loop = test::make_loop();
  if (test::loop_has_readiness(*loop)) return test::skip(test::proactor_only);
  auto [a, b] = aio::Socket::socketpair();
  auto main = [&]() -> aio::Task<void> {
    // Far more than the socket buffers hold: the send is still in flight.
    auto sending = loop->create_task(loop->sock_sendall(a, std::string(64 << 20, 'x')));
    co_await aio::sleep(0.05);
    test::abortive_close(b);
    bool failed = false;
    try {
      co_await aio::wait_for(sending, 10.0);
    } catch (const std::system_error&) {
      failed = true;
    }
    CHECK(failed);
    CHECK(proactor(*loop).in_flight() == 0);
  };
  test::run(*loop, main(), 20.0);
  loop->close();
}
