// backends/child_watch.hpp on Windows: the process handle is signalled once
// the child exits, so the proactor's wait on it is the whole watch (a
// thread-pool wait that posts to the completion port: no thread per child).
#include <backends/child_watch.hpp>
#include <backends/spawn.hpp>

#include <optional>
#include <utility>

namespace aio::detail {
namespace {

Task<int> watch_handle(Task<void> signalled, SpawnedChild child) {
  co_await signalled;
  // Signalled, so it exited: its code, 259 (STILL_ACTIVE) included.
  std::optional<int> code = reap_child(child);
  co_return code ? *code : wait_child(child);
}

}  // namespace

Task<int> watch_child(EventLoop&, WaitForHandle wait_for_handle, const SpawnedChild& child) {
  // The wait is asked for now, not inside the coroutine: a loop that cannot
  // wait for a handle (Windows' select loop) refuses here, inside
  // subprocess_exec, which then raises NotImplementedError as asyncio's.
  return watch_handle(wait_for_handle(child.handle), child);
}

}  // namespace aio::detail
