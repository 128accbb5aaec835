// Future<T>: asyncio.Future as a C++ type.
//
// A Future is a shared handle to a result that will be set later, bound to
// one loop. Done-callbacks never run inline: when the future completes, each
// callback is scheduled with call_soon, in registration order. `co_await`
// works on a future from inside a Task (core/task.hpp). Like asyncio's,
// futures are not thread-safe: complete them on the loop's thread (from
// another thread, go through call_soon_threadsafe). A future refers to its
// loop without owning it: drop futures and tasks before destroying their loop
// (asyncio's keep the loop alive instead; aio::run and aio::Runner arrange it).
#pragma once

#include <core/callback.hpp>
#include <core/errors.hpp>

#include <atomic>
#include <concepts>
#include <coroutine>
#include <cstdint>
#include <exception>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace aio {

class EventLoop;
class AnyFuture;

namespace detail {

class TaskStateBase;

template <class T>
struct ValueSlot {
  std::optional<T> value;
};
template <>
struct ValueSlot<void> {};

// The shared state behind Future<T> and Task<T>.
class FutureStateBase {
 public:
  enum class Status : std::uint8_t { pending, cancelled, finished };
  using DoneCallback = UniqueFunction<void(FutureStateBase&), 48>;

  explicit FutureStateBase(EventLoop* loop) noexcept : loop_(loop) {}
  FutureStateBase(const FutureStateBase&) = delete;
  FutureStateBase& operator=(const FutureStateBase&) = delete;

  void add_ref() noexcept { refs_.fetch_add(1, std::memory_order_relaxed); }
  void release() noexcept;

  Status status() const noexcept { return status_; }
  bool done() const noexcept { return status_ != Status::pending; }
  EventLoop* loop() const noexcept { return loop_; }

  // asyncio Future.cancel; Task overrides it.
  virtual bool cancel(std::string message);
  virtual TaskStateBase* as_task() noexcept { return nullptr; }
  virtual void* value_slot() noexcept = 0;

  // Throws CancelledError / InvalidStateError / the stored exception, as
  // asyncio's result() does before returning the value.
  void check_result();
  std::exception_ptr exception();  // asyncio Future.exception()
  void set_exception(std::exception_ptr error);
  // Called after the value was stored: marks the future done and schedules
  // its callbacks. Throws InvalidStateError if it was already done.
  void ensure_pending(const char* method) const;
  void mark_finished();
  const std::string& cancel_message() const noexcept { return cancel_message_; }
  // asyncio's repr: "<Future pending>", "<Future finished exception=...>",
  // a task's "<Task pending name='Task-1' coro=<...>>".
  std::string repr();

  std::uint64_t add_done_callback(DoneCallback callback);
  std::uint64_t add_waiter(TaskStateBase* task);
  std::size_t remove_done_callback(std::uint64_t id) noexcept;

 protected:
  virtual ~FutureStateBase();
  virtual void destroy() noexcept = 0;
  void schedule_callbacks();
  // Completes a task (status from how its coroutine ended).
  void finish_task(bool cancelled, std::string message);
  void set_loop(EventLoop* loop) noexcept { loop_ = loop; }
  friend class TaskStateBase;

 private:
  void report_unretrieved() noexcept;

  struct Entry {
    std::uint64_t id;
    TaskStateBase* waiter;  // a task suspended on this future, or null
    DoneCallback callback;
  };

  std::atomic<std::uint32_t> refs_{1};
  Status status_ = Status::pending;
  bool exception_retrieved_ = false;
  EventLoop* loop_;
  std::exception_ptr exception_;
  std::string cancel_message_;
  std::vector<Entry> callbacks_;
  std::uint64_t next_callback_id_ = 1;
};

template <class T>
class FutureState final : public FutureStateBase {
 public:
  using FutureStateBase::FutureStateBase;
  void* value_slot() noexcept override { return &slot_; }

 private:
  ~FutureState() override = default;
  void destroy() noexcept override { delete this; }
  ValueSlot<T> slot_;
};

// "std::runtime_error: boom", "aio::CancelledError: message", for messages.
std::string describe_exception(const std::exception_ptr& error);

// The value of a finished future: copied when the type allows, else moved
// out (a move-only result can be taken once).
template <class T>
T take_value(FutureStateBase& state) {
  auto& slot = *static_cast<ValueSlot<T>*>(state.value_slot());
  if constexpr (std::is_copy_constructible_v<T>)
    return *slot.value;
  else
    return std::move(*slot.value);
}

// Registers `task` (the root of the coroutine `h`) as suspended on `future`.
std::uint64_t suspend_on(FutureStateBase& future, TaskStateBase& task, std::coroutine_handle<> h);
// Called when that task resumes: throws CancelledError if it was cancelled meanwhile.
void resume_from(TaskStateBase& task);
TaskStateBase& root_of(TaskStateBase& promise) noexcept;

}  // namespace detail

// A type-erased handle to any future or task (what exception contexts and
// done-callbacks receive).
class AnyFuture {
 public:
  AnyFuture() noexcept = default;
  // Adopts one reference.
  explicit AnyFuture(detail::FutureStateBase* state) noexcept : state_(state) {}
  AnyFuture(const AnyFuture& other) noexcept : state_(other.state_) {
    if (state_) state_->add_ref();
  }
  AnyFuture(AnyFuture&& other) noexcept : state_(std::exchange(other.state_, nullptr)) {}
  AnyFuture& operator=(AnyFuture other) noexcept {
    std::swap(state_, other.state_);
    return *this;
  }
  ~AnyFuture() {
    if (state_) state_->release();
  }

  bool done() const noexcept { return state_->done(); }
  bool cancelled() const noexcept { return state_->status() == detail::FutureStateBase::Status::cancelled; }
  // Cancels the future (or task); false if it was already done.
  bool cancel(std::string message = {}) { return state_->cancel(std::move(message)); }
  // The exception the future finished with, or null. Throws CancelledError if
  // it was cancelled and InvalidStateError if it is not done.
  std::exception_ptr exception() const { return state_->exception(); }
  EventLoop& get_loop() const noexcept { return *state_->loop(); }
  bool is_task() const noexcept { return state_ && state_->as_task(); }
  // As asyncio's repr() of a future or task (for messages).
  std::string repr() const { return state_ ? state_->repr() : "<Future empty>"; }

  // Schedules `callback(future)` once the future is done (at once if it is).
  // Returns an id for remove_done_callback.
  template <class F>
  requires std::invocable<F&, const AnyFuture&> std::uint64_t add_done_callback(F callback) {
    return state_->add_done_callback([cb = std::move(callback)](detail::FutureStateBase& s) mutable {
      s.add_ref();
      cb(AnyFuture(&s));
    });
  }
  // Removes the callback registered under `id`; returns how many were removed.
  std::size_t remove_done_callback(std::uint64_t id) noexcept { return state_->remove_done_callback(id); }

  explicit operator bool() const noexcept { return state_ != nullptr; }
  detail::FutureStateBase* state() const noexcept { return state_; }
  friend bool operator==(const AnyFuture& a, const AnyFuture& b) noexcept { return a.state_ == b.state_; }

 protected:
  detail::FutureStateBase* state_ = nullptr;
};

template <class T>
class Future : public AnyFuture {
  static_assert(!std::is_reference_v<T>, "Future<T&> is not supported; use Future<T*>");

 public:
  using value_type = T;

  Future() noexcept = default;
  explicit Future(detail::FutureStateBase* state) noexcept : AnyFuture(state) {}
  // A new pending future bound to `loop` (see also EventLoop::create_future).
  explicit Future(EventLoop& loop) : AnyFuture(new detail::FutureState<T>(&loop)) {}

  // The result; throws CancelledError if cancelled, the stored exception if
  // one was set, InvalidStateError if not done yet.
  decltype(auto) result() const {
    state_->check_result();
    if constexpr (!std::is_void_v<T>) return static_cast<const T&>(*slot().value);
  }

  template <class U = T>
  requires(!std::is_void_v<T> && std::constructible_from<T, U&&>) void set_result(U&& value) {
    state_->ensure_pending("set_result");
    slot().value.emplace(std::forward<U>(value));
    state_->mark_finished();
  }
  void set_result() requires std::is_void_v<T> {
    state_->ensure_pending("set_result");
    state_->mark_finished();
  }
  void set_exception(std::exception_ptr error) { state_->set_exception(std::move(error)); }

  template <class F>
  requires std::invocable < F&, const Future<T>
  & > std::uint64_t add_done_callback(F callback) {
    return state_->add_done_callback([cb = std::move(callback)](detail::FutureStateBase& s) mutable {
      s.add_ref();
      cb(Future<T>(&s));
    });
  }
  using AnyFuture::add_done_callback;

  class Awaiter;
  Awaiter operator co_await() const noexcept { return Awaiter(*this); }

 private:
  detail::ValueSlot<T>& slot() const noexcept { return *static_cast<detail::ValueSlot<T>*>(state_->value_slot()); }
};

// Suspends the awaiting task until the future is done; a task cancelled
// meanwhile gets CancelledError here (and cancels the future).
template <class T>
class Future<T>::Awaiter {
 public:
  explicit Awaiter(Future<T> future) noexcept : future_(std::move(future)) {}
  Awaiter(Awaiter&& other) noexcept
      : future_(std::move(other.future_)), task_(other.task_), id_(std::exchange(other.id_, 0)) {}
  Awaiter& operator=(Awaiter&&) = delete;
  ~Awaiter() {
    // The task was destroyed while suspended here: unhook it.
    if (id_) future_.remove_done_callback(id_);
  }

  bool await_ready() const noexcept { return future_.done(); }

  template <std::derived_from<detail::TaskStateBase> P>
  void await_suspend(std::coroutine_handle<P> h) {
    task_ = &detail::root_of(h.promise());
    id_ = detail::suspend_on(*future_.state(), *task_, h);
  }

  T await_resume() {
    if (task_) {
      id_ = 0;
      detail::resume_from(*task_);
    }
    future_.state()->check_result();
    if constexpr (!std::is_void_v<T>) return detail::take_value<T>(*future_.state());
  }

 protected:
  Future<T> future_;
  detail::TaskStateBase* task_ = nullptr;
  std::uint64_t id_ = 0;
};

}  // namespace aio
