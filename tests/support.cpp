#include "support.hpp"

#include <core/log.hpp>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <stdexcept>

#ifdef _WIN32
// winsock2.h must come before windows.h.
#include <winsock2.h>
#include <ws2tcpip.h>

#include <windows.h>

#include <fcntl.h>
#include <io.h>
#include <sys/stat.h>
#else
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#endif

namespace test {

std::unique_ptr<aio::EventLoop> make_loop() { return aio::new_event_loop(); }

aio::Task<void> until(std::function<bool()> done, double timeout) {
  double deadline = aio::get_running_loop().time() + timeout;
  while (!done()) {
    REQUIRE_MESSAGE(aio::get_running_loop().time() < deadline, "condition not met within ", timeout, " s");
    co_await aio::sleep(0.002);
  }
}

void run_until(aio::EventLoop& loop, const std::function<bool()>& done, double timeout) {
  double deadline = loop.time() + timeout;
  aio::Handle tick;
  std::function<void()> check = [&] {
    if (done() || loop.time() > deadline)
      loop.stop();
    else
      tick = loop.call_later(0.001, [&] { check(); });
  };
  loop.call_soon([&] { check(); });
  loop.run_forever();
  tick.cancel();
  REQUIRE_MESSAGE(done(), "condition not met within ", timeout, " s");
}

void spin(aio::EventLoop& loop, double seconds) { run(loop, aio::sleep(seconds)); }

std::string pattern(std::size_t n, int seed) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>(i * 31 + i / 251 + static_cast<std::size_t>(seed));
  return s;
}

void FakeSelector::select(std::int64_t timeout_ns, std::vector<aio::SelectorEvent>& out) {
  out.clear();
  timeouts.push_back(timeout_ns);
  if (timeout_ns < 0) throw std::logic_error("FakeSelector: the loop would block forever");
  clock_->now_ns += timeout_ns;
}

VirtualLoop make_virtual_loop() {
  VirtualLoop v;
  auto selector = std::make_unique<FakeSelector>(v.clock);
  v.selector = selector.get();
  auto clock = v.clock;
  v.loop = std::make_unique<aio::SelectorEventLoop>(std::move(selector), [clock] { return clock->now_ns; });
  return v;
}

CaptureLog::CaptureLog() {
  previous_ = aio::set_log_sink(
      [this](aio::LogLevel level, std::string_view message) { lines.emplace_back(level, std::string(message)); });
}

CaptureLog::~CaptureLog() { aio::set_log_sink(std::move(previous_)); }

bool CaptureLog::contains(const std::string& needle) const {
  for (const auto& [level, line] : lines)
    if (line.find(needle) != std::string::npos) return true;
  return false;
}

int CaptureLog::warnings() const {
  int n = 0;
  for (const auto& [level, line] : lines)
    if (level == aio::LogLevel::warning) ++n;
  return n;
}

CaptureErrors::CaptureErrors(aio::EventLoop& loop) {
  loop.set_exception_handler([this](aio::EventLoop&, const aio::ExceptionContext& c) { contexts.push_back(c); });
}

namespace {
void set_env(const char* name, const char* value) {
#ifdef _WIN32
  _putenv_s(name, value ? value : "");
#else
  if (value)
    setenv(name, value, 1);
  else
    unsetenv(name);
#endif
}
}  // namespace

std::pair<aio::Socket, aio::Socket> tcp_pair(aio::EventLoop& loop) {
  aio::Socket listener = aio::Socket::create(AF_INET, SOCK_STREAM);
  listener.bind(aio::SocketAddress::parse("127.0.0.1", 0));
  listener.listen(1);
  aio::SocketAddress address = listener.getsockname();
  aio::Socket client = aio::Socket::create(AF_INET, SOCK_STREAM);
  aio::Socket server;
  auto main = [&]() -> aio::Task<void> {
    auto accepting = loop.create_task(loop.sock_accept(listener));
    co_await loop.sock_connect(client, address);
    auto accepted = co_await accepting;
    server = std::move(accepted.first);
  };
  run(loop, main());
  return {std::move(server), std::move(client)};
}

bool loop_has_readiness(const aio::EventLoop& loop) {
  return dynamic_cast<const aio::SelectorEventLoop*>(&loop) != nullptr;
}

void abortive_close(aio::Socket& sock) {
  linger lg{};
  lg.l_onoff = 1;
  lg.l_linger = 0;
#ifdef _WIN32
  REQUIRE(setsockopt(static_cast<SOCKET>(sock.fileno()), SOL_SOCKET, SO_LINGER, reinterpret_cast<const char*>(&lg),
                     sizeof lg) == 0);
#else
  REQUIRE(setsockopt(static_cast<int>(sock.fileno()), SOL_SOCKET, SO_LINGER, &lg, sizeof lg) == 0);
#endif
  sock.close();
}

aio::Socket duplicate_socket(const aio::Socket& sock) {
#ifdef _WIN32
  // Winsock's dup: the socket's protocol info for this same process, then a
  // new SOCKET made from it (both name one connection until both are closed).
  WSAPROTOCOL_INFOW info{};
  auto s = static_cast<SOCKET>(sock.fileno());
  if (WSADuplicateSocketW(s, GetCurrentProcessId(), &info) != 0) return {};
  SOCKET copy = WSASocketW(FROM_PROTOCOL_INFO, FROM_PROTOCOL_INFO, FROM_PROTOCOL_INFO, &info, 0,
                           WSA_FLAG_OVERLAPPED | WSA_FLAG_NO_HANDLE_INHERIT);
  if (copy == INVALID_SOCKET) return {};
  return aio::Socket::adopt(static_cast<aio::fd_t>(copy));
#else
  int copy = fcntl(static_cast<int>(sock.fileno()), F_DUPFD_CLOEXEC, 0);
  if (copy < 0) return {};
  return aio::Socket::adopt(copy);
#endif
}

namespace {

std::map<std::string, int, std::less<>>& skips() {
  static std::map<std::string, int, std::less<>> reasons;
  return reasons;
}

}  // namespace

void skip(std::string_view why) {
  auto it = skips().find(why);
  if (it == skips().end()) it = skips().emplace(std::string(why), 0).first;
  ++it->second;
}

void print_skips() {
  int total = 0;
  for (const auto& [why, count] : skips()) total += count;
  if (total == 0) return;
  std::printf("[skips] %d test cases returned early on this backend:\n", total);
  for (const auto& [why, count] : skips()) std::printf("[skips] %3d  %s\n", count, why.c_str());
}

bool running_under_wine() {
#ifdef _WIN32
  HMODULE ntdll = GetModuleHandleA("ntdll.dll");
  return ntdll && GetProcAddress(ntdll, "wine_get_version");
#else
  return false;
#endif
}

bool backend_consumes_socket_errors(const aio::EventLoop& loop) {
#ifdef __linux__
  return loop.backend() == "kqueue";
#else
  (void)loop;
  return false;
#endif
}

bool fd_count_is_exact(const aio::EventLoop& loop) {
  // libkqueue is the one backend that reads socket errors itself, for the
  // same reason: it is an emulation with descriptors of its own.
  return open_fd_count() >= 0 && !backend_consumes_socket_errors(loop);
}

ScopedEnv::ScopedEnv(const char* name, const char* value) : name_(name) {
  if (const char* old = std::getenv(name)) previous_ = old;
  set_env(name, value);
}

ScopedEnv::~ScopedEnv() { set_env(name_, previous_ ? previous_->c_str() : nullptr); }

#ifdef _WIN32

SocketPair::SocketPair() {
  WSADATA data;
  WSAStartup(MAKEWORD(2, 2), &data);
  SOCKET listener = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int len = sizeof addr;
  bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  listen(listener, 1);
  getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len);
  SOCKET client = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
  connect(client, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  SOCKET server = accept(listener, nullptr, nullptr);
  closesocket(listener);
  u_long on = 1;
  ioctlsocket(client, FIONBIO, &on);
  ioctlsocket(server, FIONBIO, &on);
  REQUIRE(client != INVALID_SOCKET);
  REQUIRE(server != INVALID_SOCKET);
  a = static_cast<aio::fd_t>(client);
  b = static_cast<aio::fd_t>(server);
}

SocketPair::~SocketPair() {
  closesocket(static_cast<SOCKET>(a));
  closesocket(static_cast<SOCKET>(b));
}

void SocketPair::send_byte(aio::fd_t fd, char byte) { REQUIRE(send(static_cast<SOCKET>(fd), &byte, 1, 0) == 1); }

int SocketPair::recv_all(aio::fd_t fd) {
  char buf[4096];
  int total = 0, n;
  while ((n = recv(static_cast<SOCKET>(fd), buf, sizeof buf, 0)) > 0) total += n;
  return total;
}

int open_fd_count() { return -1; }

// A file HANDLE: Winsock's select() takes sockets only.
RegularFile::RegularFile() {
  char dir[MAX_PATH], name[MAX_PATH];
  REQUIRE(GetTempPathA(MAX_PATH, dir) != 0);
  REQUIRE(GetTempFileNameA(dir, "aio", 0, name) != 0);
  HANDLE h = CreateFileA(name, GENERIC_READ | GENERIC_WRITE, 0, nullptr, CREATE_ALWAYS,
                         FILE_ATTRIBUTE_TEMPORARY | FILE_FLAG_DELETE_ON_CLOSE, nullptr);
  REQUIRE(h != INVALID_HANDLE_VALUE);
  fd = reinterpret_cast<aio::fd_t>(h);
  path = name;
}

RegularFile::~RegularFile() { CloseHandle(reinterpret_cast<HANDLE>(fd)); }

TempFile::TempFile(std::string_view content) {
  char dir[MAX_PATH], name[MAX_PATH];
  REQUIRE(GetTempPathA(MAX_PATH, dir) != 0);
  REQUIRE(GetTempFileNameA(dir, "aio", 0, name) != 0);
  path = name;
  fd = _open(name, _O_RDWR | _O_BINARY | _O_TRUNC | _O_TEMPORARY, _S_IREAD | _S_IWRITE);
  REQUIRE(fd >= 0);
  for (std::size_t done = 0; done < content.size();) {
    int n =
        _write(fd, content.data() + done, static_cast<unsigned>(std::min<std::size_t>(content.size() - done, 1 << 20)));
    REQUIRE(n > 0);
    done += static_cast<std::size_t>(n);
  }
  seek(0);
}

TempFile::~TempFile() { _close(fd); }  // _O_TEMPORARY: removed on close

std::int64_t TempFile::position() const { return _lseeki64(fd, 0, SEEK_CUR); }

void TempFile::seek(std::int64_t offset) { REQUIRE(_lseeki64(fd, offset, SEEK_SET) == offset); }

Pipe::Pipe() {
  int fds[2];
  REQUIRE(_pipe(fds, 1 << 20, _O_BINARY | _O_NOINHERIT) == 0);
  read_fd = fds[0];
  write_fd = fds[1];
}

Pipe::~Pipe() {
  _close(read_fd);
  close_write();
}

void Pipe::write_all(std::string_view data) {
  for (std::size_t done = 0; done < data.size();) {
    int n = _write(write_fd, data.data() + done, static_cast<unsigned>(data.size() - done));
    REQUIRE(n > 0);
    done += static_cast<std::size_t>(n);
  }
}

void Pipe::close_write() {
  if (write_fd >= 0) _close(write_fd);
  write_fd = -1;
}

#else

SocketPair::SocketPair() {
  int fds[2];
  REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) == 0);
  a = fds[0];
  b = fds[1];
}

SocketPair::~SocketPair() {
  close(static_cast<int>(a));
  close(static_cast<int>(b));
}

void SocketPair::send_byte(aio::fd_t fd, char byte) { REQUIRE(write(static_cast<int>(fd), &byte, 1) == 1); }

int SocketPair::recv_all(aio::fd_t fd) {
  char buf[4096];
  int total = 0;
  ssize_t n;
  while ((n = read(static_cast<int>(fd), buf, sizeof buf)) > 0) total += static_cast<int>(n);
  return total;
}

int open_fd_count() {
  DIR* dir = opendir("/proc/self/fd");
  if (!dir) dir = opendir("/dev/fd");
  if (!dir) return -1;
  int count = 0;
  while (readdir(dir)) ++count;
  closedir(dir);
  return count;
}

RegularFile::RegularFile() {
  char name[] = "/tmp/aiocpp-test-XXXXXX";
  int fd = mkstemp(name);
  REQUIRE(fd >= 0);
  this->fd = fd;
  path = name;
}

RegularFile::~RegularFile() {
  close(static_cast<int>(fd));
  unlink(path.c_str());
}

TempFile::TempFile(std::string_view content) {
  char name[] = "/tmp/aiocpp-test-XXXXXX";
  fd = mkstemp(name);
  REQUIRE(fd >= 0);
  path = name;
  for (std::size_t done = 0; done < content.size();) {
    ssize_t n = write(fd, content.data() + done, content.size() - done);
    REQUIRE(n > 0);
    done += static_cast<std::size_t>(n);
  }
  seek(0);
}

TempFile::~TempFile() {
  close(fd);
  unlink(path.c_str());
}

std::int64_t TempFile::position() const { return lseek(fd, 0, SEEK_CUR); }

void TempFile::seek(std::int64_t offset) { REQUIRE(lseek(fd, offset, SEEK_SET) == offset); }

Pipe::Pipe() {
  int fds[2];
  REQUIRE(pipe(fds) == 0);
  read_fd = fds[0];
  write_fd = fds[1];
  fcntl(read_fd, F_SETFD, FD_CLOEXEC);
  fcntl(write_fd, F_SETFD, FD_CLOEXEC);
}

Pipe::~Pipe() {
  close(read_fd);
  close_write();
}

void Pipe::write_all(std::string_view data) {
  for (std::size_t done = 0; done < data.size();) {
    ssize_t n = write(write_fd, data.data() + done, data.size() - done);
    REQUIRE(n > 0);
    done += static_cast<std::size_t>(n);
  }
}

void Pipe::close_write() {
  if (write_fd >= 0) close(write_fd);
  write_fd = -1;
}

#endif

}  // namespace test
