// The loop's timers: a 4-ary min-heap ordered by (deadline, scheduling order).
//
// Four children per node keep a sift-down at half the depth of a binary heap
// and put siblings in one cache line (16-byte entries), which is where a loop
// with a million pending timers spends its time. Cancelled timers stay in
// the heap until they reach the top or the loop compacts it (see run_once).
#pragma once

#include <core/handle.hpp>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace aio::detail {

class TimerHeap {
 public:
  struct Entry {
    std::int64_t when;
    HandleState* handle;  // holds one reference
  };

  bool empty() const noexcept { return entries_.empty(); }
  std::size_t size() const noexcept { return entries_.size(); }
  const Entry& top() const noexcept { return entries_.front(); }

  void push(Entry entry) {
    entries_.push_back(entry);
    sift_up(entries_.size() - 1);
  }

  Entry pop() noexcept {
    Entry top = entries_.front();
    Entry last = entries_.back();
    entries_.pop_back();
    if (!entries_.empty()) sift_down(0, last);
    return top;
  }

  // Drops every entry for which `drop(handle)` is true, then restores the
  // heap in linear time. `drop` takes over the entry's reference.
  template <class Drop>
  void remove_if(Drop drop) {
    std::size_t kept = 0;
    for (const Entry& e : entries_)
      if (!drop(e.handle)) entries_[kept++] = e;
    entries_.resize(kept);
    for (std::size_t i = entries_.size() / arity + 1; i-- > 0;)
      if (i < entries_.size()) sift_down(i, entries_[i]);
  }

  // Gives memory back after a burst of timers (once per loop iteration):
  // a heap down to a quarter of its capacity is reallocated to its size.
  void shrink() {
    if (entries_.capacity() > shrink_floor && entries_.size() * 4 < entries_.capacity()) entries_.shrink_to_fit();
  }

  // Hands every entry's reference to `take` and empties the heap.
  template <class Take>
  void clear(Take take) {
    for (const Entry& e : entries_) take(e.handle);
    entries_.clear();
  }

 private:
  static constexpr std::size_t arity = 4;
  static constexpr std::size_t shrink_floor = 1024;

  static bool before(const Entry& a, const Entry& b) noexcept {
    return a.when < b.when || (a.when == b.when && a.handle->seq < b.handle->seq);
  }

  void sift_up(std::size_t i) noexcept {
    Entry e = entries_[i];
    while (i > 0) {
      std::size_t parent = (i - 1) / arity;
      if (!before(e, entries_[parent])) break;
      entries_[i] = entries_[parent];
      i = parent;
    }
    entries_[i] = e;
  }

  // Places `e` at or below position `i`.
  void sift_down(std::size_t i, Entry e) noexcept {
    const std::size_t n = entries_.size();
    for (;;) {
      std::size_t first = i * arity + 1;
      if (first >= n) break;
      std::size_t best = first;
      std::size_t end = first + arity < n ? first + arity : n;
      for (std::size_t c = first + 1; c < end; ++c)
        if (before(entries_[c], entries_[best])) best = c;
      if (!before(entries_[best], e)) break;
      entries_[i] = entries_[best];
      i = best;
    }
    entries_[i] = e;
  }

  std::vector<Entry> entries_;
};

}  // namespace aio::detail
