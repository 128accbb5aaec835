// Private: the protocol behind streams (net/streams.cpp), and behind the
// pipes of a Process (process/process.cpp): it feeds a StreamReader and
// lets StreamWriter.drain wait for the transport's flow control.
#pragma once

#include <core/event_loop.hpp>
#include <core/future.hpp>
#include <core/tasks.hpp>
#include <net/protocols.hpp>
#include <net/stream_transport.hpp>
#include <net/streams.hpp>

#include <exception>
#include <memory>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace aio::detail {

struct ReaderState;

// Feeds a StreamReader and lets StreamWriter.drain wait for the transport's
// flow control; runs the server's callback for each connection.
// Runs the server's callback for each connection, when it has one.
class StreamProtocol final : public Protocol, public std::enable_shared_from_this<StreamProtocol> {
 public:
  StreamProtocol(StreamReader reader, ClientConnected client_connected)
      : reader_(std::move(reader)), client_connected_(std::move(client_connected)) {}

  // Made by start_server (it has a client_connected callback): the
  // server side of a connection.
  bool serving() const noexcept { return static_cast<bool>(client_connected_); }

  void connection_made(Transport& transport) override;
  void data_received(std::string_view data) override { reader_.feed_data(data); }
  bool eof_received() override {
    reader_.feed_eof();
    // The writer may still send (half-close), except over TLS, which has
    // none (and would warn that true has no effect there, as asyncio's).
    return !over_ssl_;
  }
  // The connection now runs over TLS (start_tls).
  void set_over_ssl() noexcept { over_ssl_ = true; }
  void connection_lost(std::exception_ptr error) override;
  void pause_writing() override { paused_ = true; }
  void resume_writing() override {
    paused_ = false;
    wake_drainers();
  }

  Task<void> drain_helper() {
    check_lost();
    if (!paused_) co_return;
    Future<void> waiter = loop_->create_future<void>();
    drainers_.push_back(waiter);
    co_await waiter;
    check_lost();
  }

  Task<void> wait_closed() {
    if (closed_) co_await closed_;
  }

 private:
  void check_lost() const {
    if (!lost_) return;
    if (lost_error_) std::rethrow_exception(lost_error_);
    throw std::system_error(std::make_error_code(std::errc::connection_reset), "Connection lost");
  }
  void wake_drainers() {
    for (Future<void>& waiter : drainers_)
      if (!waiter.done()) waiter.set_result();
    drainers_.clear();
  }

  StreamReader reader_;
  ClientConnected client_connected_;
  EventLoop* loop_ = nullptr;
  Future<void> closed_;
  std::vector<Future<void>> drainers_;
  bool paused_ = false;
  bool over_ssl_ = false;
  bool lost_ = false;
  std::exception_ptr lost_error_;
};

}  // namespace aio::detail
