// The CUDA conv_transpose2d launchers (kernels/cuda/conv_transpose.cu) against their CPU twins
// (kernels/cpu/conv_transpose.cpp, float): the reference model's 3x3 stride-2 'same' up-sampling
// layers (15->30 ... 120->240), odd sizes with every kernel size / stride / padding mode,
// hand-built shapes with asymmetric padding and kernels, and a large one-channel image (the
// backward-filter pass split over the most pixel slices).
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
#include <initializer_list>
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
using unet::cpu::ConvTranspose2dShape;
using unet::kernels::conv_transpose2d_shape;
using unet::kernels::Padding;
using unet::test::DeviceBuffer;
using unet::test::FirstRun;
using unet::test::describe;
using unet::test::repeat_runs;
using unet::test::random_vector;
using unet::test::require_close;

constexpr double kAtol = 1e-4;
constexpr double kRtol = 1e-4;

// Every launcher on one shape, against the CPU kernels.
void check_shape(const ConvTranspose2dShape& s, uint32_t seed) {
  INFO(describe(s));
  // Weights scaled by 1/sqrt(taps reaching an output pixel) so that outputs are O(1).
  const int fan_in = std::max(1, s.c_in * s.kh * s.kw / (s.stride * s.stride));
  const double w_range = 1.0 / std::sqrt(double(fan_in));
  const auto x = random_vector<float>(s.x_size(), seed, -1.0, 1.0);
  const auto w = random_vector<float>(s.w_size(), seed + 1, -w_range, w_range);
  const auto bias = random_vector<float>(std::size_t(s.c_out), seed + 2, -1.0, 1.0);
  const auto dy = random_vector<float>(s.y_size(), seed + 3, -1.0, 1.0);
  // dW sums n*h_in*w_in products and dbias n*h_out*w_out terms: with an O(1) dy they grow with
  // the image and the CPU reference's own float round-off would approach the tolerance. A dy of
  // 1/sqrt(output pixels) keeps both O(1).
  const std::size_t pixels = std::size_t(s.n) * s.h_out * s.w_out;
  const double dy_f_range = 1.0 / std::sqrt(double(std::max<std::size_t>(1, pixels)));
  const auto dy_f = random_vector<float>(s.y_size(), seed + 4, -dy_f_range, dy_f_range);

  std::vector<float> y_ref(s.y_size()), y_nobias_ref(s.y_size()), dx_ref(s.x_size()),
      dw_ref(s.w_size()), db_ref(std::size_t(s.c_out)), dw_nobias_ref(s.w_size());
  unet::cpu::conv_transpose2d_forward<float>(s, x.data(), w.data(), bias.data(), y_ref.data());
  unet::cpu::conv_transpose2d_forward<float>(s, x.data(), w.data(), nullptr, y_nobias_ref.data());
  unet::cpu::conv_transpose2d_backward_data<float>(s, dy.data(), w.data(), dx_ref.data());
  unet::cpu::conv_transpose2d_backward_filter<float>(s, x.data(), dy_f.data(), dw_ref.data(),
                                                     db_ref.data());
  unet::cpu::conv_transpose2d_backward_filter<float>(s, x.data(), dy_f.data(),
                                                     dw_nobias_ref.data(), nullptr);

  DeviceBuffer<float> d_x(x), d_w(w), d_bias(bias), d_dy(dy), d_dy_f(dy_f);
  DeviceBuffer<float> d_y(s.y_size()), d_dx(s.x_size()), d_dw(s.w_size()),
      d_db(std::size_t(s.c_out)),
      d_work(std::max<std::size_t>(1, cu::conv_transpose2d_backward_filter_workspace(s) / sizeof(float)));
  FirstRun first_y("forward"), first_dx("backward-data"), first_dw("backward-filter dw"),
      first_db("backward-filter dbias");

  repeat_runs([&] {
    poison(d_y);
    cu::conv_transpose2d_forward(s, d_x.get(), d_w.get(), d_bias.get(), d_y.get(), nullptr);
    const auto y = d_y.download();
    require_close(y, y_ref, kAtol, kRtol, "forward");
    first_y.check(y);

    poison(d_y);
    cu::conv_transpose2d_forward(s, d_x.get(), d_w.get(), nullptr, d_y.get(), nullptr);
    require_close(d_y.download(), y_nobias_ref, kAtol, kRtol, "forward without bias");

    poison(d_dx);
    cu::conv_transpose2d_backward_data(s, d_dy.get(), d_w.get(), d_dx.get(), nullptr);
    const auto dx = d_dx.download();
    require_close(dx, dx_ref, kAtol, kRtol, "backward-data");
    first_dx.check(dx);

    poison(d_dw);
    poison(d_db);
    cu::conv_transpose2d_backward_filter(s, d_x.get(), d_dy_f.get(), d_dw.get(), d_db.get(),
                                         d_work.get(), nullptr);
    const auto dw = d_dw.download();
    const auto db = d_db.download();
    require_close(dw, dw_ref, kAtol, kRtol, "backward-filter dw");
    require_close(db, db_ref, kAtol, kRtol, "backward-filter dbias");
    first_dw.check(dw);
    first_db.check(db);

    poison(d_dw);
    poison(d_db);  // must stay untouched: no dbias asked for
    cu::conv_transpose2d_backward_filter(s, d_x.get(), d_dy_f.get(), d_dw.get(), nullptr, d_work.get(), nullptr);
    require_close(d_dw.download(), dw_nobias_ref, kAtol, kRtol, "backward-filter without dbias");
    for (const float v : d_db.download()) REQUIRE(std::isnan(v));
  });
}

// Odd sizes with every kernel size, stride and padding mode (split in two to keep each test short
// over the emulator).
void check_odd_sizes(std::initializer_list<int> kernel_sizes, uint32_t seed) {
  for (const auto& [h, w] : {std::pair{7, 5}, std::pair{13, 9}})
    for (const int k : kernel_sizes)
      for (const int stride : {1, 2})
        for (const Padding padding : {Padding::Same, Padding::Valid})
          check_shape(conv_transpose2d_shape(2, 3, h, w, 4, k, stride, padding), seed += 10);
}

}  // namespace

TEST_CASE("cuda conv_transpose2d: U-Net 3x3 stride-2 'same' up-sampling 15->30",
          "[cuda][conv_transpose]") {
  UNET_REQUIRE_GPU();
  check_shape(conv_transpose2d_shape(2, 32, 15, 15, 16, 3, 2, Padding::Same), 11);
}

TEST_CASE("cuda conv_transpose2d: U-Net 3x3 stride-2 'same' up-sampling 30->60",
          "[cuda][conv_transpose]") {
  UNET_REQUIRE_GPU();
  check_shape(conv_transpose2d_shape(2, 16, 30, 30, 8, 3, 2, Padding::Same), 12);
}

TEST_CASE("cuda conv_transpose2d: U-Net 3x3 stride-2 'same' up-sampling 60->120",
          "[cuda][conv_transpose]") {
  UNET_REQUIRE_GPU();
  check_shape(conv_transpose2d_shape(1, 8, 60, 60, 4, 3, 2, Padding::Same), 21);
}

TEST_CASE("cuda conv_transpose2d: U-Net 3x3 stride-2 'same' up-sampling 120->240",
          "[cuda][conv_transpose]") {
  UNET_REQUIRE_GPU();
  check_shape(conv_transpose2d_shape(1, 4, 120, 120, 2, 3, 2, Padding::Same), 22);
}

TEST_CASE("cuda conv_transpose2d: odd sizes, k 1 and 2, every stride and padding",
          "[cuda][conv_transpose]") {
  UNET_REQUIRE_GPU();
  check_odd_sizes({1, 2}, 100);
}

TEST_CASE("cuda conv_transpose2d: odd sizes, k 3 and 5, every stride and padding",
          "[cuda][conv_transpose]") {
  UNET_REQUIRE_GPU();
  check_odd_sizes({3, 5}, 200);
}

TEST_CASE("cuda conv_transpose2d: hand-built shapes with asymmetric padding and kernels",
          "[cuda][conv_transpose]") {
  UNET_REQUIRE_GPU();
  // 3x5 kernel, stride 2, padding on top only, an output cut short on the right (targets past it
  // are dropped) and one row longer than any target at the bottom (written with bias alone).
  check_shape({.n = 2, .c_in = 3, .h_in = 6, .w_in = 5, .c_out = 4, .kh = 3, .kw = 5, .stride = 2,
               .pad_top = 2, .pad_left = 0, .h_out = 12, .w_out = 8},
              201);
  // Stride 3 with a kernel smaller than the stride: some outputs receive no tap at all.
  check_shape({.n = 1, .c_in = 2, .h_in = 4, .w_in = 5, .c_out = 3, .kh = 2, .kw = 2, .stride = 3,
               .pad_top = 1, .pad_left = 0, .h_out = 10, .w_out = 14},
              202);
  // A 5x5 kernel (three blocks of taps in backward-filter) with stride 1 and asymmetric padding.
  check_shape({.n = 1, .c_in = 2, .h_in = 8, .w_in = 7, .c_out = 2, .kh = 5, .kw = 5, .stride = 1,
               .pad_top = 1, .pad_left = 3, .h_out = 9, .w_out = 6},
              203);
}

TEST_CASE("cuda conv_transpose2d: a large one-channel up-sampling splits backward-filter the most",
          "[cuda][conv_transpose]") {
  UNET_REQUIRE_GPU();
  // 2x2 stride-2 up-sampling of two 513x513 images: the adjoint convolution's dW is one tile
  // over 2105352 pixels, so backward-filter splits them into the most slices it makes.
  const ConvTranspose2dShape s = conv_transpose2d_shape(2, 1, 513, 513, 1, 2, 2, Padding::Valid);
  REQUIRE(cu::conv_transpose2d_backward_filter_workspace(s) >= 256 * s.w_size() * sizeof(float));
  check_shape(s, 301);
}
