// Private: starting a child process and learning how it ended, for
// process/'s subprocess transport, which is written once over these calls.
// POSIX (backends/spawn.cpp): vfork (fork on macOS) and exec; everything
// the child does between them is async-signal-safe, allocation-free and
// touches only its own stack: the parent prepares it all. Windows
// (backends/spawn_windows.cpp): CreateProcessW, and the process handle,
// which the loop waits on.
#pragma once

#include <core/fd.hpp>

#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace aio::detail {

struct SpawnRequest {
  // POSIX: searched in PATH (of `env` if given) unless it has a '/'.
  // Windows: searched as CreateProcessW does (the program's directory, the
  // current one, the system's, then PATH; ".exe" may be left out).
  std::string program;
  std::vector<std::string> args;  // argv, args[0] included
  std::optional<std::string> cwd;
  std::optional<std::vector<std::string>> env;  // "NAME=value" each; else the parent's
  // The child's 0, 1, 2: a descriptor (Windows: a HANDLE) to dup there, or
  // -1 to inherit the parent's. `stderr_to_stdout` makes 2 a copy of the
  // child's 1.
  fd_t stdio[3] = {-1, -1, -1};
  bool stderr_to_stdout = false;
  std::vector<int> pass_fds;  // kept open (and inheritable) in the child; POSIX only
  bool start_new_session = false;
  // setpgid(0, value) in the child. Windows: only 0, a new process group
  // (CREATE_NEW_PROCESS_GROUP), as start_new_session is there.
  std::optional<int> process_group;
};

// What no system can run, refused first by either spawn():
// std::invalid_argument for an empty program or argument list, or a NUL
// inside the program, an argument, the cwd or an environment entry.
inline void check_spawn_request(const SpawnRequest& request) {
  auto check_text = [](const std::string& text, const char* what) {
    if (text.find('\0') != std::string::npos)
      throw std::invalid_argument(std::string("subprocess: ") + what + " contains a NUL byte");
  };
  if (request.program.empty()) throw std::invalid_argument("subprocess: the program is empty");
  if (request.args.empty()) throw std::invalid_argument("subprocess: the argument list is empty");
  check_text(request.program, "the program");
  for (const std::string& arg : request.args) check_text(arg, "an argument");
  if (request.cwd) check_text(*request.cwd, "cwd");
  if (request.env)
    for (const std::string& entry : *request.env) check_text(entry, "an environment entry");
}

struct SpawnedChild {
  int pid = -1;
  // Windows: the process handle (signalled once it exits), which the
  // subprocess transport closes (close_fd) when it is done with the child.
  // -1 on POSIX, where backends/child_watch opens what it needs.
  fd_t handle = -1;
  // It leads a process group of its own (Windows: console control events
  // can reach it).
  bool new_group = false;
};

// Starts the child, which execs `program`. It starts with an empty signal
// mask and every signal at its default disposition, and inherits no
// descriptor but 0, 1, 2 and pass_fds. If the child cannot exec (no such
// program, not executable, a bad cwd, ...) the call reaps it and throws
// std::system_error with the child's errno, naming the program (or the
// cwd); nothing is left behind.
// std::invalid_argument for an empty program or argument list, a NUL
// inside a string, a negative pass_fds entry.
SpawnedChild spawn(const SpawnRequest& request);

// waitpid(pid, WNOHANG) for our own child: its returncode (the exit status,
// or -N for a child killed by signal N) once it ended, std::nullopt while
// it runs. A child some other code reaped behind our back (ECHILD) reports
// 255, as asyncio's child watchers do. Windows: GetExitCodeProcess once the
// process handle is signalled (an exit code of 259, STILL_ACTIVE, is an
// exit code then, not "running").
std::optional<int> reap_child(const SpawnedChild& child, bool* reaped_elsewhere = nullptr);

// waitpid(pid) until the child ends (it was killed, or its watcher said it
// exited); its returncode as reap_child's.
int wait_child(const SpawnedChild& child) noexcept;

// Sends `signal` to the child (kill(2)); throws std::system_error (ESRCH
// when it is gone). Windows, as CPython's Popen.send_signal: SIGTERM is
// TerminateProcess (exit code 1; a child that exited already is no error),
// CTRL_C_EVENT and CTRL_BREAK_EVENT are GenerateConsoleCtrlEvent for a
// child in a new process group; anything else is std::invalid_argument.
void signal_child(const SpawnedChild& child, int signal);

// As asyncio's terminate() and kill() send: SIGTERM and SIGKILL (Windows:
// SIGTERM for both, TerminateProcess).
int terminate_signal() noexcept;
int kill_signal() noexcept;

// How a child's exit is watched here: "process handle" on Windows (the
// proactor waits on it); on POSIX backends/child_watch.hpp says which and
// how, and it throws std::invalid_argument when AIO_CHILD_WATCHER names
// one that is unknown or missing here.
const char* child_watcher_name();

// The program and arguments that run `cmd` through the system's shell:
// /bin/sh -c cmd (Windows: %COMSPEC% /c cmd, the command passed on as
// cmd.exe reads it, as CPython's shell=True).
std::pair<std::string, std::vector<std::string>> shell_command(std::string cmd);

// A pipe for one of a child's standard streams, both ends close-on-exec
// (non-inheritable): (the parent's end, the child's end); the child reads
// from its end when `child_reads`. POSIX: pipe(2). Windows: a uniquely
// named pipe whose parent end is overlapped (for the proactor) and whose
// child end is synchronous, as asyncio's windows_utils.pipe.
std::pair<fd_t, fd_t> make_stdio_pipe(bool child_reads);
// POSIX only: pipe(2) with both ends close-on-exec: (read end, write end).
std::pair<int, int> make_pipe();
// The null device (/dev/null, NUL) for reading or writing, close-on-exec.
fd_t open_devnull(bool for_writing);
// Closes a descriptor (a HANDLE on Windows); -1 is ignored.
void close_fd(fd_t fd) noexcept;

}  // namespace aio::detail
