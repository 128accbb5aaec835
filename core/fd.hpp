// fd_t: what the loop and its engines call a file descriptor.
#pragma once

#include <cstdint>

namespace aio {

// A file descriptor (POSIX) or a SOCKET / HANDLE (Windows); -1 is never valid.
using fd_t = std::intptr_t;

}  // namespace aio
