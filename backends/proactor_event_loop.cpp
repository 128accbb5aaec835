#include <backends/proactor_event_loop.hpp>
#include <core/errors.hpp>

#include <string>

namespace aio {
namespace {

[[noreturn]] void no_readiness(const char* method) {
  throw NotImplementedError(std::string(method) +
                            ": the proactor event loop has no readiness API (as asyncio's ProactorEventLoop); "
                            "use the sock_* coroutines or transports, or a SelectorEventLoop (AIO_BACKEND=select)");
}

}  // namespace

ProactorEventLoop::ProactorEventLoop(std::unique_ptr<Proactor> proactor, Clock clock)
    : EventLoop(std::move(clock)), proactor_(std::move(proactor)), name_(proactor_->name()) {}

ProactorEventLoop::~ProactorEventLoop() {
  if (!is_running()) close();
}

void ProactorEventLoop::poll_io(std::int64_t timeout_ns) { proactor_->wait(timeout_ns); }

void ProactorEventLoop::wakeup() noexcept { proactor_->wakeup(); }

// The proactor is closed but kept: tasks still suspended on an operation hold
// references to operations, never to the proactor, and the name stays valid.
void ProactorEventLoop::close_io() noexcept { proactor_->close(); }

// A closed loop says so first, as every scheduling call does.
void ProactorEventLoop::add_reader_impl(fd_t, detail::Callback) {
  check_closed();
  no_readiness("add_reader");
}

void ProactorEventLoop::add_writer_impl(fd_t, detail::Callback) {
  check_closed();
  no_readiness("add_writer");
}
// Nothing can be registered, so nothing is removed. asyncio raises here too,
// but cleanup paths (destructors, scope guards) call remove_*, and an
// exception there would terminate the program instead of reporting.
bool ProactorEventLoop::remove_reader(fd_t) { return false; }
bool ProactorEventLoop::remove_writer(fd_t) { return false; }

}  // namespace aio
