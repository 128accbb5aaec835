// Private: the OS calls of the pipe transports (connect_read_pipe,
// connect_write_pipe): what a descriptor is, and non-blocking reads and
// writes that never raise SIGPIPE.
#pragma once

#include <core/fd.hpp>

#include <cstddef>
#include <optional>

namespace aio::detail {

// What a pipe transport may carry. A write pipe watches a fifo or socket for
// its reader going away (the end turns readable), never a character device,
// where readable means a user typed.
// A Windows pipe HANDLE cannot be watched that way: a reader gone is
// noticed at the next write.
enum class PipeKind { fifo, socket, character_device, windows_pipe };

// Checks that `fd` is an open pipe, FIFO, socket or character device (a pty,
// a tty) and makes it non-blocking, as asyncio's pipe transports do.
// std::invalid_argument for a descriptor that is not open and for any other
// kind of file (a regular file, a directory), naming `method` and the fd;
// std::system_error for other failures. Windows: `fd` is a HANDLE, which
// must be a pipe opened for overlapped I/O (only the kind is checked).
PipeKind prepare_pipe(fd_t fd, const char* method);

// POSIX only (the selector loop's pipe transports; Windows pipes go through
// the proactor). One read(2) of up to `size` bytes; 0 at end of file, which a pty
// master whose other side closed reports as EIO; std::nullopt when nothing
// is there yet. Throws std::system_error.
std::optional<std::size_t> read_pipe_some(fd_t fd, char* buffer, std::size_t size);

// POSIX only, as read_pipe_some. One write(2) of up to `size` bytes, without the SIGPIPE a pipe with
// no reader raises; std::nullopt when the pipe is full. Throws
// std::system_error (EPIPE once the reader is gone).
std::optional<std::size_t> write_pipe_some(fd_t fd, const char* data, std::size_t size);

// Whether a failed read of a pipe means its end of file: EIO, which a pty
// master reads once its other side is closed (POSIX).
bool pipe_read_error_is_eof(int code) noexcept;

// Closes a descriptor the pipe transport owned (a HANDLE on Windows).
void close_pipe(fd_t fd) noexcept;

}  // namespace aio::detail
