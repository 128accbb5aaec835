// tls_library_info() of a build without TLS (net/tls_info.hpp).
#include <net/tls_info.hpp>

namespace aio {

std::optional<TlsLibraryInfo> tls_library_info() { return std::nullopt; }

}  // namespace aio
