// Dropout: the mask against Philox drawn element by element, reproducibility, the kept fraction,
// scaling, offsets, p = 0 and invalid p, thread-count independence, and the backward pass.
#include <omp.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <vector>

#include "kernels/cpu/dropout.h"
#include "kernels/philox.h"
#include "tests/support/gradcheck.h"

namespace {

namespace cpu = unet::cpu;
using unet::test::dot;
using unet::test::numeric_gradient;
using unet::test::random_vector;
using unet::test::require_close;

constexpr std::size_t kCount = 100003;  // above the parallel threshold, not a multiple of 4

template <typename T>
struct Dropped {
  std::vector<T> y;
  std::vector<uint8_t> mask;
};

template <typename T>
Dropped<T> drop(const std::vector<T>& x, T p, uint64_t seed, uint64_t offset) {
  Dropped<T> d{std::vector<T>(x.size()), std::vector<uint8_t>(x.size(), 7)};
  cpu::dropout_forward(x.size(), p, seed, offset, x.data(), d.y.data(), d.mask.data());
  return d;
}

std::vector<uint8_t> mask_of(std::size_t count, float p, uint64_t seed, uint64_t offset) {
  return drop(std::vector<float>(count, 1.0f), p, seed, offset).mask;
}

double kept_fraction(const std::vector<uint8_t>& mask) {
  std::size_t kept = 0;
  for (const uint8_t m : mask) kept += m;
  return double(kept) / double(mask.size());
}

}  // namespace

TEST_CASE("dropout: mask is Philox element by element, kept values scaled", "[dropout]") {
  const float p = 0.3f;
  const uint64_t seed = 1234, offset = 5;
  const auto x = random_vector<float>(kCount, 1);
  const Dropped<float> d = drop(x, p, seed, offset);
  for (std::size_t i = 0; i < kCount; ++i) {
    const bool keep = unet::kernels::philox_uniform_at(seed, offset, i) >= p;
    REQUIRE(d.mask[i] == uint8_t(keep));
    if (keep)
      REQUIRE(d.y[i] == Approx(double(x[i]) / (1.0 - double(p))).epsilon(1e-6));
    else
      REQUIRE(d.y[i] == 0.0f);
  }
}

TEST_CASE("dropout: kept fraction is close to 1 - p", "[dropout]") {
  for (const float p : {0.1f, 0.3f, 0.5f}) {
    CHECK(kept_fraction(mask_of(kCount, p, 7, 0)) == Approx(1.0 - p).margin(0.01));
  }
}

TEST_CASE("dropout: same seed and offset reproduce the mask, another seed does not", "[dropout]") {
  const auto a = mask_of(kCount, 0.5f, 42, 100), b = mask_of(kCount, 0.5f, 42, 100);
  CHECK(a == b);
  const auto c = mask_of(kCount, 0.5f, 43, 100);
  std::size_t differ = 0;
  for (std::size_t i = 0; i < kCount; ++i) differ += a[i] != c[i];
  // Independent masks at p = 0.5 disagree on about half the elements.
  CHECK(double(differ) / double(kCount) == Approx(0.5).margin(0.01));
}

TEST_CASE("dropout: an offset of k continues the stream from element k", "[dropout]") {
  const auto base = mask_of(kCount, 0.4f, 9, 0);
  for (const uint64_t k : {1, 3, 4, 4099}) {
    const auto shifted = mask_of(kCount - k, 0.4f, 9, k);
    CHECK(std::equal(shifted.begin(), shifted.end(), base.begin() + k));
  }
}

TEST_CASE("dropout: identical with 1 and 2 threads", "[dropout][determinism]") {
  const auto x = random_vector<float>(kCount, 2);
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  const Dropped<float> one = drop(x, 0.25f, 3, 17);
  omp_set_num_threads(2);
  const Dropped<float> two = drop(x, 0.25f, 3, 17);
  omp_set_num_threads(saved);
  CHECK(one.mask == two.mask);
  CHECK(one.y == two.y);
}

TEST_CASE("dropout: p = 0 copies and keeps everything, p outside 0 <= p < 1 throws", "[dropout]") {
  const auto x = random_vector<float>(1001, 3);
  const Dropped<float> d = drop(x, 0.0f, 1, 0);
  CHECK(d.y == x);
  CHECK(d.mask == std::vector<uint8_t>(x.size(), 1));

  std::vector<float> dx(x.size());
  cpu::dropout_backward(x.size(), 0.0f, x.data(), d.mask.data(), dx.data());
  CHECK(dx == x);

  for (const float p : {-0.1f, 1.0f, 1.5f, std::numeric_limits<float>::quiet_NaN()}) {
    CHECK_THROWS_AS(drop(x, p, 1, 0), std::invalid_argument);
    CHECK_THROWS_AS(cpu::dropout_backward(x.size(), p, x.data(), d.mask.data(), dx.data()),
                    std::invalid_argument);
  }
}

TEST_CASE("dropout: backward applies the mask and matches finite differences",
          "[dropout][gradient]") {
  const double p = 0.35;
  auto x = random_vector(257, 4);
  const auto r = random_vector(x.size(), 5);
  const Dropped<double> d = drop(x, p, 11, 3);
  std::vector<double> dx(x.size());
  cpu::dropout_backward(x.size(), p, r.data(), d.mask.data(), dx.data());
  for (std::size_t i = 0; i < x.size(); ++i)
    REQUIRE(dx[i] == Approx(d.mask[i] ? r[i] / (1 - p) : 0.0).epsilon(1e-14));
  require_close(dx, numeric_gradient([&] { return dot(drop(x, p, 11, 3).y, r); }, x), 1e-6, 1e-5,
                "dx");
}

TEST_CASE("dropout: vectorised mask equals Philox for float and double p, any start",
          "[dropout]") {
  // p = 0.25 and 0.5 put p 2^24 on an integer, the edge of the integer threshold; offsets that
  // are not multiples of 4 start and end the vector batches mid-counter.
  for (const double p : {0.25, 0.5, 0.3, 1e-9}) {
    for (const uint64_t offset : {0, 1, 6, 4099}) {
      const std::size_t n = 4096 + 77;
      const auto fmask = mask_of(n, float(p), 21, offset);
      const auto dmask = drop(std::vector<double>(n, 1.0), p, 21, offset).mask;
      for (std::size_t i = 0; i < n; ++i) {
        const float u = unet::kernels::philox_uniform_at(21, offset, i);
        REQUIRE(fmask[i] == uint8_t(u >= float(p)));
        REQUIRE(dmask[i] == uint8_t(double(u) >= p));
      }
    }
  }
}
