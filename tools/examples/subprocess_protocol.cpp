// The asyncio documentation's low-level subprocess example (asyncio-protocol,
// "loop.subprocess_exec() and SubprocessProtocol"): a protocol collects a
// child's output and a future tells when the child exited.
#include <core/aio.hpp>
#include <net/protocols.hpp>
#include <net/transports.hpp>
#include <process/subprocess.hpp>

#include <cstdio>
#include <exception>
#include <memory>
#include <string>
#include <vector>

class DateProtocol : public aio::SubprocessProtocol {
 public:
  DateProtocol(aio::Future<void> exit_future, aio::Future<void> closed)
      : exit_future_(std::move(exit_future)), closed_(std::move(closed)) {}
  void pipe_data_received(int, std::string_view data) override { output.append(data); }
  void process_exited() override { exit_future_.set_result(); }
  void connection_lost(std::exception_ptr) override { closed_.set_result(); }
  std::string output;

 private:
  aio::Future<void> exit_future_;
  aio::Future<void> closed_;
};

aio::Task<std::string> get_date() {
  aio::EventLoop& loop = aio::get_running_loop();
  aio::Future<void> exit_future = loop.create_future<void>();
  aio::Future<void> closed = loop.create_future<void>();
  // stdin and stderr as the parent's, stdout a pipe the protocol reads.
  aio::SubprocessOptions options;
  options.stdin_ = aio::Stdio::inherit();
  options.stderr_ = aio::Stdio::inherit();
  aio::ProtocolFactory factory = [exit_future, closed] { return std::make_shared<DateProtocol>(exit_future, closed); };
  std::vector<std::string> args{"-u"};
  auto [transport, protocol] = co_await loop.subprocess_exec(factory, "date", args, options);
  // Wait for the exit (process_exited). The exit may be seen before the
  // pipe is drained (asyncio's contract since 3.13: a grandchild may hold
  // it), so the output is complete only at connection_lost, which follows
  // both.
  co_await exit_future;
  co_await closed;
  transport->close();
  std::string data = std::static_pointer_cast<DateProtocol>(protocol)->output;
  while (!data.empty() && data.back() == '\n') data.pop_back();
  co_return data;
}

aio::Task<int> main_task() {
  std::string date = co_await get_date();
  std::printf("Current date: %s\n", date.c_str());
  co_return date.empty() ? 1 : 0;
}

int main() { return aio::run(main_task()); }
