#include <backends/syscall.hpp>

#ifdef _WIN32
#include <winsock2.h>
#include <mutex>
#else
#include <sys/stat.h>
#include <cerrno>
#endif

namespace aio::detail {

void throw_os_error(int code, const std::string& what) { throw std::system_error(code, std::system_category(), what); }

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
