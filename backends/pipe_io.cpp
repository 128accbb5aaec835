#include <backends/pipe_io.hpp>

#include <backends/sendfile.hpp>
#include <backends/syscall.hpp>

#include <cerrno>
#include <stdexcept>
#include <string>

#ifdef _WIN32
#include <windows.h>
#else
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#endif

namespace aio::detail {

namespace {

[[maybe_unused]] std::string on_fd(const char* call, fd_t fd) {
  return std::string(call) + " fd " + std::to_string(fd);
}

[[noreturn]] void throw_wrong_kind(const char* method, fd_t fd, const char* kind) {
  throw std::invalid_argument(std::string(method) + ": file descriptor " + std::to_string(fd) + " is " + kind +
                              "; pipe transports are for pipes, sockets and character devices only");
}

}  // namespace

#ifdef _WIN32

namespace {

// Whether `handle` was opened for synchronous I/O (without
// FILE_FLAG_OVERLAPPED), which only ntdll tells (FileModeInformation);
// false when it cannot tell.
bool is_synchronous(HANDLE handle) {
  using Query = LONG(NTAPI*)(HANDLE, void* io_status, void* info, ULONG size, int info_class);
  // Through void (*)(), which converts to any function type without a warning.
  static const auto query = reinterpret_cast<Query>(
      reinterpret_cast<void (*)()>(GetProcAddress(GetModuleHandleW(L"ntdll.dll"), "NtQueryInformationFile")));
  constexpr int file_mode_information = 16;
  constexpr ULONG synchronous_io = 0x10 | 0x20;  // FILE_SYNCHRONOUS_IO_ALERT, _NONALERT
  struct {
    LONG status;
    ULONG_PTR information;
  } io{};
  ULONG mode = 0;
  return query && query(handle, &io, &mode, sizeof mode, file_mode_information) == 0 && (mode & synchronous_io) != 0;
}

}  // namespace

PipeKind prepare_pipe(fd_t fd, const char* method) {
  HANDLE handle = reinterpret_cast<HANDLE>(fd);
  if (fd == -1 || handle == nullptr)
    throw std::invalid_argument(std::string(method) + ": the pipe handle is not valid");
  SetLastError(0);
  DWORD type = GetFileType(handle);
  if (type == FILE_TYPE_UNKNOWN && GetLastError() != 0)
    throw std::invalid_argument(std::string(method) + ": the pipe handle is not open (GetFileType: error " +
                                std::to_string(GetLastError()) + ")");
  // A console cannot be attached to a completion port (bpo-26832).
  if (type == FILE_TYPE_CHAR)
    throw std::invalid_argument(std::string(method) + ": handle " + std::to_string(fd) +
                                " is a console or character device, which cannot do overlapped I/O; pipe transports "
                                "on Windows take pipe handles opened with FILE_FLAG_OVERLAPPED");
  if (type != FILE_TYPE_PIPE) throw_wrong_kind(method, fd, type == FILE_TYPE_DISK ? "a file" : "no pipe");
  // Its reads and writes would block the loop's thread (an anonymous pipe
  // from CreatePipe is one).
  if (is_synchronous(handle))
    throw std::invalid_argument(std::string(method) + ": pipe handle " + std::to_string(fd) +
                                " was opened for synchronous I/O, which would block the loop; pipe transports on "
                                "Windows take pipe handles opened with FILE_FLAG_OVERLAPPED");
  return PipeKind::windows_pipe;
}

bool pipe_read_error_is_eof(int) noexcept { return false; }

void close_pipe(fd_t fd) noexcept { CloseHandle(reinterpret_cast<HANDLE>(fd)); }

#else

PipeKind prepare_pipe(fd_t fd, const char* method) {
  int file = static_cast<int>(fd);
  struct stat st {};
  if (fd < 0 || fstat(file, &st) != 0) {
    if (fd < 0 || errno == EBADF)
      throw std::invalid_argument(std::string(method) + ": file descriptor " + std::to_string(fd) + " is not open");
    throw_os_error(errno, on_fd("fstat", fd));
  }
  PipeKind kind;
  if (S_ISFIFO(st.st_mode))
    kind = PipeKind::fifo;
  else if (S_ISSOCK(st.st_mode))
    kind = PipeKind::socket;
  else if (S_ISCHR(st.st_mode))
    kind = PipeKind::character_device;
  else
    throw_wrong_kind(method, fd,
                     S_ISREG(st.st_mode)   ? "a regular file"
                     : S_ISDIR(st.st_mode) ? "a directory"
                                           : "no pipe");
  int flags = fcntl(file, F_GETFL);
  if (flags == -1 || (!(flags & O_NONBLOCK) && fcntl(file, F_SETFL, flags | O_NONBLOCK) == -1))
    throw_os_error(errno, on_fd("fcntl O_NONBLOCK", fd));
#if !defined(__linux__) && defined(F_SETNOSIGPIPE)
  // The BSDs and macOS: the pipe itself says no SIGPIPE (Linux blocks the
  // signal around each write instead).
  if (fcntl(file, F_SETNOSIGPIPE, 1) == -1) throw_os_error(errno, on_fd("fcntl F_SETNOSIGPIPE", fd));
#endif
  return kind;
}

std::optional<std::size_t> read_pipe_some(fd_t fd, char* buffer, std::size_t size) {
  for (;;) {
    ssize_t n = ::read(static_cast<int>(fd), buffer, size);
    if (n >= 0) return static_cast<std::size_t>(n);
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return std::nullopt;
    if (pipe_read_error_is_eof(errno)) return 0;
    throw_os_error(errno, on_fd("read", fd));
  }
}

std::optional<std::size_t> write_pipe_some(fd_t fd, const char* data, std::size_t size) {
#if defined(__linux__)
  return write_file_some(static_cast<int>(fd), data, size);
#else
  for (;;) {
    ssize_t n = ::write(static_cast<int>(fd), data, size);
    if (n >= 0) return static_cast<std::size_t>(n);
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return std::nullopt;
    throw_os_error(errno, on_fd("write", fd));
  }
#endif
}

bool pipe_read_error_is_eof(int code) noexcept { return code == EIO; }

void close_pipe(fd_t fd) noexcept { ::close(static_cast<int>(fd)); }

#endif

}  // namespace aio::detail
