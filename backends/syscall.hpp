// The one place where OS failures become exceptions.
#pragma once

#include <cstdint>
#include <exception>
#include <string>
#include <system_error>

namespace aio::detail {

// Throws std::system_error(code, what): errno values in the system category
// on POSIX; on Windows Win32/WSA codes in a category that keeps their number
// and message and compares equal to the matching std::errc condition.
[[noreturn]] void throw_os_error(int code, const std::string& what);
// The same error as an exception_ptr, for code that reports rather than
// throws (a completion that failed).
std::exception_ptr os_error(int code, const std::string& what);

// Throws std::system_error for a failed C runtime file call (read, lseek,
// fstat): errno values, the system category on POSIX; on Windows the C
// runtime's errno is no Win32 code, so the generic category.
[[noreturn]] void throw_crt_error(int code, const std::string& what);

// The error of the last failed socket call: errno, or WSAGetLastError().
int last_socket_error() noexcept;

// Throws for the last socket error when `failed`.
inline void check_socket_call(bool failed, const std::string& what) {
  if (failed) throw_os_error(last_socket_error(), what);
}

// POSIX: throws std::system_error unless `fd` is open and readiness can mean
// something for it: EBADF for a closed one, EPERM (as epoll reports) for a
// regular file or directory, which poll/select/kqueue call always ready.
// `mechanism` names the caller in the message.
void check_watchable(std::intptr_t fd, const char* mechanism);

// Makes sure the socket library is initialised (WSAStartup on Windows).
void ensure_sockets_ready();

}  // namespace aio::detail
