// Philox-4x32-10 counter-based random numbers (Salmon et al., SC'11, "Parallel random numbers:
// as easy as 1, 2, 3").
//
// A counter-based generator is a pure function (key, counter) -> 4 random words, so element i of
// a dropout mask depends only on (seed, offset + i) and not on which thread computed it or in
// what order. That is what lets the CPU kernel and the CUDA kernel (one thread per element) draw
// the same mask from the same seed, and makes masks independent of the OpenMP thread count.
#pragma once

#include <cstdint>

#if defined(__CUDACC__) || defined(UNET_CUDA_EMULATION)
#define UNET_HD __host__ __device__
#else
#define UNET_HD
#endif

namespace unet::kernels {

struct Philox4 {
  uint32_t v[4];
};

UNET_HD inline uint32_t philox_mulhilo(uint32_t a, uint32_t b, uint32_t* hi) {
  const uint64_t product = uint64_t(a) * uint64_t(b);
  *hi = uint32_t(product >> 32);
  return uint32_t(product);
}

// Ten rounds of Philox-4x32 on a 128-bit counter with a 64-bit key.
UNET_HD inline Philox4 philox4x32_10(uint64_t counter, uint64_t key) {
  constexpr uint32_t kMul0 = 0xD2511F53u, kMul1 = 0xCD9E8D57u;
  constexpr uint32_t kWeyl0 = 0x9E3779B9u, kWeyl1 = 0xBB67AE85u;
  uint32_t c0 = uint32_t(counter), c1 = uint32_t(counter >> 32), c2 = 0, c3 = 0;
  uint32_t k0 = uint32_t(key), k1 = uint32_t(key >> 32);
  for (int round = 0; round < 10; ++round) {
    uint32_t hi0, hi1;
    const uint32_t lo0 = philox_mulhilo(kMul0, c0, &hi0);
    const uint32_t lo1 = philox_mulhilo(kMul1, c2, &hi1);
    const uint32_t n0 = hi1 ^ c1 ^ k0, n1 = lo1, n2 = hi0 ^ c3 ^ k1, n3 = lo0;
    c0 = n0; c1 = n1; c2 = n2; c3 = n3;
    k0 += kWeyl0;
    k1 += kWeyl1;
  }
  return Philox4{{c0, c1, c2, c3}};
}

// Uniform float in [0, 1) from the top 24 bits: exactly representable, identical on every device.
UNET_HD inline float philox_uniform(uint32_t bits) { return float(bits >> 8) * (1.0f / 16777216.0f); }

// The uniform number for element `index` of the stream (seed, offset): element i uses word i%4 of
// counter (offset + i) / 4, so a stream of n elements costs n/4 Philox evaluations.
UNET_HD inline float philox_uniform_at(uint64_t seed, uint64_t offset, uint64_t index) {
  const uint64_t element = offset + index;
  const Philox4 r = philox4x32_10(element >> 2, seed);
  return philox_uniform(r.v[element & 3]);
}

}  // namespace unet::kernels
