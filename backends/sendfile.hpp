// Private: the OS's sendfile call, and the plain file calls of the
// read-and-send fallback, for the loop's sock_sendfile and sendfile
// (net/sendfile.cpp). A file is a POSIX file descriptor, on Windows a C
// runtime one (_open, _pipe); a socket is a descriptor or a SOCKET.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <system_error>

namespace aio::detail {

// Whether `file` is a regular file: only such a file can be sent natively,
// and only such a file is sought (a pipe has no position). Throws
// std::invalid_argument if `file` is not an open descriptor (on Windows also
// if it is in text mode: its bytes would be translated), std::system_error
// for other failures. `method` names the caller.
bool is_regular_file(int file, const char* method);

// Why this OS has no native sendfile for a selector loop, or nullptr where it
// has one (Linux, FreeBSD, macOS).
const char* native_sendfile_missing() noexcept;

// One sendfile call: up to `count` (> 0) bytes of the regular file `file`
// from `offset` to the connected stream socket `sock`. Returns how many were
// sent, 0 when `offset` is at or past the end of the file, std::nullopt when
// the socket's buffer is full. The file position does not move. Throws
// std::system_error; SendfileNotAvailableError where native_sendfile_missing().
std::optional<std::size_t> sendfile_some(std::intptr_t sock, int file, std::uint64_t offset, std::size_t count);

// True for the errors with which sendfile refuses this file and socket pair
// (e.g. a file system without mmap-like reads) rather than reporting a failed
// connection: the caller may send the file another way.
bool sendfile_refused(const std::error_code& error) noexcept;

// Linux: one write(2) of up to `size` bytes to a pipe or file without the
// SIGPIPE a pipe with no reader raises (MSG_NOSIGNAL exists for sockets
// only). Returns how many were written, std::nullopt when a non-blocking
// pipe is full. Throws std::system_error (EPIPE for a closed pipe).
std::optional<std::size_t> write_file_some(int file, const char* data, std::size_t size);

// lseek(file, offset, SEEK_SET); throws std::system_error.
void seek_file(int file, std::uint64_t offset);

// read(2): up to `size` bytes, 0 at end of file; retried on EINTR. Blocks if
// `file` is a blocking pipe with nothing in it yet. Throws std::system_error.
std::size_t read_file(int file, char* buffer, std::size_t size);

// True if `sock` is in blocking mode; false where the OS cannot tell
// (Winsock has no way to ask).
bool socket_is_blocking(std::intptr_t sock);

}  // namespace aio::detail
