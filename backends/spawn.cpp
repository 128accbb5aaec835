// backends/spawn.hpp on POSIX: vfork and exec (Windows: spawn_windows.cpp).
#include <backends/spawn.hpp>
#include <backends/syscall.hpp>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace aio::detail {
namespace {

// What exec tries, in order: `program` itself when it names a path, else
// each PATH directory (of the child's environment when given), as execvp.
std::vector<std::string> candidates(const SpawnRequest& request) {
  if (request.program.find('/') != std::string::npos) return {request.program};
  const char* path = nullptr;
  std::string from_env;
  if (request.env) {
    for (const std::string& entry : *request.env)
      if (entry.rfind("PATH=", 0) == 0) from_env = entry.substr(5), path = from_env.c_str();
  } else {
    path = std::getenv("PATH");
  }
  std::string dirs = path ? path : "/bin:/usr/bin";
  std::vector<std::string> out;
  std::size_t start = 0;
  for (;;) {
    std::size_t end = dirs.find(':', start);
    std::string dir = dirs.substr(start, end == std::string::npos ? std::string::npos : end - start);
    out.push_back((dir.empty() ? std::string(".") : dir) + "/" + request.program);
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return out;
}

// What the child reports through the error pipe before it gives up.
struct ChildFailure {
  int error;
  int stage;  // 0: exec, 1: chdir, 2: another set-up step
};

[[noreturn]] void child_fail(int pipe_fd, int error, int stage) {
  ChildFailure failure{error, stage};
  ssize_t ignored = ::write(pipe_fd, &failure, sizeof failure);
  (void)ignored;
  _exit(127);
}

// Closes every descriptor from `low` up, but the sorted `keep` ones.
void close_from(int low, const int* keep, std::size_t nkeep, int max_fd) {
  for (std::size_t i = 0; i <= nkeep; ++i) {
    int high = i < nkeep ? keep[i] - 1 : max_fd;
    if (high >= low) {
#ifdef SYS_close_range
      if (syscall(SYS_close_range, static_cast<unsigned>(low), static_cast<unsigned>(high), 0u) != 0)
#endif
        for (int fd = low; fd <= high; ++fd) ::close(fd);
    }
    if (i < nkeep) low = keep[i] + 1;
  }
}

// Everything the child needs, made by the parent before the child exists:
// between vfork and exec the child may not allocate, throw or write to
// anything of the parent's but its own stack.
struct ChildPlan {
  const SpawnRequest* request;
  const std::vector<std::string>* paths;  // exec candidates, in order
  char* const* argv;
  char* const* envp;
  const int* keep;  // sorted descriptors above 2 that stay open
  std::size_t nkeep;
  int max_fd;
  int err_write;  // close-on-exec: a successful exec closes it
};

// The child's side, on its own frame: a vfork child must never return into
// the frame it shares with the parent, so this ends in exec or _exit.
[[noreturn]] __attribute__((noinline)) void run_child(const ChildPlan& plan) {
  const SpawnRequest& request = *plan.request;
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    sigaction(sig, &dfl, nullptr);
  }
  sigset_t none;
  sigemptyset(&none);
  pthread_sigmask(SIG_SETMASK, &none, nullptr);
  if (request.start_new_session && setsid() == -1) child_fail(plan.err_write, errno, 2);
  if (request.process_group && setpgid(0, *request.process_group) == -1) child_fail(plan.err_write, errno, 2);
  // A source among 0..2 could be overwritten before it is copied: move
  // such sources above 2 first.
  int source[3];
  for (int i = 0; i < 3; ++i) {
    source[i] = static_cast<int>(request.stdio[i]);
    if (source[i] >= 0 && source[i] < 3 && source[i] != i) {
      source[i] = fcntl(source[i], F_DUPFD_CLOEXEC, 3);
      if (source[i] == -1) child_fail(plan.err_write, errno, 2);
    }
  }
  for (int i = 0; i < 3; ++i) {
    if (source[i] < 0) continue;
    if (source[i] == i) {
      if (fcntl(i, F_SETFD, 0) == -1) child_fail(plan.err_write, errno, 2);
    } else if (dup2(source[i], i) == -1) {
      child_fail(plan.err_write, errno, 2);
    }
  }
  if (request.stderr_to_stdout && dup2(1, 2) == -1) child_fail(plan.err_write, errno, 2);
  for (int fd : request.pass_fds)
    if (fcntl(fd, F_SETFD, 0) == -1) child_fail(plan.err_write, errno, 2);
  close_from(3, plan.keep, plan.nkeep, plan.max_fd);
  if (request.cwd && chdir(request.cwd->c_str()) == -1) child_fail(plan.err_write, errno, 1);
  int error = ENOENT;
  bool saw_eacces = false;
  for (const std::string& path : *plan.paths) {
    execve(path.c_str(), plan.argv, plan.envp);
    if (errno == EACCES) saw_eacces = true;
    // As execvp: keep looking on "not here"; anything else is the answer.
    if (errno != ENOENT && errno != ENOTDIR && errno != EACCES) {
      error = errno;
      saw_eacces = false;
      break;
    }
  }
  child_fail(plan.err_write, saw_eacces ? EACCES : error, 0);
}

// vfork where it is the real thing: the child borrows the parent's memory
// instead of copying its page tables, so a spawn costs the same from a
// large process as from a small one (CPython's subprocess does the same
// since 3.10). The calling thread waits until the child has exec'd or
// exited; other threads run on. macOS deprecates vfork, so it forks.
pid_t start_child(const ChildPlan& plan) {
#ifdef __APPLE__
  pid_t pid = fork();
#else
  pid_t pid = vfork();
#endif
  if (pid == 0) run_child(plan);
  return pid;
}

}  // namespace

SpawnedChild spawn(const SpawnRequest& request) {
  check_spawn_request(request);
  for (int fd : request.pass_fds)
    if (fd < 0) throw std::invalid_argument("subprocess: pass_fds holds a negative descriptor");

  std::vector<std::string> paths = candidates(request);
  std::vector<char*> argv;
  for (const std::string& arg : request.args) argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);
  std::vector<char*> envp;
  if (request.env) {
    for (const std::string& entry : *request.env) envp.push_back(const_cast<char*>(entry.c_str()));
    envp.push_back(nullptr);
  }
  std::vector<int> keep = request.pass_fds;
  auto [err_read, err_write] = make_pipe();
  keep.push_back(err_write);
  std::sort(keep.begin(), keep.end());
  keep.erase(std::unique(keep.begin(), keep.end()), keep.end());
  keep.erase(std::remove_if(keep.begin(), keep.end(), [](int fd) { return fd < 3; }), keep.end());
  rlimit limit{};
  int max_fd = getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY && limit.rlim_cur < INT_MAX
                   ? static_cast<int>(limit.rlim_cur) - 1
                   : 65535;
  const ChildPlan plan{.request = &request,
                       .paths = &paths,
                       .argv = argv.data(),
                       .envp = request.env ? envp.data() : environ,
                       .keep = keep.data(),
                       .nkeep = keep.size(),
                       .max_fd = max_fd,
                       .err_write = err_write};

  // Signals are blocked across the start so that no handler of ours runs
  // in the child before its dispositions are reset.
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  pid_t pid = start_child(plan);
  int fork_error = errno;
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  close_fd(err_write);
  if (pid < 0) {
    close_fd(err_read);
    throw_os_error(fork_error, "fork");
  }
  ChildFailure failure{};
  ssize_t n;
  do {
    n = ::read(err_read, &failure, sizeof failure);
  } while (n < 0 && errno == EINTR);
  close_fd(err_read);
  if (n == static_cast<ssize_t>(sizeof failure)) {
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (failure.stage == 1) throw_os_error(failure.error, "subprocess: cwd '" + *request.cwd + "'");
    if (failure.stage == 2)
      throw_os_error(failure.error, "subprocess: setting up the child of '" + request.program + "'");
    throw_os_error(failure.error, "subprocess: cannot run '" + request.program + "'");
  }
  SpawnedChild child;
  child.pid = pid;
  child.new_group = request.start_new_session || request.process_group == 0;
  return child;
}

std::optional<int> reap_child(const SpawnedChild& child, bool* reaped_elsewhere) {
  int status = 0;
  pid_t r;
  do {
    r = waitpid(child.pid, &status, WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r == 0) return std::nullopt;
  if (r < 0) {
    if (reaped_elsewhere) *reaped_elsewhere = true;
    return 255;
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return -WTERMSIG(status);
  return std::nullopt;  // stopped or continued: still running
}

int wait_child(const SpawnedChild& child) noexcept {
  int status = 0;
  pid_t r;
  do {
    r = waitpid(child.pid, &status, 0);
  } while (r < 0 && errno == EINTR);
  if (r < 0) return 255;
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return -WTERMSIG(status);
  return 255;
}

void signal_child(const SpawnedChild& child, int signal) {
  if (::kill(child.pid, signal) != 0)
    throw_os_error(errno, "kill(" + std::to_string(child.pid) + ", " + std::to_string(signal) + ")");
}

int terminate_signal() noexcept { return SIGTERM; }
int kill_signal() noexcept { return SIGKILL; }

std::pair<int, int> make_pipe() {
  int fds[2];
#ifdef __linux__
  if (pipe2(fds, O_CLOEXEC) != 0) throw_os_error(errno, "pipe2");
#else
  if (pipe(fds) != 0) throw_os_error(errno, "pipe");
  fcntl(fds[0], F_SETFD, FD_CLOEXEC);
  fcntl(fds[1], F_SETFD, FD_CLOEXEC);
#endif
  return {fds[0], fds[1]};
}

std::pair<std::string, std::vector<std::string>> shell_command(std::string cmd) {
  return {"/bin/sh", {"-c", std::move(cmd)}};
}

std::pair<fd_t, fd_t> make_stdio_pipe(bool child_reads) {
  auto [r, w] = make_pipe();
  return child_reads ? std::pair<fd_t, fd_t>{w, r} : std::pair<fd_t, fd_t>{r, w};
}

fd_t open_devnull(bool for_writing) {
  int fd = ::open("/dev/null", (for_writing ? O_WRONLY : O_RDONLY) | O_CLOEXEC);
  if (fd < 0) throw_os_error(errno, "open /dev/null");
  return fd;
}

void close_fd(fd_t fd) noexcept {
  if (fd >= 0) ::close(static_cast<int>(fd));
}

}  // namespace aio::detail
