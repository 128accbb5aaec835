// The TLS layer (asyncio's sslproto): a protocol that sits on a stream
// transport and encrypts over two memory BIOs (net/ssl_bio.hpp), and the transport the
// application's protocol sees. It includes no engine header and never
// touches a socket: whatever carries the bytes (a selector transport, a
// proactor transport, another TLS layer) it runs unchanged.
//
// asyncio splits this into SSLProtocol and _SSLProtocolTransport, which
// point at each other; here one object is both, since the two interfaces
// share no name. Ownership runs one way, so that no cycle outlives a loop
// closed with the connection still open (asyncio has its garbage
// collector): the transport underneath owns the layer as its protocol, the
// layer only refers to it (weakly; strongly only while the layer's read flow
// control has paused it, when no I/O of its own keeps it), and what the
// application holds (handle()) owns the transport underneath while pointing
// at the layer.
//
// States, as asyncio's, with checked transitions:
//   unwrapped -> do_handshake -> wrapped -> flushing -> shutdown
// and back to unwrapped from any of them (connection lost, handshake failed,
// aborted). App protocol: init -> connection made -> (eof) -> connection lost.
#pragma once

#include <core/event_loop.hpp>
#include <net/flow_control.hpp>
#include <net/ssl.hpp>
#include <net/ssl_bio.hpp>
#include <net/transports.hpp>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace aio::detail {

// asyncio's constants.SSL_HANDSHAKE_TIMEOUT / SSL_SHUTDOWN_TIMEOUT.
inline constexpr double default_ssl_handshake_timeout = 60.0;
inline constexpr double default_ssl_shutdown_timeout = 30.0;

struct SSLSettings {
  std::shared_ptr<SSLContext> context;
  bool server_side = false;
  std::string server_hostname;  // client: checked against the certificate, and SNI for a name
  double handshake_timeout = default_ssl_handshake_timeout;
  double shutdown_timeout = default_ssl_shutdown_timeout;
};

// The ssl-related keyword arguments of create_connection, create_server,
// start_tls ..., checked as asyncio checks them: a timeout or server_hostname
// without a context, a timeout that is not a positive finite number, a
// server context on a client or a client context on a server, and a client
// whose context checks host names but has no name to check are
// std::invalid_argument naming `method`. `ssl` null and nothing else given:
// std::nullopt (a plain connection).
std::optional<SSLSettings> ssl_settings(const char* method, SSLContext* ssl, bool server_side,
                                        std::optional<std::string_view> server_hostname,
                                        std::optional<double> handshake_timeout,
                                        std::optional<double> shutdown_timeout);

class SSLProtocol final : public SSLTransport,
                          public Protocol,
                          public std::enable_shared_from_this<SSLProtocol>,
                          private MemoryBio::PassThrough {
 public:
  // `app` must be a Protocol or a BufferedProtocol. Without
  // `call_connection_made` (start_tls) the application's connection_made is
  // not called again after the handshake.
  SSLProtocol(EventLoop& loop, std::shared_ptr<BaseProtocol> app, SSLSettings settings,
              bool call_connection_made = true);
  ~SSLProtocol() override;

  // Completes once the handshake is done (after the application's
  // connection_made), or fails with what ended it: the handshake error, a
  // ConnectionResetError for a connection lost during it, a
  // ConnectionAbortedError after ssl_handshake_timeout.
  Future<void> handshake_done();
  // start_tls: bytes the plain-text side read that belong to TLS (a
  // ClientHello that came with a PROXY line). Before connection_made.
  void feed_initial(std::string_view data);
  // connection_made with the transport already shared: any Transport will
  // do, which is how the tests run the layer over an in-memory one.
  void attach(std::shared_ptr<Transport> transport);
  // The application's shared reference to this transport: it owns the
  // transport underneath (which owns this layer). Once that one is gone, an
  // ordinary reference to the layer alone.
  std::shared_ptr<Transport> handle();
  std::shared_ptr<Transport> shared_handle() override { return handle(); }

  // ---- The application's transport ----
  void close() override;
  bool is_closing() const noexcept override;
  std::any get_extra_info(std::string_view name) const override;
  void set_protocol(std::shared_ptr<BaseProtocol> protocol) override;
  std::shared_ptr<BaseProtocol> get_protocol() const override { return app_; }
  void pause_reading() override { app_reading_paused_ = true; }
  void resume_reading() override;
  bool is_reading() const noexcept override { return !app_reading_paused_; }
  void write(std::string_view data) override;
  void writelines(std::span<const std::string_view> lines) override;
  void write_eof() override;
  bool can_write_eof() const noexcept override { return false; }
  void abort() override;
  std::size_t get_write_buffer_size() const noexcept override;
  std::pair<std::size_t, std::size_t> get_write_buffer_limits() const noexcept override { return write_flow_.limits(); }
  void set_write_buffer_limits(std::optional<long long> high, std::optional<long long> low) override;
  std::size_t get_read_buffer_size() const noexcept override;
  std::pair<std::size_t, std::size_t> get_read_buffer_limits() const noexcept override { return read_flow_.limits(); }
  void set_read_buffer_limits(std::optional<long long> high, std::optional<long long> low) override;

  // ---- The protocol of the transport underneath ----
  void connection_made(Transport& transport) override;
  void data_received(std::string_view data) override;
  bool eof_received() override;
  void connection_lost(std::exception_ptr error) override;
  void pause_writing() override { ssl_writing_paused_ = true; }
  void resume_writing() override;

 private:
  enum class State : std::uint8_t { unwrapped, do_handshake, wrapped, flushing, shutdown };
  enum class AppState : std::uint8_t { init, connection_made, eof, connection_lost };

  void set_state(State next);
  // What new bytes or a resumed reader lead to in the current state.
  void advance();
  void start_handshake();
  void do_handshake();
  void on_handshake_complete(std::exception_ptr error);
  void start_shutdown();
  void arm_shutdown_timer();
  // After the peer's end of file: whether a flush is still under way (the
  // transport underneath must then stay open: eof_received's answer).
  bool still_flushing();
  void do_flush();
  void do_shutdown();
  void on_shutdown_complete(std::exception_ptr error);
  void abort_connection(std::exception_ptr error);
  void do_write();
  // SSL_write of what it can of `data`; returns how much it took.
  std::size_t encrypt(std::string_view data);
  void process_outgoing(bool even_if_paused = false);
  void do_read();
  void read_copied();
  void read_buffered();
  void read_into_void();
  // SSL_read's outcome: >0 bytes, 0 at the peer's close_notify, -1 when
  // it needs more bytes; throws SSLError.
  int ssl_read(char* into, std::size_t size);
  void call_eof_received();
  void control_app_writing();
  void control_ssl_reading();
  // MemoryBio::PassThrough: one record, straight from OpenSSL to the transport.
  bool pass(std::string_view records) noexcept override;
  void fatal_error(std::exception_ptr error, const char* message);
  void wake_waiter(std::exception_ptr error);
  void cancel_timers() noexcept;

  // As TransportCore::check_loop: the application may keep this transport
  // past its loop; a method that would reach the loop then throws.
  void check_loop(const char* method) const;

  EventLoop& loop_;
  LoopRef loop_ref_;  // null once the loop is destroyed
  std::shared_ptr<BaseProtocol> app_;
  Protocol* app_stream_ = nullptr;
  BufferedProtocol* app_buffered_ = nullptr;
  SSLSettings settings_;
  std::shared_ptr<SSLObject> ssl_;
  MemoryBio incoming_;                  // what OpenSSL reads: the transport's bytes
  MemoryBio outgoing_;                  // what it writes: records for the transport
  std::weak_ptr<Transport> transport_;  // the transport underneath, until connection_lost
  std::shared_ptr<Transport> held_;     // and owned while this layer has paused its reading
  State state_ = State::unwrapped;
  AppState app_state_;
  std::deque<std::string> backlog_;  // plain text not yet taken by SSL_write, oldest first
  std::size_t backlog_offset_ = 0;   // bytes of backlog_.front() taken
  std::size_t backlog_size_ = 0;
  std::unique_ptr<char[]> plain_;  // decrypted bytes on their way to data_received (reused)
  std::size_t plain_capacity_ = 0;
  FlowControl write_flow_;
  FlowControl read_flow_;
  bool app_reading_paused_ = false;
  bool ssl_writing_paused_ = false;  // the transport underneath is over its high-water mark
  bool eof_received_ = false;        // the transport underneath saw end of file
  bool closed_ = false;              // close() or abort() was called, or the connection is lost
  bool app_closed_ = false;          // the application called close(): incoming data is discarded
  int dropped_writes_ = 0;
  std::exception_ptr lost_error_;  // what the connection is being closed with
  std::exception_ptr pass_error_;  // what the transport threw inside SSL_write, rethrown after it
  std::optional<Future<void>> waiter_;
  std::exception_ptr handshake_error_;
  bool handshake_finished_ = false;
  bool established_ = false;  // the handshake succeeded: the TLS keys of get_extra_info exist
  TimerHandle handshake_timer_;
  TimerHandle shutdown_timer_;
};

// Shared ownership of a stream transport of this library (a socket or pipe
// transport, or a TLS one) from a reference (Transport::shared_handle());
// std::invalid_argument naming `method` for any other.
std::shared_ptr<Transport> share_transport(Transport& transport, const char* method);

}  // namespace aio::detail
