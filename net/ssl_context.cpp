// SSLContext, SSLObject and the TLS errors (net/ssl.hpp) over OpenSSL.
#include <net/ssl.hpp>
#include <net/ssl_errors.hpp>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <stdexcept>

namespace aio {

// ---- Errors ------------------------------------------------------------------

namespace {

class SSLCategory : public std::error_category {
 public:
  const char* name() const noexcept override { return "ssl"; }
  std::string message(int code) const override {
    switch (code) {
      case SSL_ERROR_SSL:
        return "SSL error";
      case SSL_ERROR_WANT_READ:
        return "the read operation did not complete";
      case SSL_ERROR_WANT_WRITE:
        return "the write operation did not complete";
      case SSL_ERROR_SYSCALL:
        return "SSL system call error";
      case SSL_ERROR_ZERO_RETURN:
        return "TLS/SSL connection has been closed (EOF)";
      default:
        return "SSL error " + std::to_string(code);
    }
  }
};

// OpenSSL's reason text as Python spells it: "wrong version number" ->
// "WRONG_VERSION_NUMBER".
std::string mnemonic(const char* text) {
  std::string out = text ? text : "";
  for (char& c : out) c = c == ' ' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace

const std::error_category& ssl_category() noexcept {
  static const SSLCategory category;
  return category;
}

SSLError::SSLError(int code, std::string library, std::string reason, const std::string& message)
    : std::system_error(code, ssl_category(), message), library_(std::move(library)), reason_(std::move(reason)) {}

SSLCertVerificationError::SSLCertVerificationError(long verify_code, std::string verify_message,
                                                   const std::string& message)
    : SSLError(SSL_ERROR_SSL, "SSL", "CERTIFICATE_VERIFY_FAILED", message),
      verify_code_(verify_code),
      verify_message_(std::move(verify_message)) {}

namespace detail {

SSLError take_ssl_error(int code, const std::string& context) {
  unsigned long packed = ERR_peek_last_error();
  std::string library, reason, text;
  if (packed != 0) {
    const char* lib = ERR_lib_error_string(packed);
    library = lib ? mnemonic(lib) : "";
    // Python's table says "SSL" for OpenSSL's "SSL routines".
    if (library == "SSL_ROUTINES") library = "SSL";
    const char* why = ERR_reason_error_string(packed);
    reason = mnemonic(why);
    text = "[" + library + ": " + reason + "] " + (why ? why : "");
  } else {
    text = ssl_category().message(code);
  }
  ERR_clear_error();
  if (!context.empty()) text = context + ": " + text;
  return SSLError(code, std::move(library), std::move(reason), text);
}

std::exception_ptr handshake_error(ssl_st* ssl, int code) {
  long verify = SSL_get_verify_result(ssl);
  unsigned long packed = ERR_peek_last_error();
  if (verify != X509_V_OK && ERR_GET_REASON(packed) == SSL_R_CERTIFICATE_VERIFY_FAILED) {
    ERR_clear_error();
    std::string message = X509_verify_cert_error_string(verify);
    return std::make_exception_ptr(SSLCertVerificationError(
        verify, message, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: " + message));
  }
  return std::make_exception_ptr(take_ssl_error(code, ""));
}

}  // namespace detail

namespace {

[[noreturn]] void throw_ssl(const std::string& context) { throw detail::take_ssl_error(SSL_ERROR_SSL, context); }

// A missing or unreadable file is the OS's error, named, before OpenSSL
// turns it into a less telling one.
void check_readable(const std::string& path, const char* method, const char* what) {
  std::ifstream file(path, std::ios::binary);
  if (!file)
    throw std::system_error(std::make_error_code(std::errc::no_such_file_or_directory),
                            std::string(method) + ": cannot read " + what + " '" + path + "'");
}

// No password given: fail instead of OpenSSL asking on the terminal.
int no_password(char*, int, int, void*) { return -1; }

int given_password(char* buffer, int size, int, void* user) {
  const auto* password = static_cast<const std::string*>(user);
  if (password->size() > static_cast<std::size_t>(size)) return -1;
  std::memcpy(buffer, password->data(), password->size());
  return static_cast<int>(password->size());
}

int to_openssl(TLSVersion version) {
  switch (version) {
    case TLSVersion::minimum_supported:
    case TLSVersion::maximum_supported:
      return 0;  // OpenSSL: no bound
    case TLSVersion::tlsv1:
      return TLS1_VERSION;
    case TLSVersion::tlsv1_1:
      return TLS1_1_VERSION;
    case TLSVersion::tlsv1_2:
      return TLS1_2_VERSION;
    case TLSVersion::tlsv1_3:
      return TLS1_3_VERSION;
  }
  return 0;
}

TLSVersion from_openssl(long version, TLSVersion unbounded) {
  switch (version) {
    case TLS1_VERSION:
      return TLSVersion::tlsv1;
    case TLS1_1_VERSION:
      return TLSVersion::tlsv1_1;
    case TLS1_2_VERSION:
      return TLSVersion::tlsv1_2;
    case TLS1_3_VERSION:
      return TLSVersion::tlsv1_3;
    default:
      return unbounded;
  }
}

std::vector<std::pair<std::string, std::string>> name_entries(X509_NAME* name) {
  std::vector<std::pair<std::string, std::string>> out;
  for (int i = 0; name && i < X509_NAME_entry_count(name); ++i) {
    X509_NAME_ENTRY* entry = X509_NAME_get_entry(name, i);
    int nid = OBJ_obj2nid(X509_NAME_ENTRY_get_object(entry));
    const char* field = nid != NID_undef ? OBJ_nid2ln(nid) : "";
    unsigned char* utf8 = nullptr;
    int n = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(entry));
    if (n < 0) continue;
    out.emplace_back(field, std::string(reinterpret_cast<char*>(utf8), static_cast<std::size_t>(n)));
    OPENSSL_free(utf8);
  }
  return out;
}

std::string asn1_time(const ASN1_TIME* time) {
  BIO* bio = BIO_new(BIO_s_mem());
  if (!bio) return {};
  ASN1_TIME_print(bio, time);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<std::size_t>(n > 0 ? n : 0));
  BIO_free(bio);
  return out;
}

std::string ip_text(const ASN1_OCTET_STRING* ip) {
  const unsigned char* p = ASN1_STRING_get0_data(ip);
  int n = ASN1_STRING_length(ip);
  char text[64];
  if (n == 4) {
    std::snprintf(text, sizeof text, "%d.%d.%d.%d", p[0], p[1], p[2], p[3]);
    return text;
  }
  if (n == 16) {  // Python prints every group, upper case: 0:0:0:0:0:0:0:1
    std::string out;
    for (int i = 0; i < 16; i += 2) {
      std::snprintf(text, sizeof text, "%s%X", i ? ":" : "", (p[i] << 8) | p[i + 1]);
      out += text;
    }
    return out;
  }
  return "<invalid>";
}

PeerCertificate decode(X509* cert) {
  PeerCertificate out;
  out.subject = name_entries(X509_get_subject_name(cert));
  out.issuer = name_entries(X509_get_issuer_name(cert));
  out.version = X509_get_version(cert) + 1;
  if (BIGNUM* serial = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), nullptr)) {
    if (char* hex = BN_bn2hex(serial)) {
      out.serial_number = hex;
      OPENSSL_free(hex);
    }
    BN_free(serial);
  }
  out.not_before = asn1_time(X509_get0_notBefore(cert));
  out.not_after = asn1_time(X509_get0_notAfter(cert));
  auto* names = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  for (int i = 0; names && i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(names, i);
    if (name->type == GEN_DNS) {
      const ASN1_IA5STRING* dns = name->d.dNSName;
      out.subject_alt_name.emplace_back("DNS", std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(dns)),
                                                           static_cast<std::size_t>(ASN1_STRING_length(dns))));
    } else if (name->type == GEN_IPADD) {
      out.subject_alt_name.emplace_back("IP Address", ip_text(name->d.iPAddress));
    }
  }
  GENERAL_NAMES_free(names);
  return out;
}

}  // namespace

TLSVersion parse_tls_version(std::string_view name) {
  static constexpr std::pair<std::string_view, TLSVersion> names[] = {
      {"MINIMUM_SUPPORTED", TLSVersion::minimum_supported},
      {"TLSv1", TLSVersion::tlsv1},
      {"TLSv1.1", TLSVersion::tlsv1_1},
      {"TLSv1.2", TLSVersion::tlsv1_2},
      {"TLSv1.3", TLSVersion::tlsv1_3},
      {"MAXIMUM_SUPPORTED", TLSVersion::maximum_supported},
  };
  for (const auto& [text, version] : names)
    if (text == name) return version;
  throw std::invalid_argument("unknown TLS version '" + std::string(name) +
                              "': allowed are TLSv1, TLSv1.1, TLSv1.2, TLSv1.3, MINIMUM_SUPPORTED, "
                              "MAXIMUM_SUPPORTED");
}

std::string_view to_string(TLSVersion version) noexcept {
  switch (version) {
    case TLSVersion::minimum_supported:
      return "MINIMUM_SUPPORTED";
    case TLSVersion::tlsv1:
      return "TLSv1";
    case TLSVersion::tlsv1_1:
      return "TLSv1.1";
    case TLSVersion::tlsv1_2:
      return "TLSv1.2";
    case TLSVersion::tlsv1_3:
      return "TLSv1.3";
    case TLSVersion::maximum_supported:
      return "MAXIMUM_SUPPORTED";
  }
  return "";
}

// ---- SSLContext -------------------------------------------------------------

std::shared_ptr<SSLContext> SSLContext::create(bool server_side) {
  return std::shared_ptr<SSLContext>(new SSLContext(server_side));
}

SSLContext::SSLContext(bool server_side)
    : ctx_(SSL_CTX_new(server_side ? TLS_server_method() : TLS_client_method())),
      server_side_(server_side),
      check_hostname_(!server_side),
      verify_mode_(server_side ? VerifyMode::cert_none : VerifyMode::cert_required) {
  if (!ctx_) throw_ssl("SSLContext");
  // Python's defaults: no compression, no renegotiation started by a client
  // (OpenSSL 3's default too); TLS 1.2 at least.
  SSL_CTX_set_options(ctx_, SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  SSL_CTX_set_min_proto_version(ctx_, TLS1_2_VERSION);
  // The TLS layer retries a write with the rest of its backlog, which may
  // have moved, and wants progress on writes larger than one record.
  SSL_CTX_set_mode(ctx_, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_ENABLE_PARTIAL_WRITE);
  SSL_CTX_set_default_passwd_cb(ctx_, no_password);
  SSL_CTX_set_verify(ctx_, server_side ? SSL_VERIFY_NONE : SSL_VERIFY_PEER, nullptr);
}

SSLContext::~SSLContext() { SSL_CTX_free(ctx_); }

void SSLContext::load_cert_chain(const std::string& certfile, const std::string& keyfile,
                                 std::optional<std::string> password) {
  const std::string& key = keyfile.empty() ? certfile : keyfile;
  check_readable(certfile, "load_cert_chain", "certfile");
  check_readable(key, "load_cert_chain", "keyfile");
  ERR_clear_error();
  if (SSL_CTX_use_certificate_chain_file(ctx_, certfile.c_str()) != 1)
    throw_ssl("load_cert_chain: certfile '" + certfile + "'");
  if (password) {
    SSL_CTX_set_default_passwd_cb(ctx_, given_password);
    SSL_CTX_set_default_passwd_cb_userdata(ctx_, &*password);
  }
  int ok = SSL_CTX_use_PrivateKey_file(ctx_, key.c_str(), SSL_FILETYPE_PEM);
  SSL_CTX_set_default_passwd_cb(ctx_, no_password);
  SSL_CTX_set_default_passwd_cb_userdata(ctx_, nullptr);
  if (ok != 1) {
    unsigned long packed = ERR_peek_last_error();
    if (!password && ERR_GET_LIB(packed) == ERR_LIB_PEM)
      throw detail::take_ssl_error(SSL_ERROR_SSL, "load_cert_chain: keyfile '" + key +
                                                      "' could not be read (encrypted, and no password given?)");
    throw_ssl("load_cert_chain: keyfile '" + key + "'");
  }
  if (SSL_CTX_check_private_key(ctx_) != 1)
    throw_ssl("load_cert_chain: the key in '" + key + "' does not match the certificate in '" + certfile + "'");
}

void SSLContext::load_verify_locations(const std::string& cafile, const std::string& capath,
                                       const std::string& cadata) {
  if (cafile.empty() && capath.empty() && cadata.empty())
    throw std::invalid_argument("load_verify_locations: cafile, capath and cadata cannot all be empty");
  ERR_clear_error();
  if (!cafile.empty()) {
    check_readable(cafile, "load_verify_locations", "cafile");
    if (SSL_CTX_load_verify_locations(ctx_, cafile.c_str(), nullptr) != 1)
      throw_ssl("load_verify_locations: cafile '" + cafile + "'");
  }
  if (!capath.empty() && SSL_CTX_load_verify_locations(ctx_, nullptr, capath.c_str()) != 1)
    throw_ssl("load_verify_locations: capath '" + capath + "'");
  if (!cadata.empty()) {
    BIO* bio = BIO_new_mem_buf(cadata.data(), static_cast<int>(cadata.size()));
    if (!bio) throw_ssl("load_verify_locations");
    X509_STORE* store = SSL_CTX_get_cert_store(ctx_);
    int loaded = 0;
    while (X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)) {
      X509_STORE_add_cert(store, cert);
      X509_free(cert);
      ++loaded;
    }
    BIO_free(bio);
    ERR_clear_error();  // the end of the text reads as an error
    if (loaded == 0)
      throw SSLError(SSL_ERROR_SSL, "X509", "NO_CERTIFICATE_OR_CRL_FOUND",
                     "load_verify_locations: cadata holds no PEM certificate");
  }
}

void SSLContext::set_default_verify_paths() {
  if (SSL_CTX_set_default_verify_paths(ctx_) != 1) throw_ssl("set_default_verify_paths");
}

void SSLContext::set_check_hostname(bool on) {
  if (on && verify_mode_ == VerifyMode::cert_none) set_verify_mode(VerifyMode::cert_required);
  check_hostname_ = on;
}

void SSLContext::set_verify_mode(VerifyMode mode) {
  if (mode == VerifyMode::cert_none && check_hostname_)
    throw std::invalid_argument("set_verify_mode: cannot set cert_none while check_hostname is enabled");
  int flags = SSL_VERIFY_NONE;
  if (mode == VerifyMode::cert_optional) flags = SSL_VERIFY_PEER;
  if (mode == VerifyMode::cert_required) flags = SSL_VERIFY_PEER | (server_side_ ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0);
  SSL_CTX_set_verify(ctx_, flags, nullptr);
  verify_mode_ = mode;
}

TLSVersion SSLContext::minimum_version() const noexcept {
  return from_openssl(SSL_CTX_get_min_proto_version(ctx_), TLSVersion::minimum_supported);
}

TLSVersion SSLContext::maximum_version() const noexcept {
  return from_openssl(SSL_CTX_get_max_proto_version(ctx_), TLSVersion::maximum_supported);
}

void SSLContext::set_minimum_version(TLSVersion version) {
  if (SSL_CTX_set_min_proto_version(ctx_, to_openssl(version)) != 1)
    throw_ssl("set_minimum_version(" + std::string(to_string(version)) + ")");
}

void SSLContext::set_maximum_version(TLSVersion version) {
  if (SSL_CTX_set_max_proto_version(ctx_, to_openssl(version)) != 1)
    throw_ssl("set_maximum_version(" + std::string(to_string(version)) + ")");
}

void SSLContext::set_ciphers(const std::string& ciphers) {
  if (SSL_CTX_set_cipher_list(ctx_, ciphers.c_str()) != 1)
    throw_ssl("set_ciphers: no cipher can be selected from '" + ciphers + "'");
}

void SSLContext::set_ciphersuites(const std::string& suites) {
  if (SSL_CTX_set_ciphersuites(ctx_, suites.c_str()) != 1)
    throw_ssl("set_ciphersuites: '" + suites + "' is not a valid TLS 1.3 cipher suite list");
}

namespace {

int select_alpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in, unsigned int inlen,
                void* arg) {
  const auto* ours = static_cast<const std::vector<unsigned char>*>(arg);
  unsigned char* chosen = nullptr;
  if (SSL_select_next_proto(&chosen, outlen, ours->data(), static_cast<unsigned>(ours->size()), in, inlen) !=
      OPENSSL_NPN_NEGOTIATED)
    return SSL_TLSEXT_ERR_NOACK;  // no protocol in common: carry on without ALPN, as Python
  *out = chosen;
  return SSL_TLSEXT_ERR_OK;
}

}  // namespace

void SSLContext::set_alpn_protocols(const std::vector<std::string>& protocols) {
  std::vector<unsigned char> wire;
  for (const std::string& name : protocols) {
    if (name.empty() || name.size() > 255)
      throw std::invalid_argument("set_alpn_protocols: protocol names must be 1 to 255 bytes long, got '" + name + "'");
    wire.push_back(static_cast<unsigned char>(name.size()));
    wire.insert(wire.end(), name.begin(), name.end());
  }
  alpn_wire_ = std::move(wire);
  if (server_side_)
    SSL_CTX_set_alpn_select_cb(ctx_, select_alpn, &alpn_wire_);
  else if (SSL_CTX_set_alpn_protos(ctx_, alpn_wire_.data(), static_cast<unsigned>(alpn_wire_.size())) != 0)
    throw_ssl("set_alpn_protocols");
}

int SSLContext::on_server_name(ssl_st* ssl, int* alert, void* arg) {
  auto* self = static_cast<SSLContext*>(arg);
  auto* object = static_cast<SSLObject*>(SSL_get_app_data(ssl));
  if (!object || !self->sni_callback_) return SSL_TLSEXT_ERR_OK;
  const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  try {
    self->sni_callback_(*object, name ? std::optional<std::string>(name) : std::nullopt, *self);
  } catch (...) {
    *alert = SSL_AD_INTERNAL_ERROR;
    return SSL_TLSEXT_ERR_ALERT_FATAL;
  }
  return SSL_TLSEXT_ERR_OK;
}

void SSLContext::set_sni_callback(ServerNameCallback callback) {
  sni_callback_ = std::move(callback);
  if (sni_callback_)
    SSL_CTX_set_tlsext_servername_callback(ctx_, on_server_name);
  else
    SSL_CTX_set_tlsext_servername_callback(ctx_, nullptr);
  SSL_CTX_set_tlsext_servername_arg(ctx_, this);
}

std::shared_ptr<SSLContext> create_default_context(Purpose purpose, const std::string& cafile,
                                                   const std::string& capath, const std::string& cadata) {
  auto context = SSLContext::create(purpose == Purpose::client_auth);
  if (!cafile.empty() || !capath.empty() || !cadata.empty())
    context->load_verify_locations(cafile, capath, cadata);
  else if (purpose == Purpose::server_auth)
    context->set_default_verify_paths();
  return context;
}

// ---- SSLObject --------------------------------------------------------------

SSLObject::SSLObject(std::shared_ptr<SSLContext> context, bool server_side, const std::string& server_hostname)
    : ssl_(SSL_new(context->native_handle())), context_(std::move(context)), server_side_(server_side) {
  if (!ssl_) throw_ssl("SSLObject");
  SSL_set_app_data(ssl_, this);
  if (server_side) {
    SSL_set_accept_state(ssl_);
    return;
  }
  SSL_set_connect_state(ssl_);
  if (server_hostname.empty()) return;
  // SNI carries host names only, never an address (RFC 6066 section 3).
  bool is_ip = false;
  if (ASN1_OCTET_STRING* ip = a2i_IPADDRESS(server_hostname.c_str())) {
    is_ip = true;
    ASN1_OCTET_STRING_free(ip);
  }
  ERR_clear_error();
  if (!is_ip && SSL_set_tlsext_host_name(ssl_, server_hostname.c_str()) != 1) {
    SSL_free(ssl_);
    throw_ssl("server_hostname '" + server_hostname + "'");
  }
  if (context_->check_hostname()) {
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl_);
    int ok = is_ip ? X509_VERIFY_PARAM_set1_ip_asc(param, server_hostname.c_str())
                   : X509_VERIFY_PARAM_set1_host(param, server_hostname.c_str(), server_hostname.size());
    if (ok != 1) {
      SSL_free(ssl_);
      throw_ssl("server_hostname '" + server_hostname + "'");
    }
    // Python's default: no partial wildcards ("f*.example.com").
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
  }
}

SSLObject::~SSLObject() { SSL_free(ssl_); }

std::string SSLObject::server_hostname() const {
  const char* name = SSL_get_servername(ssl_, TLSEXT_NAMETYPE_host_name);
  return name ? name : "";
}

std::string SSLObject::version() const {
  if (!SSL_is_init_finished(ssl_)) return {};
  return SSL_get_version(ssl_);
}

std::optional<CipherInfo> SSLObject::cipher() const {
  const SSL_CIPHER* current = SSL_get_current_cipher(ssl_);
  if (!current) return std::nullopt;
  return CipherInfo{SSL_CIPHER_get_name(current), SSL_CIPHER_get_version(current),
                    SSL_CIPHER_get_bits(current, nullptr)};
}

std::string SSLObject::selected_alpn_protocol() const {
  const unsigned char* data = nullptr;
  unsigned int n = 0;
  SSL_get0_alpn_selected(ssl_, &data, &n);
  return std::string(reinterpret_cast<const char*>(data), data ? n : 0);
}

std::optional<PeerCertificate> SSLObject::getpeercert() const {
  X509* cert = SSL_get1_peer_certificate(ssl_);
  if (!cert) return std::nullopt;
  PeerCertificate out;
  // As Python: the fields only of a certificate that was verified.
  if (SSL_get_verify_mode(ssl_) != SSL_VERIFY_NONE && SSL_get_verify_result(ssl_) == X509_V_OK) out = decode(cert);
  X509_free(cert);
  return out;
}

std::string SSLObject::getpeercert_der() const {
  X509* cert = SSL_get1_peer_certificate(ssl_);
  if (!cert) return {};
  unsigned char* der = nullptr;
  int n = i2d_X509(cert, &der);
  std::string out;
  if (n > 0) out.assign(reinterpret_cast<char*>(der), static_cast<std::size_t>(n));
  OPENSSL_free(der);
  X509_free(cert);
  return out;
}

void SSLObject::set_context(std::shared_ptr<SSLContext> context) {
  if (!context) throw std::invalid_argument("SSLObject::set_context: the context is null");
  if (!SSL_set_SSL_CTX(ssl_, context->native_handle())) throw_ssl("SSLObject::set_context");
  context_ = std::move(context);
}

}  // namespace aio
