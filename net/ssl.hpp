// TLS contexts and their errors, after Python's ssl module (SSLContext,
// create_default_context, SSLError, SSLCertVerificationError, SSLObject),
// over OpenSSL. The TLS layer itself (net/ssl_protocol.hpp) runs over any
// stream transport; this file is what a user configures it with and what
// get_extra_info("ssl_object" / "peercert" / "cipher" ...) returns.
//
// A context is shared: make it with create_default_context() or
// SSLContext::create(), hand `context.get()` to ConnectOptions::ssl /
// ServerOptions::ssl / start_tls; every connection keeps the context alive as
// long as it needs it. Configure a context before its first connection.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <tuple>
#include <utility>
#include <vector>

struct ssl_ctx_st;  // OpenSSL's SSL_CTX
struct ssl_st;      // OpenSSL's SSL

namespace aio {

// The error category of SSLError: its values are OpenSSL's SSL_ERROR_*
// codes (SSL_ERROR_SSL = 1, SSL_ERROR_SYSCALL = 5, ...), as Python's
// SSLError.errno.
const std::error_category& ssl_category() noexcept;

// A TLS failure: a std::system_error (Python's SSLError is an OSError), so
// that a transport that fails with it is closed without bothering the
// loop's exception handler. what() reads as Python's:
// "[SSL: WRONG_VERSION_NUMBER] wrong version number".
class SSLError : public std::system_error {
 public:
  SSLError(int code, std::string library, std::string reason, const std::string& message);
  // OpenSSL's names for where it failed ("SSL", "X509", "PEM" ...) and why
  // ("WRONG_VERSION_NUMBER", ...); empty when OpenSSL gave none.
  const std::string& library() const noexcept { return library_; }
  const std::string& reason() const noexcept { return reason_; }

 private:
  std::string library_;
  std::string reason_;
};

// The peer's certificate failed verification (Python's
// SSLCertVerificationError): OpenSSL's verify code (X509_V_ERR_*, e.g. 62 for
// a host name mismatch, 10 for an expired certificate) and its message.
class SSLCertVerificationError : public SSLError {
 public:
  SSLCertVerificationError(long verify_code, std::string verify_message, const std::string& message);
  long verify_code() const noexcept { return verify_code_; }
  const std::string& verify_message() const noexcept { return verify_message_; }

 private:
  long verify_code_;
  std::string verify_message_;
};

// Python's ssl.Purpose: what the peer's certificate is checked for.
// server_auth makes a client context (it authenticates servers),
// client_auth a server context.
enum class Purpose : std::uint8_t { server_auth, client_auth };

// Python's ssl.VerifyMode: CERT_NONE, CERT_OPTIONAL, CERT_REQUIRED.
enum class VerifyMode : std::uint8_t { cert_none, cert_optional, cert_required };

// Python's ssl.TLSVersion.
enum class TLSVersion : std::uint8_t { minimum_supported, tlsv1, tlsv1_1, tlsv1_2, tlsv1_3, maximum_supported };
// "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3", "MINIMUM_SUPPORTED",
// "MAXIMUM_SUPPORTED"; std::invalid_argument naming the value and those
// allowed for anything else.
TLSVersion parse_tls_version(std::string_view name);
std::string_view to_string(TLSVersion version) noexcept;

// A decoded peer certificate, as Python's getpeercert(): name entries as
// (field, value) pairs ("commonName", "localhost"), dates as OpenSSL prints
// them ("Nov 30 17:00:00 2026 GMT"), subject_alt_name as ("DNS", name) and
// ("IP Address", address) pairs. Empty when the certificate was not
// verified (verify_mode cert_none), as Python's {}.
struct PeerCertificate {
  std::vector<std::pair<std::string, std::string>> subject;
  std::vector<std::pair<std::string, std::string>> issuer;
  long version = 0;           // 3 for X.509 v3
  std::string serial_number;  // hexadecimal, upper case
  std::string not_before;
  std::string not_after;
  std::vector<std::pair<std::string, std::string>> subject_alt_name;
  bool empty() const noexcept { return subject.empty() && issuer.empty(); }
};

// (name, protocol version, secret bits), as Python's SSLObject.cipher():
// ("TLS_AES_256_GCM_SHA384", "TLSv1.3", 256).
using CipherInfo = std::tuple<std::string, std::string, int>;

class SSLObject;

class SSLContext : public std::enable_shared_from_this<SSLContext> {
 public:
  // Python's SSLContext(PROTOCOL_TLS_CLIENT) (server_side false: verifies
  // the server's certificate and host name) or PROTOCOL_TLS_SERVER (asks
  // for no client certificate). No certificate authorities are loaded.
  static std::shared_ptr<SSLContext> create(bool server_side);
  ~SSLContext();
  SSLContext(const SSLContext&) = delete;
  SSLContext& operator=(const SSLContext&) = delete;

  bool server_side() const noexcept { return server_side_; }

  // The certificate (PEM; followed by its chain) and its private key (PEM;
  // empty: in certfile). `password` decrypts an encrypted key; without one
  // an encrypted key fails (nothing is ever asked on a terminal).
  // std::system_error for a file that cannot be read, SSLError naming the
  // file for one OpenSSL refuses, a key that does not match the
  // certificate, or a wrong password.
  void load_cert_chain(const std::string& certfile, const std::string& keyfile = "",
                       std::optional<std::string> password = std::nullopt);
  // Certificate authorities to verify peers with: a PEM file, a directory
  // of hashed names (c_rehash), and/or PEM text. std::invalid_argument when
  // all three are empty; std::system_error / SSLError as load_cert_chain.
  void load_verify_locations(const std::string& cafile = "", const std::string& capath = "",
                             const std::string& cadata = "");
  // The system's certificate authorities (OpenSSL's default paths).
  void set_default_verify_paths();

  // Whether a client checks the server's certificate against the host name
  // it connects to. Setting it true turns cert_none into cert_required, as
  // Python does.
  bool check_hostname() const noexcept { return check_hostname_; }
  void set_check_hostname(bool on);
  // std::invalid_argument for cert_none while check_hostname is on.
  VerifyMode verify_mode() const noexcept { return verify_mode_; }
  void set_verify_mode(VerifyMode mode);

  // The protocol versions allowed (TLS 1.2 and up by default).
  TLSVersion minimum_version() const noexcept;
  TLSVersion maximum_version() const noexcept;
  void set_minimum_version(TLSVersion version);
  void set_maximum_version(TLSVersion version);

  // OpenSSL's cipher list syntax for TLS 1.2 and lower ("ECDHE+AESGCM");
  // SSLError when it selects no cipher.
  void set_ciphers(const std::string& ciphers);
  // TLS 1.3 cipher suites ("TLS_AES_128_GCM_SHA256:..."; Python has no
  // such method, OpenSSL's -ciphersuites does); SSLError when invalid.
  void set_ciphersuites(const std::string& suites);
  // Application protocols offered (client) or accepted, in order of
  // preference (server); std::invalid_argument for an empty name or one
  // longer than 255 bytes.
  void set_alpn_protocols(const std::vector<std::string>& protocols);

  // Python's sni_callback, on a server context: called during the
  // handshake with the connection, the name the client asked for
  // (std::nullopt when it sent none) and this context. It may switch the
  // connection to another context (SSLObject::set_context) to present
  // another certificate. An exception from it fails that handshake with
  // an internal_error alert. An empty function removes it.
  using ServerNameCallback = std::function<void(SSLObject&, std::optional<std::string>, SSLContext&)>;
  void set_sni_callback(ServerNameCallback callback);

  // OpenSSL's SSL_CTX, for what this class does not cover.
  ssl_ctx_st* native_handle() const noexcept { return ctx_; }

 private:
  explicit SSLContext(bool server_side);
  friend class SSLObject;
  static int on_server_name(ssl_st* ssl, int* alert, void* arg);

  ssl_ctx_st* ctx_;
  bool server_side_;
  bool check_hostname_;
  VerifyMode verify_mode_;
  std::vector<unsigned char> alpn_wire_;  // the ALPN list as the protocol encodes it
  ServerNameCallback sni_callback_;
};

// Python's ssl.create_default_context: a client context (server_auth) that
// verifies certificates and host names against `cafile` / `capath` /
// `cadata`, or the system's authorities when all are empty; or a server
// context (client_auth). TLS 1.2 is the minimum either way.
std::shared_ptr<SSLContext> create_default_context(Purpose purpose = Purpose::server_auth,
                                                   const std::string& cafile = "", const std::string& capath = "",
                                                   const std::string& cadata = "");

// One TLS connection's state (Python's SSLObject), as
// get_extra_info("ssl_object") returns it once the handshake is done.
class SSLObject {
 public:
  SSLObject(std::shared_ptr<SSLContext> context, bool server_side, const std::string& server_hostname);
  ~SSLObject();
  SSLObject(const SSLObject&) = delete;
  SSLObject& operator=(const SSLObject&) = delete;

  bool server_side() const noexcept { return server_side_; }
  // The name the client asked for: the client's server_hostname, or on a
  // server the client's SNI; empty for none.
  std::string server_hostname() const;
  // "TLSv1.2", "TLSv1.3"; empty before the handshake.
  std::string version() const;
  std::optional<CipherInfo> cipher() const;
  // Always std::nullopt: compression is off (CRIME).
  std::optional<std::string> compression() const noexcept { return std::nullopt; }
  // The ALPN protocol agreed on, or empty.
  std::string selected_alpn_protocol() const;
  // The peer's certificate: std::nullopt when it sent none; empty when it
  // was not verified (see PeerCertificate).
  std::optional<PeerCertificate> getpeercert() const;
  // The peer's certificate in DER form, empty when it sent none.
  std::string getpeercert_der() const;
  std::shared_ptr<SSLContext> context() const noexcept { return context_; }
  // From an sni_callback: the handshake goes on with `context`'s
  // certificate.
  void set_context(std::shared_ptr<SSLContext> context);
  ssl_st* native_handle() const noexcept { return ssl_; }

 private:
  ssl_st* ssl_;
  std::shared_ptr<SSLContext> context_;
  bool server_side_;
};

}  // namespace aio
