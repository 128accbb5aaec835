#include <core/event_loop.hpp>
#include <core/events.hpp>
#include <core/log.hpp>
#include <core/signals.hpp>
#include <core/tasks.hpp>
#include <core/timer_heap.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <mutex>
#include <thread>

namespace aio {
namespace detail {

extern thread_local HandlePool* tls_pool;
namespace {
thread_local EventLoop* tls_running_loop = nullptr;
thread_local EventLoop* tls_current_loop = nullptr;
}  // namespace

// Callbacks handed over from other threads. Shared with executor work items
// so that a worker finishing after the loop closed finds it closed, not gone.
class Inbox {
 public:
  explicit Inbox(EventLoop* loop) : loop_(loop) {}

  bool post(HandleState* state) {
    std::lock_guard lock(mutex_);
    if (!loop_) return false;
    items_.push_back(state);
    pending_.store(true, std::memory_order_release);
    // One wakeup per batch: the loop resets `signalled_` when it drains.
    if (!signalled_) {
      signalled_ = true;
      loop_->wakeup();
    }
    return true;
  }

  bool pending() const noexcept { return pending_.load(std::memory_order_acquire); }

  template <class Push>
  void drain(Push push) {
    {
      std::lock_guard lock(mutex_);
      spare_.swap(items_);
      pending_.store(false, std::memory_order_relaxed);
      signalled_ = false;
    }
    for (HandleState* state : spare_) push(state);
    spare_.clear();
  }

  void close() noexcept {
    std::vector<HandleState*> dropped;
    {
      std::lock_guard lock(mutex_);
      loop_ = nullptr;
      dropped.swap(items_);
    }
    for (HandleState* state : dropped) release(state);
  }

 private:
  std::mutex mutex_;
  std::vector<HandleState*> items_;
  std::vector<HandleState*> spare_;  // loop thread only
  std::atomic<bool> pending_{false};
  bool signalled_ = false;
  EventLoop* loop_;
};

LoopLink* link_of(EventLoop& loop) noexcept {
  loop.link_->add_ref();
  return loop.link_;
}

bool post_threadsafe(const std::shared_ptr<Inbox>& inbox, Callback callback) {
  auto* state = new HandleState;
  state->callback = std::move(callback);
  if (inbox->post(state)) return true;
  release(state);
  return false;
}

std::shared_ptr<Inbox> inbox_of(EventLoop& loop) { return loop.inbox_; }

}  // namespace detail

namespace {

constexpr std::size_t min_timers_to_compact = 100;  // asyncio's _MIN_SCHEDULED_TIMER_HANDLES
constexpr std::size_t ready_keep = 4096;            // ready queue slots kept when it empties (a power of 2)
constexpr std::int64_t max_deadline = std::numeric_limits<std::int64_t>::max() / 2;

std::int64_t steady_now_ns() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::int64_t seconds_to_ns(double seconds) noexcept {
  double ns = seconds * 1e9;
  if (ns >= static_cast<double>(max_deadline)) return max_deadline;
  if (ns <= -static_cast<double>(max_deadline)) return -max_deadline;
  return std::llround(ns);
}

}  // namespace

EventLoop::EventLoop(Clock clock)
    : clock_(std::move(clock)),
      link_(new detail::LoopLink(this)),
      ready_(64),
      timers_(std::make_unique<detail::TimerHeap>()),
      inbox_(std::make_shared<detail::Inbox>(this)) {
  const char* debug = std::getenv("AIO_DEBUG");
  debug_ = debug && *debug && std::string_view(debug) != "0";
}

EventLoop::~EventLoop() {
  // Engines close in their own destructors (close() needs their close_io);
  // this only releases what a loop that was never closed still holds.
  if (!closed_) drop_scheduled();
  // Futures, tasks and servers that outlive the loop find it gone.
  link_->detach();
  link_->release();
}

// Releases every callback waiting to run: handed over from other threads,
// ready, or timed.
void EventLoop::drop_scheduled() noexcept {
  inbox_->close();
  while (ready_size_) {
    detail::HandleState* s = ready_[ready_head_];
    ready_head_ = (ready_head_ + 1) & (ready_.size() - 1);
    --ready_size_;
    detail::release(s);
  }
  timers_->clear([](detail::HandleState* h) {
    h->in_heap = false;
    detail::release(h);
  });
  cancelled_timers_ = 0;
}

std::size_t EventLoop::timer_count() const noexcept { return timers_->size(); }

std::int64_t EventLoop::now_ns() const noexcept { return clock_ ? clock_() : steady_now_ns(); }

// ---- Run state --------------------------------------------------------------

void EventLoop::check_not_running() const {
  if (running_) throw std::runtime_error("This event loop is already running");
  if (detail::tls_running_loop) throw std::runtime_error("Cannot run the event loop while another loop is running");
}

void EventLoop::throw_closed() { throw std::runtime_error("Event loop is closed"); }

void EventLoop::throw_wrong_thread(const char* method) {
  throw std::runtime_error(
      std::string("Non-thread-safe operation invoked on an event loop other than the current one: ") + method +
      "() called from another thread; use call_soon_threadsafe()");
}

namespace {

[[noreturn]] void no_readiness(const EventLoop& loop, const char* method) {
  throw NotImplementedError(std::string(method) + ": the " + std::string(loop.backend()) +
                            " event loop has no readiness API (as asyncio's ProactorEventLoop); use the sock_* "
                            "coroutines or transports, or a selector backend (AIO_BACKEND=select)");
}

}  // namespace

// A closed loop says so first, as every scheduling call does.
void EventLoop::add_reader_impl(fd_t, detail::Callback) {
  check_closed();
  no_readiness(*this, "add_reader");
}

void EventLoop::add_writer_impl(fd_t, detail::Callback) {
  check_closed();
  no_readiness(*this, "add_writer");
}

// Said once for the pipe, handle and subprocess hooks: they fail for pipes
// and subprocesses alike.
void EventLoop::throw_no_pipes(const char* method) const {
  throw NotImplementedError(std::string(method) + ": the " + std::string(backend()) +
                            " event loop has no pipe transports and runs no subprocesses here (on Windows only the "
                            "proactor loop, the default, has them, as asyncio's)");
}

std::shared_ptr<detail::StreamTransport> EventLoop::make_read_pipe_transport(fd_t, std::shared_ptr<BaseProtocol>) {
  throw_no_pipes("connect_read_pipe / subprocess_exec");
}

std::shared_ptr<detail::StreamTransport> EventLoop::make_write_pipe_transport(fd_t, std::shared_ptr<BaseProtocol>,
                                                                              bool) {
  throw_no_pipes("connect_write_pipe / subprocess_exec");
}

Task<void> EventLoop::wait_for_handle(fd_t) { throw_no_pipes("subprocess_exec (waiting for a process)"); }

bool EventLoop::remove_reader(fd_t) { return false; }
bool EventLoop::remove_writer(fd_t) { return false; }

void EventLoop::check_fd(fd_t fd, const char* method) {
  if (fd < 0)
    throw std::invalid_argument(std::string(method) + ": invalid file descriptor " + std::to_string(fd) +
                                " (must be >= 0)");
}

void EventLoop::run_forever() {
  check_closed();
  check_not_running();
  running_ = true;
  thread_id_ = std::this_thread::get_id();
  detail::tls_running_loop = this;
  detail::HandlePool* previous_pool = std::exchange(detail::tls_pool, &pool_);
  struct Restore {
    EventLoop* loop;
    detail::HandlePool* pool;
    ~Restore() {
      loop->running_ = false;
      loop->stopping_ = false;
      loop->thread_id_ = {};
      detail::tls_running_loop = nullptr;
      detail::tls_pool = pool;
    }
  } restore{this, previous_pool};
  for (;;) {
    run_once();
    if (stopping_) break;
  }
}

void EventLoop::close() {
  if (running_) throw std::runtime_error("Cannot close a running event loop");
  if (closed_) return;
  closed_ = true;
  // First, so that no signal handler reaches the engine being closed.
  remove_all_signal_handlers();
  drop_scheduled();
  if (auto executor = std::move(default_executor_)) executor->shutdown(false);
  close_io();
  // Pending tasks can never run again: drop the loop's references (each is
  // reported as destroyed while pending once nobody else holds it).
  auto tasks = std::move(pending_tasks_);
  pending_tasks_.clear();
  for (detail::TaskStateBase* task : tasks) task->as_future().release();
}

// ---- The iteration ----------------------------------------------------------

void EventLoop::push_ready(detail::HandleState* state) {
  if (ready_size_ == ready_.size()) {
    std::vector<detail::HandleState*> bigger(ready_.size() * 2);
    for (std::size_t i = 0; i < ready_size_; ++i) bigger[i] = ready_[(ready_head_ + i) & (ready_.size() - 1)];
    ready_.swap(bigger);
    ready_head_ = 0;
  }
  ready_[(ready_head_ + ready_size_) & (ready_.size() - 1)] = state;
  ++ready_size_;
}

void EventLoop::run_once() {
  detail::TimerHeap& timers = *timers_;
  if (timers.size() > min_timers_to_compact && cancelled_timers_ * 2 > timers.size()) {
    timers.remove_if([](detail::HandleState* h) {
      if (!h->cancelled.load(std::memory_order_relaxed)) return false;
      h->in_heap = false;
      detail::release(h);
      return true;
    });
    cancelled_timers_ = 0;
  } else {
    while (!timers.empty() && timers.top().handle->cancelled.load(std::memory_order_relaxed)) {
      detail::HandleState* h = timers.pop().handle;
      h->in_heap = false;
      --cancelled_timers_;
      detail::release(h);
    }
  }

  std::int64_t timeout = -1;
  if (ready_size_ || stopping_ || inbox_->pending() || (signals_ && signals_->pending()))
    timeout = 0;
  else if (!timers.empty())
    timeout = std::max<std::int64_t>(0, timers.top().when - now_ns());
  poll_io(timeout);
  if (inbox_->pending()) inbox_->drain([this](detail::HandleState* s) { push_ready(s); });
  if (signals_ && signals_->pending()) dispatch_signals();

  if (!timers.empty()) {
    const std::int64_t now = now_ns();
    while (!timers.empty() && timers.top().when <= now) {
      detail::HandleState* h = timers.pop().handle;
      h->in_heap = false;
      if (h->cancelled.load(std::memory_order_relaxed)) {
        --cancelled_timers_;
        detail::release(h);
      } else {
        push_ready(h);
      }
    }
  }
  timers.shrink();

  // Only what is ready now: callbacks scheduled by this batch wait for the
  // next iteration (so stop() takes effect after the current batch).
  for (std::size_t n = ready_size_; n > 0; --n) {
    detail::HandleState* s = ready_[ready_head_];
    ready_head_ = (ready_head_ + 1) & (ready_.size() - 1);
    --ready_size_;
    // Acquire: a threadsafe handle may have been cancelled on another thread.
    if (!s->cancelled.load(std::memory_order_acquire)) run_handle(s);
    detail::release(s);
  }
  // After a burst (a million timers due at once), the queue gives its
  // memory back once it is empty.
  if (ready_size_ == 0 && ready_.size() > ready_keep) {
    std::vector<detail::HandleState*>(ready_keep).swap(ready_);
    ready_head_ = 0;
  }
}

void EventLoop::run_handle(detail::HandleState* state) {
  state->running = true;
  std::int64_t started = debug_ ? now_ns() : 0;
  try {
    state->callback();
  } catch (...) {
    ExceptionContext context;
    detail::add_ref(state);
    context.handle = Handle(state);
    context.message = "Exception in callback " + context.handle.repr();
    context.exception = std::current_exception();
    call_exception_handler(context);
  }
  if (debug_) {
    std::int64_t took = now_ns() - started;
    if (took >= slow_callback_ns_) report_slow_callback(state, took);
  }
  state->running = false;
  if (state->cancelled.load(std::memory_order_relaxed)) state->callback.reset();
}

void EventLoop::report_slow_callback(detail::HandleState* state, std::int64_t took_ns) {
  // asyncio's _format_handle: a task's step is named by the task.
  std::string what;
  if (state->callback.describes_itself()) {
    what = state->callback.describe();
  } else {
    detail::add_ref(state);
    what = Handle(state).repr();
  }
  char took[32];
  std::snprintf(took, sizeof took, "%.3f", static_cast<double>(took_ns) * 1e-9);
  log(LogLevel::warning, "Executing " + what + " took " + took + " seconds");
}

// ---- Scheduling -------------------------------------------------------------

Handle EventLoop::make_handle(detail::Callback callback) {
  detail::HandleState* state = pool_.acquire();
  state->callback = std::move(callback);
  return Handle(state);
}

Handle EventLoop::call_soon_impl(detail::Callback callback, const char* method) {
  check_closed();
  check_thread(method);
  // Callbacks posted with call_soon_threadsafe before this one run before
  // it: asyncio's call_soon_threadsafe appends to the same ready queue.
  if (inbox_->pending()) inbox_->drain([this](detail::HandleState* s) { push_ready(s); });
  detail::HandleState* state = pool_.acquire();
  state->callback = std::move(callback);
  state->refs.store(2, std::memory_order_relaxed);  // the queue's and the returned handle's
  push_ready(state);
  return Handle(state);
}

Handle EventLoop::call_soon_threadsafe_impl(detail::Callback callback) {
  // Not from the pool: that belongs to the loop's thread.
  auto* state = new detail::HandleState;
  state->callback = std::move(callback);
  state->refs.store(2, std::memory_order_relaxed);
  if (!inbox_->post(state)) {
    state->refs.store(1, std::memory_order_relaxed);
    detail::release(state);
    throw_closed();
  }
  return Handle(state);
}

TimerHandle EventLoop::call_at_impl(std::int64_t when_ns, detail::Callback callback, const char* method) {
  check_closed();
  check_thread(method);
  detail::HandleState* state = pool_.acquire();
  state->callback = std::move(callback);
  state->refs.store(2, std::memory_order_relaxed);
  state->is_timer = true;
  state->in_heap = true;
  state->when = when_ns;
  state->seq = timer_seq_++;
  state->loop = this;
  timers_->push({when_ns, state});
  return TimerHandle(state);
}

std::int64_t EventLoop::deadline_after(double delay, const char* method) const {
  if (std::isnan(delay)) throw std::invalid_argument(std::string(method) + ": delay is NaN; give a number of seconds");
  return std::clamp(now_ns() + seconds_to_ns(delay), -max_deadline, max_deadline);
}

std::int64_t EventLoop::deadline_at(double when, const char* method) const {
  if (std::isnan(when)) throw std::invalid_argument(std::string(method) + ": when is NaN; give a time() value");
  return seconds_to_ns(when);
}

// ---- Tasks ------------------------------------------------------------------

void EventLoop::create_task_impl(detail::FutureStateBase* state, std::string name) {
  check_closed();
  detail::TaskStateBase* task = state->as_task();
  if (task->started())
    throw std::invalid_argument(
        "create_task: this coroutine was already started (scheduled or awaited); a coroutine runs once");
  static std::atomic<std::uint64_t> task_counter{0};
  task->start_as_task(*this);
  task->name_ = name.empty() ? "Task-" + std::to_string(++task_counter) : std::move(name);
  state->add_ref();
  pending_tasks_.insert(task);
  if (!task_factory_) {
    task->schedule_step();
    return;
  }
  state->add_ref();
  task_factory_(*this, AnyTask(state));
  if (!task->first_step_scheduled()) {
    pending_tasks_.erase(task);
    state->release();
    throw std::logic_error("the task factory returned without calling start_task(task)");
  }
}

void EventLoop::start_task(const AnyTask& task) {
  detail::TaskStateBase* t = task.state()->as_task();
  if (t->first_step_scheduled()) throw std::logic_error("start_task: the task was already started");
  if (!pending_tasks_.contains(t)) throw std::invalid_argument("start_task: the task does not belong to this loop");
  t->schedule_step();
}

void EventLoop::task_done(detail::TaskStateBase* task) noexcept {
  if (pending_tasks_.erase(task)) task->as_future().release();
}

std::vector<AnyTask> EventLoop::all_tasks() const {
  std::vector<AnyTask> tasks;
  for (detail::TaskStateBase* task : pending_tasks_) {
    task->as_future().add_ref();
    tasks.emplace_back(&task->as_future());
  }
  return tasks;
}

// ---- Executor ---------------------------------------------------------------

Executor& EventLoop::default_executor() {
  if (executor_shutdown_called_) throw std::runtime_error("Executor shutdown has been called");
  if (!default_executor_) default_executor_ = std::make_shared<ThreadPoolExecutor>();
  return *default_executor_;
}

void EventLoop::set_default_executor(std::shared_ptr<Executor> executor) {
  if (!executor) throw std::invalid_argument("set_default_executor: executor is null");
  default_executor_ = std::move(executor);
}

Task<void> EventLoop::shutdown_default_executor(std::optional<double> timeout) {
  executor_shutdown_called_ = true;
  std::shared_ptr<Executor> executor = std::move(default_executor_);
  if (!executor) co_return;
  Future<void> joined = create_future<void>();
  std::thread joiner([executor, joined, inbox = inbox_]() mutable {
    executor->shutdown(true);
    detail::post_threadsafe(inbox, [joined = std::move(joined)]() mutable {
      if (!joined.done()) joined.set_result();
    });
  });
  bool timed_out = false;
  try {
    co_await wait_for(joined, timeout);
  } catch (const TimeoutError&) {
    timed_out = true;
  }
  if (timed_out) {
    log(LogLevel::warning,
        "The executor did not finish joining its threads within " + std::to_string(*timeout) + " seconds.");
    joiner.detach();
  } else {
    joiner.join();
  }
}

// ---- Errors and debug -------------------------------------------------------

void EventLoop::default_exception_handler(const ExceptionContext& context) {
  std::string text = context.message.empty() ? "Unhandled exception in event loop" : context.message;
  if (context.handle) text += "\nhandle: " + context.handle.repr();
  if (context.future) text += "\nfuture: " + context.future.repr();
  if (context.task) text += "\ntask: " + context.task.repr();
  if (context.exception) text += "\nexception: " + detail::describe_exception(context.exception);
  log(LogLevel::error, text);
}

void EventLoop::call_exception_handler(const ExceptionContext& context) noexcept {
  try {
    if (!exception_handler_) {
      default_exception_handler(context);
      return;
    }
    try {
      exception_handler_(*this, context);
    } catch (...) {
      ExceptionContext error;
      error.message = "Unhandled error in exception handler";
      error.exception = std::current_exception();
      default_exception_handler(error);
    }
  } catch (...) {
    // Nowhere left to report to.
  }
}

void EventLoop::set_slow_callback_duration(double seconds) {
  if (!(seconds >= 0) || !std::isfinite(seconds))
    throw std::invalid_argument("set_slow_callback_duration: needs a finite number of seconds >= 0");
  slow_callback_ns_ = seconds_to_ns(seconds);
}

// ---- The current loop -------------------------------------------------------

EventLoop& get_running_loop() {
  if (!detail::tls_running_loop) throw std::runtime_error("no running event loop");
  return *detail::tls_running_loop;
}

EventLoop& get_event_loop() {
  if (detail::tls_running_loop) return *detail::tls_running_loop;
  if (detail::tls_current_loop) return *detail::tls_current_loop;
  throw std::runtime_error(
      "There is no current event loop in this thread; use aio::run(), or new_event_loop() and set_event_loop()");
}

void set_event_loop(EventLoop* loop) { detail::tls_current_loop = loop; }

}  // namespace aio
