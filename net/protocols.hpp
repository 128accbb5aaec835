// Protocols: what a transport calls back, named as asyncio's.
//
// A transport calls connection_made once, then the data callbacks, then
// connection_lost once; all from the loop, never re-entrantly from a
// transport method the protocol called. An exception escaping a callback is
// a fatal error of the transport (reported, transport closed), as in asyncio.
#pragma once

#include <core/address.hpp>

#include <cstddef>
#include <exception>
#include <span>
#include <string_view>

namespace aio {

class Transport;
class DatagramTransport;
class SubprocessTransport;
class Protocol;
class BufferedProtocol;
class DatagramProtocol;
class SubprocessProtocol;

class BaseProtocol {
 public:
  virtual ~BaseProtocol() = default;
  // Which interface a transport may call this protocol through (what asyncio
  // asks with isinstance): this object as a Protocol, a BufferedProtocol or a
  // DatagramProtocol (or, for subprocess_exec, a SubprocessProtocol), or
  // null when it is not one. Each of those answers for itself (final), so a class
  // derived from one of them overrides nothing; a transport given a protocol
  // of none of the kinds it calls throws std::invalid_argument naming them.
  virtual Protocol* as_protocol() noexcept { return nullptr; }
  virtual BufferedProtocol* as_buffered_protocol() noexcept { return nullptr; }
  virtual DatagramProtocol* as_datagram_protocol() noexcept { return nullptr; }
  virtual SubprocessProtocol* as_subprocess_protocol() noexcept { return nullptr; }
  // The connection is gone: `error` is null after a clean close or end of
  // file, else what broke it. The transport is unusable after this returns.
  virtual void connection_lost(std::exception_ptr error) { (void)error; }
  // The transport's write buffer went over its high-water mark / back to
  // its low-water mark.
  virtual void pause_writing() {}
  virtual void resume_writing() {}
};

// Stream protocol: receives bytes as they arrive.
class Protocol : public BaseProtocol {
 public:
  Protocol* as_protocol() noexcept final { return this; }
  // `transport` stays valid until connection_lost returns.
  virtual void connection_made(Transport& transport) { (void)transport; }
  // `data` is valid during the call only.
  virtual void data_received(std::string_view data) { (void)data; }
  // The peer half-closed. Return true to keep the write side open;
  // otherwise the transport closes itself.
  virtual bool eof_received() { return false; }
};

// Stream protocol that lends the transport its own buffer (no copy).
class BufferedProtocol : public BaseProtocol {
 public:
  BufferedProtocol* as_buffered_protocol() noexcept final { return this; }
  virtual void connection_made(Transport& transport) { (void)transport; }
  // A non-empty buffer to read into; `size_hint` is a suggestion.
  virtual std::span<char> get_buffer(std::size_t size_hint) = 0;
  // The first `nbytes` bytes of the last buffer were filled.
  virtual void buffer_updated(std::size_t nbytes) = 0;
  virtual bool eof_received() { return false; }
};

// Datagram protocol (UDP, Unix datagram sockets): receives whole datagrams
// with their sender. connection_lost(nullptr) follows close() or abort();
// a datagram transport has no end of file.
class DatagramProtocol : public BaseProtocol {
 public:
  DatagramProtocol* as_datagram_protocol() noexcept final { return this; }
  // `transport` stays valid until connection_lost returns.
  virtual void connection_made(DatagramTransport& transport) { (void)transport; }
  // One datagram, possibly empty; `data` is valid during the call only.
  // `addr` is the sender (an unnamed Unix socket gives an address with an
  // empty path).
  virtual void datagram_received(std::string_view data, const SocketAddress& addr) {
    (void)data;
    (void)addr;
  }
  // A send or receive failed with an OS error (a std::system_error): an
  // ICMP "port unreachable" seen as ECONNREFUSED (Windows: WSAECONNRESET),
  // EMSGSIZE for a datagram too large, ... The transport stays open; the
  // datagram that failed is dropped.
  virtual void error_received(std::exception_ptr error) { (void)error; }
};

// What a subprocess transport calls (EventLoop::subprocess_exec,
// subprocess_shell): connection_made, then pipe_data_received /
// pipe_connection_lost per pipe and process_exited, in the order they
// happen, then connection_lost(nullptr) once the process has exited and
// every pipe is closed. pause_writing / resume_writing follow the stdin
// pipe's buffer.
class SubprocessProtocol : public BaseProtocol {
 public:
  SubprocessProtocol* as_subprocess_protocol() noexcept final { return this; }
  // `transport` stays valid until connection_lost returns.
  virtual void connection_made(SubprocessTransport& transport) { (void)transport; }
  // Data the child wrote to its stdout (fd 1) or stderr (fd 2); valid
  // during the call only.
  virtual void pipe_data_received(int fd, std::string_view data) {
    (void)fd;
    (void)data;
  }
  // One of the child's pipes closed (0: stdin, 1: stdout, 2: stderr);
  // `error` is null after end of file or a close.
  virtual void pipe_connection_lost(int fd, std::exception_ptr error) {
    (void)fd;
    (void)error;
  }
  // The child exited; get_returncode() has its code.
  virtual void process_exited() {}
};

}  // namespace aio
