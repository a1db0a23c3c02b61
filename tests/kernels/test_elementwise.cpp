// Elementwise kernels and the flat sum: literal cases, a naive reference on arrays large enough to
// be split among threads, finite-difference gradients of relu and sigmoid, and thread-count
// independence of the sum.
#include <omp.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "kernels/cpu/elementwise.h"
#include "tests/support/gradcheck.h"

namespace {

namespace cpu = unet::cpu;
using unet::test::dot;
using unet::test::numeric_gradient;
using unet::test::random_vector;
using unet::test::require_close;

// Above the kernels' parallel threshold and not a multiple of their block size.
constexpr std::size_t kLarge = 100003;

std::vector<double> relu_of(const std::vector<double>& x) {
  std::vector<double> y(x.size());
  cpu::relu_forward(x.size(), x.data(), y.data());
  return y;
}

std::vector<double> sigmoid_of(const std::vector<double>& x) {
  std::vector<double> y(x.size());
  cpu::sigmoid_forward(x.size(), x.data(), y.data());
  return y;
}

}  // namespace

TEST_CASE("elementwise: fill, add, mul, scale and accumulate on literal values", "[elementwise]") {
  const std::vector<float> a = {1.0f, -2.0f, 3.5f}, b = {0.5f, 4.0f, -1.0f};
  std::vector<float> y(3);
  cpu::fill(3, 7.0f, y.data());
  CHECK(y == std::vector<float>{7.0f, 7.0f, 7.0f});
  cpu::add(3, a.data(), b.data(), y.data());
  CHECK(y == std::vector<float>{1.5f, 2.0f, 2.5f});
  cpu::mul(3, a.data(), b.data(), y.data());
  CHECK(y == std::vector<float>{0.5f, -8.0f, -3.5f});
  cpu::scale(3, a.data(), -2.0f, y.data());
  CHECK(y == std::vector<float>{-2.0f, 4.0f, -7.0f});
  y = {10.0f, 20.0f, 30.0f};
  cpu::accumulate(3, a.data(), y.data());
  CHECK(y == std::vector<float>{11.0f, 18.0f, 33.5f});
}

TEST_CASE("elementwise: ops match a naive loop on a large array", "[elementwise]") {
  const auto a = random_vector<float>(kLarge, 1), b = random_vector<float>(kLarge, 2);
  std::vector<float> sum(kLarge), product(kLarge), scaled(kLarge), acc = b;
  cpu::add(kLarge, a.data(), b.data(), sum.data());
  cpu::mul(kLarge, a.data(), b.data(), product.data());
  cpu::scale(kLarge, a.data(), 0.3f, scaled.data());
  cpu::accumulate(kLarge, a.data(), acc.data());
  for (std::size_t i = 0; i < kLarge; ++i) {
    REQUIRE(sum[i] == a[i] + b[i]);
    REQUIRE(product[i] == a[i] * b[i]);
    REQUIRE(scaled[i] == a[i] * 0.3f);
    REQUIRE(acc[i] == b[i] + a[i]);
  }
}

TEST_CASE("sum: literal values, double accumulation and a naive reference", "[elementwise]") {
  const std::vector<float> small = {1.0f, 2.5f, -0.5f};
  CHECK(cpu::sum(small.size(), small.data()) == 3.0);
  CHECK(cpu::sum<float>(0, nullptr) == 0.0);
  // A float accumulator would lose the 1 entirely.
  const std::vector<float> cancelling = {1e8f, 1.0f, -1e8f};
  CHECK(cpu::sum(cancelling.size(), cancelling.data()) == 1.0);

  const auto x = random_vector<float>(kLarge, 3, 0.0, 2.0);
  double naive = 0;
  for (const float v : x) naive += double(v);
  CHECK(cpu::sum(x.size(), x.data()) == Approx(naive).epsilon(1e-12));
}

TEST_CASE("sum: bitwise identical with 1 and 2 threads", "[elementwise][determinism]") {
  // Doubles: partial sums of floats in double are often exact, which would hide a changed order.
  const auto x = random_vector(kLarge, 4);
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  const double one = cpu::sum(x.size(), x.data());
  omp_set_num_threads(2);
  const double two = cpu::sum(x.size(), x.data());
  omp_set_num_threads(saved);
  CHECK(std::memcmp(&one, &two, sizeof(double)) == 0);
}

TEST_CASE("relu: literal forward values, NaN propagates", "[elementwise]") {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const std::vector<float> x = {-1.5f, 0.0f, 2.5f, nan};
  std::vector<float> y(4);
  cpu::relu_forward(4, x.data(), y.data());
  CHECK(y[0] == 0.0f);
  CHECK(y[1] == 0.0f);
  CHECK(y[2] == 2.5f);
  CHECK(std::isnan(y[3]));

  const std::vector<float> dy = {1.0f, 2.0f, 3.0f, 4.0f};
  std::vector<float> dx(4);
  cpu::relu_backward(4, dy.data(), y.data(), dx.data());
  CHECK(dx == std::vector<float>{0.0f, 0.0f, 3.0f, 0.0f});
}

TEST_CASE("relu: backward matches finite differences", "[elementwise][gradient]") {
  // Inputs at least 0.1 from the kink at zero.
  auto x = random_vector(101, 5);
  for (auto& v : x) v = std::copysign(0.1 + std::abs(v), v);
  const auto r = random_vector(x.size(), 6);
  std::vector<double> dx(x.size());
  cpu::relu_backward(x.size(), r.data(), relu_of(x).data(), dx.data());
  require_close(dx, numeric_gradient([&] { return dot(relu_of(x), r); }, x), 1e-6, 1e-5, "dx");
}

TEST_CASE("sigmoid: literal values, a naive reference and stability at +-100", "[elementwise]") {
  CHECK(sigmoid_of({0.0})[0] == 0.5);
  CHECK(sigmoid_of({2.0})[0] == Approx(0.8807970779778823).epsilon(1e-15));

  const auto extreme = sigmoid_of({100.0, -100.0, 1000.0, -1000.0});
  CHECK(extreme[0] == 1.0);
  CHECK(extreme[1] == Approx(3.7200759760208356e-44).epsilon(1e-12));
  CHECK(extreme[2] == 1.0);
  CHECK(extreme[3] == 0.0);

  const std::vector<float> xf = {100.0f, -100.0f};
  std::vector<float> yf(2);
  cpu::sigmoid_forward(2, xf.data(), yf.data());
  CHECK(yf[0] == 1.0f);
  CHECK(std::isfinite(yf[1]));
  CHECK(yf[1] >= 0.0f);
  CHECK(yf[1] < 1e-30f);

  const auto x = random_vector(kLarge, 7, -10.0, 10.0);
  std::vector<double> naive(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) naive[i] = 1.0 / (1.0 + std::exp(-x[i]));
  require_close(sigmoid_of(x), naive, 0.0, 1e-14, "sigmoid");
}

TEST_CASE("sigmoid: backward matches finite differences", "[elementwise][gradient]") {
  auto x = random_vector(101, 8, -6.0, 6.0);
  const auto r = random_vector(x.size(), 9);
  std::vector<double> dx(x.size());
  cpu::sigmoid_backward(x.size(), r.data(), sigmoid_of(x).data(), dx.data());
  require_close(dx, numeric_gradient([&] { return dot(sigmoid_of(x), r); }, x), 1e-6, 1e-5, "dx");
}
