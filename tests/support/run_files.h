// Reading a training run's files back in tests: a file's exact bytes, and log.csv without its
// wall-clock column, for comparing an interrupted-and-resumed run with an uninterrupted one.
#pragma once

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

namespace unet::test {

inline std::string file_bytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// log.csv with its last column (seconds) cut from every line.
inline std::string log_without_seconds(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::string out;
  for (std::string line; std::getline(in, line);) out += line.substr(0, line.rfind(',')) + "\n";
  return out;
}

}  // namespace unet::test
