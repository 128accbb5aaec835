// aio::shield: asyncio.shield, protecting a future from cancellation.
#pragma once

#include <core/tasks.hpp>

#include <exception>
#include <utility>

namespace aio {

// A future that follows `awaitable` (a Task not started yet is scheduled)
// but whose cancellation does not cancel it: a task awaiting
// `co_await aio::shield(t)` that is cancelled gets CancelledError at once
// while `t` runs on. Cancelling `t` itself cancels the returned future. An
// already done `awaitable` is returned as it is.
template <class T>
Future<T> shield(Future<T> awaitable) {
  Future<T> inner = ensure_future(std::move(awaitable));
  if (inner.done()) return inner;
  Future<T> outer = inner.get_loop().template create_future<T>();
  inner.add_done_callback([outer](const Future<T>& in) mutable {
    if (outer.cancelled()) {
      if (!in.cancelled()) (void)in.exception();  // marks it retrieved, as asyncio's
      return;
    }
    if (in.cancelled()) {
      outer.cancel(in.state()->cancel_message());
    } else if (std::exception_ptr error = in.exception()) {
      outer.set_exception(error);
    } else if constexpr (std::is_void_v<T>) {
      outer.set_result();
    } else {
      outer.set_result(detail::take_value<T>(*in.state()));
    }
  });
  return outer;
}

template <class T>
Future<T> shield(Task<T> task) {
  return shield(static_cast<Future<T>>(std::move(task)));
}

}  // namespace aio
