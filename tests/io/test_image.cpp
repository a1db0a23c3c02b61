// 2D images: PNG round trips through write_png, 16-bit PNG and BMP files built here byte by byte
// (stb_image_write writes neither 16-bit PNG nor is it reachable from the tests), TIFF files
// written with libtiff in every supported layout, and the errors for damaged or unsupported
// files. A minimal TIFF is also built by hand, because libtiff writes the directory after the
// pixels, so a truncated libtiff file loses its header rather than its pixels.
#include <tiffio.h>
#include <zlib.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstring>

#include "tests/io/io_test_support.h"
#include "train/io/image.h"

using namespace unet::io;
using namespace unet::io::test;
using Catch::Matchers::Contains;

namespace {

void put_be32(std::vector<uint8_t>& out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(uint8_t(v >> shift));
}

void put_le(std::vector<uint8_t>& out, uint32_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(uint8_t(v >> (8 * i)));
}

void png_chunk(std::vector<uint8_t>& png, const char* type, const std::vector<uint8_t>& data) {
  put_be32(png, uint32_t(data.size()));
  std::size_t start = png.size();
  png.insert(png.end(), type, type + 4);
  png.insert(png.end(), data.begin(), data.end());
  put_be32(png, uint32_t(crc32(0, png.data() + start, uInt(png.size() - start))));
}

// A PNG of any colour type and bit depth from its packed, unfiltered rows, with optional PLTE
// and tRNS chunks.
std::vector<uint8_t> png_packed(uint32_t width, uint32_t height, uint8_t bits, uint8_t colour_type,
                                const std::vector<std::vector<uint8_t>>& rows, const std::vector<uint8_t>& palette,
                                const std::vector<uint8_t>& transparency) {
  std::vector<uint8_t> png = {137, 80, 78, 71, 13, 10, 26, 10};
  std::vector<uint8_t> ihdr;
  put_be32(ihdr, width);
  put_be32(ihdr, height);
  ihdr.insert(ihdr.end(), {bits, colour_type, 0, 0, 0});
  png_chunk(png, "IHDR", ihdr);
  if (!palette.empty()) png_chunk(png, "PLTE", palette);
  if (!transparency.empty()) png_chunk(png, "tRNS", transparency);
  std::vector<uint8_t> raw;
  for (const auto& row : rows) {
    raw.push_back(0);
    raw.insert(raw.end(), row.begin(), row.end());
  }
  std::vector<uint8_t> idat(compressBound(uLong(raw.size())));
  uLongf size = uLongf(idat.size());
  compress(idat.data(), &size, raw.data(), uLong(raw.size()));
  idat.resize(size);
  png_chunk(png, "IDAT", idat);
  png_chunk(png, "IEND", {});
  return png;
}

// A 16-bit grey (1 channel) or RGB (3 channels) PNG, rows unfiltered.
std::vector<uint8_t> png16(uint32_t width, uint32_t height, int channels,
                           const std::vector<uint16_t>& samples) {
  std::vector<std::vector<uint8_t>> rows(height);
  const std::size_t row = width * std::size_t(channels);
  for (uint32_t y = 0; y < height; ++y)
    for (std::size_t i = 0; i < row; ++i) {
      const uint16_t v = samples[y * row + i];
      rows[y].insert(rows[y].end(), {uint8_t(v >> 8), uint8_t(v & 0xff)});
    }
  return png_packed(width, height, 16, uint8_t(channels == 1 ? 0 : 2), rows, {}, {});
}

// A 24-bit BMP: rows bottom-up, BGR, padded to 4 bytes.
std::vector<uint8_t> bmp24(int width, int height, const std::vector<uint8_t>& rgb) {
  int row_bytes = (3 * width + 3) / 4 * 4;
  uint32_t data_size = uint32_t(row_bytes * height);
  std::vector<uint8_t> bmp = {'B', 'M'};
  put_le(bmp, 54 + data_size, 4);
  put_le(bmp, 0, 4);
  put_le(bmp, 54, 4);
  put_le(bmp, 40, 4);
  put_le(bmp, uint32_t(width), 4);
  put_le(bmp, uint32_t(height), 4);
  put_le(bmp, 1, 2);   // planes
  put_le(bmp, 24, 2);  // bits per pixel
  for (int i = 0; i < 6; ++i) put_le(bmp, 0, 4);
  for (int y = height - 1; y >= 0; --y) {
    for (int x = 0; x < width; ++x) {
      const uint8_t* p = &rgb[std::size_t(3 * (y * width + x))];
      bmp.insert(bmp.end(), {p[2], p[1], p[0]});
    }
    bmp.resize(bmp.size() + std::size_t(row_bytes - 3 * width), 0);
  }
  return bmp;
}

struct TiffSpec {
  uint32_t width = 37, height = 23;
  uint16_t samples = 1, bits = 8;
  uint32_t tile = 0;            // 0: strips of rows_per_strip rows; else square tiles of this size
  uint32_t rows_per_strip = 5;  // several strips, the last one short
  uint16_t compression = COMPRESSION_NONE;
  uint16_t photometric = PHOTOMETRIC_MINISBLACK;
  uint16_t planar = PLANARCONFIG_CONTIG;
  uint16_t sample_format = SAMPLEFORMAT_UINT;
};

// Sample i of the test pattern, within the bit depth.
uint32_t pattern(std::size_t i, int bits) {
  return uint32_t((i * 2654435761u) >> 13) & (bits == 8 ? 0xffu : 0xffffu);
}

// Writes a TIFF whose samples (interleaved, rows top to bottom) are pattern(0), pattern(1), ...
void write_tiff(const std::string& path, const TiffSpec& spec) {
  TIFF* tif = TIFFOpen(path.c_str(), "w");
  REQUIRE(tif != nullptr);
  TIFFSetField(tif, TIFFTAG_IMAGEWIDTH, spec.width);
  TIFFSetField(tif, TIFFTAG_IMAGELENGTH, spec.height);
  TIFFSetField(tif, TIFFTAG_SAMPLESPERPIXEL, spec.samples);
  TIFFSetField(tif, TIFFTAG_BITSPERSAMPLE, spec.bits);
  TIFFSetField(tif, TIFFTAG_SAMPLEFORMAT, spec.sample_format);
  TIFFSetField(tif, TIFFTAG_PHOTOMETRIC, spec.photometric);
  TIFFSetField(tif, TIFFTAG_PLANARCONFIG, spec.planar);
  TIFFSetField(tif, TIFFTAG_COMPRESSION, spec.compression);
  if (spec.samples == 2 || spec.samples == 4) {
    uint16_t alpha = EXTRASAMPLE_UNASSALPHA;
    TIFFSetField(tif, TIFFTAG_EXTRASAMPLES, 1, &alpha);
  }
  std::size_t pixel_bytes = std::size_t(spec.samples) * spec.bits / 8;
  std::vector<uint8_t> image(spec.width * spec.height * pixel_bytes);
  for (std::size_t i = 0; i < image.size() * 8 / spec.bits; ++i) {
    uint32_t v = pattern(i, spec.bits);
    if (spec.bits == 8) image[i] = uint8_t(v);
    if (spec.bits == 16) std::memcpy(&image[2 * i], &v, 2);
  }
  std::size_t row_bytes = spec.width * pixel_bytes;
  if (spec.tile == 0) {
    TIFFSetField(tif, TIFFTAG_ROWSPERSTRIP, spec.rows_per_strip);
    for (uint32_t y = 0; y < spec.height; ++y) {
      REQUIRE(TIFFWriteScanline(tif, &image[y * row_bytes], y, 0) == 1);
    }
  } else {
    TIFFSetField(tif, TIFFTAG_TILEWIDTH, spec.tile);
    TIFFSetField(tif, TIFFTAG_TILELENGTH, spec.tile);
    std::vector<uint8_t> tile(spec.tile * spec.tile * pixel_bytes);
    for (uint32_t y0 = 0; y0 < spec.height; y0 += spec.tile) {
      for (uint32_t x0 = 0; x0 < spec.width; x0 += spec.tile) {
        std::fill(tile.begin(), tile.end(), uint8_t(0xAB));  // padding must not leak out
        for (uint32_t y = y0; y < std::min(y0 + spec.tile, spec.height); ++y) {
          std::size_t n = std::min(spec.tile, spec.width - x0) * pixel_bytes;
          std::memcpy(&tile[(y - y0) * spec.tile * pixel_bytes],
                      &image[y * row_bytes + x0 * pixel_bytes], n);
        }
        REQUIRE(TIFFWriteTile(tif, tile.data(), x0, y0, 0, 0) > 0);
      }
    }
  }
  TIFFClose(tif);
}

// A one-strip, uncompressed, little-endian TIFF built by hand with the directory before the
// pixels: header, IFD of 10 entries, then width * height * samples bytes of pixel data.
std::vector<uint8_t> handmade_tiff(uint32_t width, uint32_t height, uint16_t bits,
                                   uint16_t sample_format) {
  const uint16_t kShort = 3, kLong = 4;
  const uint32_t data_offset = 8 + 2 + 10 * 12 + 4;
  uint32_t data_size = width * height * bits / 8;
  struct Entry {
    uint16_t tag, type;
    uint32_t value;
  };
  const Entry entries[] = {{TIFFTAG_IMAGEWIDTH, kLong, width},
                           {TIFFTAG_IMAGELENGTH, kLong, height},
                           {TIFFTAG_BITSPERSAMPLE, kShort, bits},
                           {TIFFTAG_COMPRESSION, kShort, COMPRESSION_NONE},
                           {TIFFTAG_PHOTOMETRIC, kShort, PHOTOMETRIC_MINISBLACK},
                           {TIFFTAG_STRIPOFFSETS, kLong, data_offset},
                           {TIFFTAG_SAMPLESPERPIXEL, kShort, 1},
                           {TIFFTAG_ROWSPERSTRIP, kLong, height},
                           {TIFFTAG_STRIPBYTECOUNTS, kLong, data_size},
                           {TIFFTAG_SAMPLEFORMAT, kShort, sample_format}};
  std::vector<uint8_t> tiff = {'I', 'I', 42, 0};
  put_le(tiff, 8, 4);
  put_le(tiff, 10, 2);
  for (const Entry& e : entries) {
    put_le(tiff, e.tag, 2);
    put_le(tiff, e.type, 2);
    put_le(tiff, 1, 4);
    put_le(tiff, e.value, 4);  // a SHORT sits in the first two bytes: little-endian does that
  }
  put_le(tiff, 0, 4);  // no next directory
  for (uint32_t i = 0; i < data_size; ++i) tiff.push_back(uint8_t(i));
  return tiff;
}

void check_tiff_round_trip(const TempDir& dir, const TiffSpec& spec) {
  std::string path = dir.file("t.tif");
  write_tiff(path, spec);
  Image image = read_image(path);
  CHECK(image.width == int(spec.width));
  CHECK(image.height == int(spec.height));
  CHECK(image.channels == spec.samples);
  CHECK(image.bits == spec.bits);
  REQUIRE(image.pixels.size() == std::size_t(spec.width) * spec.height * spec.samples);
  float max = spec.bits == 8 ? 255.0f : 65535.0f;
  std::size_t wrong = 0;
  for (std::size_t i = 0; i < image.pixels.size(); ++i) {
    float stored = float(pattern(i, spec.bits));
    float expected = spec.photometric == PHOTOMETRIC_MINISWHITE ? max - stored : stored;
    wrong += image.pixels[i] != expected;
  }
  CHECK(wrong == 0);
}

}  // namespace

TEST_CASE("image: 8-bit grey and RGB PNG round trip through write_png", "[io][image]") {
  TempDir dir;
  for (int channels : {1, 2, 3, 4}) {
    INFO(channels << " channels");
    const int w = 19, h = 7;
    std::vector<uint8_t> pixels(std::size_t(w * h * channels));
    for (std::size_t i = 0; i < pixels.size(); ++i) pixels[i] = uint8_t(i * 37 + 11);
    std::string path = dir.file("p.png");
    write_png(path, w, h, channels, pixels.data());
    Image image = read_image(path);
    CHECK(image.width == w);
    CHECK(image.height == h);
    CHECK(image.channels == channels);
    CHECK(image.bits == 8);
    CHECK(image.pixels == std::vector<float>(pixels.begin(), pixels.end()));
  }
  CHECK(dir.entries() == 1);
}

TEST_CASE("image: 16-bit PNG keeps 16 bits, BMP is RGB, extensions ignore case", "[io][image]") {
  TempDir dir;
  std::vector<uint16_t> samples;
  for (uint32_t i = 0; i < 5 * 3 * 3; ++i) samples.push_back(uint16_t(i * 1499 + 7));
  std::string png = dir.file("deep.PNG");
  write_bytes(png, png16(5, 3, 3, samples));
  Image image = read_image(png);
  CHECK(image.bits == 16);
  CHECK(image.channels == 3);
  CHECK(image.pixels == std::vector<float>(samples.begin(), samples.end()));

  std::vector<uint8_t> rgb;
  for (int i = 0; i < 3 * 3 * 2; ++i) rgb.push_back(uint8_t(i * 13));
  std::string bmp = dir.file("b.bmp");
  write_bytes(bmp, bmp24(3, 2, rgb));
  image = read_image(bmp);
  CHECK(image.width == 3);
  CHECK(image.height == 2);
  CHECK(image.channels == 3);
  CHECK(image.pixels == std::vector<float>(rgb.begin(), rgb.end()));
}

TEST_CASE("image: palette PNGs expand to RGB(A), 1-bit grey scales to 0..255", "[io][image]") {
  TempDir dir;
  const std::string path = dir.file("p.png");
  // Two pixels of a 2-bit palette: indices 1 and 2.
  const std::vector<uint8_t> palette = {0, 0, 0, 10, 20, 30, 200, 150, 100};
  write_bytes(path, png_packed(2, 1, 2, 3, {{0b01100000}}, palette, {}));
  Image image = read_image(path);
  CHECK(image.channels == 3);
  CHECK(image.pixels == std::vector<float>{10, 20, 30, 200, 150, 100});
  // The same with entry 1 half transparent: alpha appears.
  write_bytes(path, png_packed(2, 1, 2, 3, {{0b01100000}}, palette, {255, 128}));
  image = read_image(path);
  CHECK(image.channels == 4);
  CHECK(image.pixels == std::vector<float>{10, 20, 30, 128, 200, 150, 100, 255});
  // 1-bit grey: 1, 0, 1.
  write_bytes(path, png_packed(3, 1, 1, 0, {{0b10100000}}, {}, {}));
  image = read_image(path);
  CHECK(image.channels == 1);
  CHECK(image.pixels == std::vector<float>{255, 0, 255});
}

TEST_CASE("image: TIFF of 8 and 16 bits, 1 and 3 samples, strips and tiles", "[io][image]") {
  TempDir dir;
  for (int bits : {8, 16}) {
    for (int samples : {1, 3}) {
      for (uint32_t tile : {0u, 16u}) {
        INFO(bits << " bits, " << samples << " samples, " << (tile ? "tiles" : "strips"));
        TiffSpec spec;
        spec.bits = uint16_t(bits);
        spec.samples = uint16_t(samples);
        spec.tile = tile;
        spec.photometric = samples == 3 ? PHOTOMETRIC_RGB : PHOTOMETRIC_MINISBLACK;
        check_tiff_round_trip(dir, spec);
      }
    }
  }
  SECTION("compressed, one strip, inverted grey, 2 and 4 samples") {
    TiffSpec spec;
    spec.compression = COMPRESSION_ADOBE_DEFLATE;
    spec.rows_per_strip = spec.height;
    check_tiff_round_trip(dir, spec);
    spec.compression = COMPRESSION_LZW;
    spec.photometric = PHOTOMETRIC_MINISWHITE;
    check_tiff_round_trip(dir, spec);
    spec.photometric = PHOTOMETRIC_MINISBLACK;
    spec.samples = 2;
    check_tiff_round_trip(dir, spec);
    spec.samples = 4;
    spec.photometric = PHOTOMETRIC_RGB;
    check_tiff_round_trip(dir, spec);
  }
  SECTION("a hand-made TIFF with the directory first") {
    std::string path = dir.file("h.tiff");
    write_bytes(path, handmade_tiff(4, 3, 8, SAMPLEFORMAT_UINT));
    Image image = read_image(path);
    CHECK(image.width == 4);
    CHECK(image.height == 3);
    CHECK(image.pixels == std::vector<float>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11});
  }
}

TEST_CASE("image: damaged or unsupported PNG files give precise errors", "[io][image]") {
  TempDir dir;
  std::string path = dir.file("bad.png");
  auto read = [&] { read_image(path); };
  CHECK_THAT(error_of(read), Contains(path) && Contains("file not found"));
  write_bytes(path, {});
  CHECK_THAT(error_of(read), Contains(path) && Contains("empty file"));
  write_bytes(path, {'G', 'I', 'F', '8', '9', 'a', 0, 0, 0, 0});
  CHECK_THAT(error_of(read), Contains(path) && Contains("cannot decode PNG: not a PNG"));
  std::vector<uint8_t> good = png16(64, 64, 3, std::vector<uint16_t>(64 * 64 * 3, 1234));
  write_bytes(path, {good.begin(), good.begin() + std::ptrdiff_t(good.size() / 2)});
  CHECK_THAT(error_of(read), Contains(path) && Contains("cannot decode PNG: truncated"));
  std::string other = dir.file("image.gif");
  CHECK_THAT(error_of([&] { read_image(other); }),
             Contains(other) && Contains("unsupported image type"));

  std::vector<uint8_t> pixels(4, 0);
  std::string png = dir.file("out.png");
  CHECK_THAT(error_of([&] { write_png(png, 2, 2, 5, pixels.data()); }),
             Contains(png) && Contains("invalid size"));
  std::string unwritable = dir.file("missing/out.png");
  CHECK_THAT(error_of([&] { write_png(unwritable, 2, 2, 1, pixels.data()); }),
             Contains(unwritable) && Contains("No such file or directory"));
  CHECK(dir.entries() == 1);  // bad.png only: failed writes leave nothing
}

TEST_CASE("image: damaged or unsupported TIFF files give precise errors", "[io][image]") {
  TempDir dir;
  std::string path = dir.file("bad.tif");
  auto read = [&] { read_image(path); };
  SECTION("missing and empty") {
    CHECK_THAT(error_of(read), Contains(path) && Contains("file not found"));
    write_bytes(path, {});
    CHECK_THAT(error_of(read), Contains(path) && Contains("empty file"));
  }
  SECTION("bad magic") {
    write_bytes(path, {'M', 'Z', 0, 0, 0, 0, 0, 0, 0, 0});
    CHECK_THAT(error_of(read),
               Contains(path) && Contains("cannot open TIFF") && Contains("Not a TIFF"));
  }
  SECTION("truncated pixel data") {
    std::vector<uint8_t> tiff = handmade_tiff(16, 16, 8, SAMPLEFORMAT_UINT);
    tiff.resize(tiff.size() - 100);
    write_bytes(path, tiff);
    CHECK_THAT(error_of(read),
               Contains(path) && Contains("cannot read strip 0") && Contains("expected 256"));
  }
  SECTION("truncated directory") {
    write_tiff(path, TiffSpec{});
    truncate_to(path, read_bytes(path).size() - 20);
    CHECK_THAT(error_of(read), Contains(path) && Contains("cannot open TIFF"));
  }
  SECTION("unsupported sample format, bit depth, planar configuration, photometric") {
    write_bytes(path, handmade_tiff(4, 4, 32, SAMPLEFORMAT_IEEEFP));
    CHECK_THAT(error_of(read),
               Contains(path) && Contains("unsupported sample format IEEE floating point"));
    write_bytes(path, handmade_tiff(4, 4, 8, SAMPLEFORMAT_INT));
    CHECK_THAT(error_of(read),
               Contains(path) && Contains("unsupported sample format signed integer"));
    write_bytes(path, handmade_tiff(4, 4, 32, SAMPLEFORMAT_UINT));
    CHECK_THAT(error_of(read), Contains(path) && Contains("unsupported bit depth 32"));
    TiffSpec planes;
    planes.samples = 3;
    planes.photometric = PHOTOMETRIC_RGB;
    planes.planar = PLANARCONFIG_SEPARATE;
    write_tiff(path, planes);
    CHECK_THAT(error_of(read), Contains(path) && Contains("unsupported planar configuration"));
    TiffSpec cmyk;
    cmyk.photometric = PHOTOMETRIC_SEPARATED;
    write_tiff(path, cmyk);
    CHECK_THAT(error_of(read),
               Contains(path) && Contains("unsupported photometric interpretation 5"));
  }
}
