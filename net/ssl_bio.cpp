// MemoryBio (net/ssl_bio.hpp): a BIO_METHOD of our own over a byte buffer.
#include <net/ssl_bio.hpp>

#include <openssl/bio.h>

#include <algorithm>
#include <cstring>
#include <new>
#include <utility>

namespace aio::detail {

namespace {

// Enough for a whole TLS record (16 KiB of plain text and its overhead).
constexpr std::size_t initial_capacity = 32 * 1024;
// An emptied buffer larger than this is released: a connection that went
// idle after a burst keeps little.
constexpr std::size_t kept_capacity = 128 * 1024;

MemoryBio* self_of(BIO* bio) { return static_cast<MemoryBio*>(BIO_get_data(bio)); }

int bio_read(BIO* bio, char* out, std::size_t size, std::size_t* done) {
  BIO_clear_retry_flags(bio);
  *done = 0;
  MemoryBio* self = self_of(bio);
  if (!self) return 0;  // its MemoryBio is gone: the end
  *done = self->read(out, size);
  if (*done > 0) return 1;
  // Nothing yet is never the end of the stream: the transport's
  // eof_received says that (an EOF here would be OpenSSL 3's UNEXPECTED_EOF).
  BIO_set_retry_read(bio);
  return 0;
}

int bio_write(BIO* bio, const char* in, std::size_t size, std::size_t* done) {
  BIO_clear_retry_flags(bio);
  MemoryBio* self = self_of(bio);
  if (self) {
    try {
      self->append(std::string_view(in, size));
    } catch (const std::bad_alloc&) {
      *done = 0;
      return 0;  // SSL_write fails with SSL_ERROR_SYSCALL
    }
  }
  *done = size;
  return 1;
}

long bio_ctrl(BIO* bio, int cmd, long, void*) {
  MemoryBio* self = self_of(bio);
  switch (cmd) {
    case BIO_CTRL_PENDING:
      return self ? static_cast<long>(self->pending()) : 0;
    case BIO_CTRL_FLUSH:  // written is as good as flushed: the layer sends it
    case BIO_CTRL_DUP:
      return 1;
    default:  // BIO_CTRL_EOF (never), BIO_CTRL_WPENDING (nothing waits inside), kTLS...
      return 0;
  }
}

int bio_create(BIO* bio) {
  BIO_set_init(bio, 1);
  return 1;
}

const BIO_METHOD* method() {
  static const BIO_METHOD* const made = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "aio memory");
    if (!m || !BIO_meth_set_read_ex(m, bio_read) || !BIO_meth_set_write_ex(m, bio_write) ||
        !BIO_meth_set_ctrl(m, bio_ctrl) || !BIO_meth_set_create(m, bio_create))
      throw std::bad_alloc();
    return m;  // for the life of the program, as OpenSSL's own methods
  }();
  return made;
}

}  // namespace

MemoryBio::MemoryBio() : bio_(BIO_new(method())) {
  if (!bio_) throw std::bad_alloc();
  BIO_set_data(bio_, this);
}

MemoryBio::~MemoryBio() {
  BIO_set_data(bio_, nullptr);
  BIO_free(bio_);
}

bio_st* MemoryBio::give_bio() noexcept {
  BIO_up_ref(bio_);
  return bio_;
}

void MemoryBio::clear() noexcept {
  begin_ = end_ = 0;
  if (capacity_ > kept_capacity) {
    data_.reset();
    capacity_ = 0;
  }
}

void MemoryBio::reserve(std::size_t more) {
  if (capacity_ - end_ >= more) return;
  std::size_t live = end_ - begin_;
  if (live + more <= capacity_ / 2) {
    std::memmove(data_.get(), data_.get() + begin_, live);  // little to move: the room is at the front
  } else {
    // Grown without zero-filling what is written over anyway.
    std::size_t capacity = std::max({2 * capacity_, live + more, initial_capacity});
    auto bigger = std::make_unique_for_overwrite<char[]>(capacity);
    if (live) std::memcpy(bigger.get(), data_.get() + begin_, live);
    data_ = std::move(bigger);
    capacity_ = capacity;
  }
  begin_ = 0;
  end_ = live;
}

void MemoryBio::append(std::string_view data) {
  if (data.empty()) return;
  if (pass_ && begin_ == end_ && lent_.empty() && pass_->pass(data)) return;
  if (!lent_.empty()) keep_lent();  // the lent bytes are older
  reserve(data.size());
  std::memcpy(data_.get() + end_, data.data(), data.size());
  end_ += data.size();
}

std::size_t MemoryBio::read(char* into, std::size_t size) noexcept {
  std::size_t from_kept = std::min(size, end_ - begin_);
  if (from_kept) {
    std::memcpy(into, data_.get() + begin_, from_kept);
    begin_ += from_kept;
    if (begin_ == end_) clear();
  }
  std::size_t from_lent = std::min(size - from_kept, lent_.size());
  if (from_lent) {
    std::memcpy(into + from_kept, lent_.data(), from_lent);
    lent_.remove_prefix(from_lent);
  }
  return from_kept + from_lent;
}

void MemoryBio::lend(std::string_view data) {
  if (!lent_.empty()) keep_lent();
  lent_ = data;
}

void MemoryBio::keep_lent() {
  // Forgotten first: should the copy fail, the connection fails with that
  // error, and the caller's buffer is not ours to point at any more.
  std::string_view rest = std::exchange(lent_, {});
  if (rest.empty()) return;
  reserve(rest.size());
  std::memcpy(data_.get() + end_, rest.data(), rest.size());
  end_ += rest.size();
}

}  // namespace aio::detail
