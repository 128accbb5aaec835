#include <net/datagram_transport.hpp>

#include <stdexcept>
#include <system_error>
#include <utility>

namespace aio::detail {

DatagramTransportBase::DatagramTransportBase(EventLoop& loop, std::shared_ptr<BaseProtocol> protocol,
                                             std::optional<SocketAddress> remote, bool connected)
    : TransportCore(loop), remote_(std::move(remote)), connected_(connected && remote_) {
  set_protocol(std::move(protocol));
}

DatagramTransportBase::~DatagramTransportBase() = default;

void DatagramTransportBase::set_protocol(std::shared_ptr<BaseProtocol> protocol) {
  DatagramProtocol* datagram = protocol ? protocol->as_datagram_protocol() : nullptr;
  if (!datagram)
    throw std::invalid_argument("a datagram transport needs an aio::DatagramProtocol, got " +
                                describe_protocol(protocol.get()));
  adopt_protocol(std::move(protocol));
  datagram_protocol_ = datagram;
}

void DatagramTransportBase::call_connection_made() { datagram_protocol_->connection_made(*this); }

// ---- Sending ----------------------------------------------------------------

void DatagramTransportBase::sendto(std::string_view data, std::optional<SocketAddress> address) {
  check_loop("sendto");
  if (address && address->size() == 0) throw std::invalid_argument("sendto: the address is empty");
  if (address && remote_ && !(*address == *remote_))
    throw std::invalid_argument("sendto: invalid address " + address->to_string() + ": this endpoint sends to " +
                                remote_->to_string() + " only (omit the address, or give that one)");
  if (!address && !remote_)
    throw std::invalid_argument("sendto: no address given, and the endpoint has no remote_addr to send to");
  if (drop_write()) return;
  std::optional<SocketAddress> to;
  if (!connected_) to = address ? address : remote_;
  if (get_write_buffer_size() == 0) {
    // Nothing queued: straight to the socket, as asyncio does.
    try {
      if (engine_sendto(data, to ? &*to : nullptr)) return;
    } catch (const std::system_error&) {
      // asyncio calls error_received inline; here every protocol callback
      // comes from the loop, never from inside the protocol's own call.
      loop_.call_soon([this, self = shared_from_this(), error = std::current_exception()] { error_received(error); });
      return;
    }
    engine_start_writing();
  }
  queue_.push_back(Datagram{std::string(data), std::move(to)});
  buffered_grew(data.size() + header_size);
}

void DatagramTransportBase::on_writable() {
  if (lost_scheduled()) return;
  while (!queue_.empty()) {
    Datagram& front = queue_.front();
    std::exception_ptr error;
    try {
      if (!engine_sendto(front.data, front.to ? &*front.to : nullptr)) break;
    } catch (const std::system_error&) {
      error = std::current_exception();  // that datagram is dropped, as in asyncio
    }
    buffered_shrank(front.data.size() + header_size);
    queue_.pop_front();
    if (error) {
      error_received(error);
      if (lost_scheduled()) return;  // the protocol aborted, or failed
    }
  }
  flushed();
}

// ---- Receiving --------------------------------------------------------------

bool DatagramTransportBase::datagram_arrived(std::string_view data, const SocketAddress& from) {
  if (is_closing()) return false;
  try {
    datagram_protocol_->datagram_received(data, from);
  } catch (...) {
    fatal_error(std::current_exception(), "Fatal error: protocol.datagram_received() call failed.");
    return false;
  }
  return !is_closing();
}

void DatagramTransportBase::error_received(std::exception_ptr error) {
  if (connection_lost_called()) return;
  try {
    datagram_protocol_->error_received(std::move(error));
  } catch (...) {
    fatal_error(std::current_exception(), "Fatal error: protocol.error_received() call failed.");
  }
}

}  // namespace aio::detail
