// The README's subprocess demo: three commands at once, their output
// streamed line by line as it comes, the slow one stopped by a timeout.
#include <core/aio.hpp>
#include <process/process.hpp>

#include <cstdio>
#include <string>
#include <vector>

aio::Task<int> run(std::string name, std::string command, double timeout) {
  aio::ProcessOptions options;
  options.stdout_ = aio::PIPE;
  aio::Process child = co_await aio::create_subprocess_shell(command, options);
  auto stream = [&]() -> aio::Task<void> {
    for (std::string line; !(line = co_await child.stdout_->readline()).empty();)
      std::printf("[%s] %s", name.c_str(), line.c_str());
  };
  try {
    co_await aio::wait_for(stream(), timeout);
  } catch (const aio::TimeoutError&) {
    std::printf("[%s] timed out after %.1f s: killed\n", name.c_str(), timeout);
    child.kill();
  }
  int code = co_await child.wait();
  std::printf("[%s] exited with %d\n", name.c_str(), code);
  co_return code;
}

aio::Task<int> main_task() {
  auto& loop = aio::get_running_loop();
  std::vector<aio::Task<int>> jobs;
  jobs.push_back(loop.create_task(run("date", "date -u +%Y", 5)));
  jobs.push_back(loop.create_task(run("count", "for i in 1 2 3; do echo $i; sleep 0.1; done", 5)));
  jobs.push_back(loop.create_task(run("slow", "echo start; exec sleep 30", 0.5)));
  std::vector<int> codes;
  for (auto& job : jobs) codes.push_back(co_await job);
  co_return codes == std::vector<int>{0, 0, -9} ? 0 : 1;
}

int main() { return aio::run(main_task()); }
