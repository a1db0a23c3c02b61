// The CUDA dropout launchers (kernels/cuda/dropout.cu) against their CPU twins
// (kernels/cpu/dropout.cpp, float): the same (seed, offset) must draw the same mask, element for
// element, on both, including offsets that are not a multiple of 4 (the first and last Philox
// counters then serve fewer than 4 elements), tiny arrays inside one counter, and arrays just past
// the capped grid (the grid-stride loops then run a second time in some threads).
//
// Exact: mask, y and dx must equal the CPU's bit for bit. Outputs are poisoned (NaN, mask 0xab)
// before each launch, and the forward runs twice and must give bitwise equal results.
#include <cstdint>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "kernels/cpu/dropout.h"
#include "tests/support/cuda_test.h"
#include "tests/support/gradcheck.h"

namespace {

namespace cu = unet::UNET_CUDA_NS;
using unet::test::DeviceBuffer;
using unet::test::require_bitwise_equal;
using unet::test::random_vector;
using Vec = std::vector<float>;
using Bytes = std::vector<uint8_t>;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
// Threads in the largest grid: kMaxBlocks x kDropoutThreads in kernels/cuda/dropout.cu. The
// forward has one thread per Philox counter (4 elements), the backward one per element.
constexpr std::size_t kGridThreads = 2048 * 256;

void check(std::size_t count, float p, uint64_t seed, uint64_t offset) {
  INFO("count " << count << " p " << p << " seed " << seed << " offset " << offset);
  const Vec x = random_vector<float>(count, uint32_t(seed + offset), -2.0, 2.0);
  const Vec dy = random_vector<float>(count, uint32_t(seed + offset + 1), -1.0, 1.0);
  Vec y_ref(count), dx_ref(count);
  Bytes mask_ref(count);
  unet::cpu::dropout_forward<float>(count, p, seed, offset, x.data(), y_ref.data(),
                                    mask_ref.data());
  unet::cpu::dropout_backward<float>(count, p, dy.data(), mask_ref.data(), dx_ref.data());

  DeviceBuffer<float> d_x(x), d_dy(dy), d_y(count), d_dx(count);
  DeviceBuffer<uint8_t> d_mask(count);
  const auto forward = [&] {
    d_y.upload(Vec(count, kNaN));
    d_mask.upload(Bytes(count, 0xab));
    cu::dropout_forward(count, p, seed, offset, d_x.get(), d_y.get(), d_mask.get(), nullptr);
    return std::pair{d_y.download(), d_mask.download()};
  };
  const auto [y, mask] = forward();
  REQUIRE(mask == mask_ref);
  require_bitwise_equal(y, y_ref, "forward y");
  const auto [y2, mask2] = forward();
  REQUIRE(mask2 == mask);
  require_bitwise_equal(y2, y, "forward y, second run");

  d_dx.upload(Vec(count, kNaN));
  cu::dropout_backward(count, p, d_dy.get(), d_mask.get(), d_dx.get(), nullptr);
  require_bitwise_equal(d_dx.download(), dx_ref, "backward dx");
}

}  // namespace

TEST_CASE("cuda dropout: the CPU's mask on a 240x240 feature map", "[cuda][dropout]") {
  UNET_REQUIRE_GPU();
  check(2 * 240 * 240, 0.5f, 1234, 0);
  check(240 * 240, 0.1f, 99, 4 * 240 * 240);  // a later slice of the same stream
}

TEST_CASE("cuda dropout: offsets and sizes that split Philox counters", "[cuda][dropout]") {
  UNET_REQUIRE_GPU();
  for (const uint64_t offset : {0, 1, 2, 3, 5, 6, 1001})
    for (const std::size_t count : {1, 2, 3, 4, 5, 8, 105, 1000}) check(count, 0.3f, 7, offset);
  check(15 * 15 * 3, 0.9f, 42, 17);
  check(7 * 5 * 2, 0.5f, uint64_t(1) << 40, (uint64_t(1) << 33) + 3);  // counters past 32 bits
}

TEST_CASE("cuda dropout: past the grid cap threads loop over several counters and elements",
          "[cuda][dropout]") {
  UNET_REQUIRE_GPU();
  // 4 x kGridThreads + 301 elements from offset 3: 524365 counters, past the grid's 524288
  // threads, the first and last of them partial; the backward loops up to 5 times.
  check(4 * kGridThreads + 301, 0.4f, 77, 3);
}

TEST_CASE("cuda dropout: p = 0 keeps everything, p outside 0 <= p < 1 throws", "[cuda][dropout]") {
  UNET_REQUIRE_GPU();
  check(1001, 0.0f, 5, 3);
  DeviceBuffer<float> d(4);
  DeviceBuffer<uint8_t> m(4);
  for (const float p : {1.0f, -0.1f, 1.5f, kNaN}) {
    REQUIRE_THROWS_AS(cu::dropout_forward(4, p, 1, 0, d.get(), d.get(), m.get(), nullptr),
                      std::invalid_argument);
    REQUIRE_THROWS_AS(cu::dropout_backward(4, p, d.get(), m.get(), d.get(), nullptr),
                      std::invalid_argument);
  }
  // Nothing to do is not an error.
  cu::dropout_forward(0, 0.5f, 1, 0, d.get(), d.get(), m.get(), nullptr);
  cu::dropout_backward(0, 0.5f, d.get(), m.get(), d.get(), nullptr);
}
