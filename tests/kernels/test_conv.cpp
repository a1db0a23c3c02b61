// conv2d CPU kernels against a direct 7-loop reference, hand-worked numbers and central finite
// differences; plus float/double agreement and bitwise thread-count independence.
#include <omp.h>

#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "kernels/cpu/conv.h"
#include "tests/support/conv_reference.h"
#include "tests/support/gradcheck.h"

namespace {

using unet::cpu::Conv2dShape;
using unet::kernels::Padding;
using unet::test::ConvGrads;
using unet::test::describe;
using unet::test::dot;
using unet::test::naive_backward;
using unet::test::naive_forward;
using unet::test::numeric_gradient;
using unet::test::random_vector;
using unet::test::require_close;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

std::vector<float> to_float(const std::vector<double>& v) { return {v.begin(), v.end()}; }

std::vector<double> run_forward(const Conv2dShape& s, const std::vector<double>& x,
                                const std::vector<double>& w, const std::vector<double>& b) {
  std::vector<double> y(s.y_size(), kNaN);  // NaN exposes any element the kernel leaves unwritten
  unet::cpu::conv2d_forward(s, x.data(), w.data(), b.empty() ? nullptr : b.data(), y.data());
  return y;
}

void check_forward(const Conv2dShape& s, uint32_t seed, bool with_bias) {
  INFO(describe(s));
  const auto x = random_vector(s.x_size(), seed);
  const auto w = random_vector(s.w_size(), seed + 1);
  const auto b = with_bias ? random_vector(std::size_t(s.c_out), seed + 2) : std::vector<double>{};
  require_close(run_forward(s, x, w, b), naive_forward(s, x, w, b), 1e-12, 1e-12, "y");
}

void check_backward_vs_naive(const Conv2dShape& s, uint32_t seed) {
  INFO(describe(s));
  const auto x = random_vector(s.x_size(), seed);
  const auto w = random_vector(s.w_size(), seed + 1);
  const auto dy = random_vector(s.y_size(), seed + 2);
  std::vector<double> dx(s.x_size(), kNaN), dw(s.w_size(), kNaN);
  unet::cpu::conv2d_backward_data(s, dy.data(), w.data(), dx.data());
  unet::cpu::conv2d_backward_filter(s, x.data(), dy.data(), dw.data(),
                                    static_cast<double*>(nullptr));
  const ConvGrads expected = naive_backward(s, x, w, dy);
  require_close(dx, expected.dx, 1e-10, 1e-10, "dx");
  require_close(dw, expected.dw, 1e-10, 1e-10, "dw");
}

// L = sum(y * r), so dL/dy = r: the kernels' gradients given dy = r must match finite differences.
void check_gradients(const Conv2dShape& s, uint32_t seed) {
  INFO(describe(s));
  auto x = random_vector(s.x_size(), seed);
  auto w = random_vector(s.w_size(), seed + 1);
  auto b = random_vector(std::size_t(s.c_out), seed + 2);
  const auto r = random_vector(s.y_size(), seed + 3);
  const auto loss = [&] { return dot(run_forward(s, x, w, b), r); };

  std::vector<double> dx(s.x_size(), kNaN), dw(s.w_size(), kNaN), db(std::size_t(s.c_out), kNaN);
  unet::cpu::conv2d_backward_data(s, r.data(), w.data(), dx.data());
  unet::cpu::conv2d_backward_filter(s, x.data(), r.data(), dw.data(), db.data());
  require_close(dx, numeric_gradient(loss, x), 1e-6, 1e-6, "dx");
  require_close(dw, numeric_gradient(loss, w), 1e-6, 1e-6, "dw");
  require_close(db, numeric_gradient(loss, b), 1e-6, 1e-6, "dbias");

  std::vector<double> dw_alone(s.w_size(), kNaN);
  unet::cpu::conv2d_backward_filter(s, x.data(), r.data(), dw_alone.data(),
                                    static_cast<double*>(nullptr));
  require_close(dw_alone, dw, 0.0, 0.0, "dw without dbias");
}

// Output rows below the input (more than any formula gives), unused input columns, kh != kw.
const Conv2dShape kAsymmetric{2, 3, 9, 8, 4, 3, 2, 2, 2, 0, 6, 3};
// 1x1 stride 1 unpadded, but the output is not the input's size: must not take the 1x1 fast path.
const Conv2dShape kCropped1x1{2, 3, 5, 6, 2, 1, 1, 1, 0, 0, 4, 3};
const Conv2dShape kGrown1x1{1, 2, 3, 3, 2, 1, 1, 1, 0, 0, 5, 4};

}  // namespace

TEST_CASE("conv2d forward: 2x2 kernel on 3x3 input, Keras 'same' pads only after", "[conv]") {
  const auto s = unet::kernels::conv2d_shape(1, 1, 3, 3, 1, 2, 1, Padding::Same);
  REQUIRE(s.pad_top == 0);
  REQUIRE(s.pad_left == 0);
  REQUIRE(s.h_out == 3);
  const std::vector<double> x{1, 2, 3, 4, 5, 6, 7, 8, 9};
  const std::vector<double> w{1, 2, 3, 4};
  const std::vector<double> bias{0.5};
  // y[i][j] = x[i][j] + 2 x[i][j+1] + 3 x[i+1][j] + 4 x[i+1][j+1], zero past the edge, + 0.5.
  const std::vector<double> expected{37.5, 47.5, 21.5, 67.5, 77.5, 33.5, 23.5, 26.5, 9.5};
  require_close(run_forward(s, x, w, bias), expected, 0.0, 0.0, "y");
}

TEST_CASE("conv2d forward matches the direct loop on Keras shapes", "[conv]") {
  std::mt19937 rng(7);
  uint32_t seed = 100;
  const int sizes[][2] = {{7, 5}, {15, 15}, {6, 8}};
  for (const auto& hw : sizes)
    for (int k : {1, 2, 3, 5})
      for (int stride : {1, 2})
        for (Padding padding : {Padding::Same, Padding::Valid}) {
          if (padding == Padding::Valid && (hw[0] < k || hw[1] < k)) continue;
          const int n = 1 + int(rng() % 3), c_in = 1 + int(rng() % 4), c_out = 1 + int(rng() % 5);
          const auto s =
              unet::kernels::conv2d_shape(n, c_in, hw[0], hw[1], c_out, k, stride, padding);
          check_forward(s, seed, /*with_bias=*/seed % 2 == 0);
          ++seed;
        }
}

TEST_CASE("conv2d forward matches the direct loop on explicit asymmetric shapes", "[conv]") {
  check_forward(kAsymmetric, 11, true);
  check_forward(kAsymmetric, 12, false);
  check_forward(kCropped1x1, 13, true);
  check_forward(kGrown1x1, 14, true);
}

TEST_CASE("conv2d backward matches finite differences", "[conv]") {
  check_gradients(unet::kernels::conv2d_shape(2, 2, 5, 4, 3, 3, 2, Padding::Same), 21);
  check_gradients(unet::kernels::conv2d_shape(2, 3, 6, 5, 2, 2, 2, Padding::Same), 22);
  check_gradients(unet::kernels::conv2d_shape(1, 2, 7, 6, 2, 5, 1, Padding::Valid), 23);
  // 1x1 'same' stride 1: the fast path that multiplies x directly.
  check_gradients(unet::kernels::conv2d_shape(2, 3, 4, 3, 2, 1, 1, Padding::Same), 24);
  check_gradients(kAsymmetric, 25);
  check_gradients(kCropped1x1, 26);
  check_gradients(kGrown1x1, 27);
}

TEST_CASE("conv2d at the reference model's sizes: many bands per image", "[conv]") {
  check_forward(unet::kernels::conv2d_shape(1, 32, 240, 240, 2, 3, 1, Padding::Same), 31, true);
  check_backward_vs_naive(unet::kernels::conv2d_shape(2, 32, 60, 60, 3, 3, 1, Padding::Same), 32);
  const auto pointwise = unet::kernels::conv2d_shape(1, 128, 120, 120, 3, 1, 1, Padding::Same);
  check_forward(pointwise, 33, true);
  check_backward_vs_naive(pointwise, 34);
}

TEST_CASE("conv2d float agrees with double", "[conv]") {
  const auto s = unet::kernels::conv2d_shape(2, 16, 30, 30, 8, 3, 1, Padding::Same);
  const auto x = random_vector(s.x_size(), 41);
  const auto w = random_vector(s.w_size(), 42);
  const auto b = random_vector(std::size_t(s.c_out), 43);
  const auto dy = random_vector(s.y_size(), 44);
  const auto xf = to_float(x), wf = to_float(w), bf = to_float(b), dyf = to_float(dy);

  std::vector<double> y(s.y_size()), dx(s.x_size()), dw(s.w_size()), db(b.size());
  std::vector<float> yf(y.size()), dxf(dx.size()), dwf(dw.size()), dbf(db.size());
  unet::cpu::conv2d_forward(s, x.data(), w.data(), b.data(), y.data());
  unet::cpu::conv2d_forward(s, xf.data(), wf.data(), bf.data(), yf.data());
  unet::cpu::conv2d_backward_data(s, dy.data(), w.data(), dx.data());
  unet::cpu::conv2d_backward_data(s, dyf.data(), wf.data(), dxf.data());
  unet::cpu::conv2d_backward_filter(s, x.data(), dy.data(), dw.data(), db.data());
  unet::cpu::conv2d_backward_filter(s, xf.data(), dyf.data(), dwf.data(), dbf.data());
  require_close(yf, y, 1e-4, 1e-4, "y");
  require_close(dxf, dx, 1e-4, 1e-4, "dx");
  require_close(dwf, dw, 1e-4, 1e-4, "dw");
  require_close(dbf, db, 1e-4, 1e-4, "dbias");
}

TEST_CASE("conv2d float results are bitwise identical for any thread count", "[conv]") {
  const auto s = unet::kernels::conv2d_shape(5, 16, 30, 30, 8, 3, 1, Padding::Same);
  const auto x = random_vector<float>(s.x_size(), 51);
  const auto w = random_vector<float>(s.w_size(), 52);
  const auto dy = random_vector<float>(s.y_size(), 53);
  struct Results {
    std::vector<float> y, dx, dw, db;
  };
  const auto run = [&](int threads) {
    omp_set_num_threads(threads);
    Results r{std::vector<float>(s.y_size()), std::vector<float>(s.x_size()),
              std::vector<float>(s.w_size()), std::vector<float>(std::size_t(s.c_out))};
    unet::cpu::conv2d_forward(s, x.data(), w.data(), static_cast<const float*>(nullptr),
                              r.y.data());
    unet::cpu::conv2d_backward_data(s, dy.data(), w.data(), r.dx.data());
    unet::cpu::conv2d_backward_filter(s, x.data(), dy.data(), r.dw.data(), r.db.data());
    return r;
  };
  const auto same_bits = [](const std::vector<float>& a, const std::vector<float>& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
  };
  const int saved = omp_get_max_threads();
  const Results one = run(1), two = run(2), three = run(3);
  omp_set_num_threads(saved);
  for (const Results* other : {&two, &three}) {
    CHECK(same_bits(one.y, other->y));
    CHECK(same_bits(one.dx, other->dx));
    CHECK(same_bits(one.dw, other->dw));
    CHECK(same_bits(one.db, other->db));
  }
}
