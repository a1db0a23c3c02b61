#include "engine/init.h"

#include <cmath>
#include <numbers>
#include <vector>

namespace unet {

uint64_t Rng::next_u64() {
  uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

double Rng::uniform() { return double(next_u64() >> 11) * 0x1.0p-53; }

double Rng::normal() {
  // Box-Muller with one of the pair discarded: simpler state, and speed does not matter here.
  const double u1 = 1.0 - uniform();  // (0, 1]: log stays finite
  const double u2 = uniform();
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
}

void he_normal_(Tensor& t, int64_t fan_in, Rng& rng) {
  const double stddev = std::sqrt(2.0 / double(fan_in)) / 0.87962566103423978;
  std::vector<float> values(std::size_t(t.numel()));
  for (auto& v : values) {
    double z;
    do z = rng.normal();
    while (std::abs(z) > 2.0);
    v = float(z * stddev);
  }
  t.copy_from(Tensor::from_vector(t.shape(), values));
}

void glorot_uniform_(Tensor& t, int64_t fan_in, int64_t fan_out, Rng& rng) {
  const double limit = std::sqrt(6.0 / double(fan_in + fan_out));
  std::vector<float> values(std::size_t(t.numel()));
  for (auto& v : values) v = float((2.0 * rng.uniform() - 1.0) * limit);
  t.copy_from(Tensor::from_vector(t.shape(), values));
}

}  // namespace unet
