// Executors for run_in_executor: where blocking work goes so the loop does not
// block. ThreadPoolExecutor is asyncio's default (concurrent.futures').
#pragma once

#include <core/callback.hpp>

#include <cstddef>
#include <memory>

namespace aio {

class Executor {
 public:
  using Work = detail::UniqueFunction<void(), 64>;
  virtual ~Executor() = default;
  // Runs `work` later on another thread. Throws std::runtime_error after shutdown().
  virtual void submit(Work work) = 0;
  // Stops accepting work. With `wait`, returns once every submitted item has
  // run and the threads have exited; `cancel_futures` drops items not started.
  virtual void shutdown(bool wait = true, bool cancel_futures = false) = 0;
};

// A pool of up to `max_workers` threads (default min(32, cores + 4), as
// Python's), started on demand. Destroying the pool shuts it down without
// waiting; running items finish on their own threads.
class ThreadPoolExecutor final : public Executor {
 public:
  explicit ThreadPoolExecutor(std::size_t max_workers = 0);
  ~ThreadPoolExecutor() override;
  void submit(Work work) override;
  void shutdown(bool wait = true, bool cancel_futures = false) override;
  std::size_t max_workers() const noexcept;

 private:
  struct State;
  std::shared_ptr<State> state_;
};

}  // namespace aio
