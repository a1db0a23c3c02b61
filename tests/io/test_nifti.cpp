// NIfTI-1: round trips through write_nifti (.nii and .nii.gz), files built here field by field
// for every datatype, byte order, scaling and layout the reader accepts, and the errors for
// damaged or unsupported files, gzip damage included.
#include <zlib.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstring>

#include "tests/io/io_test_support.h"
#include "train/io/nifti.h"

using namespace unet::io;
using namespace unet::io::test;
using Catch::Matchers::Contains;

namespace {

template <typename T>
void put(std::vector<uint8_t>& bytes, std::size_t offset, T value) {
  std::memcpy(bytes.data() + offset, &value, sizeof(T));
}

struct NiftiSpec {
  int16_t dims[8] = {3, 4, 3, 2, 1, 1, 1, 1};
  float pixdim[4] = {1, 0.5f, 0.75f, 2.0f};
  int16_t datatype = 16, bitpix = 32;
  float slope = 0, inter = 0;
  float vox_offset = 352;
  const char* magic = "n+1";
  bool big_endian = false;
};

// Reverses each item of `count` items of `size` bytes starting at `offset`.
void swap_items(std::vector<uint8_t>& bytes, std::size_t offset, std::size_t size,
                std::size_t count) {
  for (std::size_t i = 0; i < count; ++i) {
    auto item = bytes.begin() + std::ptrdiff_t(offset + i * size);
    std::reverse(item, item + std::ptrdiff_t(size));
  }
}

// A single-file NIfTI-1 image: header, zero extension flag, zero padding up to vox_offset, then
// `payload` (already in the byte order of the spec).
std::vector<uint8_t> nifti_file(const NiftiSpec& spec, const std::vector<uint8_t>& payload) {
  std::vector<uint8_t> bytes(std::size_t(std::max(352.0f, spec.vox_offset)), 0);
  put<int32_t>(bytes, 0, 348);
  for (int i = 0; i < 8; ++i) put<int16_t>(bytes, 40 + 2 * std::size_t(i), spec.dims[i]);
  put<int16_t>(bytes, 70, spec.datatype);
  put<int16_t>(bytes, 72, spec.bitpix);
  for (int i = 0; i < 4; ++i) put<float>(bytes, 76 + 4 * std::size_t(i), spec.pixdim[i]);
  put<float>(bytes, 108, spec.vox_offset);
  put<float>(bytes, 112, spec.slope);
  put<float>(bytes, 116, spec.inter);
  put<float>(bytes, 280, 1.5f);  // srow_x[0], to see the header survive a round trip
  std::memcpy(bytes.data() + 344, spec.magic, std::strlen(spec.magic) + 1);
  if (spec.big_endian) {
    swap_items(bytes, 0, 4, 1);
    swap_items(bytes, 40, 2, 8);
    swap_items(bytes, 70, 2, 2);
    swap_items(bytes, 76, 4, 8);
    swap_items(bytes, 108, 4, 3);
    swap_items(bytes, 280, 4, 12);
  }
  bytes.insert(bytes.end(), payload.begin(), payload.end());
  return bytes;
}

template <typename T>
std::vector<uint8_t> encode(const std::vector<double>& values, bool big_endian) {
  std::vector<uint8_t> bytes;
  for (double v : values) {
    T item = static_cast<T>(v);
    uint8_t raw[sizeof(T)];
    std::memcpy(raw, &item, sizeof(T));
    if (big_endian) std::reverse(raw, raw + sizeof(T));
    bytes.insert(bytes.end(), raw, raw + sizeof(T));
  }
  return bytes;
}

// 24 values for the 4x3x2 volume of NiftiSpec, representable in every datatype.
std::vector<double> test_values(bool is_signed) {
  std::vector<double> values;
  for (int i = 0; i < 24; ++i) values.push_back(is_signed && i % 3 == 1 ? -i : i * 5);
  return values;
}

template <typename T>
void check_datatype(const TempDir& dir, int16_t code, bool is_signed) {
  for (bool big : {false, true}) {
    INFO("datatype " << code << (big ? " big-endian" : " little-endian"));
    NiftiSpec spec;
    spec.datatype = code;
    spec.bitpix = int16_t(8 * sizeof(T));
    spec.big_endian = big;
    std::vector<double> values = test_values(is_signed);
    std::string path = dir.file("v.nii");
    write_bytes(path, nifti_file(spec, encode<T>(values, big)));
    Volume volume = read_nifti(path);
    CHECK(volume.nx == 4);
    CHECK(volume.ny == 3);
    CHECK(volume.nz == 2);
    CHECK(volume.dx == 0.5f);
    CHECK(volume.dy == 0.75f);
    CHECK(volume.dz == 2.0f);
    CHECK(volume.data == std::vector<float>(values.begin(), values.end()));
  }
}

void gzip_to(const std::string& path, const std::vector<uint8_t>& bytes) {
  gzFile gz = gzopen(path.c_str(), "wb");
  REQUIRE(gz != nullptr);
  REQUIRE(gzwrite(gz, bytes.data(), unsigned(bytes.size())) == int(bytes.size()));
  REQUIRE(gzclose(gz) == Z_OK);
}

Volume fresh_volume() {
  Volume v;
  v.nx = 7;
  v.ny = 5;
  v.nz = 3;
  v.dx = 0.9f;
  v.dy = 0.8f;
  v.dz = 3.0f;
  return v;
}

}  // namespace

TEST_CASE("nifti: write_nifti round trips float32 and uint8, .nii and .nii.gz", "[io][nifti]") {
  TempDir dir;
  Volume like = fresh_volume();
  std::vector<float> values(7 * 5 * 3), labels(values.size());
  for (std::size_t i = 0; i < values.size(); ++i) {
    values[i] = float(i) * 0.37f - 10.0f;
    labels[i] = float(i % 5);
  }
  for (const char* name : {"a.nii", "a.nii.gz", "UPPER.NII.GZ"}) {
    INFO(name);
    std::string path = dir.file(name);
    write_nifti(path, like, values, false);
    Volume f = read_nifti(path);
    CHECK(f.nx == 7);
    CHECK(f.ny == 5);
    CHECK(f.nz == 3);
    CHECK(f.dx == 0.9f);
    CHECK(f.dz == 3.0f);
    CHECK(f.data == values);
    CHECK(f.header.size() == 348);
    bool gzipped = read_bytes(path)[0] == 0x1f;
    CHECK(gzipped == ends_with_icase(name, ".gz"));

    write_nifti(path, f, labels, true);
    Volume u = read_nifti(path);
    CHECK(u.data == labels);
    if (!gzipped) CHECK(read_bytes(path).size() == 352 + labels.size());
  }
  CHECK(dir.entries() == 3);
}

TEST_CASE("nifti: every datatype in both byte orders, scaling, 4-D with one time point",
          "[io][nifti]") {
  TempDir dir;
  check_datatype<uint8_t>(dir, 2, false);
  check_datatype<int16_t>(dir, 4, true);
  check_datatype<int32_t>(dir, 8, true);
  check_datatype<float>(dir, 16, true);
  check_datatype<double>(dir, 64, true);
  check_datatype<int8_t>(dir, 256, true);
  check_datatype<uint16_t>(dir, 512, false);
  check_datatype<uint32_t>(dir, 768, false);
  check_datatype<int64_t>(dir, 1024, true);
  check_datatype<uint64_t>(dir, 1280, false);

  std::string path = dir.file("s.nii");
  NiftiSpec spec;
  spec.datatype = 4;
  spec.bitpix = 16;
  spec.slope = 0.5f;
  spec.inter = -3.0f;
  std::vector<double> raw = test_values(true);
  for (bool big : {false, true}) {
    spec.big_endian = big;
    write_bytes(path, nifti_file(spec, encode<int16_t>(raw, big)));
    Volume volume = read_nifti(path);
    REQUIRE(volume.data.size() == raw.size());
    for (std::size_t i = 0; i < raw.size(); ++i) CHECK(volume.data[i] == float(0.5 * raw[i] - 3.0));
  }

  // A 4-D file of one time point, the voxels after an extension (vox_offset 368), gzipped
  // under a plain .nii name: recognised by content.
  spec = NiftiSpec{};
  spec.dims[0] = 4;
  spec.vox_offset = 368;
  raw = test_values(true);
  gzip_to(path, nifti_file(spec, encode<float>(raw, false)));
  Volume volume = read_nifti(path);
  CHECK(volume.nz == 2);
  CHECK(volume.data == std::vector<float>(raw.begin(), raw.end()));
}

TEST_CASE("nifti: a written volume keeps the header of the one it copies, in little-endian",
          "[io][nifti]") {
  TempDir dir;
  NiftiSpec spec;
  spec.big_endian = true;
  spec.datatype = 4;
  spec.bitpix = 16;
  spec.slope = 2;
  std::string source = dir.file("source.nii");
  write_bytes(source, nifti_file(spec, encode<int16_t>(test_values(true), true)));
  Volume like = read_nifti(source);
  float srow = 0;
  std::memcpy(&srow, like.header.data() + 280, 4);
  CHECK(srow == 1.5f);  // swapped into host order

  std::string copy = dir.file("copy.nii.gz");
  write_nifti(copy, like, like.data, false);
  Volume again = read_nifti(copy);
  CHECK(again.data == like.data);  // scaling applied once, not twice
  CHECK(std::memcmp(again.header.data() + 280, like.header.data() + 280, 48) == 0);
  CHECK(again.dx == 0.5f);
}

TEST_CASE("nifti: damaged or unsupported files give precise errors", "[io][nifti]") {
  TempDir dir;
  std::string path = dir.file("bad.nii");
  auto read = [&] { read_nifti(path); };
  std::vector<uint8_t> payload = encode<float>(test_values(true), false);

  SECTION("missing, empty, truncated header and data") {
    CHECK_THAT(error_of(read), Contains(path) && Contains("file not found"));
    write_bytes(path, {});
    CHECK_THAT(error_of(read), Contains(path) && Contains("empty file"));
    std::vector<uint8_t> good = nifti_file(NiftiSpec{}, payload);
    write_bytes(path, {good.begin(), good.begin() + 100});
    CHECK_THAT(error_of(read),
               Contains(path) && Contains("truncated header: expected 348 bytes, got 100"));
    write_bytes(path, {good.begin(), good.end() - 10});
    CHECK_THAT(error_of(read), Contains(path) && Contains("truncated data: expected 96 bytes") &&
                                   Contains("got 86"));
  }
  SECTION("bad sizeof_hdr and magic") {
    std::vector<uint8_t> bytes = nifti_file(NiftiSpec{}, payload);
    put<int32_t>(bytes, 0, 1234);
    write_bytes(path, bytes);
    CHECK_THAT(error_of(read), Contains(path) && Contains("bad header: sizeof_hdr is 1234"));
    put<int32_t>(bytes, 0, 540);
    write_bytes(path, bytes);
    CHECK_THAT(error_of(read), Contains(path) && Contains("NIfTI-2"));
    NiftiSpec spec;
    spec.magic = "xyz";
    write_bytes(path, nifti_file(spec, payload));
    CHECK_THAT(error_of(read), Contains(path) && Contains("bad magic \"xyz\\x00\""));
    spec.magic = "ni1";
    write_bytes(path, nifti_file(spec, payload));
    CHECK_THAT(error_of(read), Contains(path) && Contains(".hdr/.img pair"));
  }
  SECTION("unsupported datatype") {
    NiftiSpec spec;
    spec.datatype = 32;
    write_bytes(path, nifti_file(spec, payload));
    CHECK_THAT(error_of(read),
               Contains(path) && Contains("unsupported datatype code 32 (complex64)"));
    spec.datatype = 3;
    write_bytes(path, nifti_file(spec, payload));
    CHECK_THAT(error_of(read), Contains(path) && Contains("unsupported datatype code 3 "));
  }
  SECTION("wrong number of dimensions, bad sizes, bad vox_offset") {
    NiftiSpec spec;
    spec.dims[0] = 4;
    spec.dims[4] = 2;
    write_bytes(path, nifti_file(spec, payload));
    CHECK_THAT(error_of(read),
               Contains(path) && Contains("wrong number of dimensions: dim = [4, 4, 3, 2, 2"));
    spec.dims[0] = 2;
    write_bytes(path, nifti_file(spec, payload));
    CHECK_THAT(error_of(read), Contains(path) && Contains("wrong number of dimensions"));
    spec = NiftiSpec{};
    spec.dims[2] = 0;
    write_bytes(path, nifti_file(spec, payload));
    CHECK_THAT(error_of(read), Contains(path) && Contains("bad header: dim[2] = 0"));
    spec = NiftiSpec{};
    std::vector<uint8_t> bytes = nifti_file(spec, payload);
    put<float>(bytes, 108, 100.0f);
    write_bytes(path, bytes);
    CHECK_THAT(error_of(read), Contains(path) && Contains("bad header: vox_offset 100"));
  }
  SECTION("corrupt and truncated gzip streams") {
    std::string gz = dir.file("bad.nii.gz");
    std::vector<float> values(64 * 64 * 16);
    for (std::size_t i = 0; i < values.size(); ++i) values[i] = float(i % 1000);
    Volume like;
    like.nx = 64;
    like.ny = 64;
    like.nz = 16;
    write_nifti(gz, like, values, false);
    std::vector<uint8_t> good = read_bytes(gz);

    std::vector<uint8_t> bad_crc = good;
    bad_crc[bad_crc.size() - 8] ^= 0xff;  // the CRC-32 of the trailer
    write_bytes(gz, bad_crc);
    CHECK_THAT(error_of([&] { read_nifti(gz); }),
               Contains(gz) && Contains("corrupt gzip stream: incorrect data check"));

    std::vector<uint8_t> bad_data = good;
    for (std::size_t i = 20; i < 60; ++i) bad_data[i] = uint8_t(i * 77);
    write_bytes(gz, bad_data);
    CHECK_THAT(error_of([&] { read_nifti(gz); }), Contains(gz) && Contains("corrupt gzip stream"));

    write_bytes(gz, {good.begin(), good.begin() + std::ptrdiff_t(good.size() / 2)});
    CHECK_THAT(error_of([&] { read_nifti(gz); }),
               Contains(gz) && Contains("truncated gzip stream"));
  }
}

TEST_CASE("nifti: write errors name the file and leave nothing behind", "[io][nifti]") {
  TempDir dir;
  Volume like = fresh_volume();
  std::vector<float> values(7 * 5 * 3, 1.0f);
  std::string path = dir.file("out.nii");
  CHECK_THAT(error_of([&] { write_nifti(dir.file("out.img"), like, values, false); }),
             Contains("out.img") && Contains("unsupported extension"));
  CHECK_THAT(error_of([&] { write_nifti(path, like, std::vector<float>(10), false); }),
             Contains(path) && Contains("10 values for a volume of 105 voxels"));
  values[17] = 256.0f;
  CHECK_THAT(error_of([&] { write_nifti(path, like, values, true); }),
             Contains(path) && Contains("value 256 at voxel 17 is outside 0..255"));
  values[17] = -1.0f;
  CHECK_THAT(error_of([&] { write_nifti(path, like, values, true); }), Contains("at voxel 17"));
  Volume empty;
  CHECK_THAT(error_of([&] { write_nifti(path, empty, {}, false); }),
             Contains(path) && Contains("volume size 0x0x0"));
  std::string missing = dir.file("no-folder/out.nii.gz");
  values[17] = 1.0f;
  CHECK_THAT(error_of([&] { write_nifti(missing, like, values, true); }),
             Contains(missing) && Contains("No such file or directory"));
  CHECK(dir.entries() == 0);
}
