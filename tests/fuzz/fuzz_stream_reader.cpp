// libFuzzer target: StreamReader against what a peer may send. The input
// picks a buffer limit, a chunking of the bytes that arrive (and whether end
// of file follows) and a sequence of reads: readline, readuntil, readexactly,
// read(n). Every result is checked against what asyncio's StreamReader
// promises, and the bytes handed out must be the bytes sent, in order, with
// gaps only where readline dropped an overlong line.
#include <core/aio.hpp>
#include <net/streams.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace {

[[noreturn]] void fail(const char* what) {
  (void)what;
  __builtin_trap();
}

// Takes bytes off the front of the input; zeros once it is used up.
class Input {
 public:
  Input(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}
  bool empty() const noexcept { return size_ == 0; }
  std::uint8_t byte() {
    if (!size_) return 0;
    --size_;
    return *data_++;
  }
  std::string bytes(std::size_t n) {
    n = n < size_ ? n : size_;
    std::string out(reinterpret_cast<const char*>(data_), n);
    data_ += n;
    size_ -= n;
    return out;
  }

 private:
  const std::uint8_t* data_;
  std::size_t size_;
};

enum class Op : std::uint8_t { readline, readuntil, readexactly, read, read_all };

struct Read {
  Op op;
  long long n = 0;
  std::string separator;
};

struct Outcome {
  std::string got;    // bytes handed out, in order
  bool gaps = false;  // readline dropped data
};

aio::Task<void> reads(aio::StreamReader reader, std::vector<Read> plan, std::size_t limit, const bool& eof_sent,
                      Outcome& out) {
  for (const Read& r : plan) {
    try {
      switch (r.op) {
        case Op::readline: {
          std::string line = co_await reader.readline();
          auto nl = line.find('\n');
          if (nl != std::string::npos && nl + 1 != line.size()) fail("readline: a '\\n' before the end");
          if (nl == std::string::npos && !eof_sent) fail("readline: no '\\n' before end of file");
          out.got += line;
          break;
        }
        case Op::readuntil: {
          std::string chunk = co_await reader.readuntil(r.separator);
          if (chunk.size() < r.separator.size() || chunk.find(r.separator) != chunk.size() - r.separator.size())
            fail("readuntil: not ended by the first separator");
          out.got += chunk;
          break;
        }
        case Op::readexactly: {
          std::string chunk = co_await reader.readexactly(r.n);
          if (static_cast<long long>(chunk.size()) != r.n) fail("readexactly: wrong size");
          out.got += chunk;
          break;
        }
        case Op::read: {
          std::string chunk = co_await reader.read(r.n);
          if (r.n > 0 && static_cast<long long>(chunk.size()) > r.n) fail("read: more than asked");
          if (r.n != 0 && chunk.empty() && !eof_sent) fail("read: nothing before end of file");
          out.got += chunk;
          break;
        }
        case Op::read_all:
          out.got += co_await reader.read();
          if (!eof_sent) fail("read(): returned before end of file");
          break;
      }
    } catch (const aio::IncompleteReadError& e) {
      if (!eof_sent) fail("IncompleteReadError before end of file");
      out.got += e.partial;
    } catch (const aio::LimitOverrunError&) {
      if (r.op == Op::readline) out.gaps = true;  // readline drops the line, readuntil keeps it
      if (limit == 0) fail("LimitOverrunError with no limit");
    } catch (const std::invalid_argument&) {
      if (!(r.op == Op::readexactly && r.n < 0) && !(r.op == Op::readuntil && r.separator.empty()))
        fail("invalid_argument for valid arguments");
    }
  }
}

// Feeds one chunk per loop iteration, then end of file if asked.
aio::Task<void> feed(aio::StreamReader reader, std::vector<std::string> chunks, bool eof, bool& eof_sent) {
  for (const std::string& chunk : chunks) {
    reader.feed_data(chunk);
    co_await aio::sleep(0);
  }
  if (eof) {
    eof_sent = true;
    reader.feed_eof();
  }
  co_await aio::sleep(0);
}

bool is_subsequence_of_pieces(const std::string& got, const std::string& sent) {
  std::size_t j = 0;
  for (char c : got) {
    while (j < sent.size() && sent[j] != c) ++j;
    if (j == sent.size()) return false;
    ++j;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static std::unique_ptr<aio::EventLoop> loop = aio::new_event_loop();
  Input in(data, size);
  const std::size_t limit = 1 + in.byte() % 64;
  const bool eof = in.byte() & 1;
  std::vector<std::string> chunks;
  std::string sent;
  for (int n = in.byte() % 8; n > 0; --n) {
    chunks.push_back(in.bytes(in.byte() % 96));
    sent += chunks.back();
  }
  std::vector<Read> plan;
  while (!in.empty() && plan.size() < 16) {
    Read r{static_cast<Op>(in.byte() % 5), 0, {}};
    if (r.op == Op::readuntil) r.separator = in.bytes(in.byte() % 4);
    if (r.op == Op::readexactly || r.op == Op::read) r.n = static_cast<std::int8_t>(in.byte());
    plan.push_back(std::move(r));
  }

  aio::StreamReader reader(limit);
  bool eof_sent = false;
  Outcome out;
  aio::Task<void> reading = loop->create_task(reads(reader, plan, limit, eof_sent, out));
  loop->run_until_complete(feed(reader, std::move(chunks), eof, eof_sent));
  // What is still waiting waits for bytes that never come: not a failure.
  if (!reading.done()) {
    reading.cancel();
    try {
      loop->run_until_complete(reading);
    } catch (const aio::CancelledError&) {
    }
  }
  if (out.got.size() > sent.size()) fail("handed out more than was sent");
  if (!out.gaps && sent.compare(0, out.got.size(), out.got) != 0) fail("bytes out of order or changed");
  if (out.gaps && !is_subsequence_of_pieces(out.got, sent)) fail("bytes out of order after a dropped line");
  return 0;
}
