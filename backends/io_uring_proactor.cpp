#include <backends/io_uring_proactor.hpp>
#include <backends/sendfile.hpp>
#include <backends/syscall.hpp>
#include <backends/waker.hpp>

#include <fcntl.h>
#include <liburing.h>
#include <poll.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <exception>
#include <new>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

namespace aio {
namespace {

// accept_multishot: a listener's own multishot accept (the accept()
// operations take from what it accepted).
enum class Kind : std::uint8_t {
  recv,
  wait_readable,
  send,
  recvfrom,
  sendto,
  accept,
  accept_multishot,
  connect,
  sendfile,
  read,
  write
};
// What the operation's request in the ring does now: the I/O itself, or a
// POLL_ADD after which the proactor makes a non-blocking call.
enum class Step : std::uint8_t { io, poll };

// user_data: an operation's address with a 4-bit start count in its low
// bits, so that a cancel aimed at one start never hits the next
// (libxev#233); 0 for requests whose completion says nothing (cancels), 1
// for the wakeup poll.
constexpr std::uint64_t ignored = 0;
constexpr std::uint64_t wake_tag = 1;
constexpr std::uint64_t generation_mask = 15;

// recv's provided-buffer ring (kernel 5.19): received data lands in one of
// these only once it arrives, so an idle connection pins no memory. As large
// as the proactor transports' reads (256 KiB, asyncio's); their pages are
// touched only as the kernel fills them. Every receive whose data arrives
// before the loop reaps needs a buffer of its own (a busy server's batch
// holds one per active connection), so the pool starts with one chunk and
// grows by a buffer each time a receive finds none, up to the proactor's
// max_buffers; past that a receive polls and reads into the scratch buffer.
// The ring is a queue, so once grown every buffer in it gets used in turn:
// when no receive has found the ring empty for `calm_waits` waits, a
// buffer beyond the first chunk that comes back is parked instead, its
// pages given back to the OS (MADV_DONTNEED), until receives find none
// again. A burst leaves no lasting memory behind.
constexpr unsigned chunk_buffers = 16;
constexpr std::uint64_t calm_waits = 4096;
constexpr unsigned buffer_size = 256 * 1024;
constexpr unsigned buffer_group = 0;
constexpr unsigned reap_batch = 256;

// Accepted sockets a listener keeps for the accept() calls to come, at
// most: beyond it the multishot is cancelled and the kernel's backlog holds
// the rest.
constexpr std::size_t accept_queue_max = 32;

// Contract 97: bumped in a forked child (pthread_atfork), so that a proactor
// can tell that it was inherited without a getpid() system call each time.
std::atomic<unsigned> fork_count{0};
void count_fork() noexcept { fork_count.fetch_add(1, std::memory_order_relaxed); }
unsigned current_fork_count() {
  static const bool registered = [] {
    if (int r = pthread_atfork(nullptr, nullptr, count_fork); r != 0) detail::throw_os_error(r, "pthread_atfork");
    return true;
  }();
  (void)registered;
  return fork_count.load(std::memory_order_relaxed);
}

// Whether the running kernel is older than major.minor (uname's release).
bool kernel_before(int major, int minor) {
  utsname name{};
  int have_major = 0, have_minor = 0;
  if (uname(&name) != 0 || std::sscanf(name.release, "%d.%d", &have_major, &have_minor) != 2) return true;
  return have_major < major || (have_major == major && have_minor < minor);
}

unsigned env_unsigned(const char* name, unsigned fallback) {
  const char* value = std::getenv(name);
  if (!value || !*value) return fallback;
  char* end = nullptr;
  unsigned long n = std::strtoul(value, &end, 10);
  if (*end || n == 0 || n > 32768)
    throw std::invalid_argument(std::string(name) + "='" + value + "': expected a count from 1 to 32768");
  return static_cast<unsigned>(n);
}

}  // namespace

struct alignas(16) IoUringProactor::Op final : ProactorOperation {
  ~Op() override {
    if (accepted_ >= 0) ::close(static_cast<int>(accepted_));
  }
  void close_accepted() noexcept {
    if (accepted_ >= 0) ::close(static_cast<int>(std::exchange(accepted_, -1)));
  }
  void accepted(int fd) noexcept { accepted_ = fd; }
  std::uint64_t tag() const noexcept { return reinterpret_cast<std::uintptr_t>(this) | generation; }

  Kind kind = Kind::recv;
  Step step = Step::io;
  std::uint8_t generation = 0;
  bool cancel_requested = false;
  // In the backlog: waiting for a free SQE to start (or, with
  // `cancel_queued`, to send its cancel).
  bool queued = false;
  bool cancel_queued = false;
  // write(): the fd whose type was last looked at, and whether it is a pipe.
  int checked_fd = -1;
  bool fifo = false;
  bool socket = false;
  int fd = -1;
  int file = -1;
  std::size_t length = 0;
  std::uint64_t offset = 0;
  // What the kernel reads or writes besides `buffer`, kept here until the
  // completion.
  msghdr msg{};
  iovec iov{};
  socklen_t address_len = 0;
  SocketAddress to;
  Op* prev = nullptr;
  Op* next = nullptr;
  Op* backlog_next = nullptr;
  // accept: the listener it waits on (or whose multishot it is), the next
  // operation waiting there, and whether its result is already decided and
  // waits for the next wait() to be delivered.
  Listener* listener = nullptr;
  Op* waiter_next = nullptr;
  bool deferred = false;
  // recv: the provided buffer its running on_complete's data is in, and
  // whether a send_received() took it (it then goes back with that send).
  // send: the buffer it sends from (send_received), or -1.
  int current_buffer = -1;
  bool buffer_lent = false;
  int lent_buffer = -1;
  // A result decided outside a CQE (defer()), delivered by the next wait().
  std::size_t deferred_bytes = 0;
  int deferred_buffer = -1;

  // recv over a multishot receive (kernel 6.0). A recv started again from
  // its own on_complete (a transport's read loop) arms one, and it stays in
  // the kernel from one recv() to the next: no request and no readiness
  // poll to set up per receive. One whose operation is not started again
  // from on_complete (paused reading) is cancelled at once; what it posted
  // meanwhile is held, in order, for the next recv() on the same socket.
  // An operation still has one request in the kernel at a time: another
  // start waits for the multishot's last CQE (start_after_multishot).
  bool multishot = false;  // the next arm() of this recv is a multishot
  bool multishot_live = false;
  bool multishot_cancel_sent = false;
  bool waiting_multishot = false;      // in flight: its result comes from the multishot
  bool start_after_multishot = false;  // in flight: armed once the multishot ended
  int multishot_fd = -1;
  struct Held {
    int res;  // bytes, 0 at end of stream, or -errno
    int buffer;
  };
  std::vector<Held> held;
  // The proactor's reference while a multishot is live or results are held
  // (the operation need not be in flight), and its place in their list.
  std::shared_ptr<ProactorOperation> multishot_self;
  Op* multishot_prev = nullptr;
  Op* multishot_next = nullptr;
};

// A listening socket with a multishot accept (kernel 5.19) kept armed on it
// while accept() operations come (contract 98): one request accepts many
// connections, each a CQE. What nobody waits for yet queues here, for the
// next accept(). Known by its inode too: a listener closed and a new one
// with the same number never mix.
struct alignas(16) IoUringProactor::Listener {
  int fd = -1;
  dev_t dev = 0;
  ino_t ino = 0;
  Op multishot;
  // The multishot is in the kernel (or waits for an SQE in the backlog).
  bool armed = false;
  // An accept() came since the last wait(): a listener nobody accepts on
  // for a whole iteration has its multishot cancelled, so that a listener
  // closed by its owner is not kept open (and accepting) by the ring.
  bool used = false;
  // Iterations since it was last used, while it holds queued sockets that
  // nobody accepts: an iteration that does not block looks at it on the
  // 1st, 2nd, 4th, ... and then every 64th, not on every one.
  unsigned idle_turns = 0;
  // Closed, or replaced by another file under the same number: no
  // accept() reaches it any more; dropped once its multishot ended.
  bool retired = false;
  // An error of the multishot that no accept() was waiting for: the next
  // one gets it (EMFILE reaches the server, which pauses).
  int error = 0;
  std::deque<int> ready;
  Op* waiters_head = nullptr;
  Op* waiters_tail = nullptr;

  ~Listener() {
    for (int fd : ready) ::close(fd);
  }
  void close_ready() noexcept {
    for (int fd : ready) ::close(fd);
    ready.clear();
  }
  void push_waiter(Op& op) {
    op.waiter_next = nullptr;
    (waiters_tail ? waiters_tail->waiter_next : waiters_head) = &op;
    waiters_tail = &op;
  }
  Op* pop_waiter() noexcept {
    Op* op = waiters_head;
    if (op) {
      waiters_head = op->waiter_next;
      if (!waiters_head) waiters_tail = nullptr;
      op->waiter_next = nullptr;
    }
    return op;
  }
  bool remove_waiter(Op& op) noexcept {
    for (Op **link = &waiters_head, *prev = nullptr; *link; prev = *link, link = &(*link)->waiter_next) {
      if (*link != &op) continue;
      *link = op.waiter_next;
      if (waiters_tail == &op) waiters_tail = prev;
      op.waiter_next = nullptr;
      return true;
    }
    return false;
  }
};

struct IoUringProactor::Impl {
  io_uring ring{};
  bool ring_ok = false;
  // IORING_SETUP_R_DISABLED: enabled by the first submission, so that
  // SINGLE_ISSUER binds the ring to the thread that runs the loop rather
  // than the one that made it.
  bool enabled = true;
  bool closing = false;
  bool overflow_seen = false;
  // Contract 98: accept() served by a multishot accept per listener
  // (kernel 5.19, as the provided-buffer ring; AIO_IO_URING_ACCEPT=single
  // turns it off for measurements).
  bool multishot_accept = false;
  // recv over multishot receives (kernel 6.0 with the buffer ring;
  // AIO_IO_URING_RECV=single turns it off for measurements). Ops with a
  // live multishot or held results are listed from multishot_head.
  bool multishot_recv = false;
  Op* multishot_head = nullptr;
  std::uint64_t multishot_arms = 0;
  // The operation whose on_complete is running: a recv started again from
  // there is a read loop, and gets a multishot.
  Op* completing = nullptr;
  // Contract 97: the fork count when the ring was made; another count means
  // this copy of the proactor lives in a forked child.
  unsigned forks = current_fork_count();
  const char* mode = "plain";
  std::unique_ptr<detail::Waker> waker = std::make_unique<detail::Waker>();
  std::atomic<bool> wake_pending{false};
  bool wake_armed = false;
  io_uring_buf_ring* buf_ring = nullptr;
  unsigned ring_entries = 0;  // a power of two, at least max_buffers
  unsigned max_buffers = 0;
  // The pool: buffer `id` is chunks[id / chunk_buffers], slot id %
  // chunk_buffers; `buffers_added` of them are known to the ring.
  std::vector<std::unique_ptr<char[]>> chunks;
  unsigned buffers_added = 0;
  std::vector<unsigned> parked;  // out of the ring, pages released
  std::uint64_t waits = 0;
  std::uint64_t empty_at = 0;  // `waits` when a receive last found the ring empty
  std::unique_ptr<char[]> scratch{new char[buffer_size]};
  Op* head = nullptr;
  std::size_t in_flight = 0;
  Op* backlog_head = nullptr;
  Op* backlog_tail = nullptr;
  std::vector<std::unique_ptr<Listener>> listeners;
  // Operations whose result is decided outside a CQE (an accepted socket
  // taken from a listener's queue, a cancelled wait for one): delivered by
  // the next wait(), never inside the call that decided it.
  std::vector<Op*> deferred;
  std::vector<Op*> delivering;  // run_deferred()'s, swapped with `deferred`: no allocation per iteration
  struct Completion {
    std::uint64_t user_data;
    std::int32_t res;
    std::uint32_t flags;
    // The provided buffer the kernel picked, or -1.
    int buffer() const noexcept {
      return (flags & IORING_CQE_F_BUFFER) ? static_cast<int>(flags >> IORING_CQE_BUFFER_SHIFT) : -1;
    }
  };
  Completion batch[reap_batch];
  io_uring_cqe* peeked[reap_batch];

  ~Impl() {
    if (ring_ok) io_uring_queue_exit(&ring);  // only when the constructor failed
  }

  bool inherited() const noexcept { return fork_count.load(std::memory_order_relaxed) != forks; }
  void check_owner() const {
    if (inherited())
      throw std::runtime_error(
          "io_uring: this loop belongs to the parent process; create a new event loop in the child after fork");
  }

  void enable() {
    if (enabled) return;
    // liburing 2.3 declares io_uring_enable_rings but does not export it
    // (its liburing.map gained it in 2.4): the register call itself.
    if (syscall(__NR_io_uring_register, ring.ring_fd, IORING_REGISTER_ENABLE_RINGS, nullptr, 0) < 0)
      detail::throw_os_error(errno, "io_uring_register(IORING_REGISTER_ENABLE_RINGS)");
    enabled = true;
  }

  // A free SQE. A full SQ is submitted first (contract 89); nullptr only if
  // the kernel takes nothing now (the caller queues and retries in wait()).
  io_uring_sqe* get_sqe() {
    if (io_uring_sqe* sqe = io_uring_get_sqe(&ring)) return sqe;
    enable();
    if (io_uring_submit(&ring) <= 0) return nullptr;
    return io_uring_get_sqe(&ring);
  }

  void push_backlog(Op& op) {
    op.queued = true;
    op.backlog_next = nullptr;
    (backlog_tail ? backlog_tail->backlog_next : backlog_head) = &op;
    backlog_tail = &op;
  }

  void remove_from_backlog(Op& op) noexcept {
    Op* prev = nullptr;
    for (Op** link = &backlog_head; *link; prev = *link, link = &(*link)->backlog_next) {
      if (*link != &op) continue;
      *link = op.backlog_next;
      if (backlog_tail == &op) backlog_tail = prev;
      op.backlog_next = nullptr;
      op.queued = op.cancel_queued = false;
      return;
    }
  }

  void arm(Op& op) {
    io_uring_sqe* sqe = get_sqe();
    if (!sqe) return push_backlog(op);
    op.generation = static_cast<std::uint8_t>((op.generation + 1) & generation_mask);
    int fd = op.fd;
    if (op.step == Step::poll) {
      bool out = op.kind == Kind::sendfile || op.kind == Kind::write;
      io_uring_prep_poll_add(sqe, fd, out ? POLLOUT : POLLIN);
    } else {
      switch (op.kind) {
        case Kind::recv:
          if (op.multishot) {
            io_uring_prep_recv_multishot(sqe, fd, nullptr, 0, 0);  // each receive takes a whole buffer
            multishot_armed(op);
          } else
            io_uring_prep_recv(sqe, fd, nullptr, std::min<std::size_t>(op.length, buffer_size), 0);
          sqe->flags |= IOSQE_BUFFER_SELECT;
          sqe->buf_group = buffer_group;
          break;
        case Kind::send:
          if (op.lent_buffer >= 0)
            io_uring_prep_send(sqe, fd, op.iov.iov_base, op.iov.iov_len, MSG_NOSIGNAL);
          else
            io_uring_prep_send(sqe, fd, op.buffer.data(), op.buffer.size(), MSG_NOSIGNAL);
          break;
        case Kind::recvfrom:
          io_uring_prep_recvmsg(sqe, fd, &op.msg, 0);
          break;
        case Kind::sendto:
          io_uring_prep_sendmsg(sqe, fd, &op.msg, MSG_NOSIGNAL);
          break;
        case Kind::accept:
          io_uring_prep_accept(sqe, fd, static_cast<sockaddr*>(op.address.data()), &op.address_len,
                               SOCK_NONBLOCK | SOCK_CLOEXEC);
          break;
        case Kind::accept_multishot:
          // No address: each accept would overwrite the last one's before
          // its CQE is read; the peer comes from getpeername().
          io_uring_prep_multishot_accept(sqe, fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
          break;
        case Kind::connect:
          io_uring_prep_connect(sqe, fd, static_cast<const sockaddr*>(op.to.data()), op.to.size());
          break;
        case Kind::read:
          io_uring_prep_read(sqe, fd, op.buffer.data(), static_cast<unsigned>(op.buffer.size()), -1);
          break;
        case Kind::write:
          io_uring_prep_write(sqe, fd, op.buffer.data(), static_cast<unsigned>(op.buffer.size()), -1);
          break;
        case Kind::wait_readable:
        case Kind::sendfile:
          break;  // always Step::poll
      }
    }
    io_uring_sqe_set_data64(sqe, op.tag());
  }

  void send_cancel(Op& op) {
    if (op.multishot_live) op.multishot_cancel_sent = true;
    io_uring_sqe* sqe = get_sqe();
    if (!sqe) {
      op.cancel_queued = true;
      return push_backlog(op);
    }
    io_uring_prep_cancel64(sqe, op.tag(), 0);
    io_uring_sqe_set_data64(sqe, ignored);
  }

  void arm_wake() {
    io_uring_sqe* sqe = get_sqe();
    if (!sqe) return;  // retried by the next wait()
    // Multishot (5.13): one request serves every wakeup. A poll rather than
    // a READ: an eventfd without FMODE_NOWAIT would pin an io-wq worker.
    io_uring_prep_poll_multishot(sqe, static_cast<int>(waker->read_fd()), POLLIN);
    io_uring_sqe_set_data64(sqe, wake_tag);
    wake_armed = true;
  }

  // Arms what waited for an SQE (and cancels it right after if a cancel
  // came meanwhile), or sends a cancel that waited.
  void flush_backlog() {
    Op* op = std::exchange(backlog_head, nullptr);
    backlog_tail = nullptr;
    while (op) {
      Op* next = std::exchange(op->backlog_next, nullptr);
      op->queued = false;
      if (std::exchange(op->cancel_queued, false))
        send_cancel(*op);
      else if (op->kind == Kind::accept_multishot && (closing || op->listener->retired))
        op->listener->armed = false;  // never reached the kernel
      else if (closing)
        finish(*op, ECANCELED, 0);  // never reached the kernel; runs no callback
      else {
        arm(*op);
        if (op->cancel_requested && !op->queued) send_cancel(*op);
      }
      op = next;
    }
  }

  void link(Op& op) {
    op.prev = nullptr;
    op.next = head;
    if (head) head->prev = &op;
    head = &op;
    ++in_flight;
  }
  void unlink(Op& op) {
    (op.prev ? op.prev->next : head) = op.next;
    if (op.next) op.next->prev = op.prev;
    op.prev = op.next = nullptr;
    --in_flight;
  }

  char* buffer_at(unsigned id) const noexcept {
    return chunks[id / chunk_buffers].get() + std::size_t{id % chunk_buffers} * buffer_size;
  }
  void ring_add(unsigned id) {
    io_uring_buf_ring_add(buf_ring, buffer_at(id), buffer_size, static_cast<unsigned short>(id),
                          io_uring_buf_ring_mask(ring_entries), 0);
    io_uring_buf_ring_advance(buf_ring, 1);
  }
  void return_buffer(unsigned id) {
    if (id < chunk_buffers || waits - empty_at < calm_waits || closing) return ring_add(id);
    (void)madvise(buffer_at(id), buffer_size, MADV_DONTNEED);  // only a hint: kept either way
    parked.push_back(id);                                      // reserved for max_buffers: no allocation
  }
  // A receive found the ring empty: the parked buffers back, else one more
  // buffer, false at max_buffers (or when memory for a new chunk cannot be
  // had: the caller falls back to the scratch buffer).
  bool add_buffer() noexcept {
    empty_at = waits;
    if (!parked.empty()) {
      for (unsigned id : parked) ring_add(id);
      parked.clear();
      return true;
    }
    if (buffers_added >= max_buffers) return false;
    if (buffers_added % chunk_buffers == 0) {
      // Not zeroed: pages are touched only as the kernel fills them.
      char* chunk = new (std::nothrow) char[std::size_t{chunk_buffers} * buffer_size];
      if (!chunk) return false;
      chunks.emplace_back(chunk);
    }
    ring_add(buffers_added++);
    return true;
  }

  void finish(Op& op, int error, std::size_t bytes, int buffer_id = -1) {
    op.error = error;
    op.bytes = bytes;
    unlink(op);
    op.waiting_multishot = op.start_after_multishot = false;
    op.current_buffer = buffer_id;
    if (buffer_id >= 0 && error == 0 && op.kind == Kind::recv)
      op.data = {buffer_at(static_cast<unsigned>(buffer_id)), bytes};
    int lent = std::exchange(op.lent_buffer, -1);
    std::shared_ptr<ProactorOperation> self = IoUringProactor::mark_finished(op);
    Op* outer = std::exchange(completing, &op);
    auto after = [&] {
      completing = outer;
      // Back to the kernel only after on_complete: op.data pointed into the
      // received buffer until then (unless a send_received() keeps it), and
      // a send's on_complete may still copy from the buffer it sent.
      op.current_buffer = -1;
      if (buffer_id >= 0 && !std::exchange(op.buffer_lent, false)) return_buffer(static_cast<unsigned>(buffer_id));
      if (lent >= 0) return_buffer(static_cast<unsigned>(lent));
      // A multishot whose operation was not started again from on_complete
      // (its reader paused, or left) would go on taking buffers: cancelled,
      // what it posts meanwhile held.
      if (op.multishot_live && !op.in_flight() && !closing) cancel_multishot(op);
    };
    try {
      IoUringProactor::complete(op, !closing);
    } catch (...) {
      after();
      throw;
    }
    after();
  }

  // The internal retries (EAGAIN after a poll, ENOBUFS, a -EINTR result)
  // re-arm, unless a cancel was asked for: its request may already have
  // missed the new one.
  void retry(Op& op, Step step) {
    if (op.cancel_requested || closing) return finish(op, ECANCELED, 0);
    op.step = step;
    arm(op);
  }

  // The poll said ready: the non-blocking call it stood for.
  void after_poll(Op& op) {
    long n = 0;
    int error = 0;
    try {
      switch (op.kind) {
        case Kind::wait_readable:
          return finish(op, 0, 0);
        case Kind::recv:
          n = ::recv(op.fd, scratch.get(), std::min<std::size_t>(op.length, buffer_size), MSG_DONTWAIT);
          error = n < 0 ? errno : 0;
          if (n >= 0) op.data = {scratch.get(), static_cast<std::size_t>(n)};
          break;
        case Kind::read:
          n = ::read(op.fd, op.buffer.data(), op.buffer.size());
          error = n < 0 ? errno : 0;
          break;
        case Kind::write:
          if (auto sent = detail::write_file_some(op.fd, op.buffer.data(), op.buffer.size()))
            n = static_cast<long>(*sent);
          else
            error = EAGAIN;
          break;
        case Kind::sendfile:
          if (auto sent = detail::sendfile_some(op.fd, op.file, op.offset, op.length))
            n = static_cast<long>(*sent);
          else
            error = EAGAIN;
          break;
        default:
          break;
      }
    } catch (const std::system_error& e) {
      error = e.code().value();
    }
    if (error == EAGAIN || error == EWOULDBLOCK || error == EINTR) return retry(op, Step::poll);
    finish(op, error, error ? 0 : static_cast<std::size_t>(n));
  }

  void handle(const Completion& c) {
    if (c.user_data == ignored) return;  // cancels: -ENOENT/-EALREADY are normal outcomes
    if (c.user_data == wake_tag) {
      waker->drain();
      wake_pending.store(false, std::memory_order_release);
      if (!(c.flags & IORING_CQE_F_MORE)) {
        wake_armed = false;
        if (!closing) arm_wake();
      }
      return;
    }
    auto& op = *reinterpret_cast<Op*>(c.user_data & ~generation_mask);
    if (op.kind == Kind::accept_multishot) return handle_multishot(op, c);
    if (op.multishot_live) return handle_recv_multishot(op, c);
    int buffer_id = c.buffer();
    if (closing) {
      if (op.kind == Kind::accept && op.step == Step::io && c.res >= 0) op.accepted(c.res);
      return finish(op, c.res < 0 ? -c.res : ECANCELED, 0, buffer_id);
    }
    if (c.res == -EINTR) return retry(op, op.step);  // contract 95: a signal is no result
    if (op.step == Step::poll) {
      if (c.res < 0) return finish(op, -c.res, 0);
      return after_poll(op);
    }
    // No buffer was free (the ring is shared by every receive): one more
    // for the ring and the receive again; at the limit, wait for data,
    // then take it into the scratch buffer. Nothing is lost either way.
    if (op.kind == Kind::recv && c.res == -ENOBUFS) return retry(op, add_buffer() ? Step::io : Step::poll);
    // A non-blocking fd without FMODE_NOWAIT (a tty) says EAGAIN instead of
    // waiting (contract 96): poll it, then read(2).
    if (op.kind == Kind::read && c.res == -EAGAIN) return retry(op, Step::poll);
    if (c.res < 0) return finish(op, -c.res, 0, buffer_id);
    switch (op.kind) {
      case Kind::recvfrom:
        op.address.set_size(std::min<unsigned>(op.msg.msg_namelen, SocketAddress::capacity));
        break;
      case Kind::accept:
        op.accepted(c.res);
        op.address.set_size(std::min<unsigned>(op.address_len, SocketAddress::capacity));
        return finish(op, 0, 0);
      default:
        break;
    }
    finish(op, 0, static_cast<std::size_t>(c.res), buffer_id);
  }

  // ---- accept() over a listener's multishot (contract 98) ----

  void defer(Op& op, int error, std::size_t bytes = 0, int buffer_id = -1) {
    op.error = error;
    op.deferred_bytes = bytes;
    op.deferred_buffer = buffer_id;
    op.deferred = true;
    deferred.push_back(&op);
  }

  static void take_socket(Op& op, int fd) noexcept {
    op.accepted(fd);
    op.address = {};
    auto len = static_cast<socklen_t>(SocketAddress::capacity);
    if (getpeername(fd, static_cast<sockaddr*>(op.address.data()), &len) == 0)
      op.address.set_size(std::min<unsigned>(len, SocketAddress::capacity));
  }

  void arm_listener(Listener& l) {
    l.armed = true;
    l.multishot.cancel_requested = false;
    arm(l.multishot);
  }

  void cancel_listener(Listener& l) {
    Op& m = l.multishot;
    if (!l.armed || m.cancel_requested) return;
    m.cancel_requested = true;
    if (m.queued) {
      m.cancel_queued = false;  // flush_backlog() arms it, then cancels it
      return;
    }
    send_cancel(m);
  }

  // No accept() reaches `l` any more: its queue is closed, its waiters end
  // with `error`, its multishot is cancelled.
  void retire(Listener& l, int error) {
    l.retired = true;
    l.close_ready();
    while (Op* waiter = l.pop_waiter()) defer(*waiter, error);
    cancel_listener(l);
  }

  static bool same_file(const Listener& l, const struct stat& st) noexcept {
    return st.st_dev == l.dev && st.st_ino == l.ino;
  }

  Listener& listener_for(int fd) {
    struct stat st {};
    if (fstat(fd, &st) != 0) detail::throw_os_error(errno, "io_uring accept: fstat(fd " + std::to_string(fd) + ")");
    for (auto& l : listeners) {
      if (l->retired || l->fd != fd) continue;
      if (same_file(*l, st)) return *l;
      retire(*l, EBADF);  // closed, and the number taken by this socket
      break;
    }
    auto l = std::make_unique<Listener>();
    l->fd = fd;
    l->dev = st.st_dev;
    l->ino = st.st_ino;
    l->multishot.kind = Kind::accept_multishot;
    l->multishot.step = Step::io;
    l->multishot.fd = fd;
    l->multishot.listener = l.get();
    listeners.push_back(std::move(l));
    return *listeners.back();
  }

  void start_accept(Op& op) {
    Listener& l = listener_for(op.fd);
    IoUringProactor::mark_started(op);
    link(op);
    op.listener = &l;
    l.used = true;
    if (!l.ready.empty()) {
      int fd = l.ready.front();
      l.ready.pop_front();
      take_socket(op, fd);
      defer(op, 0);
    } else if (l.error) {
      defer(op, std::exchange(l.error, 0));
    } else {
      l.push_waiter(op);
      if (!l.armed) arm_listener(l);
    }
  }

  void handle_multishot(Op& m, const Completion& c) {
    Listener& l = *m.listener;
    bool open = !closing && !l.retired;
    Op* waiter = nullptr;
    int error = 0;
    if (c.res >= 0) {
      if (!open) {
        ::close(c.res);
      } else if ((waiter = l.pop_waiter())) {
        take_socket(*waiter, c.res);
      } else {
        l.ready.push_back(c.res);
        if (l.ready.size() >= accept_queue_max) cancel_listener(l);  // the kernel's backlog holds the rest
      }
    } else if (open && c.res != -ECANCELED && c.res != -EINTR && c.res != -EAGAIN) {
      // EMFILE, ENFILE, ENOMEM, ECONNABORTED...: the accepting code decides
      // (a server pauses a second); the multishot is not re-armed until an
      // accept() asks again, so an error never loops.
      error = -c.res;
      if (!(waiter = l.pop_waiter()) && !l.error) l.error = error;
    }
    if (!(c.flags & IORING_CQE_F_MORE)) {
      l.armed = false;
      m.cancel_requested = false;
      if (open) {
        if (l.waiters_head && !l.error) {
          arm_listener(l);
        } else if (!l.waiters_head) {
          // Ended while nobody waits (cancelled when idle, or an error): if
          // its owner closed the listener meanwhile, what it queued goes.
          struct stat st {};
          if (fstat(l.fd, &st) != 0 || !same_file(l, st)) retire(l, EBADF);
        }
      }
    }
    if (waiter) finish(*waiter, error, 0);
  }

  // ---- recv over a multishot receive (Op::multishot) ----

  void multishot_armed(Op& op) {
    op.multishot_live = true;
    op.multishot_cancel_sent = false;
    op.multishot_fd = op.fd;
    ++multishot_arms;
    if (op.multishot_self) return;
    op.multishot_self = op.shared_from_this();
    op.multishot_prev = nullptr;
    op.multishot_next = multishot_head;
    if (multishot_head) multishot_head->multishot_prev = &op;
    multishot_head = &op;
  }

  // Drops the proactor's reference once no multishot is live and nothing
  // is held; it may be the last one, so `op` is not used after.
  void release_if_idle(Op& op) noexcept {
    if (op.multishot_live || !op.held.empty() || !op.multishot_self) return;
    (op.multishot_prev ? op.multishot_prev->multishot_next : multishot_head) = op.multishot_next;
    if (op.multishot_next) op.multishot_next->multishot_prev = op.multishot_prev;
    op.multishot_prev = op.multishot_next = nullptr;
    std::shared_ptr<ProactorOperation> last = std::move(op.multishot_self);
  }

  // The ring goes without reaping (never enabled, or a forked child's
  // copy): no multishot is left to wait for.
  void forget_multishots() noexcept {
    while (Op* op = multishot_head) {
      op->held.clear();
      op->multishot_live = false;
      release_if_idle(*op);
    }
  }

  void cancel_multishot(Op& op) {
    if (op.multishot_live && !op.multishot_cancel_sent) send_cancel(op);
  }

  void drop_held(Op& op) {
    for (const Op::Held& h : op.held)
      if (h.buffer >= 0) return_buffer(static_cast<unsigned>(h.buffer));
    op.held.clear();
  }

  // A start of `op` other than the next receive its multishot serves
  // (another socket, kind or size): the multishot is cancelled and the new
  // start armed once it ended. What it held goes: the operation left that
  // socket (a transport never does; its reads end with it).
  void leave_multishot(Op& op) {
    drop_held(op);
    cancel_multishot(op);
    release_if_idle(op);  // the caller holds a reference
  }

  // recv() on an operation with held results: the first is its result,
  // delivered by the next wait().
  void take_held(Op& op) {
    Op::Held h = op.held.front();
    op.held.erase(op.held.begin());
    IoUringProactor::mark_started(op);
    link(op);
    defer(op, h.res < 0 ? -h.res : 0, h.res > 0 ? static_cast<std::size_t>(h.res) : 0, h.buffer);
    release_if_idle(op);  // in flight: the operation holds itself
  }

  void handle_recv_multishot(Op& op, const Completion& c) {
    int buffer_id = c.buffer();
    bool more = (c.flags & IORING_CQE_F_MORE) != 0;
    if (!more) op.multishot_live = false;
    // Data, the end of the stream or a socket error are results; ECANCELED,
    // ENOBUFS (the ring ran dry) and EINTR only end the multishot.
    bool result = c.res >= 0 || (c.res != -ECANCELED && c.res != -ENOBUFS && c.res != -EINTR);
    if (closing || !result || op.start_after_multishot) {
      if (buffer_id >= 0) return_buffer(static_cast<unsigned>(buffer_id));
    } else if (op.waiting_multishot) {
      // Also when a cancel was asked for: a result that won the race stands.
      finish(op, c.res < 0 ? -c.res : 0, c.res > 0 ? static_cast<std::size_t>(c.res) : 0, buffer_id);
    } else {
      op.held.push_back({c.res, buffer_id});
      cancel_multishot(op);  // already sent when its on_complete did not start it again
    }
    if (!more) multishot_ended(op, c.res);
  }

  // The multishot's last CQE was handled: an operation still waiting on it
  // (its result never came) or waiting to start something else goes on.
  void multishot_ended(Op& op, int res) {
    // A cancel still waiting for an SQE has nothing left to cancel.
    if (op.queued && op.cancel_queued) remove_from_backlog(op);
    // Started again by the on_complete just run: already armed (or queued).
    if (op.multishot_live || op.queued) return release_if_idle(op);
    if (op.in_flight() && !op.deferred && (op.waiting_multishot || op.start_after_multishot)) {
      bool waited = std::exchange(op.waiting_multishot, false);
      op.start_after_multishot = false;
      if (closing || op.cancel_requested) {
        finish(op, ECANCELED, 0);
      } else {
        if (waited) {
          // Ended without a result for it (cancelled while idle and
          // started again since, or out of buffers): another receive.
          bool io = res != -ENOBUFS || add_buffer();
          op.step = io ? Step::io : Step::poll;
          op.multishot = io && multishot_recv;
          op.waiting_multishot = op.multishot;
        }
        arm(op);
      }
    }
    release_if_idle(op);
  }

  // Delivers what defer() decided, callbacks' failures kept as reap()'s.
  void run_deferred(std::exception_ptr& failure) {
    if (deferred.empty()) return;
    delivering.swap(deferred);  // what the callbacks defer waits for the next call
    for (Op* op : delivering) {
      op->deferred = false;
      try {
        finish(*op, op->error, op->deferred_bytes, op->deferred_buffer);
      } catch (...) {
        if (!failure) failure = std::current_exception();
      }
    }
    delivering.clear();
  }

  // An iteration's bookkeeping of the listeners: a retired one whose
  // multishot ended goes; one nobody accepted on since the last wait() has
  // its multishot cancelled (its owner may have closed it: the ring's
  // reference would keep it listening). One whose multishot has ended with
  // sockets still queued (the queue full, or idle) is looked at: if its
  // owner closed it without the proactor knowing (a plain close after
  // sock_accept, Server::close), the queued connections close now, as the
  // kernel's backlog would have been reset, rather than with the loop: on
  // every iteration that may block (`may_block`), else less and less often
  // (Listener::idle_turns), so a busy loop pays little. One accepted on in
  // this iteration waits for the next, which the deferred result of that
  // accept keeps from blocking: no fstat on a busy listener.
  void tend_listeners(bool may_block) {
    for (std::size_t i = 0; i < listeners.size();) {
      Listener& l = *listeners[i];
      if (l.retired && !l.armed) {
        listeners[i] = std::move(listeners.back());
        listeners.pop_back();
        continue;
      }
      if (!l.retired && !l.used && !l.waiters_head) {
        if (l.armed) {
          cancel_listener(l);
        } else if (!l.ready.empty() && (look_now(l) || may_block)) {
          struct stat st {};
          if (fstat(l.fd, &st) != 0 || !same_file(l, st)) retire(l, EBADF);
        }
      }
      if (l.used) l.idle_turns = 0;
      l.used = false;
      ++i;
    }
  }

  static bool look_now(Listener& l) noexcept {
    unsigned turn = ++l.idle_turns;
    if (turn >= 128) l.idle_turns = 64;  // bounded: every 64th from here on
    return (turn & (turn - 1)) == 0 || turn % 64 == 0;
  }

  bool listeners_armed() const noexcept {
    return std::any_of(listeners.begin(), listeners.end(), [](const auto& l) { return l->armed; });
  }

  // Takes every completion there is, in batches copied out of the CQ first
  // so that callbacks may start operations (and submit) meanwhile. An
  // overflowed CQ (NODROP keeps the rest in the kernel) is flushed with
  // io_uring_get_events and reaped in the same call (contract 88).
  void reap(std::exception_ptr& failure) {
    for (int round = 0; round < 64; ++round) {
      if (io_uring_cq_has_overflow(&ring)) {
        overflow_seen = true;
        io_uring_get_events(&ring);
      }
      unsigned n = io_uring_peek_batch_cqe(&ring, peeked, reap_batch);
      if (n == 0) return;
      for (unsigned i = 0; i < n; ++i) batch[i] = {peeked[i]->user_data, peeked[i]->res, peeked[i]->flags};
      io_uring_cq_advance(&ring, n);
      for (unsigned i = 0; i < n; ++i) {
        try {
          handle(batch[i]);
        } catch (...) {
          if (!failure) failure = std::current_exception();
        }
      }
    }
  }

  // `receive`: a recv of a whole buffer, which a multishot of the same
  // socket serves.
  Op& begin(ProactorOperation& base, Kind kind, fd_t fd, Step step, bool receive = false) {
    auto& op = static_cast<Op&>(base);
    check_owner();
    if (op.in_flight()) throw std::logic_error("io_uring: an operation was started while still in flight");
    if (closing) throw std::logic_error("io_uring: the proactor is closed");
    if ((op.multishot_live || !op.held.empty()) && !(receive && op.multishot_fd == static_cast<int>(fd)))
      leave_multishot(op);
    op.multishot = false;
    op.kind = kind;
    op.step = step;
    op.fd = static_cast<int>(fd);
    op.error = 0;
    op.bytes = 0;
    op.data = {};
    op.cancel_requested = false;
    op.listener = nullptr;
    return op;
  }

  void launch(Op& op) {
    IoUringProactor::mark_started(op);
    link(op);
    if (op.multishot_live) {
      op.start_after_multishot = true;  // one request per operation in the kernel
      return;
    }
    arm(op);
  }

  // One io_uring_enter: submits what is queued and waits (EXT_ARG carries
  // the timeout: no TIMEOUT request to remove afterwards). Returns false on
  // an error other than the expected ones.
  bool enter(std::int64_t timeout_ns, int* error) {
    enable();
    int r;
    if (timeout_ns == 0) {
      r = io_uring_submit_and_get_events(&ring);
    } else {
      __kernel_timespec ts{};
      ts.tv_sec = timeout_ns / 1'000'000'000;
      ts.tv_nsec = timeout_ns % 1'000'000'000;
      io_uring_cqe* cqe = nullptr;
      r = io_uring_submit_and_wait_timeout(&ring, &cqe, 1, timeout_ns < 0 ? nullptr : &ts, nullptr);
    }
    // ETIME: the timeout; EINTR: a signal, a wakeup like any other; EBUSY
    // and EAGAIN: completions must be reaped first (silk#81).
    if (r >= 0 || r == -ETIME || r == -EINTR || r == -EBUSY || r == -EAGAIN) return true;
    *error = -r;
    return false;
  }
};

IoUringProactor::IoUringProactor(Options options) : impl_(std::make_unique<Impl>()) {
  Impl& s = *impl_;
  if (const char* fail = std::getenv("AIO_IO_URING_FAIL"); fail && *fail) {
    // Test only: fail as a kernel with kernel.io_uring_disabled=2 (EPERM)
    // or without io_uring (ENOSYS) does.
    int code = std::string_view(fail) == "ENOSYS" ? ENOSYS : EPERM;
    detail::throw_os_error(code, std::string("io_uring_setup (refused by AIO_IO_URING_FAIL=") + fail + ")");
  }
  unsigned sq = env_unsigned("AIO_IO_URING_SQ_ENTRIES", options.sq_entries);
  unsigned cq = env_unsigned("AIO_IO_URING_CQ_ENTRIES", options.cq_entries);
  // DEFER_TASKRUN (6.1) runs completions only when the loop enters the
  // kernel to wait, so none interrupts it meanwhile; COOP_TASKRUN (5.19)
  // at least avoids the interrupting IPIs. Older kernels refuse the flags
  // with EINVAL: try the next set. SUBMIT_ALL (5.18): one bad request does
  // not stop the rest of a batch. No SQPOLL (CVE-2024-22017, libuv#4089).
  struct Attempt {
    unsigned flags;
    const char* mode;
  };
  const Attempt attempts[] = {
      {IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_R_DISABLED | IORING_SETUP_SUBMIT_ALL,
       "defer_taskrun"},
      {IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SUBMIT_ALL, "coop_taskrun"},
      {0, "plain"},
  };
  const char* only = std::getenv("AIO_IO_URING_SETUP");  // for measurements
  int r = -EINVAL;
  io_uring_params params{};
  for (const Attempt& attempt : attempts) {
    if (only && *only && std::string_view(only) != attempt.mode) continue;
    params = {};
    params.flags = attempt.flags | (cq ? IORING_SETUP_CQSIZE : 0);
    params.cq_entries = cq;
    r = io_uring_queue_init_params(sq, &s.ring, &params);
    if (r != -EINVAL) {
      s.mode = attempt.mode;
      s.enabled = !(attempt.flags & IORING_SETUP_R_DISABLED);
      break;
    }
  }
  if (r < 0) detail::throw_os_error(-r, "io_uring_setup");
  s.ring_ok = true;
  // Without NODROP (5.5) a full CQ loses completions (liburing#969); without
  // EXT_ARG (5.11) a timed wait needs a TIMEOUT request per wait.
  if (!(params.features & IORING_FEAT_NODROP) || !(params.features & IORING_FEAT_EXT_ARG)) {
    io_uring_queue_exit(&s.ring);
    s.ring_ok = false;
    detail::throw_os_error(ENOTSUP,
                           "io_uring: the kernel lacks IORING_FEAT_NODROP or IORING_FEAT_EXT_ARG (Linux 5.11)");
  }
  // Provided buffers for recv; without them (before 5.19) recv polls and
  // then reads into the scratch buffer.
  s.max_buffers = env_unsigned("AIO_IO_URING_MAX_BUFFERS", options.max_buffers);
  s.parked.reserve(s.max_buffers);
  s.ring_entries = std::bit_ceil(s.max_buffers);
  void* ring_memory = nullptr;
  std::size_t ring_bytes = s.ring_entries * sizeof(io_uring_buf);
  if (posix_memalign(&ring_memory, static_cast<std::size_t>(sysconf(_SC_PAGESIZE)), ring_bytes) == 0) {
    s.buf_ring = static_cast<io_uring_buf_ring*>(ring_memory);
    io_uring_buf_ring_init(s.buf_ring);
    io_uring_buf_reg reg{};
    reg.ring_addr = reinterpret_cast<std::uintptr_t>(ring_memory);
    reg.ring_entries = s.ring_entries;
    reg.bgid = buffer_group;
    if (io_uring_register_buf_ring(&s.ring, &reg, 0) == 0) {
      for (unsigned i = 0; i < std::min(chunk_buffers, s.max_buffers); ++i)
        if (!s.add_buffer()) break;                                  // none at all: receives poll
      const char* accept_mode = std::getenv("AIO_IO_URING_ACCEPT");  // for measurements
      // 6.6 to 6.8 could hand a DEFER_TASKRUN ring's multishot accept a
      // descriptor number that is not the socket's (liburing#1062).
      bool broken = std::string_view(s.mode) == "defer_taskrun" && kernel_before(6, 9);
      s.multishot_accept = !broken && (!accept_mode || std::string_view(accept_mode) != "single");
      const char* recv_mode = std::getenv("AIO_IO_URING_RECV");  // for measurements
      s.multishot_recv = !kernel_before(6, 0) && (!recv_mode || std::string_view(recv_mode) != "single");
    } else {
      std::free(ring_memory);
      s.buf_ring = nullptr;
    }
  }
  s.arm_wake();
}

IoUringProactor::~IoUringProactor() { close(); }

std::shared_ptr<ProactorOperation> IoUringProactor::make_operation() { return std::make_shared<Op>(); }

void IoUringProactor::recv(ProactorOperation& base, fd_t sock, std::size_t max) {
  Impl& s = *impl_;
  bool whole = max >= buffer_size;
  Op& op = s.begin(base, Kind::recv, sock, s.buffers_added ? Step::io : Step::poll, whole);
  op.length = max;
  if (!op.held.empty()) return s.take_held(op);  // kept only for this socket
  if (op.multishot_live && whole && op.multishot_fd == op.fd) {
    // The multishot armed for this socket brings the result (or, if it was
    // cancelled while idle, ends and is armed again).
    IoUringProactor::mark_started(op);
    s.link(op);
    op.waiting_multishot = true;
    return;
  }
  // Started again from its own on_complete: a read loop, which a multishot
  // serves from here on.
  op.multishot = whole && s.multishot_recv && op.step == Step::io && s.completing == &op;
  op.waiting_multishot = op.multishot;
  s.launch(op);
}

void IoUringProactor::wait_readable(ProactorOperation& base, fd_t sock) {
  impl_->launch(impl_->begin(base, Kind::wait_readable, sock, Step::poll));
}

void IoUringProactor::wait_handle(ProactorOperation& base, fd_t handle) { wait_readable(base, handle); }

void IoUringProactor::send(ProactorOperation& base, fd_t sock) {
  impl_->launch(impl_->begin(base, Kind::send, sock, Step::io));
}

bool IoUringProactor::send_received(ProactorOperation& base, fd_t sock, ProactorOperation& from_base,
                                    std::span<const char> data) {
  Impl& s = *impl_;
  auto& from = static_cast<Op&>(from_base);
  if (from.current_buffer < 0 || from.buffer_lent || data.empty()) return false;
  const char* start = s.buffer_at(static_cast<unsigned>(from.current_buffer));
  if (data.data() < start || data.data() + data.size() > start + buffer_size) return false;
  Op& op = s.begin(base, Kind::send, sock, Step::io);
  op.iov = {const_cast<char*>(data.data()), data.size()};
  op.lent_buffer = from.current_buffer;
  from.buffer_lent = true;
  s.launch(op);
  return true;
}

void IoUringProactor::recvfrom(ProactorOperation& base, fd_t sock) {
  Op& op = impl_->begin(base, Kind::recvfrom, sock, Step::io);
  op.iov = {op.buffer.data(), op.buffer.size()};
  op.msg = {};
  op.msg.msg_iov = &op.iov;
  op.msg.msg_iovlen = 1;
  op.msg.msg_name = op.address.data();
  op.msg.msg_namelen = SocketAddress::capacity;
  impl_->launch(op);
}

void IoUringProactor::sendto(ProactorOperation& base, fd_t sock, const SocketAddress* to) {
  Op& op = impl_->begin(base, Kind::sendto, sock, Step::io);
  op.iov = {op.buffer.data(), op.buffer.size()};
  op.msg = {};
  op.msg.msg_iov = &op.iov;
  op.msg.msg_iovlen = 1;
  if (to) {
    op.to = *to;
    op.msg.msg_name = op.to.data();
    op.msg.msg_namelen = op.to.size();
  }
  impl_->launch(op);
}

void IoUringProactor::accept(ProactorOperation& base, fd_t listener) {
  Op& op = impl_->begin(base, Kind::accept, listener, Step::io);
  op.close_accepted();
  op.address = {};
  op.address_len = SocketAddress::capacity;
  if (impl_->multishot_accept)
    impl_->start_accept(op);
  else
    impl_->launch(op);
}

void IoUringProactor::connect(ProactorOperation& base, fd_t sock, const SocketAddress& to) {
  Op& op = impl_->begin(base, Kind::connect, sock, Step::io);
  op.to = to;
  impl_->launch(op);
}

void IoUringProactor::sendfile(ProactorOperation& base, fd_t sock, int file, std::uint64_t offset, std::size_t count) {
  // io_uring has no sendfile: wait until the socket takes data, then
  // sendfile(2) from `offset` (pread-like: the file position stays).
  Op& op = impl_->begin(base, Kind::sendfile, sock, Step::poll);
  op.file = file;
  op.offset = offset;
  op.length = count;
  impl_->launch(op);
}

namespace {

// Contract 96: a blocking fd without FMODE_NOWAIT (a tty, some character
// devices) would block io_uring_enter or pin an io-wq worker that cannot be
// cancelled (liburing#354, #1623). Made non-blocking, as asyncio's pipe
// transports do; such an fd then answers EAGAIN and is polled.
void make_nonblocking(int fd, const char* call) {
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0 || (!(flags & O_NONBLOCK) && fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0))
    detail::throw_os_error(errno, std::string("io_uring ") + call + ": fcntl(fd " + std::to_string(fd) + ")");
}

}  // namespace

void IoUringProactor::read(ProactorOperation& base, fd_t handle) {
  Op& op = impl_->begin(base, Kind::read, handle, Step::io);
  if (op.checked_fd != op.fd) {
    make_nonblocking(op.fd, "read");
    op.checked_fd = op.fd;
  }
  impl_->launch(op);
}

void IoUringProactor::write(ProactorOperation& base, fd_t handle) {
  Op& op = impl_->begin(base, Kind::write, handle, Step::io);
  if (op.checked_fd != op.fd) {
    struct stat st {};
    if (fstat(op.fd, &st) != 0)
      detail::throw_os_error(errno, "io_uring write: fstat(fd " + std::to_string(op.fd) + ")");
    make_nonblocking(op.fd, "write");
    op.fifo = S_ISFIFO(st.st_mode);
    op.socket = S_ISSOCK(st.st_mode);
    op.checked_fd = op.fd;
  }
  // A write to a pipe with no reader raises SIGPIPE at the writing thread,
  // here the loop's, and IORING_OP_WRITE has no MSG_NOSIGNAL: a pipe is
  // polled and written with SIGPIPE blocked, a socket gets SEND.
  if (op.fifo) op.step = Step::poll;
  if (op.socket) op.kind = Kind::send;
  impl_->launch(op);
}

bool IoUringProactor::is_cancelled(const ProactorOperation& op) const noexcept { return op.error == ECANCELED; }

void IoUringProactor::cancel(ProactorOperation& base) noexcept {
  auto& op = static_cast<Op&>(base);
  if (!op.in_flight() || op.cancel_requested || !impl_->ring_ok || impl_->inherited()) return;
  op.cancel_requested = true;
  if (op.deferred) return;  // its result is decided: it keeps it
  if (op.listener) {
    // Waiting on a listener's queue, not in the kernel: it ends now (in the
    // next wait()); a socket accepted later waits for the next accept().
    if (op.listener->remove_waiter(op)) impl_->defer(op, ECANCELED);
    return;
  }
  // Waiting on a multishot (or for one to end): its last CQE ends it.
  if (op.multishot_live) return impl_->cancel_multishot(op);
  // Not in the kernel yet: flush_backlog() sends the cancel after arming it.
  if (op.queued) {
    op.cancel_queued = false;
    return;
  }
  impl_->send_cancel(op);
}

void IoUringProactor::cancel_all(fd_t fd) noexcept {
  if (!impl_->ring_ok || impl_->inherited()) return;
  // Every operation on `fd` is marked, so that one between two steps (its
  // poll done, its retry not yet armed) is not re-armed after the cancel
  // went by: close(2) alone would not end it (liburing#932).
  for (Op* op = impl_->head; op;) {
    Op* next = op->next;
    if (op->fd == fd) cancel(*op);
    op = next;
  }
  // Multishot receives on `fd` whose operation is not in flight (a paused
  // reader) end too, and what they held goes with the socket.
  try {
    for (Op* op = impl_->multishot_head; op;) {
      Op* next = op->multishot_next;
      if (op->multishot_fd == fd) impl_->leave_multishot(*op);
      op = next;
    }
  } catch (...) {
  }
  // A listener being closed: its multishot is not re-armed, and the
  // sockets it accepted that nobody took are closed with it.
  for (auto& l : impl_->listeners)
    if (!l->retired && l->fd == fd) impl_->retire(*l, ECANCELED);
  // The caller closes `fd` next, and a new socket may take its number: what
  // is still queued for it (and its cancels) goes to the kernel now, while
  // the number still names this file.
  try {
    impl_->enable();
    io_uring_submit(&impl_->ring);
  } catch (...) {
  }
}

void IoUringProactor::wait(std::int64_t timeout_ns) {
  Impl& s = *impl_;
  s.check_owner();
  if (s.closing) throw std::logic_error("io_uring: wait() after close()");
  ++s.waits;
  s.tend_listeners(s.deferred.empty() && timeout_ns != 0 && io_uring_cq_ready(&s.ring) == 0);
  s.flush_backlog();
  if (!s.wake_armed) s.arm_wake();
  int error = 0;
  if (!s.enter(s.deferred.empty() ? timeout_ns : 0, &error)) {
    if (error == EEXIST)
      detail::throw_os_error(error,
                             "io_uring_enter: the ring belongs to the thread that first ran the loop "
                             "(IORING_SETUP_SINGLE_ISSUER)");
    detail::throw_os_error(error, "io_uring_enter");
  }
  std::exception_ptr failure;
  s.reap(failure);
  s.run_deferred(failure);
  if (failure) std::rethrow_exception(failure);
}

void IoUringProactor::wakeup() noexcept {
  // One eventfd write while one is pending (contract 94: no other thread
  // touches the SQ).
  detail::Waker* waker = impl_->waker.get();
  if (impl_->inherited()) return;  // the parent's eventfd: not the child's to ring
  if (waker && !impl_->wake_pending.exchange(true, std::memory_order_acq_rel)) waker->wake();
}

void IoUringProactor::close() noexcept {
  Impl& s = *impl_;
  if (!s.ring_ok || s.closing) return;
  s.closing = true;
  bool drained = true;
  try {
    std::exception_ptr ignore;
    if (s.inherited()) {
      // Contract 97: a forked child's copy. The ring (its queues are shared
      // memory) is the parent's: no cancel, no submission, no
      // unregistering. The child's mappings, descriptors and memory go; the
      // operations are released without callbacks.
      for (auto& l : s.listeners) {
        l->armed = false;
        while (Op* waiter = l->pop_waiter()) s.finish(*waiter, ECANCELED, 0);
      }
      s.listeners.clear();
      s.run_deferred(ignore);
      while (s.head) s.finish(*s.head, ECANCELED, 0);
      s.forget_multishots();
      s.backlog_head = s.backlog_tail = nullptr;
      s.wake_armed = false;
      std::free(std::exchange(s.buf_ring, nullptr));
      io_uring_queue_exit(&s.ring);
      s.ring_ok = false;
      s.waker.reset();
      return;
    }
    // No callback runs from here on: accept()s waiting on a listener, and
    // results not yet delivered, end now; queued accepted sockets close.
    for (auto& l : s.listeners) s.retire(*l, ECANCELED);
    s.run_deferred(ignore);
    for (Op* op = s.multishot_head; op;) {
      Op* next = op->multishot_next;
      s.drop_held(*op);
      s.release_if_idle(*op);
      op = next;
    }
    if (!s.enabled) {
      // Nothing ever reached the kernel: the queued SQEs go with the ring.
      while (s.head) s.finish(*s.head, ECANCELED, 0);
      s.forget_multishots();
      s.backlog_head = s.backlog_tail = nullptr;
      s.wake_armed = false;
      for (auto& l : s.listeners) l->armed = false;
    } else {
      // Contract 93: cancel everything, the wakeup poll included, and reap
      // every completion before the buffers and the ring go.
      for (Op* op = s.head; op; op = op->next) {
        op->cancel_requested = false;
        cancel(*op);
      }
      for (Op* op = s.multishot_head; op; op = op->multishot_next) s.cancel_multishot(*op);
      if (s.wake_armed) {
        if (io_uring_sqe* sqe = s.get_sqe()) {
          io_uring_prep_cancel64(sqe, wake_tag, 0);
          io_uring_sqe_set_data64(sqe, ignored);
        }
      }
      auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(1);
      while ((s.head || s.wake_armed || s.listeners_armed() || s.multishot_head) &&
             std::chrono::steady_clock::now() < deadline) {
        s.flush_backlog();
        int error = 0;
        if (!s.enter(100'000'000, &error)) break;
        s.reap(ignore);
      }
      drained = !s.head && !s.wake_armed && !s.listeners_armed() && !s.multishot_head;
    }
  } catch (...) {
    drained = false;
  }
  if (drained && s.buf_ring) {
    io_uring_unregister_buf_ring(&s.ring, buffer_group);
    std::free(s.buf_ring);
    s.buf_ring = nullptr;
  }
  // Not drained (the ring used from a second thread under SINGLE_ISSUER, or
  // a request that outlived the second): what the kernel may still write
  // into stays allocated; the operations keep themselves alive.
  if (!drained) {
    for (auto& chunk : s.chunks) (void)chunk.release();
    (void)s.scratch.release();
  }
  io_uring_queue_exit(&s.ring);
  s.ring_ok = false;
  s.listeners.clear();  // closes what a listener accepted during the drain
  s.waker.reset();      // as the selector loop's: no wakeup() after close()
}

std::size_t IoUringProactor::in_flight() const noexcept { return impl_->in_flight; }
bool IoUringProactor::overflow_seen() const noexcept { return impl_->overflow_seen; }
std::string_view IoUringProactor::setup_mode() const noexcept { return impl_->mode; }
bool IoUringProactor::buffer_ring() const noexcept { return impl_->buffers_added != 0; }
std::size_t IoUringProactor::provided_buffers() const noexcept { return impl_->buffers_added; }
bool IoUringProactor::multishot_accept() const noexcept { return impl_->multishot_accept; }
bool IoUringProactor::multishot_recv() const noexcept { return impl_->multishot_recv; }
std::uint64_t IoUringProactor::multishot_recvs_armed() const noexcept { return impl_->multishot_arms; }

}  // namespace aio
