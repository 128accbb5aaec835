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
  template <class T>
  T run(Task<T> main) {
    check_can_run();
    return loop_->run_until_complete(loop_->create_task(std::move(main)));
  }

  void close();
  EventLoop& get_loop();

 private:
  void check_can_run() const;
  std::unique_ptr<EventLoop> loop_;
};

// Runs `main` on a new loop and closes it afterwards (asyncio.run). Throws
// std::runtime_error if a loop is already running on this thread.
template <class T>
T run(Task<T> main, const LoopOptions& options = {}) {
  Runner runner(options);
  return runner.run(std::move(main));
}

}  // namespace aio
