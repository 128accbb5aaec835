// start_tls with the bytes the plain-text side already read (what
// StreamWriter::start_tls hands over from its StreamReader).
#pragma once

#include <core/event_loop.hpp>
#include <net/transports.hpp>

#include <memory>
#include <string>

namespace aio::detail {

// EventLoop::start_tls, feeding `already_read` to TLS before anything the
// transport receives (contract 61: a ClientHello that came with a PROXY line).
Task<std::shared_ptr<Transport>> start_tls(EventLoop& loop, Transport& transport,
                                           std::shared_ptr<BaseProtocol> protocol, SSLContext* sslcontext,
                                           StartTLSOptions options, std::string already_read);

}  // namespace aio::detail
