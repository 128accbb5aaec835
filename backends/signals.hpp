// Private: the process-wide half of signal delivery (POSIX). One handler
// per signal, installed while at least one loop watches it, hands each
// arrival to every such loop (EventLoop::deliver_signal: a flag and the
// loop's wakeup); core/signals.hpp has the loop's half.
#pragma once

namespace aio {
class EventLoop;
}  // namespace aio

namespace aio::detail {

// Starts delivering `sig` to `loop`, or updates `once` for a loop that
// already receives it (EventLoop::watch_signal says what the arguments
// mean). The first loop saves the disposition it finds, which comes back
// when the last one leaves. std::invalid_argument for a number that is not
// a signal here; std::runtime_error for SIGKILL, SIGSTOP and any signal the
// system refuses to let us catch.
bool subscribe_signal(EventLoop& loop, int sig, bool once, bool only_over_default);

// Stops delivering `sig` to `loop`; once it returns, no handler is still
// using `loop`.
void unsubscribe_signal(EventLoop& loop, int sig) noexcept;

}  // namespace aio::detail
