// The shared pieces of train/io: whole-file reads and their errors, atomic writes, the
// case-insensitive suffix test and the non-finite check.
#include <catch2/catch.hpp>
#include <limits>

#include "tests/io/io_test_support.h"

using namespace unet::io;
using namespace unet::io::test;
using Catch::Matchers::Contains;

TEST_CASE("files: read_file names the file and the problem", "[io][files]") {
  TempDir dir;
  std::string path = dir.file("x.bin");
  CHECK_THAT(error_of([&] { read_file(path); }), Contains(path + ": file not found"));
  write_bytes(path, {});
  CHECK_THAT(error_of([&] { read_file(path); }), Contains(path + ": empty file"));
  CHECK_THAT(error_of([&] { check_readable(path); }), Contains(path + ": empty file"));
  CHECK_THAT(error_of([&] { read_file(dir.path.string()); }), Contains("is a directory"));
  std::vector<uint8_t> bytes(3 << 20);
  for (std::size_t i = 0; i < bytes.size(); ++i) bytes[i] = uint8_t(i * 31 + i / 4096);
  write_bytes(path, bytes);
  CHECK(read_file(path) == bytes);
  CHECK_NOTHROW(check_readable(path));
}

TEST_CASE("files: write_file_atomic replaces whole files and cleans up", "[io][files]") {
  TempDir dir;
  std::string path = dir.file("out.bin");
  write_file_atomic(path, {1, 2, 3});
  write_file_atomic(path, {4, 5});
  CHECK(read_bytes(path) == std::vector<uint8_t>{4, 5});
  // Renaming over a folder fails: the temporary file must go, the folder stay.
  std::string folder = dir.file("folder");
  std::filesystem::create_directory(folder);
  CHECK_THAT(error_of([&] { write_file_atomic(folder, {1}); }),
             Contains(folder) && Contains("rename failed"));
  CHECK(dir.entries() == 2);
}

TEST_CASE("files: suffixes ignore case, non-finite values are found", "[io][files]") {
  CHECK(ends_with_icase("a/b.NII.gz", ".nii.gz"));
  CHECK(ends_with_icase("x.TIF", ".tif"));
  CHECK_FALSE(ends_with_icase("x.tiff", ".tif"));
  CHECK_FALSE(ends_with_icase("f", ".nii"));
  const float inf = std::numeric_limits<float>::infinity();
  CHECK_FALSE(has_non_finite({}));
  CHECK_FALSE(has_non_finite({0.0f, -1e38f, 1e-45f}));
  CHECK(has_non_finite({1.0f, std::numeric_limits<float>::quiet_NaN()}));
  CHECK(has_non_finite({inf}));
  CHECK(has_non_finite({2.0f, -inf}));
}
