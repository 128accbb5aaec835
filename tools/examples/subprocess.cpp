// The asyncio documentation's subprocess examples (asyncio-subprocess,
// "Subprocesses"): run a shell command and report its exit and output, two
// at once, then read a child's output with create_subprocess_exec.
#include <core/aio.hpp>
#include <process/process.hpp>

#include <cstdio>
#include <string>
#include <vector>

aio::Task<void> run(std::string cmd) {
  aio::ProcessOptions options;
  options.stdout_ = aio::PIPE;
  options.stderr_ = aio::PIPE;
  aio::Process proc = co_await aio::create_subprocess_shell(cmd, options);
  auto [out, err] = co_await proc.communicate();
  std::printf("[%s exited with %d]\n", cmd.c_str(), *proc.returncode());
  if (!out.empty()) std::printf("[stdout]\n%s", out.c_str());
  if (!err.empty()) std::printf("[stderr]\n%s", err.c_str());
}

aio::Task<std::string> get_date() {
  aio::ProcessOptions options;
  options.stdout_ = aio::PIPE;
  std::vector<std::string> args{"-u", "+%Y-%m-%d %H:%M:%S"};
  aio::Process proc = co_await aio::create_subprocess_exec("date", args, options);
  // Read one line of output, then wait for the exit.
  std::string line = co_await proc.stdout_->readline();
  co_await proc.wait();
  while (!line.empty() && line.back() == '\n') line.pop_back();
  co_return line;
}

aio::Task<int> main_task() {
  co_await run("ls /zzz");
  co_await aio::gather(run("ls /zzz"), run("sleep 0.1; echo 'hello'"));
  std::string date = co_await get_date();
  std::printf("Current date: %s\n", date.c_str());
  co_return date.empty() ? 1 : 0;
}

int main() { return aio::run(main_task()); }
