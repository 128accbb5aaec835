// The two BIOs between OpenSSL and the TLS layer's transport (net/ssl_protocol).
//
// OpenSSL's own memory BIO would do, at a cost on every record: it zero-fills
// each region before it copies into it, and each received segment has to be
// copied into it before SSL_read may look at it. A MemoryBio instead grows
// without zero-filling, and can lend OpenSSL a segment in place for as long
// as the caller runs (`lend`): SSL_read takes its records straight from the
// transport's buffer, and only what it leaves (part of a record, or what
// arrived while reading is paused) is copied, when the loan ends. On the way
// out, a pass-through can take what OpenSSL writes straight from OpenSSL's
// buffer (`set_pass_through`): a record then reaches the transport with no
// copy of ours in between.
#pragma once

#include <cstddef>
#include <memory>
#include <string_view>

struct bio_st;  // OpenSSL's BIO

namespace aio::detail {

class MemoryBio {
 public:
  // Offered what OpenSSL writes while nothing is kept; returns false to
  // have it kept instead. It runs inside an OpenSSL call: it must not throw
  // or call into the same SSL object.
  class PassThrough {
   public:
    virtual bool pass(std::string_view data) noexcept = 0;

   protected:
    ~PassThrough() = default;
  };

  // Throws std::bad_alloc when OpenSSL cannot make the BIO.
  MemoryBio();
  // The BIO stays with whoever else holds it (the SSL object), emptied:
  // it reads nothing more and drops what is written to it.
  ~MemoryBio();
  MemoryBio(const MemoryBio&) = delete;
  MemoryBio& operator=(const MemoryBio&) = delete;

  // The BIO, for SSL_set_bio, which takes this reference: call it once.
  bio_st* give_bio() noexcept;

  // What OpenSSL may read: the kept bytes, then a lent segment.
  std::size_t pending() const noexcept { return (end_ - begin_) + lent_.size(); }
  // The kept bytes (what OpenSSL wrote, on the outgoing side).
  std::string_view kept() const noexcept { return {data_.get() + begin_, end_ - begin_}; }
  // Forgets the kept bytes (they were sent); a large buffer is released.
  void clear() noexcept;
  // Copies `data` in after what is there, unless the pass-through (when
  // there is one and nothing is kept) takes it.
  void append(std::string_view data);
  // Null: every write is kept.
  void set_pass_through(PassThrough* to) noexcept { pass_ = to; }
  // OpenSSL's read: up to `size` bytes, oldest first; 0 when there are none.
  std::size_t read(char* into, std::size_t size) noexcept;

  // Until keep_lent(), OpenSSL reads `data` in place, after the kept
  // bytes; keep_lent() then copies what it left of it (it may throw
  // std::bad_alloc). A second segment lent meanwhile (one arriving while the
  // first is being read) first keeps the rest of the first, so the bytes
  // stay in order.
  void lend(std::string_view data);
  void keep_lent();

 private:
  // Room for `more` bytes after end_, moving or growing the buffer.
  void reserve(std::size_t more);

  bio_st* bio_ = nullptr;  // our reference; SSL_set_bio takes another
  std::unique_ptr<char[]> data_;
  std::size_t capacity_ = 0;
  std::size_t begin_ = 0;  // kept bytes are [begin_, end_)
  std::size_t end_ = 0;
  std::string_view lent_;
  PassThrough* pass_ = nullptr;
};

}  // namespace aio::detail
