// Shared by the behaviour suites: loops on the backend under test, a bounded
// runner, a fake selector with a virtual clock, and small OS helpers.
#pragma once

#include <doctest.h>
#include <backends/selector.hpp>
#include <backends/selector_event_loop.hpp>
#include <core/aio.hpp>
#include <net/socket.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace test {

// A new loop on the backend this run tests (AIO_BACKEND, set per Meson test).
std::unique_ptr<aio::EventLoop> make_loop();

// Runs `task` on `loop`, failing the test instead of hanging after `timeout` seconds.
template <class T>
T run(aio::EventLoop& loop, aio::Task<T> task, double timeout = 10.0) {
  return loop.run_until_complete(aio::wait_for(loop.create_task(std::move(task)), timeout));
}

// Runs the loop until `done()` is true, at most `timeout` seconds (then fails).
void run_until(aio::EventLoop& loop, const std::function<bool()>& done, double timeout = 10.0);

// From a coroutine on the running loop: waits until `done()`, polling every
// 2 ms, and fails the test after `timeout` seconds.
aio::Task<void> until(std::function<bool()> done, double timeout = 5.0);

// A clock the test moves by hand.
struct VirtualClock {
  std::int64_t now_ns = 1'000'000'000;
};

// A selector with no OS behind it: select() records the timeout it was given
// and advances the virtual clock by it, so timer tests are deterministic.
class FakeSelector final : public aio::Selector {
 public:
  explicit FakeSelector(std::shared_ptr<VirtualClock> clock) : clock_(std::move(clock)) {}
  std::string_view name() const noexcept override { return "fake"; }
  void register_fd(aio::fd_t fd, std::uint32_t events, void* data) override {
    registered.push_back({fd, events, data});
  }
  void modify(aio::fd_t, std::uint32_t, void*) override {}
  void unregister(aio::fd_t) noexcept override {}
  void select(std::int64_t timeout_ns, std::vector<aio::SelectorEvent>& out) override;

  struct Registration {
    aio::fd_t fd;
    std::uint32_t events;
    void* data;
  };
  std::vector<Registration> registered;
  std::vector<std::int64_t> timeouts;  // every select() timeout, in ns

 private:
  std::shared_ptr<VirtualClock> clock_;
};

struct VirtualLoop {
  std::shared_ptr<VirtualClock> clock = std::make_shared<VirtualClock>();
  FakeSelector* selector = nullptr;  // owned by the loop
  std::unique_ptr<aio::SelectorEventLoop> loop;
};
VirtualLoop make_virtual_loop();

// Runs the loop for `seconds`, letting what is in flight arrive.
void spin(aio::EventLoop& loop, double seconds);

// `n` bytes in which a lost, repeated or misplaced stretch shows.
std::string pattern(std::size_t n, int seed = 0);

// Collects log lines (slow callbacks, default exception handler) while alive.
class CaptureLog {
 public:
  CaptureLog();
  ~CaptureLog();
  bool contains(const std::string& needle) const;
  int warnings() const;  // lines at warning level
  std::vector<std::pair<aio::LogLevel, std::string>> lines;

 private:
  aio::LogSink previous_;
};

// Collects exception-handler contexts of one loop.
struct CaptureErrors {
  explicit CaptureErrors(aio::EventLoop& loop);
  std::vector<aio::ExceptionContext> contexts;
};

// A connected pair of stream sockets (socketpair on POSIX, loopback TCP on Windows).
struct SocketPair {
  SocketPair();
  ~SocketPair();
  SocketPair(const SocketPair&) = delete;
  SocketPair& operator=(const SocketPair&) = delete;
  void send_byte(aio::fd_t fd, char byte = 'x');
  int recv_all(aio::fd_t fd);  // reads what is there without blocking; returns the count
  aio::fd_t a = -1, b = -1;
};

// Sets (or, with nullptr, clears) an environment variable for its lifetime.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value);
  ~ScopedEnv();
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  std::optional<std::string> previous_;
};

// True where the backend reads a socket's pending error itself before the
// loop does: kqueue on Linux is libkqueue's emulation (2.7), which fetches
// SO_ERROR to fill in EV_EOF, so a refused connect looks merely "not
// connected" and a reset looks like end of file there. Real kqueue does not.
bool backend_consumes_socket_errors(const aio::EventLoop& loop);

// False on a completion engine (a ProactorEventLoop, iocp or io_uring):
// like asyncio's ProactorEventLoop it has no add_reader/add_writer, so
// readiness tests skip. Decided by what the loop is, never by its name.
bool loop_has_readiness(const aio::EventLoop& loop);

// Closes `sock` with SO_LINGER {1, 0}: the peer gets a reset, not end of file.
void abortive_close(aio::Socket& sock);

// A second descriptor of the same socket (dup on POSIX, WSADuplicateSocket
// into this process on Windows), or an empty Socket where the system cannot
// make one: the connection lasts until both are closed.
aio::Socket duplicate_socket(const aio::Socket& sock);

// Marks the running test case as skipped on this backend, for `why`; the
// caller returns. doctest has no run-time skip, so the case counts as passed
// and main() prints how many were skipped, per reason, after the summary.
void skip(std::string_view why);
// Prints the skips (nothing if there were none).
void print_skips();
// The reasons the suite skips for.
inline constexpr std::string_view readiness_only =
    "readiness only: the proactor has no add_reader/add_writer (as asyncio's ProactorEventLoop)";
inline constexpr std::string_view proactor_only = "proactor only: tests the completion engine";

// True when this Windows build runs under Wine (ntdll exports
// wine_get_version), for skips that name a Wine gap; false elsewhere.
bool running_under_wine();

// A loopback TCP connection: (accepted server side, client side).
std::pair<aio::Socket, aio::Socket> tcp_pair(aio::EventLoop& loop);

// Descriptors open in this process, or -1 where the platform cannot tell.
int open_fd_count();
// Whether open_fd_count() moves only with what the test opens and closes on
// `loop`: not where the count is unknown (Windows), nor under libkqueue
// (kqueue on Linux), which opens descriptors of its own as filters are
// added and frees them later from its monitor thread.
bool fd_count_is_exact(const aio::EventLoop& loop);
// A descriptor of a regular file (kept open until the returned object dies).
struct RegularFile {
  RegularFile();
  ~RegularFile();
  aio::fd_t fd = -1;
  std::string path;
};

// A temporary regular file holding `content`, as the file descriptor
// sock_sendfile takes (POSIX; on Windows a binary-mode C runtime one),
// positioned at its start; closed and removed when the object dies.
struct TempFile {
  explicit TempFile(std::string_view content);
  ~TempFile();
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  std::int64_t position() const;  // lseek(fd, 0, SEEK_CUR)
  void seek(std::int64_t offset);
  int fd = -1;
  std::string path;
};

// An anonymous pipe of such descriptors; both ends closed when it dies.
struct Pipe {
  Pipe();
  ~Pipe();
  Pipe(const Pipe&) = delete;
  Pipe& operator=(const Pipe&) = delete;
  // Blocking: `data` must fit in the pipe's buffer (64 KiB on Linux).
  void write_all(std::string_view data);
  void close_write();
  int read_fd = -1;
  int write_fd = -1;
};

}  // namespace test

template <>
struct doctest::StringMaker<aio::SocketAddress> {
  static doctest::String convert(const aio::SocketAddress& a) { return a.to_string().c_str(); }
};
