// The part of every datagram transport that does not depend on how
// datagrams move: the queue of whole datagrams and their destinations,
// sendto's address rules, OS errors as error_received, and delivery to the
// DatagramProtocol; the close / abort state machine and flow control come
// from TransportCore. Each engine (selector readiness, proactor completion)
// derives and supplies the engine_* operations.
#pragma once

#include <core/address.hpp>
#include <core/event_loop.hpp>
#include <net/transport_core.hpp>
#include <net/transports.hpp>

#include <cstddef>
#include <deque>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace aio::detail {

class DatagramTransportBase : public TransportCore<DatagramTransport> {
 public:
  // What each queued datagram counts for besides its payload (asyncio's
  // _header_size): a queue of empty datagrams still reaches the high mark.
  static constexpr std::size_t header_size = 8;

  // `remote` is where sendto sends when given no address (none: every
  // sendto names one); `connected` says the socket itself is connected to
  // it, so datagrams go out with send and come only from there.
  DatagramTransportBase(EventLoop& loop, std::shared_ptr<BaseProtocol> protocol, std::optional<SocketAddress> remote,
                        bool connected);
  ~DatagramTransportBase() override;

  void sendto(std::string_view data, std::optional<SocketAddress> address) override;
  void set_protocol(std::shared_ptr<BaseProtocol> protocol) override;

 protected:
  // ---- What an engine provides (and TransportCore's engine_* operations) ----
  // Sends one datagram without blocking, to `to` or, when null, to the
  // connected peer. False if it would block; throws std::system_error.
  virtual bool engine_sendto(std::string_view data, const SocketAddress* to) = 0;
  // Calls on_writable() whenever queued datagrams could move.
  virtual void engine_start_writing() = 0;

  // ---- What the engine calls ----
  // Writability: sends queued datagrams until the socket would block.
  void on_writable();
  // One datagram arrived: to the protocol. False when the engine should
  // stop receiving for now (the transport is closing, or the protocol failed).
  bool datagram_arrived(std::string_view data, const SocketAddress& from);
  // A receive failed with an OS error: to the protocol's error_received.
  void receive_failed(std::exception_ptr error) { error_received(std::move(error)); }

 private:
  struct Datagram {
    std::string data;
    std::optional<SocketAddress> to;  // none: the connected peer
  };

  void call_connection_made() override;
  void clear_write_buffer() noexcept override { queue_.clear(); }
  void error_received(std::exception_ptr error);

  DatagramProtocol* datagram_protocol_ = nullptr;  // the protocol, as its type
  std::optional<SocketAddress> remote_;
  bool connected_;
  std::deque<Datagram> queue_;  // unsent datagrams, oldest first
};

}  // namespace aio::detail
