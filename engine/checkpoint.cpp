#include "engine/checkpoint.h"

#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <vector>

namespace unet {
namespace {

constexpr char kMagic[8] = {'U', 'N', 'E', 'T', 'C', 'K', 'P', 'T'};
constexpr std::size_t kHeaderBytes = sizeof(kMagic) + sizeof(uint32_t) + sizeof(uint64_t);

class Writer {
 public:
  template <typename T>
  void put(const T& value) {
    put_bytes(&value, sizeof(T));
  }
  void put_string(const std::string& s) {
    put(uint32_t(s.size()));
    put_bytes(s.data(), s.size());
  }
  void put_bytes(const void* data, std::size_t n) {
    const auto* p = static_cast<const char*>(data);
    bytes.insert(bytes.end(), p, p + n);
  }
  std::vector<char> bytes;
};

// Bounds-checked reads: running past the end means the payload lies about its own contents.
class Reader {
 public:
  Reader(const std::string& path, const char* data, std::size_t size)
      : path_(path), data_(data), size_(size) {}
  template <typename T>
  T get(const char* what) {
    T value;
    get_bytes(&value, sizeof(T), what);
    return value;
  }
  std::string get_string(const char* what) {
    const auto n = get<uint32_t>(what);
    need(n, what);
    std::string s(data_ + pos_, n);
    pos_ += n;
    return s;
  }
  void get_bytes(void* out, std::size_t n, const char* what) {
    need(n, what);
    std::memcpy(out, data_ + pos_, n);
    pos_ += n;
  }
  std::size_t remaining() const { return size_ - pos_; }

 private:
  void need(std::size_t n, const char* what) const {
    if (n > size_ - pos_) {
      throw CheckpointError(path_, std::string("malformed payload: ") + what + " runs past its end");
    }
  }
  const std::string& path_;
  const char* data_;
  std::size_t size_;
  std::size_t pos_ = 0;
};

uint32_t crc32_of(const char* data, std::size_t n) {
  uLong crc = crc32(0L, Z_NULL, 0);
  while (n > 0) {
    const auto chunk = uInt(std::min<std::size_t>(n, 1u << 30));
    crc = crc32(crc, reinterpret_cast<const Bytef*>(data), chunk);
    data += chunk;
    n -= chunk;
  }
  return uint32_t(crc);
}

void write_all(int fd, const char* data, std::size_t n, const std::string& tmp) {
  while (n > 0) {
    const ssize_t written = ::write(fd, data, n);
    if (written < 0) {
      if (errno == EINTR) continue;
      throw CheckpointError(tmp, std::string("write failed: ") + std::strerror(errno));
    }
    data += written;
    n -= std::size_t(written);
  }
}

void write_atomically(const std::string& path, const std::vector<char>& bytes) {
  namespace fs = std::filesystem;
  const fs::path target(path);
  const fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
  std::string tmp = (dir / ("." + target.filename().string() + ".tmp-XXXXXX")).string();
  const int fd = ::mkstemp(tmp.data());
  if (fd < 0) throw CheckpointError(path, std::string("cannot create a temporary file: ") + std::strerror(errno));
  try {
    write_all(fd, bytes.data(), bytes.size(), tmp);
    if (::fsync(fd) != 0) throw CheckpointError(tmp, std::string("fsync failed: ") + std::strerror(errno));
    if (::close(fd) != 0) throw CheckpointError(tmp, std::string("close failed: ") + std::strerror(errno));
  } catch (...) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string reason = std::strerror(errno);
    ::unlink(tmp.c_str());
    throw CheckpointError(path, "cannot rename the temporary file into place: " + reason);
  }
  // Persist the rename itself.
  const int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (dir_fd >= 0) {
    ::fsync(dir_fd);
    ::close(dir_fd);
  }
}

bool has_non_finite(const std::vector<float>& values) {
  return std::any_of(values.begin(), values.end(), [](float v) { return !std::isfinite(v); });
}

}  // namespace

void save_checkpoint(const std::string& path, const Checkpoint& checkpoint) {
  Writer payload;
  payload.put(uint32_t(checkpoint.meta.size()));
  for (const auto& [key, value] : checkpoint.meta) {
    payload.put_string(key);
    payload.put_string(value);
  }
  payload.put(uint32_t(checkpoint.tensors.size()));
  for (const auto& [name, tensor] : checkpoint.tensors) {
    payload.put_string(name);
    payload.put(uint32_t(tensor.ndim()));
    for (int64_t d : tensor.shape()) payload.put(d);
    const std::vector<float> values = tensor.to_vector();
    // A diverged run must not replace a good checkpoint with one that every reader refuses.
    if (has_non_finite(values)) {
      throw CheckpointError(path, "not written: tensor '" + name + "' holds NaN or infinite values");
    }
    if (!values.empty()) payload.put_bytes(values.data(), values.size() * sizeof(float));
  }

  Writer file;
  file.put_bytes(kMagic, sizeof(kMagic));
  file.put(kCheckpointVersion);
  file.put(uint64_t(payload.bytes.size()));
  file.put_bytes(payload.bytes.data(), payload.bytes.size());
  file.put(crc32_of(file.bytes.data(), file.bytes.size()));
  write_atomically(path, file.bytes);
}

Checkpoint load_checkpoint(const std::string& path) {
  std::error_code error;
  if (std::filesystem::is_directory(path, error)) throw CheckpointError(path, "is a folder, not a checkpoint file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw CheckpointError(path, "cannot open the file (missing or unreadable)");
  const std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (bytes.size() < sizeof(kMagic) || std::memcmp(bytes.data(), kMagic, sizeof(kMagic)) != 0) {
    throw CheckpointError(path, "not a unet checkpoint (bad magic number)");
  }
  if (bytes.size() < kHeaderBytes) throw CheckpointError(path, "truncated inside the header");
  uint32_t version;
  uint64_t payload_bytes;
  std::memcpy(&version, bytes.data() + sizeof(kMagic), sizeof(version));
  std::memcpy(&payload_bytes, bytes.data() + sizeof(kMagic) + sizeof(version), sizeof(payload_bytes));
  if (version != kCheckpointVersion) {
    throw CheckpointError(path, "format version " + std::to_string(version) + " is not supported (this build reads version " +
                                    std::to_string(kCheckpointVersion) + ")");
  }
  const uint64_t expected = kHeaderBytes + payload_bytes + sizeof(uint32_t);
  if (bytes.size() < expected) {
    throw CheckpointError(path, "truncated: " + std::to_string(bytes.size()) + " bytes, expected " +
                                    std::to_string(expected));
  }
  if (bytes.size() > expected) {
    throw CheckpointError(path, std::to_string(bytes.size() - expected) + " unexpected bytes after the end");
  }
  uint32_t stored_crc;
  std::memcpy(&stored_crc, bytes.data() + expected - sizeof(uint32_t), sizeof(stored_crc));
  if (crc32_of(bytes.data(), expected - sizeof(uint32_t)) != stored_crc) {
    throw CheckpointError(path, "checksum mismatch: the file is corrupt");
  }

  Reader r(path, bytes.data() + kHeaderBytes, payload_bytes);
  Checkpoint ck;
  const auto meta_count = r.get<uint32_t>("metadata count");
  for (uint32_t i = 0; i < meta_count; ++i) {
    std::string key = r.get_string("metadata key");
    ck.meta[key] = r.get_string("metadata value");
  }
  const auto tensor_count = r.get<uint32_t>("tensor count");
  for (uint32_t i = 0; i < tensor_count; ++i) {
    std::string name = r.get_string("tensor name");
    const auto ndim = r.get<uint32_t>("tensor rank");
    if (ndim > 8) throw CheckpointError(path, "tensor '" + name + "' has rank " + std::to_string(ndim));
    Shape shape(ndim);
    // The element count is built one dimension at a time against what the payload still holds,
    // so a CRC-valid file claiming [2^62 + 1, 4] cannot overflow it into a small number. The
    // non-zero dimensions must multiply to something representable even when another one is 0
    // ([2^40, 2^40, 0] holds no data, but every later numel() would overflow on it).
    const std::size_t room = r.remaining() / sizeof(float);
    std::size_t count = 1;
    bool empty = false;
    for (auto& d : shape) {
      d = r.get<int64_t>("tensor dimension");
      if (d < 0) throw CheckpointError(path, "tensor '" + name + "' has a negative dimension");
      if (d == 0) empty = true;
      else if (count > room / std::size_t(d)) count = room + 1;
      else count *= std::size_t(d);
    }
    if (empty) count = count > room ? room + 1 : 0;
    if (count > r.remaining() / sizeof(float)) {
      throw CheckpointError(path, "tensor '" + name + "' of shape " + to_string(shape) + " runs past the payload");
    }
    std::vector<float> values(count);
    if (count > 0) r.get_bytes(values.data(), count * sizeof(float), "tensor data");
    if (has_non_finite(values)) {
      throw CheckpointError(path, "tensor '" + name + "' holds NaN or infinite values (written by a run that diverged?)");
    }
    ck.tensors.emplace_back(std::move(name), Tensor::from_vector(shape, values));
  }
  if (r.remaining() != 0) throw CheckpointError(path, "malformed payload: trailing bytes after the last tensor");
  return ck;
}

NamedTensors module_state(const Module& module, const std::string& prefix) {
  NamedTensors state;
  for (auto& [name, t] : module.named_parameters()) state.emplace_back(prefix + name, t);
  for (auto& [name, t] : module.named_buffers()) state.emplace_back(prefix + name, t);
  return state;
}

void load_module_state(Module& module, const Checkpoint& checkpoint, const std::string& prefix,
                       const std::string& path) {
  std::map<std::string, const Tensor*> stored;
  for (const auto& [name, t] : checkpoint.tensors) {
    if (name.starts_with(prefix)) stored[name] = &t;
  }
  std::set<std::string> used;
  const NamedTensors targets = module_state(module, prefix);
  for (const auto& [name, target] : targets) {
    auto it = stored.find(name);
    if (it == stored.end()) throw CheckpointError(path, "tensor '" + name + "' that the model needs is missing");
    if (it->second->shape() != target.shape()) {
      throw CheckpointError(path, "tensor '" + name + "' has shape " + to_string(it->second->shape()) +
                                      " but the model expects " + to_string(target.shape()));
    }
    used.insert(name);
  }
  for (const auto& [name, t] : stored) {
    if (!used.count(name)) throw CheckpointError(path, "tensor '" + name + "' is not part of the model");
  }
  // Copy only after every check passed: a mismatched file leaves the model untouched.
  for (auto [name, target] : targets) target.copy_from(*stored[name]);
}

}  // namespace unet
