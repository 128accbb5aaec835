// Transports: the asyncio transport interfaces.
//
// A transport is created by the loop (connect_accepted_socket,
// create_connection, create_server, create_datagram_endpoint ...); users
// hold it through std::shared_ptr. Its own work keeps it alive until its
// protocol's connection_lost has run: a read it waits for (reading not
// paused), bytes waiting to be written, a close under way. One with none of
// these (reading paused, nothing to write) lives only while someone holds
// it: released, it closes its socket without calling connection_lost, as
// an asyncio transport the garbage collector takes.
#pragma once

#include <core/address.hpp>
#include <net/protocols.hpp>

#include <any>
#include <cstddef>
#include <memory>
#include <optional>
#include <span>
#include <string_view>
#include <utility>

namespace aio {

namespace detail {
class StreamTransport;
}

class BaseTransport {
 public:
  virtual ~BaseTransport() = default;
  // Closes after the write buffer is flushed; connection_lost(nullptr)
  // follows. Idempotent.
  virtual void close() = 0;
  virtual bool is_closing() const noexcept = 0;
  // "peername", "sockname" (SocketAddress), "socket" (fd_t): an empty
  // std::any for what this transport does not have.
  virtual std::any get_extra_info(std::string_view name) const = 0;
  // The protocol it calls (asyncio set_protocol / get_protocol);
  // std::invalid_argument for a protocol of a kind the transport cannot call.
  virtual void set_protocol(std::shared_ptr<BaseProtocol> protocol) = 0;
  virtual std::shared_ptr<BaseProtocol> get_protocol() const = 0;
};

// The read side of a stream (asyncio's ReadTransport): what
// connect_read_pipe returns. A read pipe transport closes itself at end of
// file, whatever eof_received returns.
class ReadTransport : public virtual BaseTransport {
 public:
  // Stops / restarts data_received; idempotent, and honoured even when
  // called from connection_made.
  virtual void pause_reading() = 0;
  virtual void resume_reading() = 0;
  virtual bool is_reading() const noexcept = 0;
};

// The write side of a stream (asyncio's WriteTransport): what
// connect_write_pipe returns.
class WriteTransport : public virtual BaseTransport {
 public:
  // Sends `data` (copied if it cannot be sent at once). After close() or a
  // lost connection, writes are dropped and counted, with a warning after a few.
  virtual void write(std::string_view data) = 0;
  // As one write of the concatenation.
  virtual void writelines(std::span<const std::string_view> lines) = 0;
  // Shuts the write side down once the buffer is flushed (a write pipe
  // transport closes then).
  virtual void write_eof() = 0;
  virtual bool can_write_eof() const noexcept = 0;
  // Closes at once, dropping the buffer; connection_lost(nullptr) follows.
  virtual void abort() = 0;
  virtual std::size_t get_write_buffer_size() const noexcept = 0;
  // (low, high) water marks.
  virtual std::pair<std::size_t, std::size_t> get_write_buffer_limits() const noexcept = 0;
  // asyncio's rule: high defaults to 64 KiB (or 4 * low), low to high / 4;
  // std::invalid_argument unless high >= low. Takes effect at once.
  // std::invalid_argument for negative values.
  virtual void set_write_buffer_limits(std::optional<long long> high = std::nullopt,
                                       std::optional<long long> low = std::nullopt) = 0;
};

// Both sides: a stream connection (asyncio's Transport).
//
// A protocol's connection_made receives a Transport& for pipes too: a
// pipe transport then carries one direction only, and the methods of the
// other throw std::logic_error naming the mistake (asyncio's pipe
// transports do not have them at all). connect_read_pipe and
// connect_write_pipe return it as the ReadTransport or WriteTransport it is.
//
// What the loop asks of a Transport it is handed (start_tls, sendfile, a TLS
// layer slid underneath a protocol), as asyncio asks its transports'
// _start_tls_compatible and _sendfile_compatible: the question goes to the
// object and its class answers. A class of the user's derived from
// Transport overrides none of these; the defaults describe a transport the
// loop cannot work on, which start_tls and sendfile refuse with an exception
// naming what they need.
class Transport : public ReadTransport, public WriteTransport {
 public:
  // A std::shared_ptr that owns this transport (or the object that keeps it
  // alive), for work that outlives the call that handed it over: start_tls,
  // sendfile through a TLS transport, a TLS layer on top. The library's
  // stream and TLS transports give one; the default gives null, and those
  // operations then throw std::invalid_argument.
  virtual std::shared_ptr<Transport> shared_handle() { return nullptr; }
  // This transport as the library's stream transport (a socket or pipe
  // connection), whose write buffer sendfile borrows and whose socket it may
  // hand to the OS; null for any other (the default, a TLS transport).
  virtual detail::StreamTransport* stream_transport() noexcept { return nullptr; }
  // Whether this transport encrypts what it is given (true for every
  // SSLTransport): sendfile can then only write the file through it, never
  // give the socket to the OS.
  virtual bool is_tls() const noexcept { return false; }
};

// A TLS connection: what create_connection, create_server, ... with `ssl`
// and start_tls give the application (asyncio's _SSLProtocolTransport).
// write_eof() throws NotImplementedError (TLS has no half-close; a TLS
// connection ends with close(), which sends close_notify), and
// can_write_eof() is false. The write buffer is the plain text not yet
// encrypted plus the encrypted bytes not yet handed to the socket, with
// asyncio's TLS limits: pause_writing at 512 KiB or more, resume_writing at
// 128 KiB or less. get_extra_info adds "sslcontext"
// (std::shared_ptr<SSLContext>) and, once the handshake is done,
// "ssl_object" (std::shared_ptr<SSLObject>), "peercert"
// (std::optional<PeerCertificate>), "cipher" (CipherInfo) and "compression"
// (std::optional<std::string>), from net/ssl.hpp; the socket's keys come
// from the transport underneath, and are empty once the connection is lost.
class SSLTransport : public Transport {
 public:
  bool is_tls() const noexcept final { return true; }
  // Encrypted bytes received and not yet decrypted. Over the read limits'
  // high mark (256 KiB by default) the socket's reading pauses until they
  // are back at the low one.
  virtual std::size_t get_read_buffer_size() const noexcept = 0;
  // (low, high)
  virtual std::pair<std::size_t, std::size_t> get_read_buffer_limits() const noexcept = 0;
  // As set_write_buffer_limits, with a default high of 256 KiB.
  virtual void set_read_buffer_limits(std::optional<long long> high = std::nullopt,
                                      std::optional<long long> low = std::nullopt) = 0;
};

// A datagram endpoint (asyncio's DatagramTransport), from
// EventLoop::create_datagram_endpoint. get_extra_info gives "sockname",
// "socket" and, for a connected endpoint, "peername".
class DatagramTransport : public BaseTransport {
 public:
  // Sends `data` as one datagram (empty ones included) to `address`, or to
  // the endpoint's remote address when omitted. It goes to the socket at
  // once when nothing is queued; a datagram the socket cannot take now is
  // queued whole and sent in order when it can. An OS error (ECONNREFUSED,
  // EMSGSIZE for a datagram too large, ...) goes to the protocol's
  // error_received, from the loop; the transport stays open. After close()
  // or abort() datagrams are dropped and counted, with a warning after a few.
  // std::invalid_argument for an address other than the remote one when the
  // endpoint has one, no address when it has none, or an empty address.
  virtual void sendto(std::string_view data, std::optional<SocketAddress> address = std::nullopt) = 0;
  // Closes at once, dropping queued datagrams; connection_lost(nullptr) follows.
  virtual void abort() = 0;
  // Bytes queued: each datagram counts its size plus 8, as in asyncio, so
  // that empty datagrams weigh on flow control too.
  virtual std::size_t get_write_buffer_size() const noexcept = 0;
  // Flow control over the queue, as Transport's: pause_writing when it holds
  // more than high, resume_writing at low; (low, high) water marks.
  virtual std::pair<std::size_t, std::size_t> get_write_buffer_limits() const noexcept = 0;
  virtual void set_write_buffer_limits(std::optional<long long> high = std::nullopt,
                                       std::optional<long long> low = std::nullopt) = 0;
};

// A child process with its pipes (asyncio's SubprocessTransport), from
// EventLoop::subprocess_exec / subprocess_shell. close() closes the pipes
// and kills the child if it still runs; it is still reaped (never left a
// zombie), and connection_lost follows.
class SubprocessTransport : public BaseTransport {
 public:
  virtual int get_pid() const noexcept = 0;
  // The exit status, or -N after signal N; empty while it runs.
  virtual std::optional<int> get_returncode() const noexcept = 0;
  // The transport of the child's stdin (0: used as a WriteTransport),
  // stdout (1) or stderr (2: used as ReadTransports), or null if that
  // stream is no pipe or fd is none of these. A pipe transport of this
  // library is both (a stream transport), so it is given as a Transport.
  virtual std::shared_ptr<Transport> get_pipe_transport(int fd) const = 0;
  // Signals the child; once it has been reaped, does nothing (contract 76,
  // as Popen.send_signal: its pid may be another process's by then).
  virtual void send_signal(int signal) = 0;
  virtual void terminate() = 0;  // SIGTERM
  virtual void kill() = 0;       // SIGKILL
};

}  // namespace aio
