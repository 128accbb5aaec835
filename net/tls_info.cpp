// tls_library_info() (net/tls_info.hpp).
#include <net/tls_info.hpp>

#include <openssl/crypto.h>
#include <openssl/opensslv.h>

namespace aio {

TlsLibraryInfo tls_library_info() { return TlsLibraryInfo{OPENSSL_VERSION_TEXT, OpenSSL_version(OPENSSL_VERSION)}; }

}  // namespace aio
