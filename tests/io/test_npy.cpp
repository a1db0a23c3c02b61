// NumPy .npy: round trips through write_npy, every dtype and byte order through a small writer
// of v1/v2/v3 files kept here (write_npy only writes float32 and uint8), Fortran order, and the
// error messages for damaged files.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cstring>

#include "tests/io/io_test_support.h"
#include "train/io/npy.h"

using namespace unet::io;
using namespace unet::io::test;
using Catch::Matchers::Contains;

namespace {

// A .npy file as numpy writes it: magic, version, header length, dict padded to 64 bytes.
std::vector<uint8_t> npy_file(const std::string& dict, const std::vector<uint8_t>& payload,
                              int major = 1) {
  std::size_t length_bytes = major == 1 ? 2 : 4;
  std::string header = dict;
  std::size_t unpadded = 8 + length_bytes + header.size() + 1;
  header.append((64 - unpadded % 64) % 64, ' ');
  header += '\n';
  // Assembled as a string: GCC 12 at -O3 misreports vector<uint8_t>::insert (-Wstringop-overflow).
  std::string out("\x93NUMPY", 6);
  out += char(major);
  out += '\0';
  for (std::size_t i = 0; i < length_bytes; ++i) out += char(uint8_t(header.size() >> (8 * i)));
  out += header;
  out.append(payload.begin(), payload.end());
  return {out.begin(), out.end()};
}

std::string dict(const std::string& descr, const std::string& shape, bool fortran = false) {
  return "{'descr': '" + descr + "', 'fortran_order': " + (fortran ? "True" : "False") +
         ", 'shape': " + shape + ", }";
}

// The values as T, each in little- or big-endian byte order.
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

template <typename T>
void check_dtype(const TempDir& dir, const std::string& code, const std::string& name,
                 const std::vector<double>& values) {
  for (char order : std::string(sizeof(T) == 1 ? "|" : "<>")) {
    std::string descr = order + code;
    INFO("dtype " << descr);
    std::string path = dir.file(name + ".npy");
    write_bytes(path, npy_file(dict(descr, "(" + std::to_string(values.size()) + ",)"),
                               encode<T>(values, order == '>')));
    NpyArray array = read_npy(path);
    CHECK(array.dtype == name);
    CHECK(array.shape == std::vector<int64_t>{int64_t(values.size())});
    REQUIRE(array.data.size() == values.size());
    for (std::size_t i = 0; i < values.size(); ++i) CHECK(array.data[i] == float(values[i]));
  }
}

}  // namespace

TEST_CASE("npy: write_npy round trips float32 and uint8 arrays of 0 to 4 dimensions", "[io][npy]") {
  TempDir dir;
  const std::vector<std::vector<int64_t>> shapes = {{},        {5},          {2, 3},
                                                    {2, 3, 4}, {2, 1, 3, 2}, {0, 3}};
  for (const auto& shape : shapes) {
    std::size_t count = 1;
    for (int64_t d : shape) count *= std::size_t(d);
    INFO("rank " << shape.size() << ", " << count << " values");
    std::vector<float> values(count);
    std::vector<uint8_t> bytes(count);
    for (std::size_t i = 0; i < count; ++i) {
      values[i] = float(i) * 0.25f - 1.5f;
      bytes[i] = uint8_t(i * 7);
    }
    std::string path = dir.file("a.npy");
    write_npy(path, shape, values.data());
    NpyArray f = read_npy(path);
    CHECK(f.dtype == "float32");
    CHECK(f.shape == shape);
    CHECK(f.data == values);
    // numpy aligns the data to 64 bytes; other readers (np.memmap) rely on it.
    std::size_t header = read_bytes(path).size() - count * 4;
    CHECK(header % 64 == 0);

    write_npy(path, shape, bytes.data());
    NpyArray u = read_npy(path);
    CHECK(u.dtype == "uint8");
    CHECK(u.shape == shape);
    CHECK(u.data == std::vector<float>(bytes.begin(), bytes.end()));
  }
  CHECK(dir.entries() == 1);  // no temporary file left behind
}

TEST_CASE("npy: every supported dtype, little- and big-endian, converts to float", "[io][npy]") {
  TempDir dir;
  check_dtype<float>(dir, "f4", "float32", {0, 1.5, -2.25, 1e30, -1e-30});
  check_dtype<double>(dir, "f8", "float64", {0, 1.5, -2.25, 1e30, 3.0e-40});
  check_dtype<uint8_t>(dir, "u1", "uint8", {0, 1, 128, 255});
  check_dtype<int8_t>(dir, "i1", "int8", {0, 1, -128, 127});
  check_dtype<uint16_t>(dir, "u2", "uint16", {0, 1, 258, 65535});
  check_dtype<int16_t>(dir, "i2", "int16", {0, -1, -32768, 32767});
  check_dtype<uint32_t>(dir, "u4", "uint32", {0, 1, 65536, 16777216});
  check_dtype<int32_t>(dir, "i4", "int32", {0, -1, -16777216, 16777216});
  check_dtype<uint64_t>(dir, "u8", "uint64", {0, 1, 4294967296.0});
  check_dtype<int64_t>(dir, "i8", "int64", {0, -1, -4294967296.0, 1099511627776.0});

  // bool: any non-zero byte is True, as in numpy.
  std::string path = dir.file("bool.npy");
  write_bytes(path, npy_file(dict("|b1", "(4,)"), {0, 1, 0, 2}));
  NpyArray array = read_npy(path);
  CHECK(array.dtype == "bool");
  CHECK(array.data == std::vector<float>{0, 1, 0, 1});
}

TEST_CASE("npy: Fortran-order arrays come back in C order", "[io][npy]") {
  TempDir dir;
  std::string path = dir.file("f.npy");
  // Element (i, j, k) = 100 i + 10 j + k, stored with i fastest.
  const int n0 = 2, n1 = 3, n2 = 4;
  std::vector<double> fortran;
  for (int k = 0; k < n2; ++k)
    for (int j = 0; j < n1; ++j)
      for (int i = 0; i < n0; ++i) fortran.push_back(100 * i + 10 * j + k);
  write_bytes(path, npy_file(dict("<i2", "(2, 3, 4)", true), encode<int16_t>(fortran, false)));
  NpyArray array = read_npy(path);
  CHECK(array.shape == std::vector<int64_t>{2, 3, 4});
  std::vector<float> expected;
  for (int i = 0; i < n0; ++i)
    for (int j = 0; j < n1; ++j)
      for (int k = 0; k < n2; ++k) expected.push_back(float(100 * i + 10 * j + k));
  CHECK(array.data == expected);

  // 1-D is the same in both orders.
  write_bytes(path, npy_file(dict("<f4", "(3,)", true), encode<float>({1, 2, 3}, false)));
  CHECK(read_npy(path).data == std::vector<float>{1, 2, 3});
}

TEST_CASE("npy: versions 2.0 and 3.0, Python 2 longs and key order", "[io][npy]") {
  TempDir dir;
  std::string path = dir.file("v.npy");
  for (int major : {2, 3}) {
    write_bytes(path, npy_file(dict("<f8", "(2, 2)"), encode<double>({1, 2, 3, 4}, false), major));
    NpyArray array = read_npy(path);
    CHECK(array.shape == std::vector<int64_t>{2, 2});
    CHECK(array.data == std::vector<float>{1, 2, 3, 4});
  }
  write_bytes(path, npy_file("{\"shape\": (2L,), \"fortran_order\": False, \"descr\": \"<u2\"}",
                             encode<uint16_t>({7, 9}, false)));
  CHECK(read_npy(path).data == std::vector<float>{7, 9});
}

TEST_CASE("npy: damaged or unsupported files give precise errors", "[io][npy]") {
  TempDir dir;
  std::string path = dir.file("bad.npy");
  auto read = [&] { read_npy(path); };

  SECTION("missing file") {
    CHECK_THAT(error_of(read), Contains(path) && Contains("file not found"));
  }
  SECTION("empty file") {
    write_bytes(path, {});
    CHECK_THAT(error_of(read), Contains(path) && Contains("empty file"));
  }
  SECTION("bad magic") {
    write_bytes(path, {'P', 'K', 3, 4, 0, 0, 0, 0, 0, 0, 0, 0});
    CHECK_THAT(error_of(read), Contains(path) && Contains("bad magic"));
  }
  SECTION("truncated preamble and header") {
    std::vector<uint8_t> bytes =
        npy_file(dict("<f4", "(6,)"), encode<float>({1, 2, 3, 4, 5, 6}, false));
    write_bytes(path, {bytes.begin(), bytes.begin() + 8});
    CHECK_THAT(error_of(read),
               Contains(path) && Contains("truncated preamble: expected 10 bytes, got 8"));
    write_bytes(path, {bytes.begin(), bytes.begin() + 40});
    CHECK_THAT(error_of(read),
               Contains(path) && Contains("truncated header: expected 118 bytes, got 30"));
  }
  SECTION("truncated data") {
    write_bytes(path, npy_file(dict("<f4", "(2, 3)"), encode<float>({1, 2, 3, 4, 5}, false)));
    CHECK_THAT(error_of(read),
               Contains(path) && Contains("truncated data: expected 24 bytes, got 20"));
  }
  SECTION("unsupported dtypes") {
    for (std::string descr : {"<c8", "<f2", "<U5", "O", "<M8[ns]"}) {
      write_bytes(path, npy_file(dict(descr, "(1,)"), std::vector<uint8_t>(16, 0)));
      CHECK_THAT(error_of(read), Contains(path) && Contains("unsupported dtype '" + descr + "'"));
    }
    write_bytes(path, npy_file("{'descr': [('x', '<f4')], 'fortran_order': False, 'shape': (1,), }",
                               std::vector<uint8_t>(4, 0)));
    CHECK_THAT(error_of(read), Contains(path) && Contains("unsupported dtype: structured"));
  }
  SECTION("unsupported version") {
    std::vector<uint8_t> bytes = npy_file(dict("<f4", "(1,)"), encode<float>({1}, false));
    bytes[6] = 4;
    write_bytes(path, bytes);
    CHECK_THAT(error_of(read), Contains(path) && Contains("unsupported .npy version 4.0"));
  }
  SECTION("corrupt header dict") {
    write_bytes(path, npy_file("{'descr': '<f4', 'shape': (1,), }", encode<float>({1}, false)));
    CHECK_THAT(error_of(read),
               Contains(path) && Contains("bad header: key 'fortran_order' missing"));
    write_bytes(path, npy_file("{'descr': '<f4', 'fortran_order': Maybe, 'shape': (1,)}",
                               encode<float>({1}, false)));
    CHECK_THAT(error_of(read), Contains(path) && Contains("bad header: expected True or False"));
    write_bytes(path, npy_file("{'descr': '<f4', 'fortran_order': False, 'shape': (-1,)}",
                               encode<float>({1}, false)));
    CHECK_THAT(error_of(read), Contains(path) && Contains("bad header: expected a dimension"));
    write_bytes(path, npy_file("\x01\x02garbage", {}));
    CHECK_THAT(error_of(read), Contains(path) && Contains("bad header: expected '{'"));
  }
  SECTION("a shape too large for the file") {
    write_bytes(path, npy_file(dict("<f8", "(4294967296, 4294967296, 4294967296)"), {0}));
    CHECK_THAT(error_of(read), Contains(path) && Contains("impossible shape"));
    write_bytes(path, npy_file(dict("<f8", "(100000, 100000)"), {0}));
    CHECK_THAT(error_of(read),
               Contains(path) && Contains("truncated data: expected 80000000000 bytes"));
  }
}

TEST_CASE("npy: a failed write leaves no file, an existing file is replaced whole", "[io][npy]") {
  TempDir dir;
  std::vector<float> values = {1, 2, 3};
  std::string missing = dir.file("no-such-folder/a.npy");
  CHECK_THAT(error_of([&] { write_npy(missing, {3}, values.data()); }),
             Contains(missing) && Contains("No such file or directory"));
  CHECK(dir.entries() == 0);

  std::string path = dir.file("a.npy");
  write_npy(path, {3}, values.data());
  std::vector<float> longer(1000, 4.0f);
  write_npy(path, {10, 100}, longer.data());
  CHECK(read_npy(path).data == longer);
  CHECK_THAT(error_of([&] { write_npy(path, {-1}, values.data()); }),
             Contains(path) && Contains("invalid shape (-1,)"));
  CHECK(read_npy(path).data == longer);
  CHECK(dir.entries() == 1);
}
