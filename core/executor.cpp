#include <core/executor.hpp>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

namespace aio {

// Shared with the worker threads, so a pool destroyed without waiting leaves
// its running items a valid place to return to.
struct ThreadPoolExecutor::State {
  std::mutex mutex;
  std::condition_variable cv;
  std::deque<Work> queue;
  std::vector<std::thread> threads;
  std::size_t max_workers = 0;
  std::size_t idle = 0;
  bool shutdown = false;

  static void work_loop(const std::shared_ptr<State>& self) {
    std::unique_lock lock(self->mutex);
    for (;;) {
      ++self->idle;
      self->cv.wait(lock, [&] { return self->shutdown || !self->queue.empty(); });
      --self->idle;
      if (self->queue.empty()) return;  // shut down and drained
      Work work = std::move(self->queue.front());
      self->queue.pop_front();
      lock.unlock();
      work();
      work.reset();  // release captures outside the lock
      lock.lock();
    }
  }
};

ThreadPoolExecutor::ThreadPoolExecutor(std::size_t max_workers) : state_(std::make_shared<State>()) {
  if (max_workers == 0) max_workers = std::min<std::size_t>(32, std::max(1u, std::thread::hardware_concurrency()) + 4);
  state_->max_workers = max_workers;
}

ThreadPoolExecutor::~ThreadPoolExecutor() { shutdown(false); }

std::size_t ThreadPoolExecutor::max_workers() const noexcept { return state_->max_workers; }

void ThreadPoolExecutor::submit(Work work) {
  std::lock_guard lock(state_->mutex);
  if (state_->shutdown) throw std::runtime_error("cannot schedule new work after the executor was shut down");
  state_->queue.push_back(std::move(work));
  if (state_->idle < state_->queue.size() && state_->threads.size() < state_->max_workers)
    state_->threads.emplace_back([s = state_] { State::work_loop(s); });
  else
    state_->cv.notify_one();
}

void ThreadPoolExecutor::shutdown(bool wait, bool cancel_futures) {
  std::vector<std::thread> threads;
  std::deque<Work> dropped;
  {
    std::lock_guard lock(state_->mutex);
    state_->shutdown = true;
    if (cancel_futures) dropped.swap(state_->queue);
    threads.swap(state_->threads);
  }
  state_->cv.notify_all();
  for (auto& t : threads) {
    if (wait && t.get_id() != std::this_thread::get_id())
      t.join();
    else
      t.detach();
  }
}

}  // namespace aio
