// The CUDA conv2d launchers (kernels/cuda/conv.cu) against their CPU twins (kernels/cpu/conv.cpp,
// float) on the U-Net's shape classes, odd sizes, every kernel size / stride / padding mode the
// engine uses, hand-built asymmetric shapes, and shapes large enough to reach every tile
// configuration of the implicit GEMM.
//
// Tolerance: |cuda - cpu| <= 1e-4 + 1e-4 * |cpu| for every element (the two sum in different
// orders, so they agree to float round-off, not bitwise). Every output buffer is filled with NaN
// before each launch, so an element the kernel fails to write fails the comparison. Every pass
// runs several times and must give bitwise equal results each time (the kernels use no atomics):
// over the emulator once under each ThreadOrder (Forward, Reverse, Random), so that a missing
// barrier shows up as a wrong or order-dependent result; on a GPU twice.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "kernels/cpu/conv.h"
#include "tests/support/conv_reference.h"
#include "tests/support/cuda_test.h"
#include "tests/support/gradcheck.h"

namespace {

namespace cu = unet::UNET_CUDA_NS;
using unet::cpu::Conv2dShape;
using unet::kernels::conv2d_shape;
using unet::kernels::Padding;
using unet::test::DeviceBuffer;
using unet::test::FirstRun;
using unet::test::describe;
using unet::test::repeat_runs;
using unet::test::random_vector;
using unet::test::require_close;

constexpr double kAtol = 1e-4;
constexpr double kRtol = 1e-4;

enum class Passes { All, FilterOnly };

// Every launcher (or only backward-filter) on one shape, against the CPU kernels.
void check_shape(const Conv2dShape& s, uint32_t seed, Passes passes = Passes::All) {
  INFO(describe(s));
  const bool all = passes == Passes::All;
  // Inputs of the magnitudes training sees: weights scaled by 1/sqrt(fan-in), so outputs and
  // gradients are O(1) and the absolute part of the tolerance is not what makes them pass.
  const int fan_in = std::max(1, s.c_in * s.kh * s.kw);
  const double w_range = 1.0 / std::sqrt(double(fan_in));
  const auto x = random_vector<float>(s.x_size(), seed, -1.0, 1.0);
  const auto w = random_vector<float>(s.w_size(), seed + 1, -w_range, w_range);
  const auto bias = random_vector<float>(std::size_t(s.c_out), seed + 2, -1.0, 1.0);
  const auto dy = random_vector<float>(s.y_size(), seed + 3, -1.0, 1.0);
  // dW sums n*h_out*w_out products (57,600 per image at 240x240). With an O(1) dy it would be
  // O(100), and the CPU reference's own float round-off (measured: 2.7e-4 against a double
  // computation at 240x240, where this kernel was 1.2e-5 off) would exceed the tolerance. A dy of
  // 1/sqrt(pixels) keeps dW O(1) (a loss averaged over pixels gives even smaller ones).
  const std::size_t pixels = std::size_t(s.n) * s.h_out * s.w_out;
  const double dy_f_range = 1.0 / std::sqrt(double(std::max<std::size_t>(1, pixels)));
  const auto dy_f = random_vector<float>(s.y_size(), seed + 4, -dy_f_range, dy_f_range);

  std::vector<float> y_ref(s.y_size()), y_nobias_ref(s.y_size()), dx_ref(s.x_size()),
      dw_ref(s.w_size()), db_ref(std::size_t(s.c_out)), dw_nobias_ref(s.w_size());
  if (all) {
    unet::cpu::conv2d_forward<float>(s, x.data(), w.data(), bias.data(), y_ref.data());
    unet::cpu::conv2d_forward<float>(s, x.data(), w.data(), nullptr, y_nobias_ref.data());
    unet::cpu::conv2d_backward_data<float>(s, dy.data(), w.data(), dx_ref.data());
  }
  unet::cpu::conv2d_backward_filter<float>(s, x.data(), dy_f.data(), dw_ref.data(), db_ref.data());
  unet::cpu::conv2d_backward_filter<float>(s, x.data(), dy_f.data(), dw_nobias_ref.data(), nullptr);

  DeviceBuffer<float> d_x(x), d_w(w), d_bias(bias), d_dy(dy), d_dy_f(dy_f);
  DeviceBuffer<float> d_y(s.y_size()), d_dx(s.x_size()), d_dw(s.w_size()),
      d_db(std::size_t(s.c_out)),
      d_work(std::max<std::size_t>(1, cu::conv2d_backward_filter_workspace(s) / sizeof(float)));
  FirstRun first_y("forward"), first_dx("backward-data"), first_dw("backward-filter dw"),
      first_db("backward-filter dbias");

  repeat_runs([&] {
    if (all) {
      poison(d_y);
      cu::conv2d_forward(s, d_x.get(), d_w.get(), d_bias.get(), d_y.get(), nullptr);
      const auto y = d_y.download();
      require_close(y, y_ref, kAtol, kRtol, "forward");
      first_y.check(y);

      poison(d_y);
      cu::conv2d_forward(s, d_x.get(), d_w.get(), nullptr, d_y.get(), nullptr);
      require_close(d_y.download(), y_nobias_ref, kAtol, kRtol, "forward without bias");

      poison(d_dx);
      cu::conv2d_backward_data(s, d_dy.get(), d_w.get(), d_dx.get(), nullptr);
      const auto dx = d_dx.download();
      require_close(dx, dx_ref, kAtol, kRtol, "backward-data");
      first_dx.check(dx);
    }

    poison(d_dw);
    poison(d_db);
    cu::conv2d_backward_filter(s, d_x.get(), d_dy_f.get(), d_dw.get(), d_db.get(), d_work.get(), nullptr);
    const auto dw = d_dw.download();
    const auto db = d_db.download();
    require_close(dw, dw_ref, kAtol, kRtol, "backward-filter dw");
    require_close(db, db_ref, kAtol, kRtol, "backward-filter dbias");
    first_dw.check(dw);
    first_db.check(db);

    poison(d_dw);
    poison(d_db);  // must stay untouched: no dbias asked for
    cu::conv2d_backward_filter(s, d_x.get(), d_dy_f.get(), d_dw.get(), nullptr, d_work.get(), nullptr);
    require_close(d_dw.download(), dw_nobias_ref, kAtol, kRtol, "backward-filter without dbias");
    for (const float v : d_db.download()) REQUIRE(std::isnan(v));
  });
}

}  // namespace

TEST_CASE("cuda conv2d: U-Net 3x3 'same' layer at 240", "[cuda][conv]") {
  UNET_REQUIRE_GPU();
  check_shape(conv2d_shape(1, 1, 240, 240, 2, 3, 1, Padding::Same), 11);
}

TEST_CASE("cuda conv2d: U-Net 3x3 'same' layer at 120", "[cuda][conv]") {
  UNET_REQUIRE_GPU();
  check_shape(conv2d_shape(2, 3, 120, 120, 4, 3, 1, Padding::Same), 12);
}

TEST_CASE("cuda conv2d: U-Net 3x3 'same' layer at 60", "[cuda][conv]") {
  UNET_REQUIRE_GPU();
  check_shape(conv2d_shape(1, 4, 60, 60, 8, 3, 1, Padding::Same), 21);  // 16x256 tiles
}

TEST_CASE("cuda conv2d: U-Net 3x3 'same' layer at 30", "[cuda][conv]") {
  UNET_REQUIRE_GPU();
  check_shape(conv2d_shape(2, 20, 30, 30, 24, 3, 1, Padding::Same), 22);  // 32x128 tiles
}

TEST_CASE("cuda conv2d: U-Net 3x3 'same' layer at 15", "[cuda][conv]") {
  UNET_REQUIRE_GPU();
  check_shape(conv2d_shape(2, 40, 15, 15, 48, 3, 1, Padding::Same), 23);  // 64x64 tiles
}

TEST_CASE("cuda conv2d: 1x1 and strided layers", "[cuda][conv]") {
  UNET_REQUIRE_GPU();
  check_shape(conv2d_shape(1, 4, 240, 240, 1, 1, 1, Padding::Same), 31);  // the U-Net's head
  check_shape(conv2d_shape(2, 3, 60, 60, 5, 2, 2, Padding::Valid), 32);
  check_shape(conv2d_shape(2, 3, 30, 30, 5, 3, 2, Padding::Same), 33);
  check_shape(conv2d_shape(1, 2, 15, 15, 3, 3, 2, Padding::Valid), 34);
}

TEST_CASE("cuda conv2d: odd sizes, every k, stride and padding", "[cuda][conv]") {
  UNET_REQUIRE_GPU();
  uint32_t seed = 100;
  for (const auto& [h, w] : {std::pair{7, 5}, std::pair{13, 9}})
    for (const int k : {1, 2, 3, 5})
      for (const int stride : {1, 2})
        for (const Padding padding : {Padding::Same, Padding::Valid}) {
          if (padding == Padding::Valid && (k > h || k > w)) continue;
          check_shape(conv2d_shape(2, 3, h, w, 4, k, stride, padding), seed += 10);
        }
}

TEST_CASE("cuda conv2d: hand-built shapes with asymmetric padding and kernels", "[cuda][conv]") {
  UNET_REQUIRE_GPU();
  // 3x5 kernel, more padding on top than needed, none on the left, outputs that run past the
  // input on the right and bottom.
  check_shape({.n = 2, .c_in = 3, .h_in = 9, .w_in = 11, .c_out = 5, .kh = 3, .kw = 5, .stride = 2,
               .pad_top = 2, .pad_left = 0, .h_out = 6, .w_out = 5},
              201);
  // Stride 1, padding on one side only, fewer outputs than 'same' would give.
  check_shape({.n = 1, .c_in = 2, .h_in = 8, .w_in = 6, .c_out = 3, .kh = 2, .kw = 3, .stride = 1,
               .pad_top = 0, .pad_left = 2, .h_out = 5, .w_out = 7},
              202);
  // Stride 3 with a kernel smaller than the stride: some inputs are read by no tap (dx = 0).
  check_shape({.n = 1, .c_in = 2, .h_in = 10, .w_in = 10, .c_out = 2, .kh = 2, .kw = 2,
               .stride = 3, .pad_top = 1, .pad_left = 1, .h_out = 4, .w_out = 4},
              203);
}

TEST_CASE("cuda conv2d: wide layers reach every backward-filter tile", "[cuda][conv]") {
  UNET_REQUIRE_GPU();
  // Backward-filter picks its tile by the number of dW tiles: c_out 256 x 4104 taps gives 64x64
  // tiles, c_out 64 x 4104 taps 32x32 tiles (sliced K over 4 groups); the cases above use 16x16
  // (sliced K over 16 groups). Forward and backward-data, whose tiles the channel counts above
  // already cover, would only add emulation time on these shapes.
  check_shape(conv2d_shape(1, 456, 3, 2, 256, 3, 1, Padding::Same), 301, Passes::FilterOnly);
  check_shape(conv2d_shape(1, 456, 3, 2, 64, 3, 1, Padding::Same), 302, Passes::FilterOnly);
}

TEST_CASE("cuda conv2d: backward-filter splits the pixels of narrow layers, and says when it lacks a workspace", "[cuda][conv]") {
  UNET_REQUIRE_GPU();
  // A 16 -> 16 layer at 240 has 9 dW tiles: its pixels are split, whose partials need a
  // workspace; a layer with 260 tiles and 6 pixels is not split. (The 240 case above runs split.)
  const auto narrow = conv2d_shape(6, 16, 240, 240, 16, 3, 1, Padding::Same);
  CHECK(cu::conv2d_backward_filter_workspace(narrow) >= 2 * narrow.w_size() * sizeof(float));
  CHECK(cu::conv2d_backward_filter_workspace(conv2d_shape(1, 456, 3, 2, 256, 3, 1, Padding::Same)) == 0);
  const auto s = conv2d_shape(1, 1, 240, 240, 2, 3, 1, Padding::Same);
  REQUIRE(cu::conv2d_backward_filter_workspace(s) > 0);
  DeviceBuffer<float> x(s.x_size()), dy(s.y_size()), dw(s.w_size());
  CHECK_THROWS_WITH(cu::conv2d_backward_filter(s, x.get(), dy.get(), dw.get(), nullptr, nullptr, nullptr),
                    Catch::Contains("needs a workspace"));
}
