// subprocess_exec / subprocess_shell and Process on Windows (the cases of
// test_subprocess.cpp where Windows has the feature, asyncio's
// test_subprocess.py and test_windows_events.py), with aio-child-helper as
// the child: there is no /bin/sh. The proactor loop (iocp) runs them; the
// selector loop (select) refuses subprocesses, as asyncio's.
#include "subprocess_support.hpp"
#include "support.hpp"

#ifdef _WIN32
#include <backends/spawn.hpp>
#include <backends/waker.hpp>
#include <core/errors.hpp>
#include <process/process.hpp>

#include <windows.h>

#include <csignal>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

using test::Child;
using test::env_count;
using test::make_loop;
using test::Pair;
using test::run_until;
using test::spawn;

namespace {

// aio-child-helper.exe, built beside this test program.
std::string helper() {
  char path[MAX_PATH] = {};
  DWORD n = GetModuleFileNameA(nullptr, path, MAX_PATH);
  std::string self(path, n);
  return self.substr(0, self.find_last_of("\\/") + 1) + "aio-child-helper.exe";
}

// The loops that run subprocesses (asyncio's ProactorEventLoop); the
// cases return early on the others.
bool runs_subprocesses(const aio::EventLoop& loop) { return !test::loop_has_readiness(loop); }
constexpr std::string_view no_subprocesses =
    "Windows' selector loop runs no subprocesses (as asyncio's); its refusal has a case of its own";

bool all_lost(const std::vector<std::shared_ptr<Child>>& children) {
  for (auto& child : children)
    if (!child->lost) return false;
  return true;
}

}  // namespace

TEST_CASE("test_subprocess[windows]: the selector loop refuses subprocesses, naming the proactor") {
  auto loop = make_loop();
  if (runs_subprocesses(*loop)) return test::skip("tests the selector loop");
  aio::ProtocolFactory factory = [] { return std::make_shared<Child>(); };
  try {
    test::run(*loop, loop->subprocess_exec(factory, helper(), {"exit", "0"}));
    FAIL("no exception");
  } catch (const aio::NotImplementedError& e) {
    CHECK(std::string(e.what()).find("subprocess") != std::string::npos);
    CHECK(std::string(e.what()).find("proactor") != std::string::npos);
  }
  CHECK_THROWS_AS(test::run(*loop, loop->subprocess_exec(
                                       factory, helper(), {"exit", "0"},
                                       {.stdin_ = aio::DEVNULL, .stdout_ = aio::DEVNULL, .stderr_ = aio::DEVNULL})),
                  aio::NotImplementedError);
  auto body = []() -> aio::Task<void> { co_await aio::create_subprocess_shell("exit 0"); };
  CHECK_THROWS_AS(test::run(*loop, body()), aio::NotImplementedError);
  // Refused before anything is spawned (the make_subprocess_transport
  // hook's default): a program that does not exist is never looked for.
  CHECK_THROWS_AS(test::run(*loop, loop->subprocess_exec(factory, "Z:\\no\\such\\program.exe", {})),
                  aio::NotImplementedError);
  loop->close();
}

TEST_CASE("test_subprocess[windows]: aio-info names the process handle as the child watcher") {
  CHECK(std::string(aio::child_watcher()) == "process handle");
}

TEST_CASE("test_subprocess[windows]: output, exit code and the order of the callbacks (67)") {
  auto loop = make_loop();
  if (!runs_subprocesses(*loop)) return test::skip(no_subprocesses);
  test::CaptureErrors errors(*loop);
  auto [child, transport] = spawn(*loop, helper(), {"out", "out\n", "err", "err\n", "exit", "7"});
  CHECK(transport->get_pid() > 0);
  REQUIRE(transport->get_pipe_transport(0));
  REQUIRE(transport->get_pipe_transport(1));
  CHECK_FALSE(transport->get_pipe_transport(3));
  run_until(*loop, [&] { return child->lost; });
  CHECK(child->out == "out\n");
  CHECK(child->err == "err\n");
  CHECK(transport->get_returncode() == 7);
  CHECK(child->events.front() == "made");
  CHECK(child->events.back() == "lost");
  CHECK(child->pipes_lost.size() == 3);
  CHECK_FALSE(child->error);
  CHECK(errors.contexts.empty());
  loop->close();
}

TEST_CASE("test_subprocess[windows]: arguments reach the child as the C runtime parses them") {
  auto loop = make_loop();
  if (!runs_subprocesses(*loop)) return test::skip(no_subprocesses);
  std::vector<std::string> args = {"plain",       "two words",  "",        "quote\"inside", "\"quoted\"",
                                   "back\\slash", "trailing\\", "two\\\\", "\\\"",          "tab\there",
                                   "a\\\\\"b",    "new\nline",  "ünïcödé", "%PATH%",        "^&|<>"};
  std::vector<std::string> command = {"argv"};
  command.insert(command.end(), args.begin(), args.end());
  auto [child, transport] = spawn(*loop, helper(), command);
  run_until(*loop, [&] { return child->lost; });
  std::vector<std::string> got;
  for (std::size_t start = 0, end; (end = child->out.find('\0', start)) != std::string::npos; start = end + 1)
    got.push_back(child->out.substr(start, end - start));
  // The helper's narrow argv is in the ANSI code page, where the non-ASCII
  // argument may not exist: the rest must round-trip exactly.
  REQUIRE(got.size() == args.size());
  for (std::size_t i = 0; i < args.size(); ++i)
    if (args[i] != "ünïcödé") CHECK(got[i] == args[i]);
  loop->close();
}

TEST_CASE("test_subprocess[windows]: an exit code of 259 (STILL_ACTIVE) is an exit, and codes are kept") {
  auto loop = make_loop();
  if (!runs_subprocesses(*loop)) return test::skip(no_subprocesses);
  for (int code : {259, 0, 1, 255, 256, 1000}) {
    CAPTURE(code);
    auto [child, transport] = spawn(*loop, helper(), {"exit", std::to_string(code)});
    run_until(*loop, [&] { return child->lost; });
    CHECK(child->exited);
    CHECK(transport->get_returncode() == code);
  }
  loop->close();
}

TEST_CASE("test_subprocess[windows]: a round trip through the child, byte for byte") {
  auto loop = make_loop();
  if (!runs_subprocesses(*loop)) return test::skip(no_subprocesses);
  auto child = std::make_shared<Child>();
  aio::ProtocolFactory factory = [child] { return child; };
  Pair pair = test::run(*loop, loop->subprocess_exec(factory, helper(), {"echo"}));
  std::shared_ptr<aio::WriteTransport> stdin_pipe = pair.first->get_pipe_transport(0);
  REQUIRE(stdin_pipe);
  std::string payload = test::pattern(static_cast<std::size_t>(env_count("AIO_TEST_CAT_MIB", 4)) << 20);
  stdin_pipe->write(payload);
  stdin_pipe->write_eof();
  run_until(
      *loop, [&] { return child->lost; }, 120.0);
  CHECK(child->out.size() == payload.size());
  CHECK(child->out == payload);
  CHECK(pair.first->get_returncode() == 0);
  loop->close();
}

TEST_CASE("test_subprocess[windows]: 64 MiB through Process.communicate, byte for byte (74)") {
  auto loop = make_loop();
  if (!runs_subprocesses(*loop)) return test::skip(no_subprocesses);
  auto body = []() -> aio::Task<void> {
    aio::ProcessOptions options;
    options.stdin_ = options.stdout_ = aio::PIPE;
    std::vector<std::string> args = {"echo"};
    aio::Process child = co_await aio::create_subprocess_exec(helper(), args, options);
    std::string payload = test::pattern(std::size_t{64} << 20, 3);
    auto [out, err] = co_await child.communicate(payload);
    CHECK(out.size() == payload.size());
    CHECK(out == payload);
    CHECK(co_await child.wait() == 0);
  };
  test::run(*loop, body(), 240.0);
  loop->close();
}

TEST_CASE("test_subprocess[windows]: output of a child that exits before its pipes are connected") {
  auto loop = make_loop();
  if (!runs_subprocesses(*loop)) return test::skip(no_subprocesses);
  auto child = std::make_shared<Child>();
  aio::EventLoop* l = loop.get();
  // The factory runs before the spawn; what it schedules runs once the
  // set-up first waits, before the pipes are started: the loop is held
  // until the child has written everything and exited.
  aio::ProtocolFactory factory = [child, l] {
    l->call_soon([] { Sleep(500); });
    return child;
  };
  Pair pair = test::run(*loop, loop->subprocess_exec(factory, helper(), {"out", "early\n", "err", "e", "exit", "3"}));
  run_until(*loop, [&] { return child->lost; });
  CHECK(child->out == "early\n");
  CHECK(child->err == "e");
  CHECK(pair.first->get_returncode() == 3);
  CHECK(child->events.front() == "made");
  CHECK(child->events.back() == "lost");
  loop->close();
}

TEST_CASE("test_subprocess[windows]: a program that cannot run raises a clear error naming it (72)") {
  auto loop = make_loop();
  if (!runs_subprocesses(*loop)) return test::skip(no_subprocesses);
  aio::ProtocolFactory factory = [] { return std::make_shared<Child>(); };
  auto expect_error = [&](std::string program, aio::SubprocessOptions options, std::errc code, std::string named) {
    try {
      test::run(*loop, loop->subprocess_exec(factory, program, {}, std::move(options)));
      FAIL("no exception");
    } catch (const std::system_error& e) {
      CHECK(e.code() == code);
      CHECK(std::string(e.what()).find(named) != std::string::npos);
    }
  };
  expect_error("aiocpp-no-such-program", {}, std::errc::no_such_file_or_directory, "aiocpp-no-such-program");
  expect_error("C:\\nonexistent\\dir\\prog.exe", {}, std::errc::no_such_file_or_directory, "prog.exe");
  aio::SubprocessOptions bad_cwd;
  bad_cwd.cwd = "C:\\nonexistent\\aiocpp-cwd";
  expect_error(helper(), bad_cwd, std::errc::no_such_file_or_directory, "aiocpp-cwd");
  loop->close();
}

TEST_CASE("test_subprocess[windows]: bad arguments are refused, naming what Windows allows") {
  auto loop = make_loop();
  if (!runs_subprocesses(*loop)) return test::skip(no_subprocesses);
  aio::ProtocolFactory factory = [] { return std::make_shared<Child>(); };
  CHECK_THROWS_AS(test::run(*loop, loop->subprocess_exec(factory, "", {})), std::invalid_argument);
  CHECK_THROWS_AS(test::run(*loop, loop->subprocess_exec(factory, helper(), {std::string("a\0b", 3)})),
                  std::invalid_argument);
  CHECK_THROWS_AS(test::run(*loop, loop->subprocess_exec(factory, helper(), {}, {.stdout_ = aio::STDOUT})),
                  std::invalid_argument);
  CHECK_THROWS_WITH_AS(test::run(*loop, loop->subprocess_exec(factory, helper(), {}, {.pass_fds = {3}})),
                       doctest::Contains("pass_fds"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(test::run(*loop, loop->subprocess_exec(factory, helper(), {}, {.process_group = 5})),
                       doctest::Contains("process_group"), std::invalid_argument);
  loop->close();
}

TEST_CASE("test_subprocess[windows]: stdio options, cwd and env (80)") {
  auto loop = make_loop();
  if (!runs_subprocesses(*loop)) return test::skip(no_subprocesses);
  SUBCASE("stderr to stdout, stdin from NUL") {
    aio::SubprocessOptions options;
    options.stdin_ = aio::DEVNULL;
    options.stderr_ = aio::STDOUT;
    auto [child, transport] = spawn(*loop, helper(), {"echo", "out", "one\n", "err", "two\n"}, options);
    CHECK_FALSE(transport->get_pipe_transport(0));
    CHECK_FALSE(transport->get_pipe_transport(2));
    run_until(*loop, [&] { return child->lost; });
    CHECK(child->out == "one\ntwo\n");
    CHECK(child->err.empty());
  }
  SUBCASE("output to NUL") {
    aio::SubprocessOptions options;
    options.stdout_ = aio::DEVNULL;
    auto [child, transport] = spawn(*loop, helper(), {"out", "gone", "err", "kept"}, options);
    run_until(*loop, [&] { return child->lost; });
    CHECK(child->out.empty());
    CHECK(child->err == "kept");
  }
  SUBCASE("cwd and a whole environment") {
    aio::SubprocessOptions options;
    options.cwd = "C:\\";
    options.env = std::map<std::string, std::string>{{"AIO_TEST", "value 1"}, {"SystemRoot", "C:\\windows"}};
    auto [child, transport] = spawn(*loop, helper(), {"env", "AIO_TEST", "cwd", "env", "HOME"}, options);
    run_until(*loop, [&] { return child->lost; });
    CHECK(child->out == "value 1\nC:\\\nunset\n");
  }
  SUBCASE("a handle of the parent as stdout") {
    HANDLE read_end = nullptr, write_end = nullptr;
    REQUIRE(CreatePipe(&read_end, &write_end, nullptr, 0));
    aio::SubprocessOptions options;
    options.stdout_ = aio::Stdio::from_fd(reinterpret_cast<aio::fd_t>(write_end));
    auto [child, transport] = spawn(*loop, helper(), {"out", "to-stdout\n"}, options);
    run_until(*loop, [&] { return child->lost; });
    CloseHandle(write_end);  // the parent keeps it: the child had a copy
    char buffer[64];
    DWORD n = 0;
    CHECK(ReadFile(read_end, buffer, sizeof buffer, &n, nullptr));
    CHECK(std::string(buffer, n) == "to-stdout\n");
    CloseHandle(read_end);
  }
  loop->close();
}

TEST_CASE(
    "test_subprocess[windows]: terminate and kill are TerminateProcess, send_signal takes what Windows has "
    "(76)") {
  auto loop = make_loop();
  if (!runs_subprocesses(*loop)) return test::skip(no_subprocesses);
  SUBCASE("terminate") {
    auto [child, transport] = spawn(*loop, helper(), {"sleep", "30"});
    transport->terminate();
    run_until(*loop, [&] { return child->lost; });
    CHECK(transport->get_returncode() == 1);
  }
  SUBCASE("kill, and signals after the exit") {
    auto [child, transport] = spawn(*loop, helper(), {"ignore-ctrl", "out", "ready\n", "sleep", "30"});
    run_until(*loop, [&] { return child->out == "ready\n"; });
    transport->kill();
    run_until(*loop, [&] { return child->lost; });
    CHECK(transport->get_returncode() == 1);
    // After the exit: nothing, and no error (contract 76).
    CHECK_NOTHROW(transport->kill());
    CHECK_NOTHROW(transport->terminate());
    CHECK(transport->get_returncode() == 1);
  }
  SUBCASE("signals Windows cannot send are refused, naming the ones it can") {
    auto [child, transport] = spawn(*loop, helper(), {"sleep", "30"});
    CHECK_THROWS_WITH_AS(transport->send_signal(SIGINT), doctest::Contains("CTRL_BREAK_EVENT"), std::invalid_argument);
    // Not in a process group of its own: the event would reach the whole console.
    CHECK_THROWS_WITH_AS(transport->send_signal(CTRL_BREAK_EVENT), doctest::Contains("new process group"),
                         std::invalid_argument);
    CHECK_FALSE(child->exited);
    transport->send_signal(SIGTERM);
    run_until(*loop, [&] { return child->lost; });
    CHECK(transport->get_returncode() == 1);
  }
  loop->close();
}

TEST_CASE("test_subprocess[windows]: TerminateProcess on a child that has exited is no error, and 259 is its code") {
  // Below the transport, which stops signalling once it saw the exit: the
  // window between the exit and its report.
  aio::detail::SpawnRequest request;
  request.program = helper();
  request.args = {helper(), "exit", "259"};
  aio::detail::SpawnedChild child = aio::detail::spawn(request);
  REQUIRE(WaitForSingleObject(reinterpret_cast<HANDLE>(child.handle), 10000) == WAIT_OBJECT_0);
  CHECK_NOTHROW(aio::detail::signal_child(child, SIGTERM));
  CHECK(aio::detail::reap_child(child) == 259);
  CHECK(aio::detail::wait_child(child) == 259);
  aio::detail::close_fd(child.handle);
}

TEST_CASE("test_subprocess[windows]: CTRL_BREAK_EVENT reaches a child in a new process group") {
  auto loop = make_loop();
  if (!runs_subprocesses(*loop)) return test::skip(no_subprocesses);
  aio::SubprocessOptions options;
  options.start_new_session = true;
  auto [child, transport] = spawn(*loop, helper(), {"out", "ready\n", "sleep", "30"}, options);
  run_until(*loop, [&] { return child->out == "ready\n"; });
  try {
    transport->send_signal(CTRL_BREAK_EVENT);
  } catch (const std::system_error& e) {
    transport->kill();
    run_until(*loop, [&] { return child->lost; });
    loop->close();
    if (test::running_under_wine())
      return test::skip(
          "Wine 8.0: GenerateConsoleCtrlEvent fails (ERROR_INVALID_ACCESS) where the test has no console");
    FAIL(e.what());
  }
  test::spin(*loop, 0);
  double deadline = loop->time() + 5;
  while (!child->lost && loop->time() < deadline) test::spin(*loop, 0.02);
  if (!child->lost && test::running_under_wine()) {
    transport->kill();
    run_until(*loop, [&] { return child->lost; });
    loop->close();
    return test::skip("Wine 8.0: a console control event never reaches a child without a console");
  }
  REQUIRE(child->lost);
  CHECK(transport->get_returncode() == static_cast<int>(STATUS_CONTROL_C_EXIT));
  loop->close();
}

TEST_CASE("test_subprocess[windows]: the exit is reported while a grandchild holds stdout (65)") {
  auto loop = make_loop();
  if (!runs_subprocesses(*loop)) return test::skip(no_subprocesses);
  auto [child, transport] = spawn(*loop, helper(), {"orphan", "30", "exit", "5"});
  run_until(*loop, [&] { return child->exited; });
  CHECK(transport->get_returncode() == 5);
  CHECK_FALSE(child->lost);  // stdout is still open in the grandchild
  transport->close();        // closes our ends: the transport finishes
  run_until(*loop, [&] { return child->lost; });
  int grandchild = std::stoi(child->out);
  CHECK(grandchild > 0);
  if (HANDLE g = OpenProcess(PROCESS_TERMINATE, FALSE, static_cast<DWORD>(grandchild))) {
    TerminateProcess(g, 1);
    CloseHandle(g);
  }
  loop->close();
}

TEST_CASE("test_subprocess[windows]: close() kills a running child") {
  auto loop = make_loop();
  if (!runs_subprocesses(*loop)) return test::skip(no_subprocesses);
  auto [child, transport] = spawn(*loop, helper(), {"sleep", "30"});
  transport->close();
  CHECK(transport->is_closing());
  run_until(*loop, [&] { return child->lost; });
  CHECK(transport->get_returncode() == 1);
  loop->close();
}

TEST_CASE("test_subprocess[windows]: a set-up cancelled at any step leaves no process running (72)") {
  auto loop = make_loop();
  if (!runs_subprocesses(*loop)) return test::skip(no_subprocesses);
  for (int steps = 0; steps < 6; ++steps) {
    CAPTURE(steps);
    auto child = std::make_shared<Child>();
    aio::ProtocolFactory factory = [child] { return child; };
    auto task = loop->create_task(loop->subprocess_exec(factory, helper(), {"echo"}));
    for (int i = 0; i < steps; ++i) test::spin(*loop, 0);
    task.cancel();
    try {
      loop->run_until_complete(task);
    } catch (const aio::CancelledError&) {
    }
    if (!task.cancelled()) {
      auto pair = task.result();
      pair.first->close();
      run_until(*loop, [&] { return child->lost; });
    } else if (child->transport) {
      run_until(*loop, [&] { return child->lost; });
    }
  }
  loop->close();
}

TEST_CASE("test_subprocess[windows]: many children 25 at a time through subprocess_shell (cmd.exe /c)") {
  int total = env_count("AIO_TEST_CHILDREN", 50);
  auto loop = make_loop();
  if (!runs_subprocesses(*loop)) return test::skip(no_subprocesses);
  for (int first = 0; first < total; first += 25) {
    std::vector<std::shared_ptr<Child>> children;
    std::vector<aio::Task<Pair>> starting;
    for (int i = first; i < std::min(total, first + 25); ++i) {
      auto child = std::make_shared<Child>();
      children.push_back(child);
      aio::ProtocolFactory factory = [child] { return child; };
      starting.push_back(loop->create_task(loop->subprocess_shell(factory, "echo test " + std::to_string(i))));
    }
    for (auto& task : starting) loop->run_until_complete(task);
    run_until(
        *loop, [&] { return all_lost(children); }, 120.0);
    for (std::size_t i = 0; i < children.size(); ++i)
      CHECK(children[i]->out == "test " + std::to_string(first + static_cast<int>(i)) + "\r\n");
  }
  loop->close();
}

TEST_CASE("test_subprocess[windows]: several loops in several threads each get their own children's exits (70)") {
  {
    auto probe = make_loop();
    if (!runs_subprocesses(*probe)) return test::skip(no_subprocesses);
  }
  constexpr int threads = 4, per_thread = 8;
  std::vector<std::vector<int>> codes(threads);
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([t, &codes] {
      auto loop = make_loop();
      auto body = [&]() -> aio::Task<void> {
        std::vector<aio::Task<aio::Process>> starting;
        for (int i = 0; i < per_thread; ++i) {
          int code = t * per_thread + i;
          starting.push_back(loop->create_task(aio::create_subprocess_exec(helper(), {"exit", std::to_string(code)})));
        }
        for (auto& task : starting) {
          aio::Process child = co_await task;
          codes[static_cast<std::size_t>(t)].push_back(co_await child.wait());
        }
      };
      loop->run_until_complete(aio::wait_for(loop->create_task(body()), 120.0));
      loop->close();
    });
  }
  for (auto& worker : workers) worker.join();
  for (int t = 0; t < threads; ++t) {
    REQUIRE(codes[static_cast<std::size_t>(t)].size() == per_thread);
    for (int i = 0; i < per_thread; ++i)
      CHECK(codes[static_cast<std::size_t>(t)][static_cast<std::size_t>(i)] == t * per_thread + i);
  }
}

TEST_CASE("test_subprocess[windows]: Process.communicate, create_subprocess_shell and the exit code") {
  auto loop = make_loop();
  if (!runs_subprocesses(*loop)) return test::skip(no_subprocesses);
  auto body = []() -> aio::Task<void> {
    aio::ProcessOptions piped;
    piped.stdin_ = piped.stdout_ = piped.stderr_ = aio::PIPE;
    std::string payload = test::pattern(1 << 20, 7);
    std::vector<std::string> args = {"echo", "err", "done"};
    aio::Process echo = co_await aio::create_subprocess_exec(helper(), args, piped);
    CHECK(echo.pid() > 0);
    auto [out, err] = co_await echo.communicate(payload);
    CHECK(out == payload);
    CHECK(err == "done");
    CHECK(co_await echo.wait() == 0);

    aio::ProcessOptions no_stdin;
    no_stdin.stdout_ = no_stdin.stderr_ = aio::PIPE;
    aio::Process sh = co_await aio::create_subprocess_shell("echo out& echo err>&2& exit /b 3", no_stdin);
    CHECK_FALSE(sh.stdin_);
    auto [out2, err2] = co_await sh.communicate();
    CHECK(out2 == "out\r\n");
    CHECK(err2 == "err\r\n");
    CHECK(co_await sh.wait() == 3);
  };
  test::run(*loop, body(), 60.0);
  loop->close();
}

TEST_CASE("test_subprocess[windows]: streams are inherited unless asked for (asyncio's None)") {
  auto loop = make_loop();
  if (!runs_subprocesses(*loop)) return test::skip(no_subprocesses);
  auto body = []() -> aio::Task<void> {
    std::vector<std::string> args = {"exit", "0"};
    aio::Process child = co_await aio::create_subprocess_exec(helper(), args);
    CHECK_FALSE(child.stdin_);
    CHECK_FALSE(child.stdout_);
    CHECK(co_await child.wait() == 0);
  };
  test::run(*loop, body());
  loop->close();
}

TEST_CASE("test_subprocess[windows]: wait() returns at the exit while a grandchild holds stdout (65)") {
  auto loop = make_loop();
  if (!runs_subprocesses(*loop)) return test::skip(no_subprocesses);
  auto body = []() -> aio::Task<void> {
    aio::ProcessOptions options;
    options.stdout_ = aio::PIPE;
    std::vector<std::string> args = {"orphan", "30", "exit", "5"};
    aio::Process child = co_await aio::create_subprocess_exec(helper(), args, options);
    CHECK(co_await child.wait() == 5);
    std::string line = co_await child.stdout_->readline();
    int grandchild = std::stoi(line);
    CHECK(grandchild > 0);
    if (HANDLE g = OpenProcess(PROCESS_TERMINATE, FALSE, static_cast<DWORD>(grandchild))) {
      TerminateProcess(g, 1);
      CloseHandle(g);
    }
    co_await child.communicate();  // its end of stdout: the transport finishes
  };
  test::run(*loop, body(), 20.0);
  loop->close();
}

TEST_CASE("test_subprocess[windows]: a cancelled communicate keeps what it read (75)") {
  auto loop = make_loop();
  if (!runs_subprocesses(*loop)) return test::skip(no_subprocesses);
  auto body = []() -> aio::Task<void> {
    aio::ProcessOptions options;
    options.stdout_ = options.stderr_ = aio::PIPE;
    std::vector<std::string> args = {"out", "first\n", "sleep", "1", "out", "second\n"};
    aio::Process child = co_await aio::create_subprocess_exec(helper(), args, options);
    try {
      co_await aio::wait_for(child.communicate(), 0.3);
      FAIL("communicate() finished before the timeout");
    } catch (const aio::TimeoutError&) {
    }
    auto [out, err] = co_await child.communicate();
    CHECK(out == "first\nsecond\n");
    CHECK(co_await child.wait() == 0);
  };
  test::run(*loop, body(), 20.0);
  loop->close();
}

TEST_CASE("test_subprocess[windows]: the loop's own handles are not inheritable") {
  aio::detail::Waker waker;  // the selector loop's self-pipe
  DWORD flags = 0;
  REQUIRE(GetHandleInformation(reinterpret_cast<HANDLE>(waker.read_fd()), &flags));
  CHECK((flags & HANDLE_FLAG_INHERIT) == 0);
  // And the pipes made for children, but for the copies handed to them.
  auto [read_end, write_end] = aio::detail::make_stdio_pipe(false);
  for (aio::fd_t fd : {read_end, write_end}) {
    REQUIRE(GetHandleInformation(reinterpret_cast<HANDLE>(fd), &flags));
    CHECK((flags & HANDLE_FLAG_INHERIT) == 0);
    aio::detail::close_fd(fd);
  }
}

#endif  // _WIN32
