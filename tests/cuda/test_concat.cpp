// The CUDA channel concatenation and split (kernels/cuda/concat.cu) against their CPU twins
// (kernels/cpu/concat.cpp, float) on the U-Net's skip-connection sizes, odd planes, planes just
// past the capped grid (a thread copies several elements of a plane) and parts with no channels.
// Pure copies: results must equal the CPU's bit for bit. Outputs are poisoned with NaN before
// each launch, so an element left unwritten fails.
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "kernels/cpu/concat.h"
#include "tests/support/cuda_test.h"
#include "tests/support/gradcheck.h"

namespace {

namespace cu = unet::UNET_CUDA_NS;
using unet::kernels::ConcatShape;
using unet::test::DeviceBuffer;
using unet::test::require_bitwise_equal;
using unet::test::random_vector;
using Vec = std::vector<float>;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

void check_shape(const ConcatShape& s, uint32_t seed) {
  INFO("n" << s.n << " c_a" << s.c_a << " c_b" << s.c_b << " hw" << s.hw);
  const Vec a = random_vector<float>(s.a_size(), seed, -1.0, 1.0);
  const Vec b = random_vector<float>(s.b_size(), seed + 1, -1.0, 1.0);
  const Vec joined = random_vector<float>(s.out_size(), seed + 2, -1.0, 1.0);
  Vec out_ref(s.out_size()), a_ref(s.a_size()), b_ref(s.b_size());
  unet::cpu::concat_channels<float>(s, a.data(), b.data(), out_ref.data());
  unet::cpu::split_channels<float>(s, joined.data(), a_ref.data(), b_ref.data());

  DeviceBuffer<float> d_a(a), d_b(b), d_joined(joined), d_out(s.out_size()),
      d_a_out(s.a_size()), d_b_out(s.b_size());
  d_out.upload(Vec(s.out_size(), kNaN));
  cu::concat_channels(s, d_a.get(), d_b.get(), d_out.get(), nullptr);
  require_bitwise_equal(d_out.download(), out_ref, "concat");

  d_a_out.upload(Vec(s.a_size(), kNaN));
  d_b_out.upload(Vec(s.b_size(), kNaN));
  cu::split_channels(s, d_joined.get(), d_a_out.get(), d_b_out.get(), nullptr);
  require_bitwise_equal(d_a_out.download(), a_ref, "split a");
  require_bitwise_equal(d_b_out.download(), b_ref, "split b");
}

}  // namespace

TEST_CASE("cuda concat/split: U-Net skip connections", "[cuda][concat]") {
  UNET_REQUIRE_GPU();
  check_shape({1, 2, 1, 240 * 240}, 11);
  check_shape({2, 3, 2, 120 * 120}, 12);
  check_shape({2, 1, 3, 60 * 60}, 13);
  check_shape({1, 4, 4, 30 * 30}, 14);
  check_shape({2, 3, 2, 15 * 15}, 15);
}

TEST_CASE("cuda concat/split: planes past the grid cap take several elements per thread",
          "[cuda][concat]") {
  UNET_REQUIRE_GPU();
  // kMaxPlaneBlocks x kConcatThreads in kernels/cuda/concat.cu: 65536 threads along a plane.
  check_shape({1, 1, 2, 257 * 257}, 31);  // 66049 = 65536 + 513
  check_shape({2, 2, 1, 65536 + 301}, 32);
}

TEST_CASE("cuda concat/split: odd planes and empty parts", "[cuda][concat]") {
  UNET_REQUIRE_GPU();
  check_shape({2, 2, 3, 7 * 5}, 21);
  check_shape({3, 1, 1, 1}, 22);
  check_shape({2, 0, 3, 7 * 5}, 23);
  check_shape({2, 3, 0, 7 * 5}, 24);
}
