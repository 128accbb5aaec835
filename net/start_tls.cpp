// The loop's start_tls: the TLS layer (net/ssl_protocol.hpp) slid under the
// protocol of a live connection.
#include <core/tasks.hpp>
#include <net/ssl_protocol.hpp>
#include <net/start_tls.hpp>
#include <net/stream_transport.hpp>

#include <stdexcept>

namespace aio {

namespace detail {

Task<std::shared_ptr<Transport>> start_tls(EventLoop& loop, Transport& transport,
                                           std::shared_ptr<BaseProtocol> protocol, SSLContext* sslcontext,
                                           StartTLSOptions options, std::string already_read) {
  if (!sslcontext) throw std::invalid_argument("start_tls: sslcontext must be an SSLContext, got null");
  if (!protocol) throw std::invalid_argument("start_tls: the protocol is null");
  StreamTransport* stream = transport.stream_transport();
  if (stream && stream->direction() != StreamTransport::Direction::both)
    throw std::invalid_argument("start_tls: a pipe transport cannot carry TLS");
  std::shared_ptr<Transport> plain = share_transport(transport, "start_tls");
  auto tls = ssl_settings("start_tls", sslcontext, options.server_side, options.server_hostname,
                          options.ssl_handshake_timeout, options.ssl_shutdown_timeout);
  auto layer = std::make_shared<SSLProtocol>(loop, std::move(protocol), std::move(*tls), false);
  layer->feed_initial(already_read);
  Future<void> handshake = layer->handshake_done();
  // Paused first, so that nothing reaches the layer before its
  // connection_made; a read already in flight (a completion engine) is held
  // by the transport and goes to the layer once reading resumes.
  plain->pause_reading();
  plain->set_protocol(layer);
  Handle made = loop.call_soon([layer, plain] { layer->connection_made(*plain); });
  Handle resume = loop.call_soon([plain] {
    if (!plain->is_closing()) plain->resume_reading();
  });
  try {
    co_await handshake;
  } catch (...) {
    made.cancel();
    resume.cancel();
    plain->close();
    throw;
  }
  co_return layer->handle();
}

}  // namespace detail

Task<std::shared_ptr<Transport>> EventLoop::start_tls(Transport& transport, std::shared_ptr<BaseProtocol> protocol,
                                                      SSLContext* sslcontext, StartTLSOptions options) {
  return detail::start_tls(*this, transport, std::move(protocol), sslcontext, options, {});
}

}  // namespace aio
