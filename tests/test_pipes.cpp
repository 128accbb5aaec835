// Pipe transports: connect_read_pipe and connect_write_pipe (asyncio's
// test_events.py test_read_pipe / test_write_pipe / test_read_pty_output,
// and test_unix_events.py's UnixReadPipeTransportTests and
// UnixWritePipeTransportTests), over real pipes, ptys, sockets and
// /dev/null. On every POSIX backend; on Windows over an overlapped named
// pipe on the proactor, while the selector loop refuses them (as asyncio's).
#include <core/errors.hpp>
#include <net/protocols.hpp>
#include <net/transports.hpp>

#include "support.hpp"

#ifdef _WIN32
#include <windows.h>
#else
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>
#endif

#include <any>
#include <cstdlib>
#include <exception>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

using test::make_loop;
using test::run_until;

namespace {

// Checks asyncio's order connection_made -> data_received* ->
// eof_received? -> connection_lost, and records what came.
struct PipeRecorder : aio::Protocol {
  std::vector<std::string> events;  // consecutive data_received calls recorded once
  std::string data;
  int lost = 0, paused = 0, resumed = 0;
  std::exception_ptr error;
  aio::Transport* transport = nullptr;
  bool keep_open = false;
  std::function<void()> on_resume;

  void connection_made(aio::Transport& t) override {
    CHECK(events.empty());
    transport = &t;
    events.push_back("made");
  }
  void data_received(std::string_view d) override {
    CHECK(!events.empty());
    CHECK(events.back() != "eof");
    CHECK(events.back() != "lost");
    if (events.back() != "data") events.push_back("data");
    data += d;
  }
  bool eof_received() override {
    events.push_back("eof");
    return keep_open;
  }
  void pause_writing() override { ++paused; }
  void resume_writing() override {
    ++resumed;
    if (on_resume) on_resume();
  }
  void connection_lost(std::exception_ptr e) override {
    CHECK(lost == 0);
    ++lost;
    error = e;
    transport = nullptr;
    events.push_back("lost");
  }
};

std::string join(const std::vector<std::string>& events) {
  std::string out;
  for (const auto& e : events) out += (out.empty() ? "" : " ") + e;
  return out;
}

template <class T>
std::shared_ptr<T> open_read(aio::EventLoop& loop, aio::fd_t fd, std::shared_ptr<PipeRecorder> proto) {
  aio::ProtocolFactory factory = [proto] { return proto; };
  auto [transport, protocol] = test::run(loop, loop.connect_read_pipe(factory, fd));
  CHECK(protocol == proto);
  CHECK(join(proto->events) == "made");  // returns after connection_made ran
  return std::static_pointer_cast<T>(transport);
}

std::shared_ptr<aio::WriteTransport> open_write(aio::EventLoop& loop, aio::fd_t fd,
                                                std::shared_ptr<PipeRecorder> proto) {
  aio::ProtocolFactory factory = [proto] { return proto; };
  auto [transport, protocol] = test::run(loop, loop.connect_write_pipe(factory, fd));
  CHECK(protocol == proto);
  CHECK(join(proto->events) == "made");
  return transport;
}

}  // namespace

#ifndef _WIN32

namespace {

// A pipe whose ends close themselves unless taken (a transport takes one).
struct Pipe {
  int read_end = -1, write_end = -1;
  Pipe() {
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    read_end = fds[0];
    write_end = fds[1];
    ::fcntl(read_end, F_SETFD, FD_CLOEXEC);
    ::fcntl(write_end, F_SETFD, FD_CLOEXEC);
  }
  ~Pipe() {
    close_read();
    close_write();
  }
  Pipe(const Pipe&) = delete;
  Pipe& operator=(const Pipe&) = delete;
  int take_read() { return std::exchange(read_end, -1); }
  int take_write() { return std::exchange(write_end, -1); }
  void close_read() {
    if (read_end != -1) ::close(std::exchange(read_end, -1));
  }
  void close_write() {
    if (write_end != -1) ::close(std::exchange(write_end, -1));
  }
};

bool fd_is_open(int fd) { return ::fcntl(fd, F_GETFD) != -1; }

// Makes sure nothing is left running, then closes the loop.
void finish(aio::EventLoop& loop, PipeRecorder& proto) {
  if (proto.lost == 0 && proto.transport) {
    proto.transport->abort();
    run_until(loop, [&] { return proto.lost > 0; });
  }
  loop.close();
}

void write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    REQUIRE(n > 0);
    data.remove_prefix(static_cast<std::size_t>(n));
  }
}

// What `fd` (non-blocking) has now; sets `eof` at end of file.
std::string read_now(int fd, bool& eof) {
  std::string out;
  char buffer[65536];
  for (;;) {
    ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n > 0) {
      out.append(buffer, static_cast<std::size_t>(n));
      continue;
    }
    if (n == 0) eof = true;
    return out;
  }
}

void set_nonblocking(int fd) { REQUIRE(::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK) == 0); }

// A pty in raw mode: (master, slave).
std::pair<int, int> open_pty() {
  int master = ::posix_openpt(O_RDWR | O_NOCTTY);
  REQUIRE(master >= 0);
  REQUIRE(::grantpt(master) == 0);
  REQUIRE(::unlockpt(master) == 0);
  int slave = ::open(::ptsname(master), O_RDWR | O_NOCTTY);
  REQUIRE(slave >= 0);
  termios raw{};
  REQUIRE(::tcgetattr(slave, &raw) == 0);
  ::cfmakeraw(&raw);
  REQUIRE(::tcsetattr(slave, TCSANOW, &raw) == 0);
  return {master, slave};
}

}  // namespace

TEST_CASE("test_pipes: a read pipe delivers data, then end of file, and closes its fd") {
  auto loop = make_loop();
  test::CaptureErrors errors(*loop);
  Pipe pipe;
  auto proto = std::make_shared<PipeRecorder>();
  SUBCASE("eof_received returns false") {}
  SUBCASE("eof_received returns true: a read pipe closes all the same") { proto->keep_open = true; }
  int fd = pipe.read_end;
  auto transport = open_read<aio::ReadTransport>(*loop, pipe.take_read(), proto);
  CHECK(std::any_cast<aio::fd_t>(transport->get_extra_info("pipe")) == fd);
  CHECK(transport->is_reading());
  write_all(pipe.write_end, "1");
  run_until(*loop, [&] { return proto->data == "1"; });
  write_all(pipe.write_end, "2345");
  run_until(*loop, [&] { return proto->data == "12345"; });
  pipe.close_write();
  run_until(*loop, [&] { return proto->lost > 0; });
  CHECK(join(proto->events) == "made data eof lost");
  CHECK_FALSE(proto->error);
  CHECK(transport->is_closing());
  CHECK_FALSE(fd_is_open(fd));
  CHECK(errors.contexts.empty());
  loop->close();
}

TEST_CASE("test_pipes: a read pipe pauses and resumes reading") {
  auto loop = make_loop();
  Pipe pipe;
  auto proto = std::make_shared<PipeRecorder>();
  auto transport = open_read<aio::ReadTransport>(*loop, pipe.take_read(), proto);
  transport->pause_reading();
  CHECK_FALSE(transport->is_reading());
  CHECK_NOTHROW(transport->pause_reading());  // idempotent
  write_all(pipe.write_end, "held");
  test::spin(*loop, 0.05);
  CHECK(proto->data.empty());
  transport->resume_reading();
  CHECK(transport->is_reading());
  run_until(*loop, [&] { return proto->data == "held"; });
  pipe.close_write();
  run_until(*loop, [&] { return proto->lost > 0; });
  CHECK(join(proto->events) == "made data eof lost");
  loop->close();
}

TEST_CASE("test_pipes: a read pipe has no write side, and close() ends it") {
  auto loop = make_loop();
  Pipe pipe;
  auto proto = std::make_shared<PipeRecorder>();
  int fd = pipe.read_end;
  auto transport = open_read<aio::ReadTransport>(*loop, pipe.take_read(), proto);
  // What connection_made was given is a Transport; its write side refuses.
  REQUIRE(proto->transport);
  CHECK_THROWS_AS(proto->transport->write("x"), std::logic_error);
  CHECK_THROWS_AS(proto->transport->write_eof(), std::logic_error);
  CHECK_FALSE(proto->transport->can_write_eof());
  transport->close();
  CHECK(transport->is_closing());
  CHECK_NOTHROW(transport->close());
  run_until(*loop, [&] { return proto->lost > 0; });
  CHECK(join(proto->events) == "made lost");
  CHECK_FALSE(proto->error);
  CHECK_FALSE(fd_is_open(fd));
  loop->close();
}

TEST_CASE("test_pipes: a write pipe writes in order, then write_eof closes it once flushed") {
  auto loop = make_loop();
  test::CaptureErrors errors(*loop);
  Pipe pipe;
  set_nonblocking(pipe.read_end);
  auto proto = std::make_shared<PipeRecorder>();
  int fd = pipe.write_end;
  auto transport = open_write(*loop, pipe.take_write(), proto);
  CHECK(std::any_cast<aio::fd_t>(transport->get_extra_info("pipe")) == fd);
  CHECK(transport->can_write_eof());
  // More than the pipe holds (64 KiB on Linux): some of it waits in the buffer.
  std::string payload = test::pattern(1 << 20);
  transport->write("head ");
  std::string_view lines[] = {"a", "b"};
  transport->writelines(lines);
  transport->write(payload);
  transport->write_eof();
  CHECK(transport->is_closing());
  CHECK_NOTHROW(transport->write_eof());
  std::string got;
  bool eof = false;
  run_until(*loop, [&] {
    got += read_now(pipe.read_end, eof);
    return eof;
  });
  CHECK(got.size() == 7 + payload.size());
  CHECK(got == "head ab" + payload);
  run_until(*loop, [&] { return proto->lost > 0; });
  CHECK(join(proto->events) == "made lost");
  CHECK_FALSE(proto->error);
  CHECK_FALSE(fd_is_open(fd));
  CHECK(errors.contexts.empty());
  loop->close();
}

TEST_CASE("test_pipes: a write pipe pauses and resumes writing, and has no read side") {
  auto loop = make_loop();
  Pipe pipe;
  set_nonblocking(pipe.read_end);
  auto proto = std::make_shared<PipeRecorder>();
  auto transport = open_write(*loop, pipe.take_write(), proto);
  REQUIRE(proto->transport);
  CHECK_THROWS_AS(proto->transport->pause_reading(), std::logic_error);
  CHECK_THROWS_AS(proto->transport->resume_reading(), std::logic_error);
  CHECK_FALSE(proto->transport->is_reading());
  transport->set_write_buffer_limits(16384, 4096);
  std::string payload = test::pattern(512 * 1024, 3);
  transport->write(payload);
  CHECK(proto->paused == 1);
  CHECK(transport->get_write_buffer_size() > 16384);
  std::string got;
  bool eof = false;
  run_until(*loop, [&] {
    got += read_now(pipe.read_end, eof);
    return got.size() == payload.size();
  });
  CHECK(got == payload);
  CHECK(proto->resumed == 1);
  CHECK(transport->get_write_buffer_size() == 0);
  finish(*loop, *proto);
}

TEST_CASE("test_pipes: writes at the pipe's size boundary never deadlock (74)") {
  auto loop = make_loop();
  Pipe pipe;
  set_nonblocking(pipe.read_end);
  auto proto = std::make_shared<PipeRecorder>();
  auto transport = open_write(*loop, pipe.take_write(), proto);
  for (std::size_t size : {65535u, 65536u, 65537u}) {
    CAPTURE(size);
    std::string payload = test::pattern(size, static_cast<int>(size));
    transport->write(payload);
    std::string got;
    bool eof = false;
    run_until(*loop, [&] {
      got += read_now(pipe.read_end, eof);
      return got.size() >= payload.size();
    });
    CHECK(got == payload);
  }
  finish(*loop, *proto);
}

TEST_CASE("test_pipes: a write pipe notices its reader going away") {
  auto loop = make_loop();
  test::CaptureErrors errors(*loop);
  Pipe pipe;
  auto proto = std::make_shared<PipeRecorder>();
  auto transport = open_write(*loop, pipe.take_write(), proto);
  SUBCASE("while nothing is written: a clean close") {
    pipe.close_read();
    run_until(*loop, [&] { return proto->lost > 0; });
    CHECK_FALSE(proto->error);
  }
  SUBCASE("with data waiting: a broken pipe, and no SIGPIPE") {
    // The default disposition, which a SIGPIPE would kill the process with.
    struct sigaction old {};
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    REQUIRE(::sigaction(SIGPIPE, &dfl, &old) == 0);
    transport->write(test::pattern(1 << 20));
    REQUIRE(transport->get_write_buffer_size() > 0);
    pipe.close_read();
    run_until(*loop, [&] { return proto->lost > 0; });
    ::sigaction(SIGPIPE, &old, nullptr);
    REQUIRE(proto->error);
    try {
      std::rethrow_exception(proto->error);
    } catch (const std::system_error& e) {
      CHECK(e.code() == std::errc::broken_pipe);
    }
    CHECK(transport->get_write_buffer_size() == 0);
  }
  CHECK(transport->is_closing());
  CHECK(errors.contexts.empty());  // a reader going away is no bug to report
  // Later writes are dropped, as after any loss.
  CHECK_NOTHROW(transport->write("late"));
  loop->close();
}

TEST_CASE("test_pipes: a write pipe over a socket, and over a character device") {
  auto loop = make_loop();
  auto proto = std::make_shared<PipeRecorder>();
  SUBCASE("a socket: its peer closing ends the transport") {
    int fds[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0);
    auto transport = open_write(*loop, fds[0], proto);
    transport->write("over a socket");
    char buffer[64];
    std::string got;
    run_until(*loop, [&] {
      ssize_t n = ::recv(fds[1], buffer, sizeof buffer, MSG_DONTWAIT);
      if (n > 0) got.append(buffer, static_cast<std::size_t>(n));
      return got == "over a socket";
    });
    ::close(fds[1]);
    run_until(*loop, [&] { return proto->lost > 0; });
    CHECK_FALSE(proto->error);
  }
  SUBCASE("/dev/null: never watched for a reader, written until write_eof") {
    int fd = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
    REQUIRE(fd >= 0);
    auto transport = open_write(*loop, fd, proto);
    transport->write(test::pattern(256 * 1024));
    test::spin(*loop, 0.05);
    CHECK(proto->lost == 0);
    CHECK(transport->get_write_buffer_size() == 0);
    transport->write_eof();
    run_until(*loop, [&] { return proto->lost > 0; });
    CHECK_FALSE(proto->error);
    CHECK_FALSE(fd_is_open(fd));
  }
  loop->close();
}

TEST_CASE("test_pipes: a pty master reads its output, and EIO is its end of file") {
  auto loop = make_loop();
  test::CaptureErrors errors(*loop);
  auto [master, slave] = open_pty();
  auto proto = std::make_shared<PipeRecorder>();
  auto transport = open_read<aio::ReadTransport>(*loop, master, proto);
  write_all(slave, "from the pty");
  run_until(*loop, [&] { return proto->data == "from the pty"; });
  ::close(slave);
  run_until(*loop, [&] { return proto->lost > 0; });
  CHECK(join(proto->events) == "made data eof lost");
  CHECK_FALSE(proto->error);
  CHECK(errors.contexts.empty());
  loop->close();
}

TEST_CASE("test_pipes: an idle pty master or pipe never blocks the loop (96)") {
  // io_uring: a read on a descriptor without FMODE_NOWAIT must not block
  // io_uring_enter or pin a worker that close() cannot stop.
  auto loop = make_loop();
  auto proto = std::make_shared<PipeRecorder>();
  int slave = -1;
  Pipe pipe;
  int fd = -1;
  SUBCASE("a pty master") {
    auto [m, s] = open_pty();
    fd = m;
    slave = s;
  }
  SUBCASE("a pipe whose writer never writes") { fd = pipe.take_read(); }
  auto transport = open_read<aio::ReadTransport>(*loop, fd, proto);
  double start = loop->time();
  test::spin(*loop, 0.01);  // a 10 ms timer fires
  CHECK(loop->time() - start >= 0.01);
  transport->close();
  run_until(
      *loop, [&] { return proto->lost > 0; }, 5.0);
  CHECK_FALSE(fd_is_open(fd));
  if (slave != -1) ::close(slave);
  loop->close();
}

TEST_CASE("test_pipes: what is no pipe, and bad factories, are refused and left open") {
  auto loop = make_loop();
  aio::ProtocolFactory factory = [] { return std::make_shared<PipeRecorder>(); };
  SUBCASE("a regular file") {
    test::RegularFile file;
    int fd = static_cast<int>(file.fd);
    CHECK_THROWS_WITH_AS(test::run(*loop, loop->connect_read_pipe(factory, fd)), doctest::Contains("is a regular file"),
                         std::invalid_argument);
    CHECK_THROWS_AS(test::run(*loop, loop->connect_write_pipe(factory, fd)), std::invalid_argument);
    CHECK(fd_is_open(fd));
  }
  SUBCASE("a directory") {
    int fd = ::open("/", O_RDONLY | O_CLOEXEC);
    REQUIRE(fd >= 0);
    CHECK_THROWS_WITH_AS(test::run(*loop, loop->connect_read_pipe(factory, fd)), doctest::Contains("is a directory"),
                         std::invalid_argument);
    CHECK(fd_is_open(fd));
    ::close(fd);
  }
  SUBCASE("a descriptor that is not open") {
    Pipe pipe;
    int fd = pipe.read_end;
    pipe.close_read();
    CHECK_THROWS_WITH_AS(test::run(*loop, loop->connect_read_pipe(factory, fd)), doctest::Contains("not open"),
                         std::invalid_argument);
    CHECK_THROWS_AS(test::run(*loop, loop->connect_write_pipe(factory, -1)), std::invalid_argument);
  }
  SUBCASE("an empty factory, a null protocol, a datagram protocol") {
    Pipe pipe;
    CHECK_THROWS_AS(test::run(*loop, loop->connect_read_pipe({}, pipe.read_end)), std::invalid_argument);
    CHECK_THROWS_AS(test::run(*loop, loop->connect_read_pipe([] { return nullptr; }, pipe.read_end)),
                    std::invalid_argument);
    CHECK_THROWS_AS(test::run(*loop, loop->connect_write_pipe([] { return std::make_shared<aio::DatagramProtocol>(); },
                                                              pipe.write_end)),
                    std::invalid_argument);
    CHECK(fd_is_open(pipe.read_end));
    CHECK(fd_is_open(pipe.write_end));
  }
  loop->close();
}

TEST_CASE("test_pipes: no descriptor leaks") {
  if (!test::fd_count_is_exact(*make_loop())) return test::skip("descriptor counts are not exact on this backend");
  int before = test::open_fd_count();
  {
    auto loop = make_loop();
    for (int i = 0; i < 20; ++i) {
      Pipe pipe;
      auto reader = std::make_shared<PipeRecorder>();
      auto writer = std::make_shared<PipeRecorder>();
      auto in = open_read<aio::ReadTransport>(*loop, pipe.take_read(), reader);
      auto out = open_write(*loop, pipe.take_write(), writer);
      out->write("ping");
      out->write_eof();
      run_until(*loop, [&] { return reader->lost > 0 && writer->lost > 0; });
      CHECK(reader->data == "ping");
    }
    loop->close();
  }
  CHECK(test::open_fd_count() == before);
}

#else  // _WIN32

namespace {

std::string unique_pipe() {
  static int count = 0;
  return std::string(R"(\\.\pipe\aiocpp-test-anon-)") + std::to_string(GetCurrentProcessId()) + "-" +
         std::to_string(++count);
}

// An overlapped pipe pair, as asyncio's windows_utils.pipe(): (read end, write end).
std::pair<HANDLE, HANDLE> overlapped_pipe() {
  std::string name = unique_pipe();
  HANDLE read_end =
      CreateNamedPipeA(name.c_str(), PIPE_ACCESS_INBOUND | FILE_FLAG_OVERLAPPED | FILE_FLAG_FIRST_PIPE_INSTANCE,
                       PIPE_TYPE_BYTE | PIPE_WAIT, 1, 65536, 65536, 0, nullptr);
  REQUIRE(read_end != INVALID_HANDLE_VALUE);
  HANDLE write_end = CreateFileA(name.c_str(), GENERIC_WRITE, 0, nullptr, OPEN_EXISTING, FILE_FLAG_OVERLAPPED, nullptr);
  REQUIRE(write_end != INVALID_HANDLE_VALUE);
  return {read_end, write_end};
}

aio::fd_t as_fd(HANDLE handle) { return reinterpret_cast<aio::fd_t>(handle); }

}  // namespace

TEST_CASE("test_pipes: a read pipe and a write pipe over an overlapped pipe (proactor)") {
  auto loop = make_loop();
  auto [read_end, write_end] = overlapped_pipe();
  aio::ProtocolFactory factory = [] { return std::make_shared<PipeRecorder>(); };
  if (test::loop_has_readiness(*loop)) {
    // Winsock's select watches sockets only: asyncio's selector loop on
    // Windows has no pipe transports either.
    CHECK_THROWS_AS(test::run(*loop, loop->connect_read_pipe(factory, as_fd(read_end))), aio::NotImplementedError);
    CHECK_THROWS_AS(test::run(*loop, loop->connect_write_pipe(factory, as_fd(write_end))), aio::NotImplementedError);
    CloseHandle(read_end);
    CloseHandle(write_end);
    loop->close();
    return;
  }
  auto reader = std::make_shared<PipeRecorder>();
  auto writer = std::make_shared<PipeRecorder>();
  auto in = open_read<aio::ReadTransport>(*loop, as_fd(read_end), reader);
  auto out = open_write(*loop, as_fd(write_end), writer);
  CHECK(std::any_cast<aio::fd_t>(in->get_extra_info("pipe")) == as_fd(read_end));
  std::string payload = test::pattern(1 << 20);
  out->write(payload);
  out->write_eof();
  run_until(
      *loop, [&] { return reader->lost > 0 && writer->lost > 0; }, 20.0);
  CHECK(reader->data == payload);
  CHECK(join(reader->events) == "made data eof lost");
  CHECK_FALSE(reader->error);
  CHECK_FALSE(writer->error);
  loop->close();
}

TEST_CASE("test_pipes: a synchronous pipe handle or a console is refused, naming FILE_FLAG_OVERLAPPED") {
  auto loop = make_loop();
  if (test::loop_has_readiness(*loop)) return test::skip(test::proactor_only);
  aio::ProtocolFactory factory = [] { return std::make_shared<PipeRecorder>(); };
  HANDLE read_end = nullptr, write_end = nullptr;
  REQUIRE(CreatePipe(&read_end, &write_end, nullptr, 0));  // anonymous pipes are synchronous
  CHECK_THROWS_WITH_AS(test::run(*loop, loop->connect_read_pipe(factory, as_fd(read_end))),
                       doctest::Contains("FILE_FLAG_OVERLAPPED"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(test::run(*loop, loop->connect_write_pipe(factory, as_fd(write_end))),
                       doctest::Contains("synchronous"), std::invalid_argument);
  CHECK(CloseHandle(read_end));  // left open by the refusal
  CHECK(CloseHandle(write_end));
  HANDLE nul = CreateFileA("NUL", GENERIC_READ, FILE_SHARE_READ | FILE_SHARE_WRITE, nullptr, OPEN_EXISTING, 0, nullptr);
  REQUIRE(nul != INVALID_HANDLE_VALUE);
  CHECK_THROWS_WITH_AS(test::run(*loop, loop->connect_read_pipe(factory, as_fd(nul))), doctest::Contains("console"),
                       std::invalid_argument);
  CHECK(CloseHandle(nul));
  loop->close();
}

TEST_CASE("test_pipes: what is no pipe is refused and left open") {
  auto loop = make_loop();
  aio::ProtocolFactory factory = [] { return std::make_shared<PipeRecorder>(); };
  test::RegularFile file;
  CHECK_THROWS_AS(test::run(*loop, loop->connect_read_pipe(factory, file.fd)), std::invalid_argument);
  CHECK(GetFileType(reinterpret_cast<HANDLE>(file.fd)) == FILE_TYPE_DISK);
  loop->close();
}

#endif
