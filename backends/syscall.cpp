#include <backends/syscall.hpp>

#ifdef _WIN32
#include <winsock2.h>
#include <mutex>
#include <string>
#else
#include <sys/stat.h>
#include <cerrno>
#endif

namespace aio::detail {

#ifdef _WIN32

namespace {

// Win32 and WSA codes, with their system messages, comparing equal to the
// portable std::errc conditions (MinGW's system_category maps none of them,
// so `e.code() == std::errc::connection_refused` would fail on Windows only).
class WindowsCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "windows"; }
  std::string message(int code) const override {
    std::string text = std::system_category().message(code);
    // Wine 8.0 has no message text for most WSA codes ("Unknown error
    // code"): the portable condition's text says the same thing.
    std::error_condition portable = default_error_condition(code);
    if (text.rfind("Unknown error", 0) == 0 && portable.category() == std::generic_category())
      text = portable.message() + " (" + std::to_string(code) + ")";
    return text;
  }
  std::error_condition default_error_condition(int code) const noexcept override {
    switch (code) {
      case WSAECONNREFUSED:
        return std::errc::connection_refused;
      case WSAECONNRESET:
        return std::errc::connection_reset;
      case WSAECONNABORTED:
        return std::errc::connection_aborted;
      case WSAEWOULDBLOCK:
        return std::errc::operation_would_block;
      case WSAEINPROGRESS:
        return std::errc::operation_in_progress;
      case WSAEALREADY:
        return std::errc::connection_already_in_progress;
      case WSAEADDRINUSE:
        return std::errc::address_in_use;
      case WSAEADDRNOTAVAIL:
        return std::errc::address_not_available;
      case WSAEAFNOSUPPORT:
        return std::errc::address_family_not_supported;
      case WSAENOTCONN:
        return std::errc::not_connected;
      case WSAEISCONN:
        return std::errc::already_connected;
      case WSAETIMEDOUT:
        return std::errc::timed_out;
      case WSAENETUNREACH:
        return std::errc::network_unreachable;
      case WSAEHOSTUNREACH:
        return std::errc::host_unreachable;
      case WSAENETDOWN:
        return std::errc::network_down;
      case WSAENETRESET:
        return std::errc::network_reset;
      case WSAENOTSOCK:
        return std::errc::not_a_socket;
      case WSAEBADF:
        return std::errc::bad_file_descriptor;
      case WSAEINVAL:
        return std::errc::invalid_argument;
      case WSAEACCES:
        return std::errc::permission_denied;
      case WSAEMFILE:
        return std::errc::too_many_files_open;
      case WSAENOBUFS:
        return std::errc::no_buffer_space;
      case WSAEMSGSIZE:
        return std::errc::message_size;
      case WSAEINTR:
        return std::errc::interrupted;
      case WSAEOPNOTSUPP:
        return std::errc::operation_not_supported;
      case WSAEPROTONOSUPPORT:
        return std::errc::protocol_not_supported;
      case WSAESHUTDOWN:
        return std::errc::broken_pipe;
      // Win32 codes of files, pipes and processes.
      case ERROR_FILE_NOT_FOUND:
      case ERROR_PATH_NOT_FOUND:
        return std::errc::no_such_file_or_directory;
      case ERROR_ACCESS_DENIED:
        return std::errc::permission_denied;
      case ERROR_DIRECTORY:
        return std::errc::not_a_directory;
      case ERROR_BAD_EXE_FORMAT:
        return std::errc::executable_format_error;
      case ERROR_BROKEN_PIPE:  // the reader of a pipe went away
      case ERROR_NO_DATA:      // "the pipe is being closed": the same, seen by a writer
        return std::errc::broken_pipe;
      case ERROR_INVALID_HANDLE:
        return std::errc::bad_file_descriptor;
      default:
        return std::system_category().default_error_condition(code);
    }
  }
};

const std::error_category& os_category() {
  static const WindowsCategory category;
  return category;
}

}  // namespace

#else
namespace {
const std::error_category& os_category() { return std::system_category(); }
}  // namespace
#endif

void throw_os_error(int code, const std::string& what) { throw std::system_error(code, os_category(), what); }

std::exception_ptr os_error(int code, const std::string& what) {
  return std::make_exception_ptr(std::system_error(code, os_category(), what));
}

#ifdef _WIN32
void throw_crt_error(int code, const std::string& what) {
  throw std::system_error(code, std::generic_category(), what);
}
#else
void throw_crt_error(int code, const std::string& what) { throw_os_error(code, what); }
#endif

#ifdef _WIN32
int last_socket_error() noexcept { return WSAGetLastError(); }

void ensure_sockets_ready() {
  static std::once_flag once;
  std::call_once(once, [] {
    WSADATA data;
    if (int rc = WSAStartup(MAKEWORD(2, 2), &data); rc != 0) throw_os_error(rc, "WSAStartup");
  });
}
#else
int last_socket_error() noexcept { return errno; }
void ensure_sockets_ready() {}

void check_watchable(std::intptr_t fd, const char* mechanism) {
  struct stat st;
  if (fstat(static_cast<int>(fd), &st) != 0)
    throw_os_error(errno, std::string(mechanism) + ": fd " + std::to_string(fd));
  if (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode))
    throw_os_error(EPERM, std::string(mechanism) + ": fd " + std::to_string(fd) +
                              " cannot be watched (regular files and directories are always ready)");
}
#endif

}  // namespace aio::detail
