// Private: how a coroutine of the proactor loop starts an overlapped
// operation on the loop's IocpProactor and waits for it; shared by the
// sock_* coroutines (net/iocp_sock_ops.cpp) and named pipes
// (net/proactor_pipe.cpp).
#pragma once

#include <backends/iocp_proactor.hpp>
#include <backends/proactor_event_loop.hpp>
#include <core/tasks.hpp>

#include <memory>
#include <string>

namespace aio::detail {

IocpProactor& iocp(ProactorEventLoop& loop);

// A new operation on `handle`, associated with the loop's port: a SOCKET,
// or with `socket` false a file or pipe handle.
std::shared_ptr<IocpOperation> new_operation(ProactorEventLoop& loop, fd_t handle, bool socket = true);

// After the overlapped call: hands the operation to the proactor when a
// completion packet will come (it succeeded, or is pending), throws
// std::system_error naming `what` otherwise.
void check_started(ProactorEventLoop& loop, const std::shared_ptr<IocpOperation>& op, bool ok, const std::string& what);

// Waits for the completion of a started operation. Cancelling the awaiting
// task cancels the operation (CancelIoEx) and still waits for its packet, so
// that the handle is left with nothing pending, then throws CancelledError.
// A failed operation is a std::system_error naming `what`.
Task<void> completion(ProactorEventLoop& loop, std::shared_ptr<IocpOperation> op, std::string what);

}  // namespace aio::detail
