// The TLS layer's errors from OpenSSL's error queue (net/ssl_context.cpp).
#pragma once

#include <net/ssl.hpp>

#include <exception>
#include <string>

namespace aio::detail {

// An SSLError of SSL_ERROR_* `code` from the newest entry of OpenSSL's error
// queue, which it then clears; `context` (may be empty) leads the message.
SSLError take_ssl_error(int code, const std::string& context);

// A failed handshake's error: SSLCertVerificationError when the peer's
// certificate failed verification, else as take_ssl_error.
std::exception_ptr handshake_error(ssl_st* ssl, int code);

}  // namespace aio::detail
