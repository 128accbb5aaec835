#include <backends/iocp_proactor.hpp>
#include <backends/syscall.hpp>

#include <utility>

namespace aio {
namespace {

// Completion keys: socket packets carry 0; the wakeup packet has no
// OVERLAPPED and this key.
constexpr ULONG_PTR wake_key = 1;
constexpr std::size_t batch = 64;
constexpr LONG status_cancelled = static_cast<LONG>(0xC0000120);  // STATUS_CANCELLED

}  // namespace

IocpOperation::~IocpOperation() {
  if (accepted != INVALID_SOCKET) closesocket(accepted);
}

IocpProactor::IocpProactor() : entries_(batch) {
  detail::ensure_sockets_ready();
  HANDLE port = CreateIoCompletionPort(INVALID_HANDLE_VALUE, nullptr, 0, 1);
  if (!port) detail::throw_os_error(static_cast<int>(GetLastError()), "CreateIoCompletionPort");
  port_.reset(port);
}

IocpProactor::~IocpProactor() { close(); }

void IocpProactor::associate(fd_t sock) {
  auto handle = reinterpret_cast<HANDLE>(sock);
  if (CreateIoCompletionPort(handle, port_.get(), 0, 0)) return;
  DWORD err = GetLastError();
  // A handle can be associated with one port only, once; a second call fails
  // with ERROR_INVALID_PARAMETER (Windows and Wine 8.0 alike). The loop
  // associates before every operation rather than tracking sockets, whose
  // handle values are reused after closesocket.
  if (err == ERROR_INVALID_PARAMETER) return;
  detail::throw_os_error(static_cast<int>(err),
                         "CreateIoCompletionPort (associating handle " + std::to_string(sock) + ")");
}

void IocpProactor::started(std::shared_ptr<IocpOperation> op) {
  OVERLAPPED* key = op->overlapped();
  pending_.emplace(key, std::move(op));
}

void IocpProactor::cancel(ProactorOperation& base) noexcept {
  auto& op = static_cast<IocpOperation&>(base);
  if (op.finished) return;
  // ERROR_NOT_FOUND: it completed already and its packet is queued.
  CancelIoEx(reinterpret_cast<HANDLE>(op.socket()), op.overlapped());
}

void IocpProactor::wakeup() noexcept {
  if (!port_ || wake_posted_.exchange(true)) return;
  PostQueuedCompletionStatus(port_.get(), 0, wake_key, nullptr);
}

void IocpProactor::wait(std::int64_t timeout_ns) {
  DWORD ms = INFINITE;
  if (timeout_ns >= 0) {
    // Rounded up: a wait never ends early only because of the millisecond unit.
    std::int64_t up = (timeout_ns + 999'999) / 1'000'000;
    ms = up >= static_cast<std::int64_t>(INFINITE) ? INFINITE - 1 : static_cast<DWORD>(up);
  }
  dequeue(ms, true);
}

bool IocpProactor::dequeue(DWORD timeout_ms, bool run_callbacks) {
  ULONG n = 0;
  if (!GetQueuedCompletionStatusEx(port_.get(), entries_.data(), static_cast<ULONG>(entries_.size()), &n, timeout_ms,
                                   FALSE)) {
    DWORD err = GetLastError();
    if (err == WAIT_TIMEOUT) return false;
    detail::throw_os_error(static_cast<int>(err), "GetQueuedCompletionStatusEx");
  }
  for (ULONG i = 0; i < n; ++i) {
    const OVERLAPPED_ENTRY& entry = entries_[i];
    if (!entry.lpOverlapped) {
      if (entry.lpCompletionKey == wake_key) wake_posted_.store(false);
      continue;
    }
    auto it = pending_.find(entry.lpOverlapped);
    if (it == pending_.end()) continue;  // not ours: cannot happen with one port per loop
    std::shared_ptr<IocpOperation> op = std::move(it->second);
    pending_.erase(it);
    op->finished = true;
    op->bytes = entry.dwNumberOfBytesTransferred;
    if (static_cast<LONG>(op->overlapped()->Internal) != 0) {
      // The packet carries an NTSTATUS; (WSA)GetOverlappedResult turns it
      // into the code a caller of WSARecv or ReadFile would have seen.
      DWORD bytes = 0, flags = 0;
      if (op->on_socket()) {
        if (!WSAGetOverlappedResult(static_cast<SOCKET>(op->socket()), op->overlapped(), &bytes, FALSE, &flags))
          op->error = static_cast<std::uint32_t>(WSAGetLastError());
      } else if (!GetOverlappedResult(reinterpret_cast<HANDLE>(op->socket()), op->overlapped(), &bytes, FALSE)) {
        op->error = GetLastError();
      }
      if (op->error == 0 || op->error == WSAENOTSOCK)
        op->error = static_cast<LONG>(op->overlapped()->Internal) == status_cancelled ? ERROR_OPERATION_ABORTED
                                                                                      : ERROR_GEN_FAILURE;
    }
    if (run_callbacks && op->on_complete) {
      auto done = std::move(op->on_complete);
      done(*op);
    }
  }
  return true;
}

void IocpProactor::close() noexcept {
  if (!port_) return;
  for (auto& [overlapped, op] : pending_) {
    op->on_complete = nullptr;
    CancelIoEx(reinterpret_cast<HANDLE>(op->socket()), overlapped);
  }
  // Every cancelled operation still delivers a packet; its OVERLAPPED and
  // buffers stay alive until then. Ten quiet seconds means the OS lost some:
  // those are leaked rather than freed under a pending write.
  int quiet = 0;
  while (!pending_.empty() && quiet < 10) {
    try {
      quiet = dequeue(1000, false) ? 0 : quiet + 1;
    } catch (const std::system_error&) {
      break;
    }
  }
  for (auto& [overlapped, op] : pending_) new std::shared_ptr<IocpOperation>(std::move(op));  // deliberate leak
  pending_.clear();
  port_.reset();
}

}  // namespace aio
