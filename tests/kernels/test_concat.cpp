// Channel concatenation and split: a literal case, a naive reference on odd shapes, the round
// trip, and split as the gradient of concat against finite differences.
#include <catch2/catch.hpp>
#include <vector>

#include "kernels/cpu/concat.h"
#include "tests/support/gradcheck.h"

namespace {

namespace cpu = unet::cpu;
using unet::kernels::ConcatShape;
using unet::test::dot;
using unet::test::numeric_gradient;
using unet::test::random_vector;
using unet::test::require_close;

template <typename T>
std::vector<T> concat(const ConcatShape& s, const std::vector<T>& a, const std::vector<T>& b) {
  std::vector<T> out(s.out_size());
  cpu::concat_channels(s, a.data(), b.data(), out.data());
  return out;
}

}  // namespace

TEST_CASE("concat: literal two-image case", "[concat]") {
  const ConcatShape s{2, 1, 2, 2};
  // a: one channel of two pixels per image; b: two channels per image.
  const std::vector<float> a = {1, 2, 3, 4};
  const std::vector<float> b = {10, 11, 12, 13, 20, 21, 22, 23};
  const std::vector<float> out = concat(s, a, b);
  CHECK(out == std::vector<float>{1, 2, 10, 11, 12, 13, 3, 4, 20, 21, 22, 23});

  std::vector<float> a2(a.size()), b2(b.size());
  cpu::split_channels(s, out.data(), a2.data(), b2.data());
  CHECK(a2 == a);
  CHECK(b2 == b);
}

TEST_CASE("concat: matches a naive reference and split inverts it", "[concat]") {
  const ConcatShape s{3, 5, 3, 7 * 9};
  const auto a = random_vector<float>(s.a_size(), 1), b = random_vector<float>(s.b_size(), 2);
  const std::vector<float> out = concat(s, a, b);
  const int channels = s.c_a + s.c_b;
  for (int n = 0; n < s.n; ++n)
    for (int c = 0; c < channels; ++c)
      for (int j = 0; j < s.hw; ++j) {
        const float want = c < s.c_a ? a[(std::size_t(n) * s.c_a + c) * s.hw + j]
                                     : b[(std::size_t(n) * s.c_b + c - s.c_a) * s.hw + j];
        REQUIRE(out[(std::size_t(n) * channels + c) * s.hw + j] == want);
      }
  std::vector<float> a2(a.size()), b2(b.size());
  cpu::split_channels(s, out.data(), a2.data(), b2.data());
  CHECK(a2 == a);
  CHECK(b2 == b);
}

TEST_CASE("concat: split is the gradient of concat", "[concat][gradient]") {
  const ConcatShape s{2, 3, 4, 5 * 3};
  auto a = random_vector(s.a_size(), 3), b = random_vector(s.b_size(), 4);
  const auto r = random_vector(s.out_size(), 5);
  std::vector<double> da(a.size()), db(b.size());
  cpu::split_channels(s, r.data(), da.data(), db.data());
  const auto loss = [&] { return dot(concat(s, a, b), r); };
  require_close(da, numeric_gradient(loss, a), 1e-6, 1e-5, "da");
  require_close(db, numeric_gradient(loss, b), 1e-6, 1e-5, "db");
}
