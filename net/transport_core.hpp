// The life of every transport, whatever it carries and however its bytes
// move: connection_made once, then connection_lost exactly once; close()
// that stops reading and waits for the write buffer to drain; abort() and
// fatal errors that drop the buffer; writes after closing dropped and
// counted; write flow control; errors reported to the loop's exception
// handler. Written once for the stream and the datagram transports
// (`Interface` is Transport or DatagramTransport), which add what they carry
// and leave how bytes move to an engine (selector readiness, proactor
// completion).
#pragma once

#include <core/event_loop.hpp>
#include <net/flow_control.hpp>
#include <net/transports.hpp>

#include <cstddef>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <utility>

namespace aio::detail {

// What `protocol` is, for the error a transport throws when given one of a
// kind it cannot call: "null", "an aio::Protocol", "an aio::BufferedProtocol",
// "an aio::DatagramProtocol", or another kind of aio::BaseProtocol.
std::string describe_protocol(BaseProtocol* protocol);

template <class Interface>
class TransportCore : public Interface, public std::enable_shared_from_this<TransportCore<Interface>> {
 public:
  ~TransportCore() override;

  void close() override;
  bool is_closing() const noexcept override { return closing_; }
  void abort() override {
    check_loop("abort");
    force_close(nullptr);
  }
  std::size_t get_write_buffer_size() const noexcept override { return buffered_; }
  std::pair<std::size_t, std::size_t> get_write_buffer_limits() const noexcept override { return flow_.limits(); }
  void set_write_buffer_limits(std::optional<long long> high, std::optional<long long> low) override;
  std::shared_ptr<BaseProtocol> get_protocol() const override { return protocol_; }

  // Schedules connection_made, then reading (unless paused or closed by
  // then), then `on_made` (may be empty). From here the loop's registrations
  // and scheduled calls hold the transport (the engine's watches capture
  // shared_from_this()), so it lives while it has I/O to do or callbacks to run.
  void start(Callback on_made);
  // Runs once, right after connection_lost (a Server forgetting its client).
  void set_on_lost(Callback on_lost) { on_lost_ = std::move(on_lost); }

 protected:
  explicit TransportCore(EventLoop& loop) : loop_(loop), loop_ref_(loop) {}

  // ---- What the transport provides ----
  // The protocol's connection_made(*this), as its type has it.
  virtual void call_connection_made() = 0;
  // True while the protocol does not want to receive (pause_reading).
  virtual bool reading_paused() const noexcept { return false; }
  // True while pause_writing / resume_writing are held back (a sendfile owns
  // the write side); update_flow() catches them up afterwards.
  virtual bool flow_control_held() const noexcept { return false; }
  // Drops what the write buffer holds (abort, fatal errors).
  virtual void clear_write_buffer() noexcept = 0;
  // The transport starts closing (close(), abort() or a fatal error): what
  // waits on its writes must stop waiting. lost_error() is set by then.
  virtual void closing_started() {}

  // ---- What an engine provides ----
  virtual void engine_start_reading() = 0;
  virtual void engine_stop_reading() = 0;
  virtual void engine_stop_writing() = 0;
  // Releases the OS resource; called once, after connection_lost.
  virtual void engine_close() noexcept = 0;

  // ---- What the transport uses ----
  // A transport may outlive its loop (kept past aio::run): releasing it is
  // safe, as its destructor never touches the loop, but using it then is a
  // std::runtime_error("Event loop is closed ..."), as asyncio's, never a
  // use of freed memory. Every public method that reaches the loop calls it.
  void check_loop(const char* method) const;
  // The protocol callbacks go to (its type is the transport's to check).
  void adopt_protocol(std::shared_ptr<BaseProtocol> protocol) { protocol_ = std::move(protocol); }
  // True for a write after close() or the loss of the connection, which is
  // then dropped: counts it, with a warning after a few.
  bool drop_write();
  // `n` more bytes wait in the write buffer: pause_writing once over high.
  void buffered_grew(std::size_t n);
  // `n` buffered bytes left the buffer (sent, or given up on).
  void buffered_shrank(std::size_t n) noexcept { buffered_ -= n; }
  // pause_writing / resume_writing as the buffer and the limits now say.
  void update_flow();
  // After the engine sent from the buffer: resume_writing at low; once the
  // buffer is empty, stops watching writability and finishes a close() that
  // waited for it. True when the buffer is empty and the transport open.
  bool flushed();
  // connection_lost is scheduled or ran: no more I/O.
  bool lost_scheduled() const noexcept { return lost_scheduled_; }
  // connection_lost ran: the protocol gets no more callbacks.
  bool connection_lost_called() const noexcept { return lost_; }
  // What an abort or a fatal error closed the transport with (null after
  // close() or abort()).
  const std::exception_ptr& lost_error() const noexcept { return lost_error_; }
  // An OS error (or a protocol callback's exception): reported unless it is
  // a connection reset, then the transport closes with it.
  void fatal_error(std::exception_ptr error, const char* message);
  // To the loop's exception handler, with this transport and its protocol.
  void report(std::exception_ptr error, const char* message);

  EventLoop& loop_;

 private:
  void force_close(std::exception_ptr error);
  void call_connection_lost(std::exception_ptr error);

  std::shared_ptr<BaseProtocol> protocol_;
  FlowControl flow_;
  std::size_t buffered_ = 0;  // bytes in the write buffer, as get_write_buffer_size reports them
  int dropped_writes_ = 0;    // writes after close() or the loss
  bool closing_ = false;
  bool lost_scheduled_ = false;  // connection_lost is scheduled (or ran)
  bool lost_ = false;            // connection_lost ran
  bool protocol_connected_ = false;
  std::exception_ptr lost_error_;  // what force_close() closed with
  LoopRef loop_ref_;               // null once the loop is destroyed
  Callback on_lost_;
};

extern template class TransportCore<Transport>;
extern template class TransportCore<DatagramTransport>;

}  // namespace aio::detail
