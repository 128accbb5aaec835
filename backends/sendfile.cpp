// sendfile(2) in its three shapes (Linux; FreeBSD; macOS) and the plain file
// calls of the fallback. Windows has no sendfile for a selector loop:
// TransmitFile wants an overlapped socket and belongs to a proactor, as in
// asyncio, whose Windows selector loop falls back as well.
#include <backends/sendfile.hpp>

#include <backends/syscall.hpp>
#include <core/errors.hpp>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <stdexcept>
#include <string>

#ifdef _WIN32
#include <fcntl.h>
#include <io.h>
#include <sys/stat.h>
#include <sys/types.h>
#else
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>
#endif

#if defined(__linux__)
#include <signal.h>
#include <sys/sendfile.h>
#elif defined(__FreeBSD__) || defined(__APPLE__)
#include <sys/socket.h>
#include <sys/uio.h>
#endif

namespace aio::detail {

namespace {

std::string on_file(const char* call, int file) { return std::string(call) + " fd " + std::to_string(file); }

[[noreturn]] void throw_not_open(const char* method, int file) {
  throw std::invalid_argument(std::string(method) + ": file descriptor " + std::to_string(file) + " is not open");
}

// Linux moves at most this much in one call (MAX_RW_COUNT); the BSDs accept it too.
[[maybe_unused]] constexpr std::size_t max_per_call = 0x7ffff000;

[[maybe_unused]] std::string on_pair(int file, std::intptr_t sock) {
  return "sendfile fd " + std::to_string(file) + " to socket " + std::to_string(sock);
}

}  // namespace

// ---- The file calls -----------------------------------------------------------

#ifdef _WIN32

bool is_regular_file(int file, const char* method) {
  // Asked first: _fstat64 of a closed descriptor leaves errno 0 under Wine.
  if (_get_osfhandle(file) == -1) throw_not_open(method, file);
  struct _stat64 st;
  if (_fstat64(file, &st) != 0) throw_crt_error(errno, on_file("_fstat64", file));
  // A text-mode descriptor translates line ends as it reads: the bytes sent
  // would not be the file's. asyncio refuses a file not opened in binary mode.
  int mode = _setmode(file, _O_BINARY);
  if (mode == -1) throw_crt_error(errno, on_file("_setmode", file));
  if (mode != _O_BINARY) {
    _setmode(file, mode);
    throw std::invalid_argument(std::string(method) + ": the file should be opened in binary mode (_O_BINARY)");
  }
  return (st.st_mode & _S_IFMT) == _S_IFREG;
}

void seek_file(int file, std::uint64_t offset) {
  if (_lseeki64(file, static_cast<__int64>(offset), SEEK_SET) == -1) throw_crt_error(errno, on_file("_lseeki64", file));
}

std::size_t read_file(int file, char* buffer, std::size_t size) {
  int n = _read(file, buffer, static_cast<unsigned>(std::min<std::size_t>(size, INT_MAX)));
  if (n < 0) throw_crt_error(errno, on_file("_read", file));
  return static_cast<std::size_t>(n);
}

bool socket_is_blocking(std::intptr_t) { return false; }

bool sendfile_refused(const std::error_code&) noexcept { return false; }

#else

bool is_regular_file(int file, const char* method) {
  struct stat st;
  if (fstat(file, &st) != 0) {
    if (errno == EBADF) throw_not_open(method, file);
    throw_crt_error(errno, on_file("fstat", file));
  }
  return S_ISREG(st.st_mode);
}

void seek_file(int file, std::uint64_t offset) {
  if (lseek(file, static_cast<off_t>(offset), SEEK_SET) == -1) throw_crt_error(errno, on_file("lseek", file));
}

std::size_t read_file(int file, char* buffer, std::size_t size) {
  for (;;) {
    ssize_t n = ::read(file, buffer, size);
    if (n >= 0) return static_cast<std::size_t>(n);
    if (errno != EINTR) throw_crt_error(errno, on_file("read", file));
  }
}

bool socket_is_blocking(std::intptr_t sock) {
  int flags = fcntl(static_cast<int>(sock), F_GETFL);
  if (flags == -1) throw_os_error(errno, "fcntl F_GETFL socket " + std::to_string(sock));
  return (flags & O_NONBLOCK) == 0;
}

bool sendfile_refused(const std::error_code& error) noexcept {
  if (error.category() != std::system_category()) return false;
  // Linux: EINVAL for a file without mmap-like reads; the BSDs: ENOTSOCK,
  // EOPNOTSUPP / ENOTSUP for a socket or file system they cannot serve.
  int code = error.value();
  return code == EINVAL || code == ENOSYS || code == ENOTSOCK || code == EOPNOTSUPP || code == ENOTSUP;
}

#endif

// ---- The sendfile call --------------------------------------------------------

#if defined(__linux__)

namespace {

// Linux's sendfile has no MSG_NOSIGNAL: sending to a peer that went away
// raises SIGPIPE at this thread, which kills a process that does not ignore
// it. Blocked around the call, and one the call raised is taken before the
// old mask comes back; a thread that blocked SIGPIPE itself keeps its own.
class SigpipeBlocked {
 public:
  SigpipeBlocked() {
    sigemptyset(&pipe_);
    sigaddset(&pipe_, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_, &old_);
  }
  SigpipeBlocked(const SigpipeBlocked&) = delete;
  SigpipeBlocked& operator=(const SigpipeBlocked&) = delete;
  ~SigpipeBlocked() {
    if (raised_ && !sigismember(&old_, SIGPIPE)) {
      timespec now{};
      while (sigtimedwait(&pipe_, nullptr, &now) == -1 && errno == EINTR) {
      }
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  void raised() noexcept { raised_ = true; }

 private:
  sigset_t pipe_;
  sigset_t old_;
  bool raised_ = false;
};

}  // namespace

const char* native_sendfile_missing() noexcept { return nullptr; }

std::optional<std::size_t> sendfile_some(std::intptr_t sock, int file, std::uint64_t offset, std::size_t count) {
  for (;;) {
    off_t position = static_cast<off_t>(offset);
    ssize_t n;
    int error;
    {
      SigpipeBlocked blocked;
      n = ::sendfile(static_cast<int>(sock), file, &position, std::min(count, max_per_call));
      error = errno;
      if (n < 0 && error == EPIPE) blocked.raised();
    }
    if (n >= 0) return static_cast<std::size_t>(n);
    if (error == EINTR) continue;
    if (error == EAGAIN || error == EWOULDBLOCK) return std::nullopt;
    throw_os_error(error, on_pair(file, sock));
  }
}

std::optional<std::size_t> write_file_some(int file, const char* data, std::size_t size) {
  for (;;) {
    ssize_t n;
    int error;
    {
      SigpipeBlocked blocked;
      n = ::write(file, data, size);
      error = errno;
      if (n < 0 && error == EPIPE) blocked.raised();
    }
    if (n >= 0) return static_cast<std::size_t>(n);
    if (error == EINTR) continue;
    if (error == EAGAIN || error == EWOULDBLOCK) return std::nullopt;
    throw_os_error(error, "write(fd " + std::to_string(file) + ")");
  }
}

#elif defined(__FreeBSD__) || defined(__APPLE__)

// FreeBSD: sendfile(fd, s, offset, nbytes, hdtr, &sbytes, flags).
// macOS: sendfile(fd, s, offset, &len, hdtr, flags), len in and out.
// Both may fail with EAGAIN or EINTR after part of the range went out,
// reported in sbytes / len; that part counts. SO_NOSIGPIPE, which
// Socket::create sets there, covers sendfile as well.

const char* native_sendfile_missing() noexcept { return nullptr; }

std::optional<std::size_t> sendfile_some(std::intptr_t sock, int file, std::uint64_t offset, std::size_t count) {
  for (;;) {
#if defined(__FreeBSD__)
    off_t sent = 0;
    int rc = ::sendfile(file, static_cast<int>(sock), static_cast<off_t>(offset), std::min(count, max_per_call),
                        nullptr, &sent, 0);
#else
    off_t sent = static_cast<off_t>(std::min(count, max_per_call));
    int rc = ::sendfile(file, static_cast<int>(sock), static_cast<off_t>(offset), &sent, nullptr, 0);
#endif
    if (rc == 0) return static_cast<std::size_t>(sent);
    int error = errno;
    if (sent > 0 && (error == EAGAIN || error == EINTR)) return static_cast<std::size_t>(sent);
    if (error == EINTR) continue;
    if (error == EAGAIN) return std::nullopt;
    throw_os_error(error, on_pair(file, sock));
  }
}

#else

const char* native_sendfile_missing() noexcept {
#ifdef _WIN32
  return "the selector loop has no sendfile on Windows (TransmitFile belongs to the proactor)";
#else
  return "this OS has no sendfile call that aiocpp uses";
#endif
}

std::optional<std::size_t> sendfile_some(std::intptr_t, int, std::uint64_t, std::size_t) {
  throw SendfileNotAvailableError(native_sendfile_missing());
}

#endif

}  // namespace aio::detail
