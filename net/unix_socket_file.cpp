// Unix-domain socket files (POSIX only: where Unix sockets are not available,
// SocketAddress::unix_path refuses every path before this is reached).
#include <backends/syscall.hpp>
#include <net/unix_socket_file.hpp>

#ifndef _WIN32
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#endif

#include <cerrno>
#include <utility>

namespace aio::detail {

void remove_stale_unix_socket(const std::string& path) {
#ifndef _WIN32
  if (path.empty() || path.front() == '\0') return;
  struct stat st;
  if (::stat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode) && ::unlink(path.c_str()) != 0 && errno != ENOENT)
    throw_os_error(errno, "unlink stale Unix socket " + path);
#else
  (void)path;
#endif
}

UnixSocketFile UnixSocketFile::record(const SocketAddress& address) {
  UnixSocketFile file;
#ifndef _WIN32
  std::string path = address.family() == AF_UNIX ? address.path() : std::string();
  struct stat st;
  if (!path.empty() && path.front() != '\0' && ::stat(path.c_str(), &st) == 0) {
    file.path_ = std::move(path);
    file.device_ = static_cast<unsigned long long>(st.st_dev);
    file.inode_ = static_cast<unsigned long long>(st.st_ino);
  }
#else
  (void)address;
#endif
  return file;
}

UnixSocketFile::UnixSocketFile(UnixSocketFile&& other) noexcept
    : path_(std::exchange(other.path_, {})), device_(other.device_), inode_(other.inode_) {}

UnixSocketFile& UnixSocketFile::operator=(UnixSocketFile&& other) noexcept {
  if (this != &other) {
    remove();
    path_ = std::exchange(other.path_, {});
    device_ = other.device_;
    inode_ = other.inode_;
  }
  return *this;
}

void UnixSocketFile::remove() noexcept {
  if (path_.empty()) return;
#ifndef _WIN32
  struct stat st;
  if (::stat(path_.c_str(), &st) == 0 && static_cast<unsigned long long>(st.st_dev) == device_ &&
      static_cast<unsigned long long>(st.st_ino) == inode_)
    ::unlink(path_.c_str());
#endif
  path_.clear();
}

}  // namespace aio::detail
