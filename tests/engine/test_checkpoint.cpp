#include <catch2/catch.hpp>
#include <zlib.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>

#include "engine/checkpoint.h"
#include "models/unet.h"

using namespace unet;
namespace fs = std::filesystem;

namespace {

struct TempDir {
  TempDir() : path(fs::temp_directory_path() / ("unet-ckpt-test-" + std::to_string(::getpid()))) {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string file(const std::string& name) const { return (path / name).string(); }
  std::size_t entries() const { return std::size_t(std::distance(fs::directory_iterator(path), fs::directory_iterator())); }
  fs::path path;
};

UNetConfig small_config() {
  UNetConfig c;
  c.base_filters = 4;
  c.depth = 2;
  return c;
}

std::vector<char> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_bytes(const std::string& path, const std::vector<char>& bytes) {
  std::ofstream(path, std::ios::binary).write(bytes.data(), std::streamsize(bytes.size()));
}

}  // namespace

TEST_CASE("checkpoint round trip is bitwise exact", "[checkpoint]") {
  TempDir dir;
  UNet model(small_config(), 5);
  // Non-trivial buffers: one training forward moves the BN running statistics.
  model.forward(Tensor::full({2, 3, 8, 8}, 0.5f));
  save_unet(dir.file("m.ckpt"), model, {{"note", "hello"}});
  CHECK(dir.entries() == 1);  // no temporary file left behind

  const auto loaded = load_unet(dir.file("m.ckpt"));
  CHECK(loaded->config().to_map() == model.config().to_map());
  const auto a = module_state(model, ""), b = module_state(*loaded, "");
  REQUIRE(a.size() == b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    INFO(a[i].first);
    CHECK(a[i].first == b[i].first);
    CHECK(a[i].second.to_vector() == b[i].second.to_vector());
  }
  CHECK(load_checkpoint(dir.file("m.ckpt")).meta.at("note") == "hello");
}

TEST_CASE("broken checkpoints fail with the file name and the problem", "[checkpoint]") {
  TempDir dir;
  UNet model(small_config(), 5);
  const std::string good = dir.file("good.ckpt");
  save_unet(good, model);
  const std::vector<char> bytes = read_bytes(good);

  SECTION("missing") {
    CHECK_THROWS_WITH(load_unet(dir.file("absent.ckpt")), Catch::Contains("absent.ckpt") && Catch::Contains("cannot open"));
  }
  SECTION("truncated") {
    const std::string path = dir.file("short.ckpt");
    write_bytes(path, {bytes.begin(), bytes.begin() + std::ptrdiff_t(bytes.size() / 2)});
    CHECK_THROWS_WITH(load_unet(path), Catch::Contains("short.ckpt") && Catch::Contains("truncated"));
    write_bytes(path, {bytes.begin(), bytes.begin() + 10});
    CHECK_THROWS_WITH(load_unet(path), Catch::Contains("truncated inside the header"));
  }
  SECTION("corrupt") {
    const std::string path = dir.file("flipped.ckpt");
    std::vector<char> flipped = bytes;
    flipped[bytes.size() / 2] ^= 0x10;
    write_bytes(path, flipped);
    CHECK_THROWS_WITH(load_unet(path), Catch::Contains("flipped.ckpt") && Catch::Contains("checksum mismatch"));
  }
  SECTION("not a checkpoint") {
    const std::string path = dir.file("text.ckpt");
    write_bytes(path, {'h', 'e', 'l', 'l', 'o', ' ', 'w', 'o', 'r', 'l', 'd', '!'});
    CHECK_THROWS_WITH(load_unet(path), Catch::Contains("bad magic number"));
  }
  SECTION("newer format version") {
    const std::string path = dir.file("future.ckpt");
    std::vector<char> future = bytes;
    future[8] = 9;
    write_bytes(path, future);
    CHECK_THROWS_WITH(load_unet(path), Catch::Contains("format version 9 is not supported"));
  }
  SECTION("mismatched model") {
    UNetConfig other = small_config();
    other.base_filters = 8;
    UNet wider(other, 1);
    const std::vector<float> before = wider.named_parameters()[0].second.to_vector();
    CHECK_THROWS_WITH(load_module_state(wider, load_checkpoint(good), "model.", good),
                      Catch::Contains("good.ckpt") && Catch::Contains("enc0.conv1.weight") &&
                          Catch::Contains("[4, 3, 3, 3]") && Catch::Contains("[8, 3, 3, 3]"));
    CHECK(wider.named_parameters()[0].second.to_vector() == before);  // untouched

    UNetConfig deeper = small_config();
    deeper.depth = 3;
    UNet deep(deeper, 1);
    CHECK_THROWS_WITH(load_module_state(deep, load_checkpoint(good), "model.", good), Catch::Contains("is missing"));
  }
}

TEST_CASE("a failed save leaves nothing behind and keeps the old file", "[checkpoint]") {
  TempDir dir;
  UNet model(small_config(), 5);
  CHECK_THROWS_WITH(save_unet(dir.file("no/such/dir/m.ckpt"), model), Catch::Contains("cannot create a temporary file"));
  CHECK(dir.entries() == 0);
  const std::string path = dir.file("m.ckpt");
  save_unet(path, model);
  const auto before = read_bytes(path);
  UNet other(small_config(), 6);
  save_unet(path, other);  // replaced whole
  CHECK(read_bytes(path) != before);
  CHECK(dir.entries() == 1);
}

namespace {

// A checkpoint of one tensor 'a' and no metadata, its bytes, and where they are: "UNETCKPT",
// u32 version, u64 payload size, u32 meta count, u32 tensor count, u32 name length, 'a', u32 rank.
constexpr std::size_t kFirstDim = 37, kFirstValue = 53;

std::vector<char> one_tensor_checkpoint(const std::string& path, const Shape& shape, const std::vector<float>& values) {
  Checkpoint ck;
  ck.tensors.emplace_back("a", Tensor::from_vector(shape, values));
  save_checkpoint(path, ck);
  return read_bytes(path);
}

// Writes `bytes` with a valid CRC, as a crafted file would have.
void write_with_crc(const std::string& path, std::vector<char> bytes) {
  const auto crc = uint32_t(crc32(0, reinterpret_cast<const Bytef*>(bytes.data()), uInt(bytes.size() - 4)));
  std::memcpy(bytes.data() + bytes.size() - 4, &crc, 4);
  write_bytes(path, bytes);
}

}  // namespace

TEST_CASE("crafted checkpoints with valid CRCs are refused by what they claim", "[checkpoint][reliability]") {
  TempDir dir;
  const std::string path = dir.file("crafted.ckpt");
  std::vector<char> bytes = one_tensor_checkpoint(path, {1, 4}, {1, 2, 3, 4});
  REQUIRE(load_checkpoint(path).tensors.size() == 1);

  SECTION("a shape whose element count overflows") {
    const int64_t huge = (int64_t(1) << 62) + 1;
    std::memcpy(bytes.data() + kFirstDim, &huge, sizeof(huge));
    write_with_crc(path, bytes);
    CHECK_THROWS_WITH(load_checkpoint(path), Catch::Contains("crafted.ckpt") && Catch::Contains("runs past the payload"));
  }
  SECTION("huge dimensions beside a zero one (found by fuzzing: numel overflowed)") {
    std::vector<char> empty = one_tensor_checkpoint(path, {1, 1, 0}, {});
    const int64_t huge = int64_t(1) << 40;
    std::memcpy(empty.data() + kFirstDim, &huge, sizeof(huge));
    std::memcpy(empty.data() + kFirstDim + 8, &huge, sizeof(huge));
    write_with_crc(path, empty);
    CHECK_THROWS_WITH(load_checkpoint(path), Catch::Contains("crafted.ckpt") && Catch::Contains("runs past the payload"));
  }
  SECTION("a non-finite value") {
    const float inf = std::numeric_limits<float>::infinity();
    std::memcpy(bytes.data() + kFirstValue + 4, &inf, sizeof(inf));
    write_with_crc(path, bytes);
    CHECK_THROWS_WITH(load_checkpoint(path), Catch::Contains("crafted.ckpt") && Catch::Contains("'a'") &&
                                                 Catch::Contains("NaN or infinite"));
  }
}

TEST_CASE("zero-element tensors round trip, non-finite ones are never written", "[checkpoint][reliability]") {
  TempDir dir;
  const std::string empty = dir.file("empty.ckpt");
  one_tensor_checkpoint(empty, {0, 4}, {});
  const Checkpoint back = load_checkpoint(empty);
  REQUIRE(back.tensors.size() == 1);
  CHECK(back.tensors[0].second.shape() == Shape{0, 4});

  const std::string nan = dir.file("nan.ckpt");
  CHECK_THROWS_WITH(one_tensor_checkpoint(nan, {2}, {1.0f, std::nanf("")}),
                    Catch::Contains("nan.ckpt") && Catch::Contains("not written") && Catch::Contains("'a'"));
  CHECK_FALSE(fs::exists(nan));
  CHECK(dir.entries() == 1);  // no temporary file either
}
