// Which OpenSSL the library's TLS layer uses: the version it was compiled
// against and the one loaded at run time (aio-info prints both).
#pragma once

#include <string>

namespace aio {

// OpenSSL's own version texts, as `openssl version` prints them
// ("OpenSSL 3.0.19 27 Jan 2026").
struct TlsLibraryInfo {
  // OPENSSL_VERSION_TEXT of the headers the library was compiled with.
  std::string built_with;
  // OpenSSL_version(OPENSSL_VERSION) of the libcrypto in this process: the
  // shared library found at run time, which may be newer than the headers;
  // the same as built_with where OpenSSL is linked statically (Windows).
  std::string running;
};

TlsLibraryInfo tls_library_info();

}  // namespace aio
