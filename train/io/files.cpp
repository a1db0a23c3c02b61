// Whole-file reads, atomic writes and the shared checks of train/io (see files.h).
// POSIX calls rather than iostreams where the errno matters: "cannot open: Permission denied"
// says more than "failed to open".
#include "train/io/files.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>

namespace unet::io {
namespace {

namespace fs = std::filesystem;

std::string errno_text(int err) { return std::strerror(err); }

// Closes a descriptor on every path out of a function.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }
  // Closes now, so that the caller sees the error a delayed write may report at close.
  int close() {
    int rc = ::close(fd_);
    fd_ = -1;
    return rc;
  }

 private:
  int fd_;
};

void check_regular_file(const std::string& path) {
  std::error_code ec;
  fs::file_status status = fs::status(path, ec);
  if (status.type() == fs::file_type::not_found) throw FileError(path, "file not found");
  if (ec) throw FileError(path, "cannot access: " + ec.message());
  if (status.type() == fs::file_type::directory)
    throw FileError(path, "is a directory, not a file");
}

// Returns 0 or the errno of the failed write.
int write_all(int fd, const uint8_t* data, std::size_t size) {
  while (size > 0) {
    ssize_t n = ::write(fd, data, size);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno;
    data += n;
    size -= static_cast<std::size_t>(n);
  }
  return 0;
}

// A name no other writer uses at the same time: several threads or processes may write into one
// folder, even to the same destination (the last rename wins, each file whole).
std::string temporary_path(const std::string& path) {
  static std::atomic<unsigned> counter{0};
  fs::path target(path);
  std::string name = "." + target.filename().string() + ".tmp-" + std::to_string(::getpid()) + "-" +
                     std::to_string(counter++);
  return (target.parent_path() / name).string();
}

}  // namespace

void check_readable(const std::string& path) {
  check_regular_file(path);
  std::error_code ec;
  std::uintmax_t size = fs::file_size(path, ec);
  if (ec) throw FileError(path, "cannot access: " + ec.message());
  if (size == 0) throw FileError(path, "empty file");
  if (::access(path.c_str(), R_OK) != 0) throw FileError(path, "cannot open: " + errno_text(errno));
}

std::vector<uint8_t> read_file(const std::string& path) {
  check_regular_file(path);
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) throw FileError(path, "cannot open: " + errno_text(errno));
  std::vector<uint8_t> bytes;
  // Read to the end rather than trusting the size from stat, which a growing file outdates.
  constexpr std::size_t kChunk = std::size_t(1) << 20;
  for (;;) {
    std::size_t used = bytes.size();
    bytes.resize(used + kChunk);
    ssize_t n = ::read(fd.get(), bytes.data() + used, kChunk);
    if (n < 0 && errno == EINTR) {
      bytes.resize(used);
      continue;
    }
    if (n < 0) throw FileError(path, "read error: " + errno_text(errno));
    bytes.resize(used + static_cast<std::size_t>(n));
    if (n == 0) break;
  }
  if (bytes.empty()) throw FileError(path, "empty file");
  return bytes;
}

void write_file_atomic(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::string temp = temporary_path(path);
  // 0666 lets the umask decide the final permissions, as for any newly created file.
  Fd fd(::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666));
  if (fd.get() < 0) {
    throw FileError(path, "cannot create temporary file " + temp + ": " + errno_text(errno));
  }
  auto fail = [&](const char* step, int err) {
    ::unlink(temp.c_str());
    throw FileError(path, std::string("cannot write (") + step + " failed): " + errno_text(err));
  };
  if (int err = write_all(fd.get(), bytes.data(), bytes.size())) fail("write", err);
  if (::fsync(fd.get()) != 0) fail("flush", errno);
  if (fd.close() != 0) fail("close", errno);
  if (::rename(temp.c_str(), path.c_str()) != 0) fail("rename", errno);
}

bool ends_with_icase(const std::string& path, std::string_view suffix) {
  if (path.size() < suffix.size()) return false;
  std::size_t start = path.size() - suffix.size();
  for (std::size_t i = 0; i < suffix.size(); ++i) {
    auto lower = [](char c) { return (c >= 'A' && c <= 'Z') ? char(c - 'A' + 'a') : c; };
    if (lower(path[start + i]) != lower(suffix[i])) return false;
  }
  return true;
}

namespace {
std::size_t max_input = std::size_t(512) << 20;
}  // namespace

std::size_t max_input_bytes() { return max_input; }
void set_max_input_bytes(std::size_t bytes) { max_input = bytes; }

void check_decoded_size(const std::string& path, const std::string& what,
                        const std::vector<int64_t>& dims) {
  std::string shown;
  for (int64_t d : dims) shown += (shown.empty() ? "" : " x ") + std::to_string(d);
  uint64_t bytes = sizeof(float);
  for (int64_t d : dims) {
    if (d < 1) throw FileError(path, what + " " + shown + " is empty (a size is " + std::to_string(d) + ")");
    // Compared before multiplying, so that no product can overflow.
    if (uint64_t(d) > max_input / bytes) bytes = uint64_t(max_input) + 1;
    else bytes *= uint64_t(d);
  }
  if (bytes > max_input) {
    throw FileError(path, what + " " + shown + " is too large: over the limit of " +
                              std::to_string(max_input >> 20) +
                              " MiB decoded (raise it with --max-input-mb if the file is genuine)");
  }
}

bool has_non_finite(const std::vector<float>& values) {
  for (float v : values) {
    if (!std::isfinite(v)) return true;
  }
  return false;
}

}  // namespace unet::io
