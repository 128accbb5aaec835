// aio::run and aio::Runner: asyncio.run and asyncio.Runner.
#pragma once

#include <core/events.hpp>
#include <core/tasks.hpp>

#include <memory>

namespace aio {

// Owns a new loop, set as this thread's current loop, for running a
// program's top-level tasks one after another. close() (also run by the
// destructor) cancels the tasks still pending and waits for them, joins the
// default executor's threads, and closes the loop.
class Runner {
 public:
  explicit Runner(const LoopOptions& options = {});
  Runner(const Runner&) = delete;
  Runner& operator=(const Runner&) = delete;
  ~Runner();

  // Runs `main` to completion on the loop and returns its result.
  //
  // Ctrl-C, as asyncio 3.11's Runner: on the main thread, while SIGINT has
  // its default disposition (no handler of the user's), the first SIGINT
  // cancels the main task, which may handle the cancellation; if the task
  // then ends cancelled, run() throws KeyboardInterrupt (if it swallowed the
  // cancellation, run() returns its result). The disposition goes back to
  // the default as that first SIGINT arrives, so a second one ends the
  // process at once, as the default action, even while the loop is stuck in
  // a callback (where asyncio raises KeyboardInterrupt, a C++ signal handler
  // cannot throw); the shell sees the 130 of an interrupted program either
  // way. A handler the user adds for SIGINT on this loop replaces all this.
  template <class T>
  T run(Task<T> main) {
    check_can_run();
    Task<T> task = loop_->create_task(std::move(main));
    std::shared_ptr<void> interrupt = watch_interrupt(task);
    try {
      return loop_->run_until_complete(task);
    } catch (const CancelledError&) {
      interrupt.reset();
      if (interrupted(task)) throw KeyboardInterrupt();
      throw;
    } catch (const std::runtime_error&) {
      interrupt.reset();
      if (interrupted_again_) throw KeyboardInterrupt();
      throw;
    }
  }

  void close();
  EventLoop& get_loop();

 private:
  void check_can_run() const;
  // What run() needs for Ctrl-C: a listener for SIGINT on the loop (empty
  // where the conditions above do not hold), and whether the main task
  // ended cancelled because of it (asyncio: uncancel() back to 0).
  std::shared_ptr<void> watch_interrupt(AnyTask task);
  bool interrupted(AnyTask task) noexcept;

  std::unique_ptr<EventLoop> loop_;
  int interrupt_count_ = 0;
  bool interrupted_again_ = false;
};

// Runs `main` on a new loop and closes it afterwards (asyncio.run). Throws
// std::runtime_error if a loop is already running on this thread.
template <class T>
T run(Task<T> main, const LoopOptions& options = {}) {
  Runner runner(options);
  return runner.run(std::move(main));
}

}  // namespace aio
