// JPEG through libjpeg-turbo: files made here with TurboJPEG's encoder, then damaged or crafted
// ones (a Huffman table with more than 256 codes overflowed the system stb_image's tables).
// Progressive files come from libjpeg itself, whose scan scripts TurboJPEG does not expose.
#include <cstddef>
#include <cstdio>
#include <cstdlib>
// jpeglib.h uses size_t and FILE without including their headers.
#include <jpeglib.h>
#include <turbojpeg.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <memory>

#include "tests/io/io_test_support.h"
#include "train/io/image.h"

using namespace unet::io;
using namespace unet::io::test;
using Catch::Matchers::Contains;

namespace {

// A smooth gradient, which JPEG keeps within a few levels at high quality.
std::vector<uint8_t> gradient(int width, int height, int channels) {
  std::vector<uint8_t> p(std::size_t(width * height * channels));
  for (int y = 0; y < height; ++y)
    for (int x = 0; x < width; ++x)
      for (int c = 0; c < channels; ++c) p[std::size_t((y * width + x) * channels + c)] = uint8_t(40 + 2 * x + y + 30 * c);
  return p;
}

std::vector<uint8_t> encode(const std::vector<uint8_t>& pixels, int width, int height, int channels) {
  std::unique_ptr<void, int (*)(tjhandle)> tj(tjInitCompress(), tjDestroy);
  REQUIRE(tj);
  unsigned char* out = nullptr;
  unsigned long size = 0;
  REQUIRE(tjCompress2(tj.get(), pixels.data(), width, 0, height, channels == 1 ? TJPF_GRAY : TJPF_RGB, &out, &size,
                      channels == 1 ? TJSAMP_GRAY : TJSAMP_444, 95, 0) == 0);
  std::vector<uint8_t> bytes(out, out + size);
  tjFree(out);
  return bytes;
}

// A valid grey progressive JPEG: each of the 64 coefficients in a band of its own, sent in a first
// scan and then `refinements` successive-approximation scans, 64 x (1 + refinements) scans in all.
std::vector<uint8_t> encode_progressive(const std::vector<uint8_t>& pixels, int width, int height, int refinements) {
  jpeg_compress_struct cinfo{};
  jpeg_error_mgr error{};
  cinfo.err = jpeg_std_error(&error);
  jpeg_create_compress(&cinfo);
  unsigned char* out = nullptr;
  unsigned long size = 0;
  jpeg_mem_dest(&cinfo, &out, &size);
  cinfo.image_width = JDIMENSION(width);
  cinfo.image_height = JDIMENSION(height);
  cinfo.input_components = 1;
  cinfo.in_color_space = JCS_GRAYSCALE;
  jpeg_set_defaults(&cinfo);
  jpeg_set_quality(&cinfo, 95, TRUE);
  std::vector<jpeg_scan_info> scans;
  const auto add = [&](int ss, int se, int ah, int al) {
    jpeg_scan_info scan{};
    scan.comps_in_scan = 1;
    scan.Ss = ss, scan.Se = se, scan.Ah = ah, scan.Al = al;
    scans.push_back(scan);
  };
  for (int k = 0; k < 64; ++k) {
    add(k, k, 0, refinements);
    for (int al = refinements; al > 0; --al) add(k, k, al, al - 1);
  }
  cinfo.scan_info = scans.data();
  cinfo.num_scans = int(scans.size());
  jpeg_start_compress(&cinfo, TRUE);
  for (int y = 0; y < height; ++y) {
    JSAMPROW row = const_cast<JSAMPROW>(pixels.data() + std::size_t(y * width));
    jpeg_write_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_compress(&cinfo);
  jpeg_destroy_compress(&cinfo);
  std::vector<uint8_t> bytes(out, out + size);
  free(out);
  return bytes;
}

float max_difference(const std::vector<float>& a, const std::vector<uint8_t>& b) {
  float worst = 0;
  for (std::size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::fabs(a[i] - float(b[i])));
  return worst;
}

}  // namespace

TEST_CASE("jpeg: RGB and grey files decode to their channels and near their values", "[io][image][jpeg]") {
  TempDir dir;
  for (int channels : {1, 3}) {
    INFO(channels << " channels");
    const std::vector<uint8_t> pixels = gradient(40, 24, channels);
    const std::string path = dir.file(channels == 1 ? "grey.JPG" : "rgb.jpeg");
    write_bytes(path, encode(pixels, 40, 24, channels));
    const Image image = read_image(path);
    CHECK(image.width == 40);
    CHECK(image.height == 24);
    CHECK(image.channels == channels);
    CHECK(image.bits == 8);
    REQUIRE(image.pixels.size() == pixels.size());
    CHECK(max_difference(image.pixels, pixels) <= 6.0f);
  }
}

TEST_CASE("jpeg: damaged and crafted files are errors that name the file", "[io][image][jpeg]") {
  TempDir dir;
  const std::string path = dir.file("bad.jpg");
  auto read = [&] { read_image(path); };
  const std::vector<uint8_t> good = encode(gradient(64, 64, 3), 64, 64, 3);

  write_bytes(path, {good.begin(), good.begin() + std::ptrdiff_t(good.size() / 2)});
  CHECK_THAT(error_of(read), Contains(path) && Contains("cannot decode JPEG"));

  write_bytes(path, {'G', 'I', 'F', '8', '9', 'a', 0, 0, 0, 0});
  CHECK_THAT(error_of(read), Contains(path) && Contains("cannot decode JPEG"));

  // SOI, then a DHT segment whose 16 code-length counts add up to 16 x 255 = 4080 codes.
  std::vector<uint8_t> crafted = {0xFF, 0xD8, 0xFF, 0xC4, 0x00, 19, 0x00};
  crafted.insert(crafted.end(), 16, 0xFF);
  crafted.insert(crafted.end(), {0xFF, 0xD9});
  write_bytes(path, crafted);
  CHECK_THAT(error_of(read), Contains(path) && Contains("cannot decode JPEG"));
}

TEST_CASE("jpeg: progressive files decode, but not with more than 500 scans", "[io][image][jpeg]") {
  TempDir dir;
  const std::vector<uint8_t> pixels = gradient(48, 40, 1);
  const std::string modest = dir.file("modest.jpg"), many = dir.file("many.jpg");
  write_bytes(modest, encode_progressive(pixels, 48, 40, 0));  // 64 scans
  const Image image = read_image(modest);
  REQUIRE(image.pixels.size() == pixels.size());
  CHECK(max_difference(image.pixels, pixels) <= 6.0f);

  write_bytes(many, encode_progressive(pixels, 48, 40, 7));  // 512 scans
  CHECK_THAT(error_of([&] { read_image(many); }), Contains(many) && Contains("500 scans"));
}

TEST_CASE("jpeg: the crafted file of the reliability review is refused", "[io][image][jpeg][data]") {
  const std::string path = std::string(UNET_SHARED_DATA) + "/../reliability/stb_huffman_oob.jpg";
  if (!fs::exists(path)) {
    WARN("skipped: " << path << " is absent");
    return;
  }
  CHECK_THAT(error_of([&] { read_image(path); }), Contains(path) && Contains("cannot decode JPEG"));
}
