// Helpers of the train/io tests: a private temporary folder, raw byte files, and the text of the
// FileError an action throws (so that a test checks both the type and the message).
#pragma once

#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "train/io/files.h"

namespace unet::io::test {

namespace fs = std::filesystem;

// A fresh folder per test case, removed with everything in it at the end.
struct TempDir {
  TempDir() {
    static std::atomic<int> counter{0};
    path = fs::temp_directory_path() /
           ("unet-io-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  std::string file(const std::string& name) const { return (path / name).string(); }
  std::size_t entries() const {
    return std::size_t(std::distance(fs::directory_iterator(path), fs::directory_iterator()));
  }
  fs::path path;
};

inline void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
}

inline std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

// The first `size` bytes of `path` written back to it.
inline void truncate_to(const std::string& path, std::size_t size) {
  std::vector<uint8_t> bytes = read_bytes(path);
  bytes.resize(size);
  write_bytes(path, bytes);
}

// The message of the FileError that `action` throws, or a text saying that it threw none.
template <typename Action>
std::string error_of(Action&& action) {
  try {
    action();
  } catch (const FileError& e) {
    return e.what();
  } catch (const std::exception& e) {
    return std::string("(not a FileError) ") + e.what();
  }
  return "(no exception)";
}

}  // namespace unet::io::test
