// Private: the file a Unix stream server's bound socket leaves in the file
// system, for create_unix_server (stale files removed before binding, its
// own removed when the server closes: asyncio's cleanup_socket).
#pragma once

#include <core/address.hpp>

#include <string>

namespace aio::detail {

// Removes the file at `path` if it is a socket (one left behind by a server
// that is gone, as asyncio does before binding); anything else is kept, and
// bind then fails with EADDRINUSE. Abstract names have no file.
void remove_stale_unix_socket(const std::string& path);

// A bound socket's file, removed by remove() or destruction only while it is
// still the same file (device and inode): another server may have replaced it.
class UnixSocketFile {
 public:
  UnixSocketFile() noexcept = default;
  // Records the file behind `address` (an AF_UNIX address just bound);
  // nothing for abstract names, unnamed sockets and other families.
  static UnixSocketFile record(const SocketAddress& address);
  UnixSocketFile(UnixSocketFile&& other) noexcept;
  UnixSocketFile& operator=(UnixSocketFile&& other) noexcept;
  UnixSocketFile(const UnixSocketFile&) = delete;
  UnixSocketFile& operator=(const UnixSocketFile&) = delete;
  ~UnixSocketFile() { remove(); }

  void remove() noexcept;

 private:
  std::string path_;  // empty: nothing to remove
  unsigned long long device_ = 0;
  unsigned long long inode_ = 0;
};

}  // namespace aio::detail
