// Shared by the subprocess suites (test_subprocess.cpp on POSIX,
// test_subprocess_windows.cpp on Windows): a SubprocessProtocol that
// records what it gets and checks the order of the callbacks.
#pragma once

#include "support.hpp"

#include <net/protocols.hpp>
#include <net/transports.hpp>
#include <process/subprocess.hpp>

#include <cstdlib>
#include <exception>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace test {

// asyncio's MySubprocessProtocol, with the order of contract 67 checked:
// connection_made first, connection_lost last, and only after
// process_exited and every pipe_connection_lost.
struct Child : aio::SubprocessProtocol {
  aio::SubprocessTransport* transport = nullptr;
  std::string out, err;
  std::vector<int> pipes_lost;
  std::vector<std::string> events;
  bool exited = false, lost = false;
  std::exception_ptr error;

  void connection_made(aio::SubprocessTransport& t) override {
    CHECK(events.empty());
    transport = &t;
    events.push_back("made");
  }
  void pipe_data_received(int fd, std::string_view data) override {
    CHECK(!events.empty());
    CHECK_FALSE(lost);
    (fd == 1 ? out : err) += data;
  }
  void pipe_connection_lost(int fd, std::exception_ptr e) override {
    CHECK_FALSE(lost);
    CHECK_FALSE(e);
    pipes_lost.push_back(fd);
    events.push_back("pipe" + std::to_string(fd));
  }
  void process_exited() override {
    CHECK_FALSE(exited);
    CHECK_FALSE(lost);
    exited = true;
    events.push_back("exited");
  }
  void connection_lost(std::exception_ptr e) override {
    CHECK(exited);
    CHECK_FALSE(lost);
    lost = true;
    error = e;
    transport = nullptr;
    events.push_back("lost");
  }
};

using Pair = std::pair<std::shared_ptr<aio::SubprocessTransport>, std::shared_ptr<aio::SubprocessProtocol>>;

// (protocol, transport): the transport may have finished by the time this
// returns, so the test keeps its own reference.
inline std::pair<std::shared_ptr<Child>, std::shared_ptr<aio::SubprocessTransport>> spawn(
    aio::EventLoop& loop, std::string program, std::vector<std::string> args, aio::SubprocessOptions options = {}) {
  auto child = std::make_shared<Child>();
  aio::ProtocolFactory factory = [child] { return child; };
  Pair pair = run(loop, loop.subprocess_exec(factory, std::move(program), std::move(args), std::move(options)));
  CHECK(pair.second == child);
  return {child, pair.first};
}

// A count from the environment (the stress runs' sizes), else `fallback`.
inline int env_count(const char* name, int fallback) {
  const char* value = std::getenv(name);
  return value && *value ? std::atoi(value) : fallback;
}

}  // namespace test
