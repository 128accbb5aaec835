#include <backends/syscall.hpp>
#include <core/errors.hpp>
#include <net/iocp_operation.hpp>

namespace aio::detail {

IocpProactor& iocp(ProactorEventLoop& loop) { return static_cast<IocpProactor&>(loop.proactor()); }

std::shared_ptr<IocpOperation> new_operation(ProactorEventLoop& loop, fd_t handle, bool socket) {
  iocp(loop).associate(handle);
  return std::make_shared<IocpOperation>(handle, socket);
}

void check_started(ProactorEventLoop& loop, const std::shared_ptr<IocpOperation>& op, bool ok,
                   const std::string& what) {
  if (!ok) {
    // WSAGetLastError() is GetLastError(), and WSA_IO_PENDING is ERROR_IO_PENDING.
    auto err = static_cast<int>(GetLastError());
    if (err != ERROR_IO_PENDING) throw_os_error(err, what);
  }
  iocp(loop).started(op);
}

Task<void> completion(ProactorEventLoop& loop, std::shared_ptr<IocpOperation> op, std::string what) {
  bool cancelled = false;
  while (!op->finished) {
    Future<void> done = loop.create_future<void>();
    op->on_complete = [done](ProactorOperation&) mutable {
      if (!done.done()) done.set_result();
    };
    try {
      co_await done;
    } catch (const CancelledError&) {
      cancelled = true;
    }
    if (!op->finished) iocp(loop).cancel(*op);
  }
  if (cancelled) throw CancelledError();
  if (op->error != 0) throw_os_error(static_cast<int>(op->error), what);
}

}  // namespace aio::detail
