// 2x2 max pooling: hand-worked windows (ties, NaN, odd edges), a naive reference on odd shapes,
// and the backward pass against finite differences.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <vector>

#include "kernels/cpu/pool.h"
#include "tests/support/gradcheck.h"

namespace {

namespace cpu = unet::cpu;
using unet::kernels::Pool2dShape;
using unet::test::dot;
using unet::test::numeric_gradient;
using unet::test::random_vector;
using unet::test::require_close;

template <typename T>
struct Pooled {
  std::vector<T> y;
  std::vector<uint8_t> argmax;
};

template <typename T>
Pooled<T> pool(const Pool2dShape& s, const std::vector<T>& x) {
  Pooled<T> p{std::vector<T>(s.y_size()), std::vector<uint8_t>(s.y_size())};
  cpu::maxpool2x2_forward(s, x.data(), p.y.data(), p.argmax.data());
  return p;
}

template <typename T>
std::vector<T> unpool(const Pool2dShape& s, const std::vector<T>& dy,
                      const std::vector<uint8_t>& argmax) {
  std::vector<T> dx(s.x_size(), T(777));  // garbage that the kernel must overwrite
  cpu::maxpool2x2_backward(s, dy.data(), argmax.data(), dx.data());
  return dx;
}

// Direct scan of each window in the order (0,0), (0,1), (1,0), (1,1), keeping the first maximum.
// No NaN handling: the NaN rule has its own hand-worked test.
Pooled<double> naive_pool(const Pool2dShape& s, const std::vector<double>& x) {
  Pooled<double> p{std::vector<double>(s.y_size()), std::vector<uint8_t>(s.y_size())};
  std::size_t o = 0;
  for (int plane = 0; plane < s.n * s.c; ++plane)
    for (int oh = 0; oh < s.h_out(); ++oh)
      for (int ow = 0; ow < s.w_out(); ++ow, ++o) {
        for (int k = 0; k < 4; ++k) {
          const int h = 2 * oh + k / 2, w = 2 * ow + k % 2;
          const double v = x[(std::size_t(plane) * s.h_in + h) * s.w_in + w];
          if (k == 0 || v > p.y[o]) {
            p.y[o] = v;
            p.argmax[o] = uint8_t(k);
          }
        }
      }
  return p;
}

// Inputs with no two values within 0.01 of each other: a shuffled evenly spaced grid, so that no
// window has a tie and finite differences never change a window's winner.
std::vector<double> distinct_values(std::size_t n, uint32_t seed) {
  std::vector<double> x(n);
  std::iota(x.begin(), x.end(), 0.0);
  std::shuffle(x.begin(), x.end(), std::mt19937(seed));
  for (auto& v : x) v = 0.01 * v - 0.005 * double(n);
  return x;
}

}  // namespace

TEST_CASE("maxpool: hand-worked 4x4 with a tie", "[pool]") {
  const Pool2dShape s{1, 1, 4, 4};
  const std::vector<float> x = {1,  3,  2, 0,  //
                                4,  2,  1, 5,  //
                                0,  -1, 7, 7,  //
                                -2, -3, 7, 6};
  const Pooled<float> p = pool(s, x);
  CHECK(p.y == std::vector<float>{4, 5, 0, 7});
  CHECK(p.argmax == std::vector<uint8_t>{2, 3, 0, 0});  // the first of the three 7s wins

  const std::vector<float> dx = unpool(s, std::vector<float>{10, 20, 30, 40}, p.argmax);
  CHECK(dx == std::vector<float>{0, 0, 0, 0,    //
                                 10, 0, 0, 20,  //
                                 30, 0, 40, 0,  //
                                 0, 0, 0, 0});
}

TEST_CASE("maxpool: a NaN wins its window, odd edges are dropped", "[pool]") {
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = INFINITY;
  const Pool2dShape s{1, 1, 3, 7};  // row 2 and column 6 are dropped
  const std::vector<float> x = {1,   nan, nan, 9,   -inf, -inf, 100,  //
                                3,   2,   8,   7,   -inf, -inf, 100,  //
                                100, 100, 100, 100, 100,  100,  100};
  const Pooled<float> p = pool(s, x);
  REQUIRE(p.y.size() == 3);
  CHECK(std::isnan(p.y[0]));
  CHECK(std::isnan(p.y[1]));
  CHECK(p.y[2] == -inf);
  CHECK(p.argmax == std::vector<uint8_t>{1, 0, 0});

  const std::vector<float> dx = unpool(s, std::vector<float>{1, 2, 3}, p.argmax);
  CHECK(dx == std::vector<float>{0, 1, 2, 0, 3, 0, 0,  //
                                 0, 0, 0, 0, 0, 0, 0,  //
                                 0, 0, 0, 0, 0, 0, 0});
}

TEST_CASE("maxpool: forward matches a naive reference on odd shapes", "[pool]") {
  for (const Pool2dShape s : {Pool2dShape{2, 3, 7, 5}, Pool2dShape{3, 2, 15, 15}}) {
    // Values on a coarse grid so that ties are common.
    auto x = random_vector(s.x_size(), 1);
    for (auto& v : x) v = std::round(v * 4) / 4;
    const Pooled<double> got = pool(s, x), want = naive_pool(s, x);
    CHECK(got.y == want.y);
    CHECK(got.argmax == want.argmax);
  }
}

TEST_CASE("maxpool: backward matches finite differences", "[pool][gradient]") {
  for (const Pool2dShape s : {Pool2dShape{2, 3, 7, 5}, Pool2dShape{2, 2, 15, 15}}) {
    auto x = distinct_values(s.x_size(), 2);
    const auto r = random_vector(s.y_size(), 3);
    const std::vector<double> dx = unpool(s, r, pool(s, x).argmax);
    require_close(dx, numeric_gradient([&] { return dot(pool(s, x).y, r); }, x), 1e-6, 1e-5, "dx");
  }
}

TEST_CASE("maxpool: the vectorised float rows agree with the scalar double path", "[pool]") {
  // Rows of 18 and 15 windows (one block of eight plus an overlapping one, odd edges dropped),
  // values on a coarse grid so that ties are common, and NaNs scattered in.
  for (const Pool2dShape s : {Pool2dShape{2, 3, 9, 37}, Pool2dShape{1, 2, 8, 30}}) {
    auto xd = random_vector(s.x_size(), 4);
    for (auto& v : xd) v = std::round(v * 4) / 4;
    for (std::size_t i = 0; i < xd.size(); i += 23) xd[i] = std::numeric_limits<double>::quiet_NaN();
    const std::vector<float> xf(xd.begin(), xd.end());
    const Pooled<double> want = pool(s, xd);
    const Pooled<float> got = pool(s, xf);
    CHECK(got.argmax == want.argmax);
    for (std::size_t o = 0; o < got.y.size(); ++o)
      REQUIRE((std::isnan(want.y[o]) ? std::isnan(got.y[o]) : double(got.y[o]) == want.y[o]));

    const auto dyf = random_vector<float>(s.y_size(), 5);
    const std::vector<double> dyd(dyf.begin(), dyf.end());
    const std::vector<double> dxd = unpool(s, dyd, want.argmax);
    const std::vector<float> dxf = unpool(s, dyf, want.argmax);
    CHECK(std::vector<double>(dxf.begin(), dxf.end()) == dxd);
  }
}
