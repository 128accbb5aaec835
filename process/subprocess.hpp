// Subprocesses (asyncio's subprocess_exec / subprocess_shell): where the
// child's standard streams go, and the other options of a spawn.
#pragma once

#include <core/fd.hpp>

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace aio {

// One of the child's stdin, stdout, stderr (asyncio's PIPE, DEVNULL,
// STDOUT, a descriptor, or None to inherit). On Windows a PIPE is a
// uniquely named pipe whose end in the parent is overlapped (the proactor
// reads and writes it) and whose end in the child is an ordinary
// synchronous handle; DEVNULL is NUL; a descriptor is a HANDLE.
class Stdio {
 public:
  enum class Kind { inherit, pipe, devnull, to_stdout, fd };
  static Stdio inherit() noexcept { return Stdio(Kind::inherit); }
  static Stdio pipe() noexcept { return Stdio(Kind::pipe); }
  static Stdio devnull() noexcept { return Stdio(Kind::devnull); }
  // stderr only: where stdout goes.
  static Stdio to_stdout() noexcept { return Stdio(Kind::to_stdout); }
  // An open descriptor (Windows: a HANDLE) of the parent's, copied to the
  // child (the parent keeps it).
  static Stdio from_fd(fd_t fd) noexcept { return Stdio(Kind::fd, fd); }

  Kind kind() const noexcept { return kind_; }
  fd_t fd() const noexcept { return fd_; }

 private:
  explicit Stdio(Kind kind, fd_t fd = -1) noexcept : kind_(kind), fd_(fd) {}
  Kind kind_;
  fd_t fd_;
};

inline const Stdio PIPE = Stdio::pipe();
inline const Stdio DEVNULL = Stdio::devnull();
inline const Stdio STDOUT = Stdio::to_stdout();

struct SubprocessOptions {
  Stdio stdin_ = PIPE;
  Stdio stdout_ = PIPE;
  Stdio stderr_ = PIPE;
  std::optional<std::string> cwd{};
  // The child's whole environment; the parent's when empty.
  std::optional<std::map<std::string, std::string>> env{};
  // Descriptors the child keeps (besides 0, 1, 2, which it always has).
  // POSIX only: a Windows child inherits its three standard streams and no
  // other handle (std::invalid_argument).
  std::vector<int> pass_fds{};
  // Windows: a new process group (CREATE_NEW_PROCESS_GROUP), which
  // send_signal's CTRL_C_EVENT and CTRL_BREAK_EVENT need.
  bool start_new_session = false;
  // setpgid(0, value) in the child (0: a new group led by the child).
  // Windows: only 0, as start_new_session.
  std::optional<int> process_group{};
};

// The mechanism that watches children's exits in this process (for
// aio-info), chosen at the first use: the best one the system has, "pidfd"
// (Linux 5.3), else "kqueue" (EVFILT_PROC: the BSDs, macOS, libkqueue),
// else "sigchld" (SIGCHLD, then waitpid for each of the loop's own
// children); or the one the environment variable AIO_CHILD_WATCHER names.
// "process handle" on Windows. Throws
// std::invalid_argument, naming the allowed values, when AIO_CHILD_WATCHER
// is unknown or names a watcher this system lacks; subprocess_exec then
// refuses likewise.
const char* child_watcher();

}  // namespace aio
