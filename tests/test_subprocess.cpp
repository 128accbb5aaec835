// subprocess_exec / subprocess_shell (asyncio's test_subprocess.py and
// test_events.py SubprocessTestsMixin), with real programs as peers: /bin/sh,
// cat, sleep, true. On every POSIX backend.
#include "subprocess_support.hpp"
#include "support.hpp"

#ifndef _WIN32
#include <core/errors.hpp>
#include <net/protocols.hpp>
#include <net/transports.hpp>
#include <process/process.hpp>
#include <process/subprocess.hpp>

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <exception>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

using test::Child;
using test::env_count;
extern char** environ;

using test::make_loop;
using test::Pair;
using test::run_until;
using test::spawn;

namespace {

// No child of this process is left, not even a zombie.
bool no_children() {
  siginfo_t info{};
  return waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) == -1 && errno == ECHILD;
}

// Zombies among this process's children, from /proc (as `ps -o stat=
// --ppid $PID | grep -c Z`); -1 where there is no /proc.
int zombie_count() {
  DIR* proc = opendir("/proc");
  if (!proc) return -1;
  int zombies = 0;
  while (dirent* entry = readdir(proc)) {
    if (entry->d_name[0] < '0' || entry->d_name[0] > '9') continue;
    std::ifstream stat(std::string("/proc/") + entry->d_name + "/stat");
    std::string line;
    if (!std::getline(stat, line)) continue;
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
    std::size_t end = line.rfind(')');
    if (end == std::string::npos || end + 4 > line.size()) continue;
    char state = line[end + 2];
    int ppid = std::atoi(line.c_str() + end + 4);
    if (ppid == getpid() && state == 'Z') ++zombies;
  }
  closedir(proc);
  return zombies;
}

// The child watcher this run uses (AIO_CHILD_WATCHER, else the best here).
std::string watcher() { return aio::child_watcher(); }

// Whether the descriptor count moves only with what the test does: libkqueue
// (the kqueue watcher on Linux) opens and frees a pidfd of its own per child.
bool fd_count_is_exact(const aio::EventLoop& loop) {
#ifdef __linux__
  if (watcher() == "kqueue") return false;
#endif
  return test::fd_count_is_exact(loop);
}

}  // namespace

TEST_CASE("test_subprocess: output, exit code and the order of the callbacks (67)") {
  auto loop = make_loop();
  test::CaptureErrors errors(*loop);
  auto [child, transport] = spawn(*loop, "/bin/sh", {"-c", "echo out; echo err >&2; exit 7"});
  int pid = transport->get_pid();
  CHECK(pid > 0);
  REQUIRE(transport->get_pipe_transport(0));
  REQUIRE(transport->get_pipe_transport(1));
  CHECK_FALSE(transport->get_pipe_transport(3));
  // Only a SubprocessProtocol can take the child's place.
  CHECK_THROWS_AS(transport->set_protocol(std::make_shared<aio::Protocol>()), std::invalid_argument);
  CHECK(transport->get_protocol().get() == child.get());
  run_until(*loop, [&] { return child->lost; });
  CHECK(child->out == "out\n");
  CHECK(child->err == "err\n");
  CHECK(child->events.front() == "made");
  CHECK(child->events.back() == "lost");
  CHECK(child->pipes_lost.size() == 3);
  CHECK_FALSE(child->error);
  CHECK(errors.contexts.empty());
  CHECK(no_children());
  loop->close();
}

TEST_CASE("test_subprocess: a round trip through cat, byte for byte") {
  auto loop = make_loop();
  auto child = std::make_shared<Child>();
  aio::ProtocolFactory factory = [child] { return child; };
  Pair pair = test::run(*loop, loop->subprocess_exec(factory, "cat", {}));
  std::shared_ptr<aio::WriteTransport> stdin_pipe = pair.first->get_pipe_transport(0);
  REQUIRE(stdin_pipe);
  // 4 MiB here; the stress run (stress-subprocess) sends the contract's 64.
  std::string payload = test::pattern(static_cast<std::size_t>(env_count("AIO_TEST_CAT_MIB", 4)) << 20);
  stdin_pipe->write(payload);
  stdin_pipe->write_eof();
  run_until(
      *loop, [&] { return child->lost; }, 60.0);
  CHECK(child->out.size() == payload.size());
  CHECK(child->out == payload);
  CHECK(pair.first->get_returncode() == 0);
  loop->close();
}

TEST_CASE("test_subprocess: a program that cannot run raises its errno and leaves nothing (72)") {
  auto loop = make_loop();
  int before = test::open_fd_count();
  aio::ProtocolFactory factory = [] { return std::make_shared<Child>(); };
  auto expect_errno = [&](std::string program, aio::SubprocessOptions options, std::errc code, std::string named) {
    try {
      test::run(*loop, loop->subprocess_exec(factory, program, {}, std::move(options)));
      FAIL("no exception");
    } catch (const std::system_error& e) {
      CHECK(e.code() == code);
      CHECK(std::string(e.what()).find(named) != std::string::npos);
    }
  };
  expect_errno("aiocpp-no-such-program", {}, std::errc::no_such_file_or_directory, "aiocpp-no-such-program");
  expect_errno("/nonexistent/dir/prog", {}, std::errc::no_such_file_or_directory, "/nonexistent/dir/prog");
  {
    test::TempFile script("#!/bin/sh\nexit 0\n");  // not executable
    expect_errno(script.path, {}, std::errc::permission_denied, script.path);
  }
  aio::SubprocessOptions bad_cwd;
  bad_cwd.cwd = "/nonexistent/aiocpp-cwd";
  expect_errno("true", bad_cwd, std::errc::no_such_file_or_directory, "/nonexistent/aiocpp-cwd");
  if (fd_count_is_exact(*loop)) CHECK(test::open_fd_count() == before);
  CHECK(no_children());
  loop->close();
}

TEST_CASE("test_subprocess: bad arguments are refused") {
  auto loop = make_loop();
  aio::ProtocolFactory factory = [] { return std::make_shared<Child>(); };
  CHECK_THROWS_AS(test::run(*loop, loop->subprocess_exec(factory, "", {})), std::invalid_argument);
  CHECK_THROWS_AS(test::run(*loop, loop->subprocess_exec(factory, "echo", {std::string("a\0b", 3)})),
                  std::invalid_argument);
  CHECK_THROWS_AS(test::run(*loop, loop->subprocess_exec({}, "true", {})), std::invalid_argument);
  aio::ProtocolFactory wrong = [] { return std::make_shared<aio::Protocol>(); };
  CHECK_THROWS_AS(test::run(*loop, loop->subprocess_exec(wrong, "true", {})), std::invalid_argument);
  CHECK_THROWS_AS(test::run(*loop, loop->subprocess_exec(factory, "true", {}, {.stdout_ = aio::STDOUT})),
                  std::invalid_argument);
  aio::SubprocessOptions bad_env;
  bad_env.env = std::map<std::string, std::string>{{"A=B", "c"}};
  CHECK_THROWS_AS(test::run(*loop, loop->subprocess_exec(factory, "true", {}, bad_env)), std::invalid_argument);
  CHECK(no_children());
  loop->close();
}

TEST_CASE("test_subprocess: stdio options, cwd, env and pass_fds (80)") {
  auto loop = make_loop();
  SUBCASE("stderr to stdout, stdin from /dev/null") {
    aio::SubprocessOptions options;
    options.stdin_ = aio::DEVNULL;
    options.stderr_ = aio::STDOUT;
    auto [child, transport] = spawn(*loop, "/bin/sh", {"-c", "cat; echo one; echo two >&2"}, options);
    CHECK_FALSE(transport->get_pipe_transport(0));
    CHECK_FALSE(transport->get_pipe_transport(2));
    run_until(*loop, [&] { return child->lost; });
    CHECK(child->out == "one\ntwo\n");
    CHECK(child->err.empty());
  }
  SUBCASE("cwd and a whole environment") {
    aio::SubprocessOptions options;
    options.cwd = "/";
    options.env = std::map<std::string, std::string>{{"AIO_TEST", "value 1"}, {"PATH", "/usr/bin:/bin"}};
    auto [child, transport] = spawn(*loop, "/bin/sh", {"-c", "echo \"$AIO_TEST\"; pwd; echo ${HOME-unset}"}, options);
    run_until(*loop, [&] { return child->lost; });
    CHECK(child->out == "value 1\n/\nunset\n");
  }
  SUBCASE("a descriptor of the parent as stdout, and pass_fds") {
    int out[2], extra[2];
    REQUIRE(pipe2(out, O_CLOEXEC) == 0);
    REQUIRE(pipe2(extra, O_CLOEXEC) == 0);
    aio::SubprocessOptions options;
    options.stdout_ = aio::Stdio::from_fd(out[1]);
    options.pass_fds = {extra[1]};
    // Through /proc: dash's >&N takes one digit only.
    std::string script = "echo to-stdout; echo to-extra > /proc/self/fd/" + std::to_string(extra[1]);
    auto [child, transport] = spawn(*loop, "/bin/sh", {"-c", script}, options);
    run_until(*loop, [&] { return child->lost; });
    ::close(out[1]);
    ::close(extra[1]);
    char buffer[64];
    ssize_t n = ::read(out[0], buffer, sizeof buffer);
    CHECK(std::string(buffer, static_cast<std::size_t>(std::max<ssize_t>(n, 0))) == "to-stdout\n");
    n = ::read(extra[0], buffer, sizeof buffer);
    CHECK(std::string(buffer, static_cast<std::size_t>(std::max<ssize_t>(n, 0))) == "to-extra\n");
    ::close(out[0]);
    ::close(extra[0]);
  }
  SUBCASE("no other descriptor is inherited") {
    int fds[2];
    REQUIRE(::pipe(fds) == 0);  // not close-on-exec: the child must still not see it
    auto [child, transport] = spawn(*loop, "/bin/sh", {"-c", "ls /proc/self/fd | wc -l"});
    run_until(*loop, [&] { return child->lost; });
    // 0, 1, 2 and the directory ls reads.
    CHECK(std::stoi(child->out) == 4);
    ::close(fds[0]);
    ::close(fds[1]);
  }
  loop->close();
}

TEST_CASE("test_subprocess: the child starts with no blocked or ignored signal (71)") {
  auto loop = make_loop();
  sigset_t block, old;
  sigemptyset(&block);
  sigaddset(&block, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &block, &old);
  struct sigaction ignore {
  }, old_pipe{};
  ignore.sa_handler = SIG_IGN;
  sigaction(SIGPIPE, &ignore, &old_pipe);
  auto [child, transport] = spawn(*loop, "/bin/sh", {"-c", "grep -E '^Sig(Blk|Ign)' /proc/self/status"});
  sigaction(SIGPIPE, &old_pipe, nullptr);
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  run_until(*loop, [&] { return child->lost; });
  CHECK(child->out == "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n");
  loop->close();
}

TEST_CASE("test_subprocess: terminate, kill, and a child that ignores SIGTERM (76)") {
  auto loop = make_loop();
  SUBCASE("terminate") {
    auto [child, transport] = spawn(*loop, "sleep", {"30"});
    transport->terminate();
    run_until(*loop, [&] { return child->lost; });
    CHECK(child->exited);
  }
  SUBCASE("SIGTERM ignored, then kill") {
    auto [child, transport] = spawn(*loop, "/bin/sh", {"-c", "trap '' TERM; echo ready; while :; do sleep 0.05; done"});
    run_until(*loop, [&] { return child->out == "ready\n"; });
    transport->terminate();
    test::spin(*loop, 0.2);
    CHECK_FALSE(child->exited);
    transport->kill();
    run_until(*loop, [&] { return child->exited; });
    CHECK(transport->get_returncode() == -SIGKILL);
    transport->close();
    run_until(*loop, [&] { return child->lost; });
  }
  loop->close();
}

TEST_CASE("test_subprocess: returncodes, and signals after the exit") {
  auto loop = make_loop();
  auto child = std::make_shared<Child>();
  aio::ProtocolFactory factory = [child] { return child; };
  Pair pair = test::run(*loop, loop->subprocess_exec(factory, "sleep", {"30"}));
  auto transport = pair.first;
  CHECK_FALSE(transport->get_returncode());
  transport->send_signal(SIGTERM);
  run_until(*loop, [&] { return child->lost; });
  CHECK(transport->get_returncode() == -SIGTERM);
  // After the exit: nothing, and no error (contract 76).
  CHECK_NOTHROW(transport->kill());
  CHECK_NOTHROW(transport->terminate());
  CHECK_NOTHROW(transport->send_signal(SIGUSR1));
  CHECK(transport->get_returncode() == -SIGTERM);
  loop->close();
}

TEST_CASE("test_subprocess: the exit is reported while a grandchild holds stdout (65)") {
  auto loop = make_loop();
  auto [child, transport] = spawn(*loop, "/bin/sh", {"-c", "sleep 30 & echo started"});
  run_until(*loop, [&] { return child->exited; });
  CHECK(transport->get_returncode() == 0);
  CHECK_FALSE(child->lost);  // stdout is still open in the grandchild
  transport->close();        // closes our ends: the transport finishes
  run_until(*loop, [&] { return child->lost; });
  CHECK(child->out == "started\n");
  loop->close();
}

TEST_CASE("test_subprocess: close() kills a running child, which is still reaped") {
  auto loop = make_loop();
  auto [child, transport] = spawn(*loop, "sleep", {"30"});
  transport->close();
  CHECK(transport->is_closing());
  run_until(*loop, [&] { return child->lost; });
  CHECK(no_children());
  loop->close();
}

TEST_CASE("test_subprocess: a set-up cancelled at any step leaves no process and no descriptor (72)") {
  auto loop = make_loop();
  int before = test::open_fd_count();
  for (int steps = 0; steps < 6; ++steps) {
    CAPTURE(steps);
    auto child = std::make_shared<Child>();
    aio::ProtocolFactory factory = [child] { return child; };
    auto task = loop->create_task(loop->subprocess_exec(factory, "cat", {}));
    for (int i = 0; i < steps; ++i) test::spin(*loop, 0);
    task.cancel();
    try {
      loop->run_until_complete(task);
    } catch (const aio::CancelledError&) {
    }
    if (!task.cancelled()) {
      // It finished before the cancel: close it as a user would.
      auto pair = task.result();
      pair.first->close();
      run_until(*loop, [&] { return child->lost; });
    }
  }
  test::spin(*loop, 0.05);
  if (fd_count_is_exact(*loop)) CHECK(test::open_fd_count() == before);
  CHECK(no_children());
  loop->close();
}

TEST_CASE("test_subprocess: many children 50 at a time through subprocess_shell") {
  // 100 here; the stress run (stress-subprocess) sets 2,000, the contract's size.
  int total = env_count("AIO_TEST_CHILDREN", 100);
  auto loop = make_loop();
  for (int first = 0; first < total; first += 50) {
    std::vector<std::shared_ptr<Child>> children;
    std::vector<aio::Task<Pair>> starting;
    for (int i = first; i < std::min(total, first + 50); ++i) {
      auto child = std::make_shared<Child>();
      children.push_back(child);
      aio::ProtocolFactory factory = [child] { return child; };
      starting.push_back(loop->create_task(loop->subprocess_shell(factory, "echo test " + std::to_string(i))));
    }
    for (auto& task : starting) loop->run_until_complete(task);
    run_until(
        *loop,
        [&] {
          for (auto& child : children)
            if (!child->lost) return false;
          return true;
        },
        60.0);
    for (std::size_t i = 0; i < children.size(); ++i)
      CHECK(children[i]->out == "test " + std::to_string(first + static_cast<int>(i)) + "\n");
  }
  CHECK(no_children());
  loop->close();
}

TEST_CASE("test_subprocess: several loops in several threads each get their own children's exits (70)") {
  // Each thread runs its own loop on the backend under test. 25 each here;
  // the stress run (stress-subprocess) sets 250, the contract's size.
  constexpr int threads = 4;
  const int per_thread = env_count("AIO_TEST_THREAD_CHILDREN", 25);
  std::vector<std::vector<int>> codes(threads);
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([t, per_thread, &codes] {
      auto loop = make_loop();
      auto body = [&]() -> aio::Task<void> {
        std::vector<aio::Task<aio::Process>> starting;
        for (int i = 0; i < per_thread; ++i) {
          int code = (t * per_thread + i) % 100;
          starting.push_back(
              loop->create_task(aio::create_subprocess_exec("/bin/sh", {"-c", "exit " + std::to_string(code)})));
        }
        for (auto& task : starting) {
          aio::Process child = co_await task;
          codes[static_cast<std::size_t>(t)].push_back(co_await child.wait());
        }
      };
      loop->run_until_complete(aio::wait_for(loop->create_task(body()), 60.0));
      loop->close();
    });
  }
  for (auto& worker : workers) worker.join();
  for (int t = 0; t < threads; ++t) {
    REQUIRE(codes[static_cast<std::size_t>(t)].size() == static_cast<std::size_t>(per_thread));
    for (int i = 0; i < per_thread; ++i)
      CHECK(codes[static_cast<std::size_t>(t)][static_cast<std::size_t>(i)] == (t * per_thread + i) % 100);
  }
  CHECK(no_children());
}

TEST_CASE("test_subprocess: quick children all at once leave no zombie (68)") {
  // 200 here; the stress run (stress-subprocess) sets 1,000, the contract's size.
  const int total = env_count("AIO_TEST_QUICK_CHILDREN", 200);
  auto loop = make_loop();
  auto body = [&]() -> aio::Task<void> {
    std::vector<aio::Task<aio::Process>> starting;
    for (int i = 0; i < total; ++i) starting.push_back(loop->create_task(aio::create_subprocess_exec("true")));
    for (auto& task : starting) {
      aio::Process child = co_await task;
      CHECK(co_await child.wait() == 0);
    }
  };
  test::run(*loop, body(), 120.0);
  CHECK(zombie_count() == 0);
  CHECK(no_children());
  loop->close();
}

TEST_CASE("test_subprocess: a child that exits before its watch begins is still reported (68)") {
  auto loop = make_loop();
  // Every loop iteration stalls while the child starts, so that it has
  // exited (and, for the SIGCHLD watcher, its signal has come and gone)
  // before the watch begins.
  bool stalling = true;
  std::function<void()> stall;
  stall = [&] {
    if (!stalling) return;
    ::usleep(20000);
    loop->call_soon([&] { stall(); });
  };
  loop->call_soon([&] { stall(); });
  auto body = [&]() -> aio::Task<void> {
    aio::Process child = co_await aio::create_subprocess_exec("true");
    stalling = false;
    CHECK(co_await aio::wait_for(child.wait(), 10.0) == 0);
  };
  test::run(*loop, body(), 20.0);
  CHECK(no_children());
  loop->close();
}

TEST_CASE("test_subprocess: a child reaped behind our back reports 255, and its watch is freed (69)") {
  auto loop = make_loop();
  test::CaptureLog log;
  int before = test::open_fd_count();
  auto [child, transport] = spawn(*loop, "sleep", {"0.1"});
  // The loop does not run meanwhile: this waitpid is first.
  int status = 0;
  REQUIRE(waitpid(transport->get_pid(), &status, 0) == transport->get_pid());
  CHECK(WEXITSTATUS(status) == 0);
  run_until(*loop, [&] { return child->lost; });
  CHECK(transport->get_returncode() == 255);
  CHECK(log.contains("Unknown child process pid " + std::to_string(transport->get_pid())));
  transport.reset();
  test::spin(*loop, 0.05);
  if (fd_count_is_exact(*loop)) CHECK(test::open_fd_count() == before);
  CHECK(no_children());
  loop->close();
}

TEST_CASE("test_subprocess: another thread's own children keep their status (69)") {
  // 50 each here; the stress run (stress-subprocess) sets 500, the contract's size.
  const int total = env_count("AIO_TEST_FOREIGN_CHILDREN", 50);
  auto loop = make_loop();
  // A thread that spawns and waits for children of its own, never ours.
  std::vector<int> foreign(static_cast<std::size_t>(total), -1);
  std::thread other([&foreign, total] {
    for (int i = 0; i < total; ++i) {
      std::string script = "exit " + std::to_string(i % 50 + 1);
      const char* argv[] = {"sh", "-c", script.c_str(), nullptr};
      pid_t pid = -1;
      if (posix_spawn(&pid, "/bin/sh", nullptr, nullptr, const_cast<char**>(argv), environ) != 0) continue;
      int status = 0;
      pid_t r;
      do {
        r = waitpid(pid, &status, 0);
      } while (r < 0 && errno == EINTR);
      foreign[static_cast<std::size_t>(i)] = r == pid && WIFEXITED(status) ? WEXITSTATUS(status) : -2;
    }
  });
  std::vector<int> ours;
  auto body = [&]() -> aio::Task<void> {
    for (int first = 0; first < total; first += 25) {
      std::vector<aio::Task<aio::Process>> starting;
      for (int i = first; i < std::min(total, first + 25); ++i)
        starting.push_back(
            loop->create_task(aio::create_subprocess_exec("/bin/sh", {"-c", "exit " + std::to_string(i % 50 + 51)})));
      for (auto& task : starting) {
        aio::Process child = co_await task;
        ours.push_back(co_await child.wait());
      }
    }
  };
  test::run(*loop, body(), 120.0);
  other.join();
  REQUIRE(ours.size() == static_cast<std::size_t>(total));
  for (int i = 0; i < total; ++i) {
    CAPTURE(i);
    CHECK(ours[static_cast<std::size_t>(i)] == i % 50 + 51);
    CHECK(foreign[static_cast<std::size_t>(i)] == i % 50 + 1);
  }
  CHECK(no_children());
  loop->close();
}

TEST_CASE("test_subprocess: a SIGCHLD handler of the user's runs, and every child is still reported (84)") {
  auto loop = make_loop();
  int calls = 0;
  loop->add_signal_handler(SIGCHLD, [&calls] { ++calls; });
  std::vector<int> codes;
  auto body = [&]() -> aio::Task<void> {
    for (int first = 0; first < 100; first += 25) {
      std::vector<aio::Task<aio::Process>> starting;
      for (int i = first; i < first + 25; ++i)
        starting.push_back(
            loop->create_task(aio::create_subprocess_exec("/bin/sh", {"-c", "exit " + std::to_string(i)})));
      for (auto& task : starting) {
        aio::Process child = co_await task;
        codes.push_back(co_await child.wait());
      }
    }
  };
  test::run(*loop, body(), 60.0);
  REQUIRE(codes.size() == 100);
  for (int i = 0; i < 100; ++i) CHECK(codes[static_cast<std::size_t>(i)] == i);
  CHECK(calls > 0);
  CHECK(loop->remove_signal_handler(SIGCHLD));
  CHECK(no_children());
  loop->close();
}

TEST_CASE("test_subprocess: a loop closed just before a spawn takes nothing from the child") {
  // Under libkqueue a closed kqueue's descriptor number, soon another
  // descriptor's, was closed again in every forked child until libkqueue's
  // monitor thread had let the kqueue go.
  for (int round = 0; round < 20; ++round) {
    auto loop = make_loop();
    auto gone = make_loop();
    gone->close();
    gone.reset();
    auto [child, transport] = spawn(*loop, "/bin/sh", {"-c", "echo out"});
    run_until(*loop, [&] { return child->lost; });
    CHECK(child->out == "out\n");
    loop->close();
  }
}

TEST_CASE("test_subprocess: the child watcher is named, and AIO_CHILD_WATCHER is checked") {
  std::string name = watcher();
  CHECK((name == "pidfd" || name == "kqueue" || name == "sigchld"));
#ifdef __linux__
  // This kernel has pidfd: it is the default unless a run forces another.
  const char* forced = std::getenv("AIO_CHILD_WATCHER");
  CHECK(name == (forced && *forced ? std::string(forced) : std::string("pidfd")));
#endif
}

// ---- Process (create_subprocess_exec / create_subprocess_shell) ----------

namespace {

aio::ProcessOptions piped(bool with_stdin = true) {
  aio::ProcessOptions options;
  if (with_stdin) options.stdin_ = aio::PIPE;
  options.stdout_ = aio::PIPE;
  options.stderr_ = aio::PIPE;
  return options;
}

}  // namespace

TEST_CASE("test_subprocess: Process.communicate through cat, and the exit code") {
  auto loop = make_loop();
  auto body = []() -> aio::Task<void> {
    std::string payload = test::pattern(1 << 20, 7);
    aio::Process cat = co_await aio::create_subprocess_exec("cat", {}, piped());
    CHECK(cat.pid() > 0);
    REQUIRE(cat.stdin_);
    auto [out, err] = co_await cat.communicate(payload);
    CHECK(out.size() == payload.size());
    CHECK(out == payload);
    CHECK(err.empty());
    CHECK(cat.returncode() == 0);
    CHECK(co_await cat.wait() == 0);

    aio::Process sh = co_await aio::create_subprocess_shell("echo out; echo err >&2; exit 3", piped(false));
    CHECK_FALSE(sh.stdin_);
    auto [out2, err2] = co_await sh.communicate();
    CHECK(out2 == "out\n");
    CHECK(err2 == "err\n");
    CHECK(co_await sh.wait() == 3);
  };
  test::run(*loop, body(), 60.0);
  CHECK(no_children());
  loop->close();
}

TEST_CASE("test_subprocess: streams are inherited unless asked for (asyncio's None)") {
  auto loop = make_loop();
  auto body = []() -> aio::Task<void> {
    aio::Process child = co_await aio::create_subprocess_exec("true");
    CHECK_FALSE(child.stdin_);
    CHECK_FALSE(child.stdout_);
    CHECK_FALSE(child.stderr_);
    CHECK(co_await child.wait() == 0);
    auto [out, err] = co_await child.communicate();
    CHECK(out.empty());
    CHECK(err.empty());
  };
  test::run(*loop, body());
  loop->close();
}

TEST_CASE("test_subprocess: wait() returns at the exit while a grandchild holds stdout (65)") {
  auto loop = make_loop();
  auto body = []() -> aio::Task<void> {
    aio::ProcessOptions options;
    options.stdout_ = aio::PIPE;
    options.start_new_session = true;  // so that the grandchild can be ended with its group
    aio::Process sh = co_await aio::create_subprocess_shell("sleep 30 & echo $!; exit 5", options);
    CHECK(co_await sh.wait() == 5);
    std::string line = co_await sh.stdout_->readline();
    ::kill(-sh.pid(), SIGKILL);  // the grandchild, through its group
    CHECK(std::stoi(line) > 0);
    co_await sh.communicate();  // its end of stdout: the transport finishes
  };
  test::run(*loop, body(), 10.0);
  loop->close();
}

TEST_CASE("test_subprocess: a cancelled communicate keeps what it read (75)") {
  auto loop = make_loop();
  auto body = []() -> aio::Task<void> {
    // The timeout falls between the two lines, with room for a loaded machine.
    aio::Process sh = co_await aio::create_subprocess_shell("echo first; sleep 1; echo second", piped(false));
    try {
      co_await aio::wait_for(sh.communicate(), 0.3);
      FAIL("communicate() finished before the timeout");
    } catch (const aio::TimeoutError&) {
    }
    auto [out, err] = co_await sh.communicate();
    CHECK(out == "first\nsecond\n");
    CHECK(co_await sh.wait() == 0);
  };
  test::run(*loop, body(), 10.0);
  loop->close();
}

TEST_CASE("test_subprocess: PIPE is a real pipe the child can open as /dev/stdin (73)") {
  auto loop = make_loop();
  auto body = []() -> aio::Task<void> {
    aio::Process sh = co_await aio::create_subprocess_shell("cat /dev/stdin > /proc/self/fd/1", piped());
    auto [out, err] = co_await sh.communicate("via-dev-stdin");
    CHECK(out == "via-dev-stdin");
    CHECK(co_await sh.wait() == 0);
  };
  test::run(*loop, body(), 10.0);
  loop->close();
}

#endif  // _WIN32
