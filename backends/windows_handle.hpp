// An owned Windows HANDLE, for what holds one outside a transport: the
// completion port, a child's pipe ends and process, a named pipe being set
// up. Windows only.
#pragma once

#include <windows.h>
#include <winsock2.h>  // before windows.h, which would otherwise bring the old winsock.h

#include <memory>

namespace aio::detail {

struct HandleCloser {
  void operator()(HANDLE handle) const noexcept {
    if (handle != INVALID_HANDLE_VALUE) CloseHandle(handle);
  }
};
// Empty when null; INVALID_HANDLE_VALUE (what CreateFile and CreateNamedPipe
// fail with) is never closed either.
using UniqueHandle = std::unique_ptr<void, HandleCloser>;

}  // namespace aio::detail
