// Subprocesses, high level (asyncio's create_subprocess_exec,
// create_subprocess_shell and asyncio.subprocess.Process): the child's
// pipes as a StreamWriter (stdin) and StreamReaders (stdout, stderr).
#pragma once

#include <core/event_loop.hpp>
#include <net/streams.hpp>
#include <net/transports.hpp>
#include <process/subprocess.hpp>

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace aio {

namespace detail {
class ProcessProtocol;
}

// create_subprocess_*'s options: as SubprocessOptions, but the three
// streams are inherited unless set (asyncio's None), as asyncio's
// create_subprocess_exec has it.
struct ProcessOptions : SubprocessOptions {
  ProcessOptions() { stdin_ = stdout_ = stderr_ = Stdio::inherit(); }
};

// A running (or finished) child. A copyable handle: copies share the child.
class Process {
 public:
  // The streams that are PIPEs; empty otherwise.
  std::optional<StreamWriter> stdin_;
  std::optional<StreamReader> stdout_;
  std::optional<StreamReader> stderr_;

  int pid() const noexcept;
  // The exit status, or -N after signal N; empty while it runs. Windows:
  // the exit code (as an int: an NTSTATUS such as 0xC0000005 reads
  // negative).
  std::optional<int> returncode() const noexcept;
  // Waits for the child to exit and returns its returncode. It returns
  // when the child exits, even while a grandchild still holds its pipes.
  Task<int> wait();
  // Writes `input` to stdin (if given and stdin is a PIPE) and closes it,
  // reads stdout and stderr to their end (where they are PIPEs), waits for
  // the exit, and returns (stdout, stderr). A reader that went away (a
  // broken pipe) is not an error. Cancelled, it keeps what it read: a later
  // communicate() returns that too.
  Task<std::pair<std::string, std::string>> communicate(std::optional<std::string> input = std::nullopt);
  // Nothing once the child has been reaped (contract 76). Windows, as
  // asyncio there: SIGTERM, terminate() and kill() are TerminateProcess
  // (exit code 1); CTRL_C_EVENT and CTRL_BREAK_EVENT go to a child started
  // in a new process group; any other signal is std::invalid_argument.
  void send_signal(int signal);
  void terminate();
  void kill();

  Process(std::shared_ptr<SubprocessTransport> transport, std::shared_ptr<detail::ProcessProtocol> protocol);

 private:
  std::shared_ptr<SubprocessTransport> transport_;
  std::shared_ptr<detail::ProcessProtocol> protocol_;
};

// Runs `program` with `args` after it (as subprocess_exec) on the running
// loop; `limit` is the StreamReaders' buffer limit.
Task<Process> create_subprocess_exec(std::string program, std::vector<std::string> args = {},
                                     ProcessOptions options = {}, std::size_t limit = stream_default_limit);
// The same with `/bin/sh -c cmd` (Windows: `%COMSPEC% /c "cmd"`, as
// CPython's shell=True).
Task<Process> create_subprocess_shell(std::string cmd, ProcessOptions options = {},
                                      std::size_t limit = stream_default_limit);

}  // namespace aio
