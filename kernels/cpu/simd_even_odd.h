// Even and odd columns in registers: two consecutive vectors (2 * kLanes columns of a row) split
// into a vector of their even and one of their odd columns, and the inverse, interleaving two
// vectors back into 2 * kLanes columns. The stride-2 kernels need it: Winograd's 2x2 output
// tiles (conv_winograd_kernels.h, conv_winograd_filter.h) and the four output phases of the
// transposed convolutions (conv_transpose_fused_kernels.h).
//
// One specialisation per instruction set, each defined only where its flags are on, so that the
// AVX2 and AVX-512 objects share no out-of-line code (see conv_direct_forward.h).
#pragma once

#include <algorithm>

#include "kernels/cpu/simd.h"

namespace unet::cpu {

template <typename V>
struct EvenOdd;

#if defined(__AVX2__) && defined(__FMA__)
template <>
struct EvenOdd<simd::Avx2> {
  using V = simd::Avx2;
  // shuffle_ps works within 128-bit halves; permute4x64 then puts the 64-bit pairs in order.
  static __m256 even(__m256 a, __m256 b) {
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, 0x88)), 0xD8));
  }
  static __m256 odd(__m256 a, __m256 b) {
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, 0xDD)), 0xD8));
  }
  // even = p[0], p[2], .. p[14]; odd = p[1], p[3], .. p[15].
  static void split(const float* p, __m256& even_columns, __m256& odd_columns) {
    const __m256 a = V::load(p), b = V::load(p + 8);
    even_columns = even(a, b);
    odd_columns = odd(a, b);
  }
  // out = even[0], odd[0], even[1], odd[1], ...: the first `count` floats (up to 16) are stored.
  static void merge_store(float* out, __m256 even_columns, __m256 odd_columns, int count) {
    const __m256 lo = _mm256_unpacklo_ps(even_columns, odd_columns), hi = _mm256_unpackhi_ps(even_columns, odd_columns);
    const __m256 first = _mm256_permute2f128_ps(lo, hi, 0x20), second = _mm256_permute2f128_ps(lo, hi, 0x31);
    if (count >= 16) {
      V::store(out, first);
      V::store(out + 8, second);
      return;
    }
    V::store(out, first, V::first(std::min(count, 8)));
    if (count > 8) V::store(out + 8, second, V::first(count - 8));
  }
};
#endif

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
template <>
struct EvenOdd<simd::Avx512> {
  using V = simd::Avx512;
  static __m512 even(__m512 a, __m512 b) {
    return _mm512_permutex2var_ps(a, _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30), b);
  }
  static __m512 odd(__m512 a, __m512 b) {
    return _mm512_permutex2var_ps(a, _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31), b);
  }
  static void split(const float* p, __m512& even_columns, __m512& odd_columns) {
    const __m512 a = V::load(p), b = V::load(p + 16);
    even_columns = even(a, b);
    odd_columns = odd(a, b);
  }
  static void merge_store(float* out, __m512 even_columns, __m512 odd_columns, int count) {
    const __m512 lo = _mm512_permutex2var_ps(
        even_columns, _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23), odd_columns);
    const __m512 hi = _mm512_permutex2var_ps(
        even_columns, _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31), odd_columns);
    if (count >= 32) {
      V::store(out, lo);
      V::store(out + 16, hi);
      return;
    }
    V::store(out, lo, V::first(std::min(count, 16)));
    if (count > 16) V::store(out + 16, hi, V::first(count - 16));
  }
};
#endif

}  // namespace unet::cpu
