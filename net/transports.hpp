// Transports: the asyncio transport interfaces.
//
// A transport is created by the loop (connect_accepted_socket,
// create_connection, create_server ...) and keeps itself alive until its
// protocol's connection_lost has run; users hold it through std::shared_ptr.
#pragma once

#include <net/protocols.hpp>

#include <any>
#include <cstddef>
#include <memory>
#include <optional>
#include <span>
#include <string_view>
#include <utility>

namespace aio {

class BaseTransport {
 public:
  virtual ~BaseTransport() = default;
  // Closes after the write buffer is flushed; connection_lost(nullptr)
  // follows. Idempotent.
  virtual void close() = 0;
  virtual bool is_closing() const noexcept = 0;
  // "peername", "sockname" (SocketAddress), "socket" (fd_t): an empty
  // std::any for what this transport does not have.
  virtual std::any get_extra_info(std::string_view name) const = 0;
};

class Transport : public BaseTransport {
 public:
  // ---- Read side ----
  // Stops / restarts data_received; idempotent, and honoured even when
  // called from connection_made.
  virtual void pause_reading() = 0;
  virtual void resume_reading() = 0;
  virtual bool is_reading() const noexcept = 0;

  // ---- Write side ----
  // Sends `data` (copied if it cannot be sent at once). After close() or a
  // lost connection, writes are dropped and counted, with a warning after a few.
  virtual void write(std::string_view data) = 0;
  // As one write of the concatenation.
  virtual void writelines(std::span<const std::string_view> lines) = 0;
  // Shuts the write side down once the buffer is flushed.
  virtual void write_eof() = 0;
  virtual bool can_write_eof() const noexcept = 0;
  // Closes at once, dropping the buffer; connection_lost(nullptr) follows.
  virtual void abort() = 0;
  virtual std::size_t get_write_buffer_size() const noexcept = 0;
  // (low, high) water marks.
  virtual std::pair<std::size_t, std::size_t> get_write_buffer_limits() const noexcept = 0;
  // asyncio's rule: high defaults to 64 KiB (or 4 * low), low to high / 4;
  // std::invalid_argument unless high >= low. Takes effect at once.
  // std::invalid_argument for negative values.
  virtual void set_write_buffer_limits(std::optional<long long> high = std::nullopt,
                                       std::optional<long long> low = std::nullopt) = 0;

  // The protocol it calls (asyncio set_protocol / get_protocol).
  virtual void set_protocol(std::shared_ptr<BaseProtocol> protocol) = 0;
  virtual std::shared_ptr<BaseProtocol> get_protocol() const = 0;
};

}  // namespace aio
