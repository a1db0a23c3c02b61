// The CUDA 2x2 max-pooling launchers (kernels/cuda/pool.cu) against their CPU twins
// (kernels/cpu/pool.cpp, float) on the U-Net's sizes (240 ... 15), odd sizes whose last row or
// column is dropped (15x15, 7x5), planes just past the capped grid (a thread then loops over
// several outputs or inputs of its plane), and inputs too small for any window.
//
// Exact: y, argmax and dx must equal the CPU's bit for bit (a NaN matches any NaN). The inputs are
// quantised to a few levels so that ties are common, and carry NaNs and infinities, so the
// first-maximum and NaN-wins rules are exercised. Outputs are poisoned (NaN, argmax 0xff) before
// each launch, and each launch runs twice and must give bitwise equal results.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "kernels/cpu/pool.h"
#include "tests/support/cuda_test.h"
#include "tests/support/gradcheck.h"

namespace {

namespace cu = unet::UNET_CUDA_NS;
using unet::kernels::Pool2dShape;
using unet::test::DeviceBuffer;
using unet::test::random_vector;
using Vec = std::vector<float>;
using Bytes = std::vector<uint8_t>;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

std::string describe(const Pool2dShape& s) {
  return "n" + std::to_string(s.n) + " c" + std::to_string(s.c) + " " + std::to_string(s.h_in) +
         "x" + std::to_string(s.w_in);
}

// Equal bit patterns, or both NaN (a GPU may canonicalise a NaN's payload).
bool same_value(float a, float b) {
  return (std::isnan(a) && std::isnan(b)) || std::memcmp(&a, &b, sizeof(float)) == 0;
}

void require_same_values(const Vec& a, const Vec& b, const char* what) {
  REQUIRE(a.size() == b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (!same_value(a[i], b[i])) {
      FAIL(what << ": element " << i << " of " << a.size() << " is " << a[i] << ", expected "
                << b[i]);
    }
  }
}

// Values on a grid of 9 levels (ties within most windows), with NaNs and infinities sprinkled.
Vec pool_input(std::size_t n, uint32_t seed) {
  Vec x = random_vector<float>(n, seed, -1.0, 1.0);
  for (std::size_t i = 0; i < n; ++i) {
    x[i] = std::round(x[i] * 4.0f) / 4.0f;
    if (i % 37 == 5) x[i] = kNaN;
    if (i % 53 == 7) x[i] = kInf;
    if (i % 59 == 3) x[i] = -kInf;
  }
  return x;
}

void check_shape(const Pool2dShape& s, uint32_t seed) {
  INFO(describe(s));
  const Vec x = pool_input(s.x_size(), seed);
  const Vec dy = random_vector<float>(s.y_size(), seed + 1, -1.0, 1.0);
  Vec y_ref(s.y_size()), dx_ref(s.x_size());
  Bytes argmax_ref(s.y_size());
  unet::cpu::maxpool2x2_forward<float>(s, x.data(), y_ref.data(), argmax_ref.data());
  unet::cpu::maxpool2x2_backward<float>(s, dy.data(), argmax_ref.data(), dx_ref.data());

  DeviceBuffer<float> d_x(x), d_dy(dy), d_y(s.y_size()), d_dx(s.x_size());
  DeviceBuffer<uint8_t> d_argmax(s.y_size()), d_argmax_ref(argmax_ref);

  const auto forward = [&] {
    d_y.upload(Vec(s.y_size(), kNaN));
    d_argmax.upload(Bytes(s.y_size(), 0xff));
    cu::maxpool2x2_forward(s, d_x.get(), d_y.get(), d_argmax.get(), nullptr);
    return std::pair{d_y.download(), d_argmax.download()};
  };
  const auto [y, argmax] = forward();
  require_same_values(y, y_ref, "forward y");
  REQUIRE(argmax == argmax_ref);
  const auto [y2, argmax2] = forward();
  REQUIRE((y.empty() || std::memcmp(y2.data(), y.data(), y.size() * sizeof(float)) == 0));
  REQUIRE(argmax2 == argmax);

  // Backward from the CPU's argmax, so that it is tested on its own.
  const auto backward = [&] {
    d_dx.upload(Vec(s.x_size(), kNaN));
    cu::maxpool2x2_backward(s, d_dy.get(), d_argmax_ref.get(), d_dx.get(), nullptr);
    return d_dx.download();
  };
  const Vec dx = backward();
  require_same_values(dx, dx_ref, "backward dx");
  const Vec dx2 = backward();
  REQUIRE((dx.empty() || std::memcmp(dx2.data(), dx.data(), dx.size() * sizeof(float)) == 0));
}

}  // namespace

TEST_CASE("cuda maxpool: U-Net sizes 240 to 30", "[cuda][pool]") {
  UNET_REQUIRE_GPU();
  check_shape({1, 2, 240, 240}, 11);
  check_shape({2, 3, 120, 120}, 12);
  check_shape({2, 2, 60, 60}, 13);
  check_shape({1, 3, 30, 30}, 14);
}

TEST_CASE("cuda maxpool: odd sizes drop the last row and column", "[cuda][pool]") {
  UNET_REQUIRE_GPU();
  check_shape({2, 3, 15, 15}, 21);
  check_shape({2, 2, 7, 5}, 22);
  check_shape({1, 3, 5, 8}, 23);
}

TEST_CASE("cuda maxpool: planes past the grid cap take several elements per thread",
          "[cuda][pool]") {
  UNET_REQUIRE_GPU();
  // kMaxPlaneBlocks x kPoolThreads in kernels/cuda/pool.cu: 65536 threads along a plane. 515x513
  // gives 257 x 256 = 65792 outputs (forward: a second iteration) and 264195 inputs (backward:
  // up to five), the last row and column dropped.
  check_shape({1, 2, 515, 513}, 41);
}

TEST_CASE("cuda maxpool: inputs too small for a window give no output and a zero gradient",
          "[cuda][pool]") {
  UNET_REQUIRE_GPU();
  check_shape({1, 2, 1, 1}, 31);
  check_shape({2, 1, 3, 1}, 32);
}

TEST_CASE("cuda maxpool: a NaN wins its window, ties go to the first maximum", "[cuda][pool]") {
  UNET_REQUIRE_GPU();
  // One 2x4 plane, two windows: [1 NaN; 2 2] and [3 3; 3 -1].
  const Pool2dShape s{1, 1, 2, 4};
  DeviceBuffer<float> d_x(Vec{1, kNaN, 3, 3, 2, 2, 3, -1}), d_y(2);
  DeviceBuffer<uint8_t> d_argmax(2);
  cu::maxpool2x2_forward(s, d_x.get(), d_y.get(), d_argmax.get(), nullptr);
  const Vec y = d_y.download();
  REQUIRE(std::isnan(y[0]));
  REQUIRE(y[1] == 3.0f);
  REQUIRE(d_argmax.download() == Bytes{1, 0});
}
