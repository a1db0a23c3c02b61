// The decoded-size limit (train/io/files.h): headers that claim more than the limit are refused
// before anything is allocated, and a gzip stream is inflated no further than its header declares.
#include <zlib.h>

#include <catch2/catch.hpp>
#include <cstring>

#include "tests/io/io_test_support.h"
#include "train/io/image.h"
#include "train/io/nifti.h"

using namespace unet::io;
using namespace unet::io::test;
using Catch::Matchers::Contains;

namespace {

// Sets the limit for one test and restores the default after it.
struct LimitGuard {
  explicit LimitGuard(std::size_t bytes) : saved(max_input_bytes()) { set_max_input_bytes(bytes); }
  ~LimitGuard() { set_max_input_bytes(saved); }
  std::size_t saved;
};

void put32(std::vector<uint8_t>& b, uint32_t v) {
  for (int i = 0; i < 4; ++i) b.push_back(uint8_t(v >> (8 * i)));
}
void put16(std::vector<uint8_t>& b, uint16_t v) {
  b.push_back(uint8_t(v));
  b.push_back(uint8_t(v >> 8));
}

// A little-endian TIFF of 8-bit grey pixels with these (tag, value) fields, sorted by tag, one
// value each; the strip or tile offset (273 or 324) points at a single data byte after them.
std::vector<uint8_t> tiff_with(const std::vector<std::pair<uint16_t, uint32_t>>& fields) {
  const uint32_t data_offset = 8 + 2 + 12 * uint32_t(fields.size()) + 4;
  std::vector<uint8_t> b = {'I', 'I', 42, 0};
  put32(b, 8);
  put16(b, uint16_t(fields.size()));
  for (const auto& [tag, value] : fields) {
    const bool is_short = tag == 258 || tag == 259 || tag == 262 || tag == 277;
    put16(b, tag);
    put16(b, is_short ? 3 : 4);  // SHORT or LONG
    put32(b, 1);
    put32(b, tag == 273 || tag == 324 ? data_offset : value);  // a SHORT sits in the low bytes (little-endian)
  }
  put32(b, 0);
  b.push_back(0x80);
  return b;
}

// One uncompressed strip whose header claims width x height pixels while the file holds a single
// byte of them.
std::vector<uint8_t> lying_tiff(uint32_t width, uint32_t height) {
  return tiff_with({{256, width}, {257, height}, {258, 8}, {259, 1}, {262, 1}, {273, 0}, {277, 1}, {278, height},
                    {279, 1}});
}

// A small image in one tile of tile_width x tile_height pixels, of which the file holds one byte.
std::vector<uint8_t> lying_tiled_tiff(uint32_t width, uint32_t height, uint32_t tile_width, uint32_t tile_height) {
  return tiff_with({{256, width}, {257, height}, {258, 8}, {259, 1}, {262, 1}, {277, 1}, {322, tile_width},
                    {323, tile_height}, {324, 0}, {325, 1}});
}

}  // namespace

TEST_CASE("limits: sizes are checked before multiplying, empty and oversized shapes named", "[io][limits]") {
  LimitGuard limit(std::size_t(1) << 20);
  CHECK_NOTHROW(check_decoded_size("a.npy", "image of shape", {512, 512}));  // exactly 1 MiB of floats
  CHECK_THAT(error_of([] { check_decoded_size("a.npy", "image of shape", {512, 513}); }),
             Contains("a.npy: image of shape 512 x 513 is too large") && Contains("--max-input-mb"));
  CHECK_THAT(error_of([] { check_decoded_size("b.npy", "image of shape", {0, 64, 3}); }),
             Contains("b.npy: image of shape 0 x 64 x 3 is empty"));
  // 2^62 x 2^62 would wrap around to 0 if multiplied first.
  const int64_t huge = int64_t(1) << 62;
  CHECK_THAT(error_of([&] { check_decoded_size("c.npy", "array", {huge, huge, 4}); }), Contains("too large"));
}

TEST_CASE("limits: a tiny TIFF claiming 65536 x 65536 pixels fails before allocating", "[io][limits][image]") {
  TempDir dir;
  const std::string path = dir.file("huge.tif");
  write_bytes(path, lying_tiff(65536, 65536));
  CHECK_THAT(error_of([&] { read_image(path); }), Contains(path) && Contains("65536 x 65536 x 1 is too large"));
  // Within the limit, a claim beyond what the file's bytes can hold is still refused.
  write_bytes(path, lying_tiff(4000, 4000));
  CHECK_THAT(error_of([&] { read_image(path); }), Contains(path) && Contains("bytes can hold"));
}

// Found by fuzzing: a 250-byte TIFF of 10 x 154 pixels in one tile of 65026 x 12548 made us
// allocate the 816 MB tile before reading it.
TEST_CASE("limits: a small TIFF claiming tiles far larger than its bytes can hold fails before allocating",
          "[io][limits][image]") {
  TempDir dir;
  const std::string path = dir.file("tiles.tif");
  write_bytes(path, lying_tiled_tiff(10, 154, 65024, 12544));
  CHECK_THAT(error_of([&] { read_image(path); }),
             Contains(path) && Contains("tile of 65024 x 12544 pixels") && Contains("bytes can hold"));
  // A tile larger than the image, but one the file could fill, is read (and found truncated here).
  write_bytes(path, lying_tiled_tiff(10, 154, 16, 160));
  CHECK_THAT(error_of([&] { read_image(path); }), Contains(path) && !Contains("bytes can hold"));
}

TEST_CASE("limits: a PNG over the limit is refused by its header", "[io][limits][image]") {
  TempDir dir;
  const std::string path = dir.file("wide.png");
  const std::vector<uint8_t> pixels(600 * 600, 9);
  write_png(path, 600, 600, 1, pixels.data());
  CHECK(read_image(path).width == 600);
  LimitGuard limit(std::size_t(1) << 20);
  CHECK_THAT(error_of([&] { read_image(path); }), Contains(path) && Contains("600 x 600 x 1 is too large"));
}

TEST_CASE("limits: a .nii.gz is inflated only as far as its header declares", "[io][limits][nifti]") {
  TempDir dir;
  Volume like;
  like.nx = 2, like.ny = 2, like.nz = 1;
  const std::string plain = dir.file("v.nii");
  write_nifti(plain, like, {1, 2, 3, 4}, false);
  // The volume, then 64 MiB of zeros, gzipped, then cut short: inflating it all would end in
  // "truncated gzip stream" (and, at scale, in gigabytes of memory); reading what the header
  // declares never reaches the damage.
  std::vector<uint8_t> bytes = read_bytes(plain);
  bytes.resize(bytes.size() + (std::size_t(64) << 20), 0);
  const std::string bomb = dir.file("bomb.nii.gz");
  gzFile gz = gzopen(bomb.c_str(), "wb1");
  REQUIRE(gz != nullptr);
  REQUIRE(gzwrite(gz, bytes.data(), unsigned(bytes.size())) == int(bytes.size()));
  gzclose(gz);
  truncate_to(bomb, read_bytes(bomb).size() / 2);
  const Volume v = read_nifti(bomb);
  CHECK(v.data == std::vector<float>{1, 2, 3, 4});

  LimitGuard limit(8);  // 2 floats
  CHECK_THAT(error_of([&] { read_nifti(bomb); }), Contains(bomb) && Contains("volume of 2 x 2 x 1 is too large"));
}

TEST_CASE("limits: small BMP and PNG files cannot claim more pixels than their bytes can hold", "[io][limits][image]") {
  TempDir dir;
  // A 24-bit BMP header claiming 5000 x 5000 pixels (within the decoded-size limit) over 6 bytes of data.
  std::vector<uint8_t> bmp = {'B', 'M'};
  for (uint32_t v : {60u, 0u, 54u, 40u, 5000u, 5000u}) put32(bmp, v);
  put16(bmp, 1);
  put16(bmp, 24);
  for (uint32_t v : {0u, 0u, 2835u, 2835u, 0u, 0u}) put32(bmp, v);
  bmp.insert(bmp.end(), 6, 0x7f);
  const std::string bmp_path = dir.file("lie.bmp");
  write_bytes(bmp_path, bmp);
  CHECK_THAT(error_of([&] { read_image(bmp_path); }), Contains(bmp_path) && Contains("more than 60 bytes can hold"));

  // A real PNG with its IHDR rewritten to 9000 x 9000 (CRC fixed): far beyond what its IDAT holds.
  const std::vector<uint8_t> pixels(16 * 16, 3);
  const std::string png_path = dir.file("lie.png");
  write_png(png_path, 16, 16, 1, pixels.data());
  std::vector<uint8_t> png = read_bytes(png_path);
  for (int at : {16, 20}) {
    png[std::size_t(at)] = 0, png[std::size_t(at) + 1] = 0, png[std::size_t(at) + 2] = 0x23, png[std::size_t(at) + 3] = 0x28;
  }
  const auto crc = uint32_t(crc32(0, png.data() + 12, 17));
  for (int i = 0; i < 4; ++i) png[std::size_t(29 + i)] = uint8_t(crc >> (8 * (3 - i)));
  write_bytes(png_path, png);
  CHECK_THAT(error_of([&] { read_image(png_path); }), Contains(png_path) && Contains("9000 x 9000") &&
                                                          Contains("deflate data can hold"));
}
