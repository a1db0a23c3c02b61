// Augmentation (conventions in augment.h): parameters drawn from three SplitMix64 streams
// (geometry, intensity, noise) so that the count of draws in one never shifts another, then one
// affine resample and the per-channel intensity changes.
#include "train/augment.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "train/split.h"

namespace unet {
namespace {

constexpr double kPi = 3.14159265358979323846;

// One transform's draw: the decision and the value are both consumed every time.
struct Draw {
  bool on = false;
  double value = 0.0;
};

Draw draw(SplitMix64& rng, const RandomTransform& t) {
  const bool on = rng.uniform() < t.probability;
  return {on, rng.uniform(t.min, t.max)};
}

bool coin(SplitMix64& rng, double probability) { return rng.uniform() < probability; }

// A standard normal by Box-Muller (one of the pair; the noise is not the bottleneck).
double normal(SplitMix64& rng) {
  const double radius = std::sqrt(-2.0 * std::log(1.0 - rng.uniform()));
  return radius * std::cos(2.0 * kPi * rng.uniform());
}

void check_probability(const std::string& name, double p) {
  if (!(p >= 0.0 && p <= 1.0))
    throw std::invalid_argument("augment: " + name + " probability must lie in [0, 1]");
}

void check(const std::string& name, const RandomTransform& t) {
  check_probability(name, t.probability);
  if (!(t.min <= t.max)) throw std::invalid_argument("augment: " + name + " range has min > max");
}

void validate(const AugmentOptions& o) {
  check("rotation", o.rotation);
  check_probability("horizontal flip", o.horizontal_flip);
  check_probability("vertical flip", o.vertical_flip);
  check("scaling", o.scaling);
  check("translation", o.translation);
  check("brightness", o.brightness);
  check("contrast", o.contrast);
  check("gamma", o.gamma);
  check("noise", o.noise);
  if (o.scaling.probability > 0 && !(o.scaling.min > 0))
    throw std::invalid_argument("augment: scaling factors must be positive");
  if (o.gamma.probability > 0 && !(o.gamma.min > 0))
    throw std::invalid_argument("augment: gamma exponents must be positive");
  if (o.noise.probability > 0 && !(o.noise.min >= 0))
    throw std::invalid_argument("augment: noise sigma must not be negative");
}

// ---------------------------------------------------------------------------------------------
// Geometry

// Output pixel -> source pixel: src = m * (dst - centre - shift) + centre, the inverse of
// "flip, scale, rotate about the centre, then shift".
struct Affine {
  double m[2][2] = {{1, 0}, {0, 1}};
  double shift_x = 0, shift_y = 0;
  bool identity = true;
};

Affine draw_affine(SplitMix64& rng, const AugmentOptions& o, int width, int height) {
  const Draw rotation = draw(rng, o.rotation);
  const bool flip_x = coin(rng, o.horizontal_flip);
  const bool flip_y = coin(rng, o.vertical_flip);
  const Draw scaling = draw(rng, o.scaling);
  const Draw shift_x = draw(rng, o.translation);
  const double shift_y_value = rng.uniform(o.translation.min, o.translation.max);

  Affine a;
  a.identity = !(rotation.on || flip_x || flip_y || scaling.on || shift_x.on);
  const double angle = rotation.on ? rotation.value * kPi / 180.0 : 0.0;
  const double inverse_scale = scaling.on ? 1.0 / scaling.value : 1.0;
  const double c = std::cos(angle) * inverse_scale, s = std::sin(angle) * inverse_scale;
  const double fx = flip_x ? -1.0 : 1.0, fy = flip_y ? -1.0 : 1.0;
  // Inverse rotation R(-angle) = [[c, s], [-s, c]], then 1/scale, then the flips.
  a.m[0][0] = fx * c;
  a.m[0][1] = fx * s;
  a.m[1][0] = -fy * s;
  a.m[1][1] = fy * c;
  if (shift_x.on) {
    a.shift_x = shift_x.value * width;
    a.shift_y = shift_y_value * height;
  }
  return a;
}

void resample(Sample& sample, const Affine& a) {
  const int w = sample.width, h = sample.height;
  const std::size_t plane = std::size_t(w) * std::size_t(h);
  const double cx = 0.5 * (w - 1), cy = 0.5 * (h - 1);
  std::vector<float> image(sample.image.size(), 0.0f);
  std::vector<float> mask(sample.mask.size(), 0.0f);
  auto at = [&](int x, int y) { return std::size_t(y) * std::size_t(w) + std::size_t(x); };
  auto inside = [&](int x, int y) { return x >= 0 && x < w && y >= 0 && y < h; };
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      const double u = x - cx - a.shift_x, v = y - cy - a.shift_y;
      const double sx = a.m[0][0] * u + a.m[0][1] * v + cx;
      const double sy = a.m[1][0] * u + a.m[1][1] * v + cy;
      const std::size_t out = at(x, y);
      if (!mask.empty()) {
        const auto nx = int(std::floor(sx + 0.5)), ny = int(std::floor(sy + 0.5));
        if (inside(nx, ny)) mask[out] = sample.mask[at(nx, ny)];
      }
      const auto x0 = int(std::floor(sx)), y0 = int(std::floor(sy));
      const auto fx = float(sx - x0), fy = float(sy - y0);
      const float weights[4] = {(1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy};
      const int tap_x[4] = {x0, x0 + 1, x0, x0 + 1}, tap_y[4] = {y0, y0, y0 + 1, y0 + 1};
      for (int t = 0; t < 4; ++t) {
        if (weights[t] == 0.0f || !inside(tap_x[t], tap_y[t])) continue;  // zero fill
        const std::size_t in = at(tap_x[t], tap_y[t]);
        for (int ch = 0; ch < sample.channels; ++ch)
          image[ch * plane + out] += weights[t] * sample.image[ch * plane + in];
      }
    }
  }
  sample.image = std::move(image);
  sample.mask = std::move(mask);
}

// ---------------------------------------------------------------------------------------------
// Intensity

// Applies f to the foreground (non-zero) values of one channel.
template <typename F>
void for_foreground(float* values, std::size_t count, F&& f) {
  for (std::size_t i = 0; i < count; ++i)
    if (values[i] != 0.0f) values[i] = f(values[i]);
}

void apply_gamma(float* values, std::size_t count, double exponent) {
  float lo = 0.0f, hi = 0.0f;
  bool any = false;
  for_foreground(values, count, [&](float v) {
    lo = any ? std::min(lo, v) : v;
    hi = any ? std::max(hi, v) : v;
    any = true;
    return v;
  });
  if (!(hi > lo)) return;
  const double range = double(hi) - lo;
  for_foreground(values, count, [&](float v) {
    return float(lo + range * std::pow((double(v) - lo) / range, exponent));
  });
}

void intensity(Sample& sample, const AugmentOptions& o, uint64_t seed) {
  SplitMix64 rng(derive_seed({seed, 2}));
  const bool contrast = coin(rng, o.contrast.probability);
  const bool brightness = coin(rng, o.brightness.probability);
  const bool gamma = coin(rng, o.gamma.probability);
  const Draw noise = draw(rng, o.noise);
  SplitMix64 noise_rng(derive_seed({seed, 3}));
  const std::size_t plane = std::size_t(sample.width) * std::size_t(sample.height);
  for (int ch = 0; ch < sample.channels; ++ch) {
    float* values = sample.image.data() + ch * plane;
    const double k = rng.uniform(o.contrast.min, o.contrast.max);
    const double b = rng.uniform(o.brightness.min, o.brightness.max);
    const double g = rng.uniform(o.gamma.min, o.gamma.max);
    if (contrast) for_foreground(values, plane, [&](float v) { return float(v * k); });
    if (brightness) for_foreground(values, plane, [&](float v) { return float(v + b); });
    if (gamma) apply_gamma(values, plane, g);
    if (noise.on)
      for_foreground(values, plane,
                     [&](float v) { return float(v + noise.value * normal(noise_rng)); });
  }
}

}  // namespace

AugmentOptions AugmentOptions::none() {
  AugmentOptions o;
  for (RandomTransform* t :
       {&o.rotation, &o.scaling, &o.translation, &o.brightness, &o.contrast, &o.gamma, &o.noise})
    t->probability = 0.0;
  o.horizontal_flip = o.vertical_flip = 0.0;
  return o;
}

void augment(Sample& sample, const AugmentOptions& options, uint64_t seed) {
  validate(options);
  SplitMix64 geometry_rng(derive_seed({seed, 1}));
  const Affine affine = draw_affine(geometry_rng, options, sample.width, sample.height);
  if (!affine.identity) resample(sample, affine);
  intensity(sample, options, seed);
}

}  // namespace unet
