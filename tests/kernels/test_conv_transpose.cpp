// conv_transpose2d CPU kernels against a direct scatter loop written from the definition (not via
// conv2d, which the kernels reuse), hand-worked numbers and central finite differences; plus
// float/double agreement and bitwise thread-count independence.
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

using unet::cpu::ConvTranspose2dShape;
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

std::vector<double> run_forward(const ConvTranspose2dShape& s, const std::vector<double>& x,
                                const std::vector<double>& w, const std::vector<double>& b) {
  std::vector<double> y(s.y_size(), kNaN);  // NaN exposes any element the kernel leaves unwritten
  unet::cpu::conv_transpose2d_forward(s, x.data(), w.data(), b.empty() ? nullptr : b.data(),
                                      y.data());
  return y;
}

void check_forward(const ConvTranspose2dShape& s, uint32_t seed, bool with_bias) {
  INFO(describe(s));
  const auto x = random_vector(s.x_size(), seed);
  const auto w = random_vector(s.w_size(), seed + 1);
  const auto b = with_bias ? random_vector(std::size_t(s.c_out), seed + 2) : std::vector<double>{};
  require_close(run_forward(s, x, w, b), naive_forward(s, x, w, b), 1e-12, 1e-12, "y");
}

void check_backward_vs_naive(const ConvTranspose2dShape& s, uint32_t seed) {
  INFO(describe(s));
  const auto x = random_vector(s.x_size(), seed);
  const auto w = random_vector(s.w_size(), seed + 1);
  const auto dy = random_vector(s.y_size(), seed + 2);
  std::vector<double> dx(s.x_size(), kNaN), dw(s.w_size(), kNaN);
  unet::cpu::conv_transpose2d_backward_data(s, dy.data(), w.data(), dx.data());
  unet::cpu::conv_transpose2d_backward_filter(s, x.data(), dy.data(), dw.data(),
                                              static_cast<double*>(nullptr));
  const ConvGrads expected = naive_backward(s, x, w, dy);
  require_close(dx, expected.dx, 1e-10, 1e-10, "dx");
  require_close(dw, expected.dw, 1e-10, 1e-10, "dw");
}

// L = sum(y * r), so dL/dy = r: the kernels' gradients given dy = r must match finite differences.
void check_gradients(const ConvTranspose2dShape& s, uint32_t seed) {
  INFO(describe(s));
  auto x = random_vector(s.x_size(), seed);
  auto w = random_vector(s.w_size(), seed + 1);
  auto b = random_vector(std::size_t(s.c_out), seed + 2);
  const auto r = random_vector(s.y_size(), seed + 3);
  const auto loss = [&] { return dot(run_forward(s, x, w, b), r); };

  std::vector<double> dx(s.x_size(), kNaN), dw(s.w_size(), kNaN), db(std::size_t(s.c_out), kNaN);
  unet::cpu::conv_transpose2d_backward_data(s, r.data(), w.data(), dx.data());
  unet::cpu::conv_transpose2d_backward_filter(s, x.data(), r.data(), dw.data(), db.data());
  require_close(dx, numeric_gradient(loss, x), 1e-6, 1e-6, "dx");
  require_close(dw, numeric_gradient(loss, w), 1e-6, 1e-6, "dw");
  require_close(db, numeric_gradient(loss, b), 1e-6, 1e-6, "dbias");
}

// Output cut short at the bottom (last input row partly dropped), one extra output column that
// nothing reaches, kh != kw.
const ConvTranspose2dShape kAsymmetric{2, 3, 4, 5, 2, 3, 2, 2, 1, 0, 7, 11};

}  // namespace

TEST_CASE("conv_transpose2d forward: 3x3 stride 2 'same' drops the last tap", "[conv_transpose]") {
  const auto s = unet::kernels::conv_transpose2d_shape(1, 1, 2, 2, 1, 3, 2, Padding::Same);
  REQUIRE(s.h_out == 4);
  REQUIRE(s.w_out == 4);
  REQUIRE(s.pad_top == 0);
  REQUIRE(s.pad_left == 0);
  const std::vector<double> x{1, 2, 3, 4};
  const std::vector<double> w{1, 2, 3, 4, 5, 6, 7, 8, 9};
  // Input (i, j) lands at rows 2i..2i+2, columns 2j..2j+2; row 4 and column 4 fall off.
  // E.g. y[2][2] = x00 w22 + x01 w20 + x10 w02 + x11 w00 = 9 + 14 + 9 + 4.
  const std::vector<double> expected{1,  2,  5,  4,   //
                                     4,  5,  14, 10,  //
                                     10, 14, 36, 24,  //
                                     12, 15, 34, 20};
  require_close(run_forward(s, x, w, {}), expected, 0.0, 0.0, "y");
}

TEST_CASE("conv_transpose2d forward matches the scatter loop on Keras shapes", "[conv_transpose]") {
  std::mt19937 rng(8);
  uint32_t seed = 200;
  const int sizes[][2] = {{7, 5}, {15, 15}, {6, 8}};
  for (const auto& hw : sizes)
    for (int k : {1, 2, 3, 5})
      for (int stride : {1, 2})
        for (Padding padding : {Padding::Same, Padding::Valid}) {
          const int n = 1 + int(rng() % 3), c_in = 1 + int(rng() % 4), c_out = 1 + int(rng() % 5);
          const auto s = unet::kernels::conv_transpose2d_shape(n, c_in, hw[0], hw[1], c_out, k,
                                                               stride, padding);
          check_forward(s, seed, /*with_bias=*/seed % 2 == 0);
          ++seed;
        }
}

TEST_CASE("conv_transpose2d forward matches the scatter loop on an explicit asymmetric shape",
          "[conv_transpose]") {
  check_forward(kAsymmetric, 11, true);
  check_forward(kAsymmetric, 12, false);
}

TEST_CASE("conv_transpose2d backward matches finite differences", "[conv_transpose]") {
  check_gradients(unet::kernels::conv_transpose2d_shape(2, 3, 4, 3, 2, 3, 2, Padding::Same), 21);
  check_gradients(unet::kernels::conv_transpose2d_shape(2, 2, 3, 4, 3, 2, 2, Padding::Valid), 22);
  check_gradients(unet::kernels::conv_transpose2d_shape(1, 2, 4, 4, 2, 5, 1, Padding::Same), 23);
  check_gradients(unet::kernels::conv_transpose2d_shape(2, 3, 3, 4, 2, 1, 1, Padding::Same), 24);
  check_gradients(kAsymmetric, 25);
}

TEST_CASE("conv_transpose2d at the reference model's up-sampling sizes", "[conv_transpose]") {
  uint32_t seed = 300;
  for (int h : {15, 30, 60, 120}) {
    const auto s = unet::kernels::conv_transpose2d_shape(2, 8, h, h, 4, 3, 2, Padding::Same);
    REQUIRE(s.h_out == 2 * h);
    check_forward(s, seed, true);
    check_backward_vs_naive(s, seed + 10);
    seed += 20;
  }
}

TEST_CASE("conv_transpose2d float agrees with double", "[conv_transpose]") {
  const auto s = unet::kernels::conv_transpose2d_shape(2, 16, 15, 15, 8, 3, 2, Padding::Same);
  const auto x = random_vector(s.x_size(), 41);
  const auto w = random_vector(s.w_size(), 42);
  const auto b = random_vector(std::size_t(s.c_out), 43);
  const auto dy = random_vector(s.y_size(), 44);
  const auto xf = to_float(x), wf = to_float(w), bf = to_float(b), dyf = to_float(dy);

  std::vector<double> y(s.y_size()), dx(s.x_size()), dw(s.w_size()), db(b.size());
  std::vector<float> yf(y.size()), dxf(dx.size()), dwf(dw.size()), dbf(db.size());
  unet::cpu::conv_transpose2d_forward(s, x.data(), w.data(), b.data(), y.data());
  unet::cpu::conv_transpose2d_forward(s, xf.data(), wf.data(), bf.data(), yf.data());
  unet::cpu::conv_transpose2d_backward_data(s, dy.data(), w.data(), dx.data());
  unet::cpu::conv_transpose2d_backward_data(s, dyf.data(), wf.data(), dxf.data());
  unet::cpu::conv_transpose2d_backward_filter(s, x.data(), dy.data(), dw.data(), db.data());
  unet::cpu::conv_transpose2d_backward_filter(s, xf.data(), dyf.data(), dwf.data(), dbf.data());
  require_close(yf, y, 1e-4, 1e-4, "y");
  require_close(dxf, dx, 1e-4, 1e-4, "dx");
  require_close(dwf, dw, 1e-4, 1e-4, "dw");
  require_close(dbf, db, 1e-4, 1e-4, "dbias");
}

TEST_CASE("conv_transpose2d float results are bitwise identical for any thread count",
          "[conv_transpose]") {
  const auto s = unet::kernels::conv_transpose2d_shape(5, 16, 15, 15, 8, 3, 2, Padding::Same);
  const auto x = random_vector<float>(s.x_size(), 51);
  const auto w = random_vector<float>(s.w_size(), 52);
  const auto b = random_vector<float>(std::size_t(s.c_out), 53);
  const auto dy = random_vector<float>(s.y_size(), 54);
  struct Results {
    std::vector<float> y, dx, dw, db;
  };
  const auto run = [&](int threads) {
    omp_set_num_threads(threads);
    Results r{std::vector<float>(s.y_size()), std::vector<float>(s.x_size()),
              std::vector<float>(s.w_size()), std::vector<float>(std::size_t(s.c_out))};
    unet::cpu::conv_transpose2d_forward(s, x.data(), w.data(), b.data(), r.y.data());
    unet::cpu::conv_transpose2d_backward_data(s, dy.data(), w.data(), r.dx.data());
    unet::cpu::conv_transpose2d_backward_filter(s, x.data(), dy.data(), r.dw.data(), r.db.data());
    return r;
  };
  const auto same_bits = [](const std::vector<float>& a, const std::vector<float>& c) {
    return a.size() == c.size() && std::memcmp(a.data(), c.data(), a.size() * sizeof(float)) == 0;
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
