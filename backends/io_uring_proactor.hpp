// IoUringProactor: the Proactor over Linux io_uring (liburing).
#pragma once

#include <backends/proactor.hpp>

#include <memory>

namespace aio {

class IoUringProactor final : public Proactor {
 public:
  struct Options {
    // Submission queue entries (a full queue is submitted and retried, so
    // this only sets how many operations one io_uring_enter hands over).
    unsigned sq_entries = 256;
    // Completion queue entries; 0: the kernel's default (twice sq_entries).
    // Tests make it tiny to overflow it.
    unsigned cq_entries = 0;
    // The most 256 KiB receive buffers the provided-buffer ring grows to:
    // one per receive whose data arrives before the loop reaps it (about
    // one per busy connection), allocated as receives first find none.
    // Beyond it a receive polls and reads into the proactor's scratch
    // buffer, which costs a poll and a recv(2) more.
    unsigned max_buffers = 256;
  };

  // Sets up a ring. Throws std::system_error naming the reason when io_uring
  // cannot be used here: setup refused (EPERM under
  // kernel.io_uring_disabled=2 or a seccomp filter, ENOSYS) or a kernel
  // without IORING_FEAT_NODROP and IORING_FEAT_EXT_ARG (5.11).
  //
  // Test-only environment knobs, read here: AIO_IO_URING_FAIL=EPERM (or
  // ENOSYS) fails as a refused setup would; AIO_IO_URING_CQ_ENTRIES,
  // AIO_IO_URING_SQ_ENTRIES and AIO_IO_URING_MAX_BUFFERS override
  // `options`.
  explicit IoUringProactor(Options options);
  IoUringProactor() : IoUringProactor(Options{}) {}
  ~IoUringProactor() override;

  std::string_view name() const noexcept override { return "io_uring"; }
  std::shared_ptr<ProactorOperation> make_operation() override;

  void recv(ProactorOperation& op, fd_t sock, std::size_t max) override;
  void wait_readable(ProactorOperation& op, fd_t sock) override;
  void send(ProactorOperation& op, fd_t sock) override;
  bool send_received(ProactorOperation& op, fd_t sock, ProactorOperation& from, std::span<const char> data) override;
  void recvfrom(ProactorOperation& op, fd_t sock) override;
  void sendto(ProactorOperation& op, fd_t sock, const SocketAddress* to) override;
  void accept(ProactorOperation& op, fd_t listener) override;
  void connect(ProactorOperation& op, fd_t sock, const SocketAddress& to) override;
  void sendfile(ProactorOperation& op, fd_t sock, int file, std::uint64_t offset, std::size_t count) override;
  void read(ProactorOperation& op, fd_t handle) override;
  void write(ProactorOperation& op, fd_t handle) override;
  void wait_handle(ProactorOperation& op, fd_t handle) override;

  bool is_cancelled(const ProactorOperation& op) const noexcept override;
  void cancel(ProactorOperation& op) noexcept override;
  void cancel_all(fd_t fd) noexcept override;

  void wait(std::int64_t timeout_ns) override;
  void wakeup() noexcept override;
  void close() noexcept override;

  // For tests: whether the kernel ever reported a completion queue
  // overflow (IORING_SQ_CQ_OVERFLOW).
  std::size_t in_flight() const noexcept override;
  bool overflow_seen() const noexcept;
  // The setup flags the kernel accepted ("defer_taskrun", "coop_taskrun" or
  // "plain") and whether receives use a provided-buffer ring.
  std::string_view setup_mode() const noexcept;
  bool buffer_ring() const noexcept;
  // The receive buffers the ring has grown to so far (16 at first).
  std::size_t provided_buffers() const noexcept;
  // Whether accept() is served by a multishot accept per listener (kernel
  // 5.19, not 6.6 to 6.8 with defer_taskrun; AIO_IO_URING_ACCEPT=single
  // turns it off).
  bool multishot_accept() const noexcept;
  // Whether a recv started again from its own on_complete (a transport's
  // read loop) is served by a multishot receive kept armed from one recv()
  // to the next (kernel 6.0 and the buffer ring; AIO_IO_URING_RECV=single
  // turns it off), and how many such receives were armed so far.
  bool multishot_recv() const noexcept;
  std::uint64_t multishot_recvs_armed() const noexcept;

 private:
  struct Impl;
  struct Op;
  struct Listener;
  std::unique_ptr<Impl> impl_;
};

}  // namespace aio
