// Dropout forward, AVX-512 (this file is compiled with its flags only; see dropout_avx512.h).
//
// The reference (dropout.cpp) runs Philox on 8 counters per AVX2 register, transposes the words
// into element order with eight shuffles, narrows them to mask bytes, and then applies the mask in
// a second loop that reads the bytes back. Here one evaluation runs 16 counters (64 elements) and
// the keep test of each word lands in a 16-bit mask register; BMI2's pdep interleaves the four
// word masks into one 64-bit mask in element order, which then writes the mask bytes and selects
// y directly. A run that starts or ends inside a counter shifts or truncates that 64-bit mask, so
// no element needs the scalar generator. Every AVX-512 CPU (AVX512F/BW/VL) also has BMI2.
#include "kernels/cpu/dropout_avx512.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "kernels/cpu/reduce.h"
#include "kernels/cpu/streaming.h"

// GCC 12 reports the undefined register inside _mm512_mul_epu32 and the 64-bit shifts as
// uninitialised once inlined at -O3 (a false positive, GCC bug 105593).
#pragma GCC diagnostic push
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace unet::cpu {
namespace {

using detail::kParallelMin;

// Elements per unit of parallel work, as the reference.
constexpr std::size_t kBlock = 4096;

// The high and low halves of the 64-bit products mul * c, lane by lane (mul is one constant in
// every lane): _mm512_mul_epu32 multiplies the even 32-bit lanes, so odd ones are shifted down.
void mulhilo16(__m512i mul, __m512i c, __m512i* hi, __m512i* lo) {
  const __m512i even = _mm512_mul_epu32(mul, c);
  const __m512i odd = _mm512_mul_epu32(mul, _mm512_srli_epi64(c, 32));
  *lo = _mm512_mask_blend_epi32(0xAAAA, even, _mm512_slli_epi64(odd, 32));
  *hi = _mm512_mask_blend_epi32(0xAAAA, _mm512_srli_epi64(even, 32), odd);
}

// a ^ b ^ c in one instruction (0x96 is the truth table of a three-way xor).
__m512i xor3(__m512i a, __m512i b, __m512i c) { return _mm512_ternarylogic_epi32(a, b, c, 0x96); }

// Bit e of the result: keep element 4 first + e (e < 64), the rounds of kernels::philox4x32_10
// with lane l of c0..c3 holding counter first + l.
uint64_t keep_bits(uint64_t first, __m512i threshold, uint64_t seed) {
  constexpr uint32_t kMul0 = 0xD2511F53u, kMul1 = 0xCD9E8D57u;
  constexpr uint32_t kWeyl0 = 0x9E3779B9u, kWeyl1 = 0xBB67AE85u;
  const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  // The 64-bit counters first + l as low and high words; a low word that wrapped carries one.
  __m512i c0 = _mm512_add_epi32(_mm512_set1_epi32(int(uint32_t(first))), lane);
  __m512i c1 = _mm512_set1_epi32(int(uint32_t(first >> 32)));
  c1 = _mm512_mask_add_epi32(c1, _mm512_cmplt_epu32_mask(c0, lane), c1, _mm512_set1_epi32(1));
  __m512i c2 = _mm512_setzero_si512(), c3 = _mm512_setzero_si512();
  const __m512i mul0 = _mm512_set1_epi32(int(kMul0)), mul1 = _mm512_set1_epi32(int(kMul1));
  uint32_t k0 = uint32_t(seed), k1 = uint32_t(seed >> 32);
  for (int round = 0; round < 10; ++round) {
    __m512i hi0, lo0, hi1, lo1;
    mulhilo16(mul0, c0, &hi0, &lo0);
    mulhilo16(mul1, c2, &hi1, &lo1);
    c0 = xor3(hi1, c1, _mm512_set1_epi32(int(k0)));
    c1 = lo1;
    c2 = xor3(hi0, c3, _mm512_set1_epi32(int(k1)));
    c3 = lo0;
    k0 += kWeyl0;
    k1 += kWeyl1;
  }
  // Kept where (bits >> 8) >= ceil(p 2^24), the reference's exact integer test; word w of
  // counter l is element 4 l + w.
  const auto keep = [&](__m512i w) { return uint64_t(_mm512_cmpge_epu32_mask(_mm512_srli_epi32(w, 8), threshold)); };
  constexpr uint64_t kEvery4 = 0x1111111111111111u;
  return _pdep_u64(keep(c0), kEvery4) | _pdep_u64(keep(c1), kEvery4 << 1) | _pdep_u64(keep(c2), kEvery4 << 2) |
         _pdep_u64(keep(c3), kEvery4 << 3);
}

bool aligned64(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 64 == 0; }

// Elements i .. i + n - 1 (n <= 64) from their keep bits: mask bytes 0/1, and y = x keep_scale or
// +0 (as the reference's bitwise and). With `stream`, whole aligned vectors bypass the caches
// (kernels/cpu/streaming.h).
void apply(std::size_t i, int n, uint64_t keep, __m512 keep_scale, bool stream, const float* x, float* y,
           uint8_t* mask) {
  const uint64_t valid = n == 64 ? ~uint64_t(0) : (uint64_t(1) << n) - 1;
  const __m512i bytes = _mm512_maskz_set1_epi8(keep, 1);
  if (stream && n == 64 && aligned64(mask + i)) _mm512_stream_si512(reinterpret_cast<__m512i*>(mask + i), bytes);
  else _mm512_mask_storeu_epi8(mask + i, valid, bytes);
  const bool stream_y = stream && n == 64 && aligned64(y + i);
  for (int q = 0; q < n; q += 16) {
    const __mmask16 in = __mmask16(valid >> q), kept = __mmask16(keep >> q);
    const __m512 v = _mm512_maskz_mul_ps(kept, _mm512_maskz_loadu_ps(in, x + i + q), keep_scale);
    if (stream_y) _mm512_stream_ps(y + i + q, v);
    else _mm512_mask_storeu_ps(y + i + q, in, v);
  }
}

void block(std::size_t begin, std::size_t end, __m512i threshold, __m512 keep_scale, bool stream, uint64_t seed,
           uint64_t offset, const float* x, float* y, uint8_t* mask) {
  uint64_t counter = (offset + begin) >> 2;
  int skip = int((offset + begin) & 3);  // elements of the first counter before `begin`
  for (std::size_t i = begin; i < end; counter += 16, skip = 0) {
    const int n = int(std::min<std::size_t>(64 - skip, end - i));
    apply(i, n, keep_bits(counter, threshold, seed) >> skip, keep_scale, stream, x, y, mask);
    i += std::size_t(n);
  }
}

}  // namespace

void dropout_forward_avx512(std::size_t count, float p, uint64_t seed, uint64_t offset, const float* x, float* y,
                            uint8_t* mask) {
  if (!(p >= 0.0f && p < 1.0f)) throw std::invalid_argument("dropout: the drop probability p must lie in [0, 1)");
  if (p == 0.0f) {
    if (count) std::memcpy(y, x, count * sizeof(float));
    if (count) std::memset(mask, 1, count);
    return;
  }
  const __m512 keep_scale = _mm512_set1_ps(1.0f / (1.0f - p));
  // philox_uniform(bits) >= p exactly when bits >> 8 >= ceil(p 2^24) (see dropout.cpp).
  const __m512i threshold = _mm512_set1_epi32(int(uint32_t(std::ceil(double(p) * 16777216.0))));
  const bool stream = streaming_pays(count * (sizeof(float) + 1));
#pragma omp parallel if (count >= kParallelMin)
  {
#pragma omp for schedule(static) nowait
    for (std::size_t begin = 0; begin < count; begin += kBlock)
      block(begin, std::min(count, begin + kBlock), threshold, keep_scale, stream, seed, offset, x, y, mask);
    if (stream) _mm_sfence();
  }
}

}  // namespace unet::cpu

#pragma GCC diagnostic pop
