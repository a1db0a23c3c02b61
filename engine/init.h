// Seeded weight initialisation. Our own generator (SplitMix64 + Box-Muller) rather than <random>'s
// distributions, whose output the C++ standard leaves to each library: the same seed must give
// the same model on every machine.
#pragma once

#include <cstdint>

#include "engine/tensor.h"

namespace unet {

class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t next_u64();
  double uniform();  // [0, 1)
  double normal();   // standard normal
  // A new independent seed, for handing to a sub-component.
  uint64_t fork() { return next_u64(); }

 private:
  uint64_t state_;
};

// Keras' he_normal: a normal with stddev sqrt(2 / fan_in) truncated at two standard deviations
// (redrawn beyond), scaled by 1/0.8796 so that the truncated distribution keeps that stddev.
void he_normal_(Tensor& t, int64_t fan_in, Rng& rng);
// Keras' glorot_uniform: uniform in +-sqrt(6 / (fan_in + fan_out)).
void glorot_uniform_(Tensor& t, int64_t fan_in, int64_t fan_out, Rng& rng);

}  // namespace unet
