#include <core/log.hpp>
#include <core/runners.hpp>
#include <core/signals.hpp>

#include <csignal>

namespace aio {
namespace {

bool loop_running_here() {
  try {
    get_running_loop();
    return true;
  } catch (const std::runtime_error&) {
    return false;
  }
}

Task<void> wait_quietly(std::vector<AnyTask> tasks) {
  for (AnyTask& task : tasks) {
    task.state()->add_ref();
    Future<void> done(task.state());  // only awaited for completion, never for a value
    try {
      co_await done;
    } catch (...) {
    }
  }
}

void cancel_all_tasks(EventLoop& loop) {
  std::vector<AnyTask> tasks = loop.all_tasks();
  if (tasks.empty()) return;
  for (AnyTask& task : tasks) task.cancel();
  loop.run_until_complete(wait_quietly(tasks));
  for (AnyTask& task : tasks) {
    if (task.cancelled() || !task.exception()) continue;
    ExceptionContext context;
    context.message = "unhandled exception during aio::run() shutdown";
    context.exception = task.exception();
    context.task = task;
    loop.call_exception_handler(context);
  }
}

}  // namespace

Runner::Runner(const LoopOptions& options) {
  if (loop_running_here()) throw std::runtime_error("aio::run() cannot be called from a running event loop");
  loop_ = new_event_loop(options);
  set_event_loop(loop_.get());
}

Runner::~Runner() {
  try {
    close();
  } catch (...) {
    log(LogLevel::error, "aio::Runner: an error while closing the loop was ignored");
  }
}

void Runner::check_can_run() const {
  if (!loop_) throw std::runtime_error("Runner is closed");
  if (loop_running_here()) throw std::runtime_error("Runner.run() cannot be called from a running event loop");
}

EventLoop& Runner::get_loop() {
  if (!loop_) throw std::runtime_error("Runner is closed");
  return *loop_;
}

std::shared_ptr<void> Runner::watch_interrupt(AnyTask task) {
  interrupt_count_ = 0;
  interrupted_again_ = false;
  detail::ListenOptions options;
  options.yields_to_handler = true;
  options.once = true;
  options.only_over_default = true;
  EventLoop& loop = *loop_;
  detail::SignalListener listener = detail::listen_signal(loop, SIGINT, detail::Callback([this, task, &loop]() mutable {
                                                            if (++interrupt_count_ == 1 && !task.done()) {
                                                              task.cancel();
                                                              return;
                                                            }
                                                            // Only if SIGINT did not go back to the default (another
                                                            // loop of this process watches it too): the second one
                                                            // stops the loop.
                                                            interrupted_again_ = true;
                                                            loop.stop();
                                                          }),
                                                          options);
  if (!listener) return nullptr;
  return std::make_shared<detail::SignalListener>(std::move(listener));
}

bool Runner::interrupted(AnyTask task) noexcept { return interrupt_count_ > 0 && task.uncancel() == 0; }

void Runner::close() {
  if (!loop_) return;
  std::unique_ptr<EventLoop> loop = std::move(loop_);
  struct Finally {
    EventLoop& loop;
    ~Finally() {
      set_event_loop(nullptr);
      loop.close();
    }
  } finally{*loop};
  cancel_all_tasks(*loop);
  loop->run_until_complete(loop->shutdown_default_executor());
}

}  // namespace aio
