// IocpProactor: the Proactor over a Windows I/O completion port.
#pragma once

#ifdef _WIN32

#include <backends/proactor.hpp>

// winsock2.h first: windows.h alone pulls in the old winsock.h.
#include <winsock2.h>

#include <windows.h>

#include <atomic>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace aio {

// One overlapped operation on one socket (or, with `socket` false, a pipe or
// file handle): its OVERLAPPED and every buffer the OS reads or writes until
// the completion packet arrives.
class IocpOperation final : public ProactorOperation {
 public:
  explicit IocpOperation(fd_t handle, bool socket = true) noexcept : sock_(handle), socket_(socket) {}
  ~IocpOperation() override;
  IocpOperation(const IocpOperation&) = delete;
  IocpOperation& operator=(const IocpOperation&) = delete;

  OVERLAPPED* overlapped() noexcept { return &overlapped_; }
  fd_t socket() const noexcept { return sock_; }
  bool on_socket() const noexcept { return socket_; }

  // Data to send, or room to receive into.
  std::string buffer;
  WSABUF wsabuf{};
  DWORD flags = 0;
  // A peer or target address, and its length (WSARecvFrom writes it).
  alignas(8) char address[2 * (sizeof(SOCKADDR_STORAGE) + 16)] = {};
  int address_len = 0;
  // AcceptEx: the socket being accepted, closed here unless taken.
  SOCKET accepted = INVALID_SOCKET;

 private:
  OVERLAPPED overlapped_{};
  fd_t sock_;
  bool socket_;
};

class IocpProactor final : public Proactor {
 public:
  IocpProactor();
  ~IocpProactor() override;

  std::string_view name() const noexcept override { return "iocp"; }
  void associate(fd_t sock) override;
  void cancel(ProactorOperation& op) noexcept override;
  void wait(std::int64_t timeout_ns) override;
  void wakeup() noexcept override;
  void close() noexcept override;

  // Keeps `op` alive until its completion packet arrives: call it once the
  // overlapped call returned success or WSA_IO_PENDING (both queue a packet).
  void started(std::shared_ptr<IocpOperation> op);
  std::size_t pending() const noexcept { return pending_.size(); }

 private:
  struct HandleCloser {
    void operator()(HANDLE h) const noexcept { CloseHandle(h); }
  };
  using UniqueHandle = std::unique_ptr<void, HandleCloser>;

  // Dequeues one batch; false on timeout.
  bool dequeue(DWORD timeout_ms, bool run_callbacks);

  UniqueHandle port_;
  std::unordered_map<OVERLAPPED*, std::shared_ptr<IocpOperation>> pending_;
  std::vector<OVERLAPPED_ENTRY> entries_;
  std::atomic<bool> wake_posted_{false};
};

}  // namespace aio

#endif  // _WIN32
