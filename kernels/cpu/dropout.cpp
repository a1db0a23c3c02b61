// CPU inverted dropout with a Philox mask (see dropout.h and kernels/philox.h).
//
// The mask is a pure function of (seed, offset + i), so splitting the array among threads cannot
// change it. One Philox evaluation gives four words, so each evaluation serves four consecutive
// elements; the rounds run on eight counters at once in AVX2 registers (32 elements), which is
// what keeps the kernel at memory speed rather than bound by the generator.
#include "kernels/cpu/dropout.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "kernels/cpu/reduce.h"
#include "kernels/philox.h"

namespace unet::cpu {
namespace {

// Elements per unit of parallel work; its mask stays in L1 between drawing and applying it.
constexpr std::size_t kBlock = 4096;
// Elements drawn by one vector evaluation: eight counters of four words.
constexpr std::size_t kBatch = 32;
using detail::kParallelMin;

template <typename T>
void check_probability(T p) {
  if (!(p >= T(0) && p < T(1)))
    throw std::invalid_argument("dropout: the drop probability p must lie in [0, 1)");
}

// philox_uniform(bits) = (bits >> 8) / 2^24 exactly, so u >= p holds exactly when
// bits >> 8 >= ceil(p 2^24): the comparison can be made on the integers (p 2^24 is exact in
// double for a float or double p).
template <typename T>
uint32_t keep_threshold(T p) {
  return uint32_t(std::ceil(double(p) * 16777216.0));
}

// mask[i] = (u_i >= p) for i in [begin, end), one scalar Philox evaluation per counter.
void draw_mask_scalar(std::size_t begin, std::size_t end, uint32_t threshold, uint64_t seed,
                      uint64_t offset, uint8_t* mask) {
  std::size_t i = begin;
  while (i < end) {
    const uint64_t element = offset + i;
    const kernels::Philox4 r = kernels::philox4x32_10(element >> 2, seed);
    for (uint64_t word = element & 3; word < 4 && i < end; ++word, ++i)
      mask[i] = (r.v[word] >> 8) >= threshold;
  }
}

// The high and low halves of the 64-bit products a * b, lane by lane. _mm256_mul_epu32 multiplies
// only the even 32-bit lanes, so the odd ones are shifted down and multiplied separately.
void mulhilo8(__m256i a, __m256i b, __m256i* hi, __m256i* lo) {
  const __m256i even = _mm256_mul_epu32(a, b);
  const __m256i odd = _mm256_mul_epu32(a, _mm256_srli_epi64(b, 32));
  *lo = _mm256_blend_epi32(even, _mm256_slli_epi64(odd, 32), 0xAA);
  *hi = _mm256_blend_epi32(_mm256_srli_epi64(even, 32), odd, 0xAA);
}

// Masks for the 32 elements of counters first .. first + 7, in element order: 0xFF where kept.
// The rounds are kernels::philox4x32_10's, with lane l of c0..c3 holding counter first + l.
void draw_batch(uint64_t first, uint32_t threshold, uint64_t seed, uint8_t* mask) {
  constexpr uint32_t kMul0 = 0xD2511F53u, kMul1 = 0xCD9E8D57u;
  constexpr uint32_t kWeyl0 = 0x9E3779B9u, kWeyl1 = 0xBB67AE85u;
  alignas(32) uint32_t low[8], high[8];
  for (int l = 0; l < 8; ++l) {
    low[l] = uint32_t(first + l);
    high[l] = uint32_t((first + l) >> 32);
  }
  __m256i c0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(low));
  __m256i c1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(high));
  __m256i c2 = _mm256_setzero_si256(), c3 = _mm256_setzero_si256();
  const __m256i mul0 = _mm256_set1_epi32(int(kMul0)), mul1 = _mm256_set1_epi32(int(kMul1));
  uint32_t k0 = uint32_t(seed), k1 = uint32_t(seed >> 32);
  for (int round = 0; round < 10; ++round) {
    __m256i hi0, lo0, hi1, lo1;
    mulhilo8(mul0, c0, &hi0, &lo0);
    mulhilo8(mul1, c2, &hi1, &lo1);
    c0 = _mm256_xor_si256(_mm256_xor_si256(hi1, c1), _mm256_set1_epi32(int(k0)));
    c1 = lo1;
    c2 = _mm256_xor_si256(_mm256_xor_si256(hi0, c3), _mm256_set1_epi32(int(k1)));
    c3 = lo0;
    k0 += kWeyl0;
    k1 += kWeyl1;
  }
  // Drop where (bits >> 8) < threshold; both sides are below 2^31, so a signed compare is exact.
  const __m256i t = _mm256_set1_epi32(int(threshold));
  const auto drop = [&](__m256i w) { return _mm256_cmpgt_epi32(t, _mm256_srli_epi32(w, 8)); };
  const __m256i d0 = drop(c0), d1 = drop(c1), d2 = drop(c2), d3 = drop(c3);
  // Transpose words (lane = counter) into elements (4 counter + word): e01 holds counters 0 and
  // 4 in its two halves, e23 counters 2 and 6, and so on.
  const __m256i t0 = _mm256_unpacklo_epi32(d0, d1), t1 = _mm256_unpacklo_epi32(d2, d3);
  const __m256i t2 = _mm256_unpackhi_epi32(d0, d1), t3 = _mm256_unpackhi_epi32(d2, d3);
  const __m256i c04 = _mm256_unpacklo_epi64(t0, t1), c15 = _mm256_unpackhi_epi64(t0, t1);
  const __m256i c26 = _mm256_unpacklo_epi64(t2, t3), c37 = _mm256_unpackhi_epi64(t2, t3);
  const __m256i e0 = _mm256_permute2x128_si256(c04, c15, 0x20);  // elements 0-7
  const __m256i e1 = _mm256_permute2x128_si256(c26, c37, 0x20);  // 8-15
  const __m256i e2 = _mm256_permute2x128_si256(c04, c15, 0x31);  // 16-23
  const __m256i e3 = _mm256_permute2x128_si256(c26, c37, 0x31);  // 24-31
  // Narrow the 32-bit lanes to bytes; the packs interleave 128-bit halves, the permute undoes it.
  const __m256i bytes = _mm256_permutevar8x32_epi32(
      _mm256_packs_epi16(_mm256_packs_epi32(e0, e1), _mm256_packs_epi32(e2, e3)),
      _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
  const __m256i keep = _mm256_andnot_si256(bytes, _mm256_set1_epi8(1));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(mask), keep);
}

// mask[i] = (u_i >= p) for i in [begin, end): scalar up to the first whole counter, then batches
// of eight counters, then scalar again.
void draw_mask(std::size_t begin, std::size_t end, uint32_t threshold, uint64_t seed,
               uint64_t offset, uint8_t* mask) {
  std::size_t i = std::min(end, begin + (4 - (offset + begin) % 4) % 4);
  draw_mask_scalar(begin, i, threshold, seed, offset, mask);
  for (; i + kBatch <= end; i += kBatch) draw_batch((offset + i) >> 2, threshold, seed, mask + i);
  draw_mask_scalar(i, end, threshold, seed, offset, mask);
}

// One register of y = x / (1 - p) where kept and 0 where dropped, as a bitwise and with the
// widened mask: a branch on random mask bits would mispredict half the time, and the compiler
// keeps such a select as a branch.
void apply_register(const float* x, const uint8_t* mask, float keep_scale, float* y) {
  const __m128i bytes = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(mask));
  const __m256i keep = _mm256_cmpgt_epi32(_mm256_cvtepu8_epi32(bytes), _mm256_setzero_si256());
  const __m256 kept = _mm256_mul_ps(_mm256_loadu_ps(x), _mm256_set1_ps(keep_scale));
  _mm256_storeu_ps(y, _mm256_and_ps(_mm256_castsi256_ps(keep), kept));
}

void apply_register(const double* x, const uint8_t* mask, double keep_scale, double* y) {
  int32_t four;
  std::memcpy(&four, mask, sizeof four);
  const __m256i keep =
      _mm256_cmpgt_epi64(_mm256_cvtepu8_epi64(_mm_cvtsi32_si128(four)), _mm256_setzero_si256());
  const __m256d kept = _mm256_mul_pd(_mm256_loadu_pd(x), _mm256_set1_pd(keep_scale));
  _mm256_storeu_pd(y, _mm256_and_pd(_mm256_castsi256_pd(keep), kept));
}

template <typename T>
void apply_mask(std::size_t begin, std::size_t end, T keep_scale, const T* x, const uint8_t* mask,
                T* y) {
  constexpr std::size_t kLanes = 32 / sizeof(T);
  std::size_t i = begin;
  for (; i + kLanes <= end; i += kLanes) apply_register(x + i, mask + i, keep_scale, y + i);
  for (; i < end; ++i) y[i] = mask[i] ? x[i] * keep_scale : T(0);
}

}  // namespace

template <typename T>
void dropout_forward(std::size_t count, T p, uint64_t seed, uint64_t offset, const T* x, T* y,
                     uint8_t* mask) {
  check_probability(p);
  if (p == T(0)) {
    std::copy_n(x, count, y);
    std::fill_n(mask, count, uint8_t(1));
    return;
  }
  const T keep_scale = T(1) / (T(1) - p);
  const uint32_t threshold = keep_threshold(p);
#pragma omp parallel for schedule(static) if (count >= kParallelMin)
  for (std::size_t begin = 0; begin < count; begin += kBlock) {
    const std::size_t end = std::min(count, begin + kBlock);
    draw_mask(begin, end, threshold, seed, offset, mask);
    apply_mask(begin, end, keep_scale, x, mask, y);
  }
}

template <typename T>
void dropout_backward(std::size_t count, T p, const T* dy, const uint8_t* mask, T* dx) {
  check_probability(p);
  const T keep_scale = T(1) / (T(1) - p);
#pragma omp parallel for schedule(static) if (count >= kParallelMin)
  for (std::size_t begin = 0; begin < count; begin += kBlock)
    apply_mask(begin, std::min(count, begin + kBlock), keep_scale, dy, mask, dx);
}

#define UNET_INSTANTIATE(T)                                                                     \
  template void dropout_forward<T>(std::size_t, T, uint64_t, uint64_t, const T*, T*, uint8_t*); \
  template void dropout_backward<T>(std::size_t, T, const T*, const uint8_t*, T*);
UNET_INSTANTIATE(float)
UNET_INSTANTIATE(double)
#undef UNET_INSTANTIATE

}  // namespace unet::cpu
