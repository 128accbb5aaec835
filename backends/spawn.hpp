// Private: starting a child process and learning how it ended (POSIX), for
// process/'s subprocess transport. Everything the child does between fork
// and exec is async-signal-safe and allocation-free: the parent prepares
// it all.
#pragma once

#include <core/fd.hpp>

#include <optional>
#include <string>
#include <vector>

namespace aio::detail {

struct SpawnRequest {
  std::string program;            // searched in PATH (of `env` if given) unless it has a '/'
  std::vector<std::string> args;  // argv, args[0] included
  std::optional<std::string> cwd;
  std::optional<std::vector<std::string>> env;  // "NAME=value" each; else the parent's
  // The child's 0, 1, 2: a descriptor to dup there, or -1 to inherit the
  // parent's. `stderr_to_stdout` makes 2 a copy of the child's 1.
  int stdio[3] = {-1, -1, -1};
  bool stderr_to_stdout = false;
  std::vector<int> pass_fds;  // kept open (and inheritable) in the child
  bool start_new_session = false;
  std::optional<int> process_group;  // setpgid(0, value) in the child
};

struct SpawnedChild {
  int pid = -1;
};

// Forks and execs. The child starts with an empty signal mask and every
// signal at its default disposition, and inherits no descriptor but 0, 1, 2
// and pass_fds. If the child cannot exec (no such program, not executable,
// a bad cwd, ...) the call reaps it and throws std::system_error with the
// child's errno, naming the program (or the cwd); nothing is left behind.
// std::invalid_argument for an empty program or argument list, a NUL
// inside a string, a negative pass_fds entry.
SpawnedChild spawn(const SpawnRequest& request);

// waitpid(pid, WNOHANG) for our own child: its returncode (the exit status,
// or -N for a child killed by signal N) once it ended, std::nullopt while
// it runs. A child some other code reaped behind our back (ECHILD) reports
// 255, as asyncio's child watchers do.
std::optional<int> reap_child(int pid, bool* reaped_elsewhere = nullptr);

// waitpid(pid) until the child ends (it was killed, or its watcher said it
// exited); its returncode as reap_child's.
int wait_child(int pid) noexcept;

// Sends `signal` to the child (kill(2)); throws std::system_error (ESRCH
// when it is gone).
void signal_child(int pid, int signal);

// SIGTERM and SIGKILL, as asyncio's terminate() and kill() send.
int terminate_signal() noexcept;
int kill_signal() noexcept;

// How a child's exit is watched here (POSIX: backends/child_watch.hpp says
// which and how; it throws std::invalid_argument when AIO_CHILD_WATCHER
// names one that is unknown or missing here).
const char* child_watcher_name();

// POSIX pipe(2) with both ends close-on-exec: (read end, write end).
std::pair<int, int> make_pipe();
// open("/dev/null") for reading or writing, close-on-exec.
int open_devnull(bool for_writing);
void close_fd(int fd) noexcept;

}  // namespace aio::detail
