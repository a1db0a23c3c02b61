// Augmentation: determinism per seed, identity when disabled, image and mask staying aligned
// under geometric transforms (exactly for flips), intensity changes that spare the mask and the
// background, and option validation.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>

#include "train/augment.h"

using namespace unet;

namespace {

constexpr int kSize = 48;
constexpr float kInside = 2.0f, kOutside = 0.5f, kThreshold = 1.25f;

// An asymmetric blob (an L shape plus a disc off-centre) on a non-zero head, with a zero border
// (background); the mask is the blob, so mask == (channel 0 > kThreshold). Channel 1 is a ramp.
Sample blob_sample() {
  Sample s;
  s.channels = 2;
  s.height = s.width = kSize;
  s.image.assign(std::size_t(2 * kSize * kSize), 0.0f);
  s.mask.assign(std::size_t(kSize * kSize), 0.0f);
  const std::size_t plane = std::size_t(kSize * kSize);
  for (int y = 4; y < kSize - 4; ++y)
    for (int x = 4; x < kSize - 4; ++x) {
      const bool l_shape =
          (x >= 10 && x < 16 && y >= 8 && y < 30) || (x >= 10 && x < 28 && y >= 24 && y < 30);
      const bool disc = (x - 32) * (x - 32) + (y - 14) * (y - 14) < 25;
      const std::size_t i = std::size_t(y * kSize + x);
      s.image[i] = l_shape || disc ? kInside : kOutside;
      s.image[plane + i] = 0.1f + float(x) / kSize;
      s.mask[i] = l_shape || disc ? 1.0f : 0.0f;
    }
  s.id = "blob";
  return s;
}

AugmentOptions geometry_only() {
  AugmentOptions o = AugmentOptions::none();
  o.rotation = {1.0, -30.0, 30.0};
  o.horizontal_flip = 0.5;
  o.vertical_flip = 0.5;
  o.scaling = {1.0, 0.8, 1.2};
  o.translation = {1.0, -0.1, 0.1};
  return o;
}

AugmentOptions intensity_only() {
  AugmentOptions o = AugmentOptions::none();
  o.brightness.probability = o.contrast.probability = o.gamma.probability = 1.0;
  o.noise = {1.0, 0.01, 0.05};
  return o;
}

float at(const Sample& s, int c, int y, int x) {
  return s.image[std::size_t(c) * std::size_t(kSize * kSize) + std::size_t(y * kSize + x)];
}

}  // namespace

TEST_CASE("augment: deterministic per seed, different across seeds", "[data][augment]") {
  const AugmentOptions options;  // the defaults
  Sample a = blob_sample(), b = blob_sample();
  augment(a, options, 42);
  augment(b, options, 42);
  CHECK(a.image == b.image);
  CHECK(a.mask == b.mask);
  int differing = 0;
  for (uint64_t seed = 1; seed <= 5; ++seed) {
    Sample other = blob_sample();
    augment(other, options, seed);
    differing += other.image != a.image;
  }
  CHECK(differing >= 4);
}

TEST_CASE("augment: disabled or zero probabilities are the identity", "[data][augment]") {
  const Sample original = blob_sample();
  for (uint64_t seed = 0; seed < 5; ++seed) {
    Sample s = original;
    augment(s, AugmentOptions::none(), seed);
    CHECK(s.image == original.image);
    CHECK(s.mask == original.mask);
  }
  // Ranges set but probabilities 0: still the identity.
  AugmentOptions zero = geometry_only();
  zero.rotation.probability = zero.scaling.probability = zero.translation.probability = 0.0;
  zero.horizontal_flip = zero.vertical_flip = 0.0;
  Sample s = original;
  augment(s, zero, 9);
  CHECK(s.image == original.image);
}

TEST_CASE("augment: flips move image and mask together, exactly", "[data][augment]") {
  const Sample original = blob_sample();
  for (int which = 0; which < 2; ++which) {
    AugmentOptions o = AugmentOptions::none();
    (which == 0 ? o.horizontal_flip : o.vertical_flip) = 1.0;
    Sample s = original;
    augment(s, o, 3);
    int wrong = 0;
    for (int y = 0; y < kSize; ++y)
      for (int x = 0; x < kSize; ++x) {
        const int sy = which == 0 ? y : kSize - 1 - y, sx = which == 0 ? kSize - 1 - x : x;
        for (int c = 0; c < 2; ++c) wrong += at(s, c, y, x) != at(original, c, sy, sx);
        const float mask = s.mask[std::size_t(y * kSize + x)];
        wrong += mask != original.mask[std::size_t(sy * kSize + sx)];
        wrong += (mask == 1.0f) != (at(s, 0, y, x) > kThreshold);
      }
    CHECK(wrong == 0);
  }
}

TEST_CASE("augment: combined geometric transforms keep image and mask aligned", "[data][augment]") {
  const Sample original = blob_sample();
  const auto tumour = std::count(original.mask.begin(), original.mask.end(), 1.0f);
  for (uint64_t seed = 0; seed < 20; ++seed) {
    INFO("seed " << seed);
    Sample s = original;
    augment(s, geometry_only(), seed);
    REQUIRE(s.image.size() == original.image.size());
    int disagree = 0;
    for (int y = 0; y < kSize; ++y)
      for (int x = 0; x < kSize; ++x)
        disagree += (s.mask[std::size_t(y * kSize + x)] == 1.0f) != (at(s, 0, y, x) > kThreshold);
    // Bilinear image against nearest mask differ at most along the outline.
    CHECK(disagree <= tumour / 10);
    const auto after = std::count(s.mask.begin(), s.mask.end(), 1.0f);
    CHECK(after > tumour / 2);
    CHECK(
        std::all_of(s.mask.begin(), s.mask.end(), [](float v) { return v == 0.0f || v == 1.0f; }));
  }
}

TEST_CASE("augment: intensity transforms spare the mask and the background", "[data][augment]") {
  const Sample original = blob_sample();
  Sample s = original;
  augment(s, intensity_only(), 11);
  CHECK(s.mask == original.mask);
  CHECK(s.image != original.image);
  for (std::size_t i = 0; i < s.image.size(); ++i)
    if (original.image[i] == 0.0f) REQUIRE(s.image[i] == 0.0f);

  // Gamma alone keeps the foreground's minimum and maximum.
  AugmentOptions gamma = AugmentOptions::none();
  gamma.gamma = {1.0, 2.0, 2.0};
  Sample g = original;
  augment(g, gamma, 1);
  CHECK(g.image != original.image);
  auto range = [](const Sample& x) {
    float lo = 1e9f, hi = -1e9f;
    for (std::size_t i = 0; i < std::size_t(kSize * kSize); ++i)
      if (x.image[i] != 0.0f) lo = std::min(lo, x.image[i]), hi = std::max(hi, x.image[i]);
    return std::pair(lo, hi);
  };
  CHECK(range(g).first == Approx(range(original).first));
  CHECK(range(g).second == Approx(range(original).second));
}

TEST_CASE("augment: invalid options are rejected", "[data][augment]") {
  Sample s = blob_sample();
  AugmentOptions o;
  o.horizontal_flip = 1.5;
  CHECK_THROWS_AS(augment(s, o, 1), std::invalid_argument);
  o = AugmentOptions();
  o.rotation = {0.5, 10.0, -10.0};
  CHECK_THROWS_AS(augment(s, o, 1), std::invalid_argument);
  o = AugmentOptions();
  o.scaling = {0.5, 0.0, 1.0};
  CHECK_THROWS_AS(augment(s, o, 1), std::invalid_argument);
}
