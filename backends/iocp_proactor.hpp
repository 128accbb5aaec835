// IocpProactor: the Proactor over a Windows I/O completion port. Its OS
// types stay in iocp_proactor.cpp, so this header brings in no windows.h.
#pragma once

#ifdef _WIN32

#include <backends/proactor.hpp>

#include <memory>
#include <string>

namespace aio {

class IocpProactor final : public Proactor {
 public:
  IocpProactor();
  ~IocpProactor() override;

  std::string_view name() const noexcept override { return "iocp"; }
  std::shared_ptr<ProactorOperation> make_operation() override;

  // recv is a zero-byte WSARecv (it pins no buffer while it waits, as
  // libuv reads TCP on Windows), then a non-blocking recv into the
  // proactor's own buffer; wait_readable is the zero-byte WSARecv alone.
  void recv(ProactorOperation& op, fd_t sock, std::size_t max) override;
  void wait_readable(ProactorOperation& op, fd_t sock) override;
  void send(ProactorOperation& op, fd_t sock) override;
  void recvfrom(ProactorOperation& op, fd_t sock) override;
  void sendto(ProactorOperation& op, fd_t sock, const SocketAddress* to) override;
  void accept(ProactorOperation& op, fd_t listener) override;
  void connect(ProactorOperation& op, fd_t sock, const SocketAddress& to) override;
  // TransmitFile, at most 1 MiB per operation.
  void sendfile(ProactorOperation& op, fd_t sock, int file, std::uint64_t offset, std::size_t count) override;
  // ReadFile / WriteFile on an overlapped handle; a closed other end
  // (ERROR_BROKEN_PIPE and its kin) is the end of file.
  void read(ProactorOperation& op, fd_t handle) override;
  void write(ProactorOperation& op, fd_t handle) override;
  // RegisterWaitForSingleObject, whose callback posts the completion.
  void wait_handle(ProactorOperation& op, fd_t handle) override;

  bool is_cancelled(const ProactorOperation& op) const noexcept override;
  void cancel(ProactorOperation& op) noexcept override;
  void cancel_all(fd_t fd) noexcept override;
  void wait(std::int64_t timeout_ns) override;
  void wakeup() noexcept override;
  void close() noexcept override;
  std::size_t in_flight() const noexcept override;

  // Windows only (named pipes): waits for a client on a server instance of
  // a named pipe (ConnectNamedPipe); completes with success if one had
  // connected already.
  void connect_pipe(ProactorOperation& op, fd_t pipe);

  struct Impl;

 private:
  // After the overlapped call: throws std::system_error naming `what`
  // unless a completion packet will come (success, or pending); then the
  // operation is in flight.
  void launch(ProactorOperation& op, bool ok, const std::string& what);
  // A completion without I/O (a result known at once), delivered from wait().
  void post(ProactorOperation& op, int error, unsigned long bytes);
  // Dequeues one batch, running completions if `run`; false on timeout.
  bool dequeue(unsigned long timeout_ms, bool run);

  std::unique_ptr<Impl> impl_;
};

}  // namespace aio

#endif  // _WIN32
