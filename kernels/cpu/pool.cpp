// CPU 2x2 stride-2 max pooling, forward (with the winning position) and backward.
//
// Planes (one per image and channel) are independent, so OpenMP splits over the N*C planes. Each
// plane goes a row of windows at a time; for float, eight windows at a time in AVX2 registers,
// with the same comparisons as the scalar code, so both give the same winners.
#include "kernels/cpu/pool.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <type_traits>

namespace unet::cpu {
namespace {

// Window position 0..3 (row-major) of the winner: the first maximum, unless a NaN is present, in
// which case the first NaN, so that the NaN reaches the output.
template <typename T>
uint8_t window_argmax(const T (&v)[4]) {
  uint8_t best = 0;
  for (uint8_t k = 1; k < 4; ++k) {
    const bool beats = v[k] > v[best] || (std::isnan(v[k]) && !std::isnan(v[best]));
    if (beats) best = k;
  }
  return best;
}

// Windows [from, wo) of one row: top and bottom are the window row's two input rows.
template <typename T>
void forward_windows(int from, int wo, const T* top, const T* bottom, T* y, uint8_t* argmax) {
  for (int ow = from; ow < wo; ++ow) {
    const T v[4] = {top[2 * ow], top[2 * ow + 1], bottom[2 * ow], bottom[2 * ow + 1]};
    const uint8_t k = window_argmax(v);
    y[ow] = v[k];
    argmax[ow] = k;
  }
}

// The even and odd elements of 16 consecutive floats.
void deinterleave(const float* p, __m256* even, __m256* odd) {
  const __m256 a = _mm256_loadu_ps(p), b = _mm256_loadu_ps(p + 8);
  // The shuffles work within 128-bit halves; the permute puts the 64-bit pieces back in order.
  const auto in_order = [](__m256 v) {
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(v), 0xD8));
  };
  *even = in_order(_mm256_shuffle_ps(a, b, 0x88));
  *odd = in_order(_mm256_shuffle_ps(a, b, 0xDD));
}

// Windows ow .. ow + 7, window_argmax's rule lane by lane.
void forward_block8(int ow, const float* top, const float* bottom, float* y, uint8_t* argmax) {
  __m256 v[4];
  deinterleave(top + 2 * ow, &v[0], &v[1]);
  deinterleave(bottom + 2 * ow, &v[2], &v[3]);
  __m256 best = v[0];
  __m256i index = _mm256_setzero_si256();
  for (int k = 1; k < 4; ++k) {
    const __m256 nan_k = _mm256_cmp_ps(v[k], v[k], _CMP_UNORD_Q);
    const __m256 nan_best = _mm256_cmp_ps(best, best, _CMP_UNORD_Q);
    const __m256 beats = _mm256_or_ps(_mm256_cmp_ps(v[k], best, _CMP_GT_OQ),
                                      _mm256_andnot_ps(nan_best, nan_k));
    best = _mm256_blendv_ps(best, v[k], beats);
    index = _mm256_castps_si256(_mm256_blendv_ps(
        _mm256_castsi256_ps(index), _mm256_castsi256_ps(_mm256_set1_epi32(k)), beats));
  }
  _mm256_storeu_ps(y + ow, best);
  // Narrow the eight 32-bit indices to bytes; each 128-bit half keeps its four in dword 0.
  const __m256i packed = _mm256_packus_epi16(_mm256_packs_epi32(index, index),
                                             _mm256_setzero_si256());
  const __m128i bytes = _mm_unpacklo_epi32(_mm256_castsi256_si128(packed),
                                           _mm256_extracti128_si256(packed, 1));
  _mm_storel_epi64(reinterpret_cast<__m128i*>(argmax + ow), bytes);
}

// The gradients of windows [from, wo) of one row, written to all four inputs of each window.
template <typename T>
void backward_windows(int from, int wo, const T* dy, const uint8_t* argmax, T* top, T* bottom) {
  for (int ow = from; ow < wo; ++ow) {
    const uint8_t k = argmax[ow];
    top[2 * ow] = k == 0 ? dy[ow] : T(0);
    top[2 * ow + 1] = k == 1 ? dy[ow] : T(0);
    bottom[2 * ow] = k == 2 ? dy[ow] : T(0);
    bottom[2 * ow + 1] = k == 3 ? dy[ow] : T(0);
  }
}

// Stores even and odd as the even and odd elements of 16 consecutive floats.
void interleave(float* p, __m256 even, __m256 odd) {
  const __m256 low = _mm256_unpacklo_ps(even, odd), high = _mm256_unpackhi_ps(even, odd);
  _mm256_storeu_ps(p, _mm256_permute2f128_ps(low, high, 0x20));
  _mm256_storeu_ps(p + 8, _mm256_permute2f128_ps(low, high, 0x31));
}

void backward_block8(int ow, const float* dy, const uint8_t* argmax, float* top, float* bottom) {
  const __m256 d = _mm256_loadu_ps(dy + ow);
  const __m256i k = _mm256_cvtepu8_epi32(
      _mm_loadl_epi64(reinterpret_cast<const __m128i*>(argmax + ow)));
  const auto at = [&](int position) {
    return _mm256_and_ps(_mm256_castsi256_ps(_mm256_cmpeq_epi32(k, _mm256_set1_epi32(position))),
                         d);
  };
  interleave(top + 2 * ow, at(0), at(1));
  interleave(bottom + 2 * ow, at(2), at(3));
}

// Calls block(ow) for blocks of eight windows covering [0, wo), the last one overlapping its
// predecessor rather than leaving a scalar tail (a block's results do not depend on its
// neighbours, so windows done twice get the same values twice). Returns where the scalar code
// takes over: 0 for rows of fewer than eight windows, else wo.
template <typename Block>
int for_blocks8(int wo, Block block) {
  if (wo < 8) return 0;
  for (int ow = 0; ow + 8 <= wo; ow += 8) block(ow);
  if (wo % 8) block(wo - 8);
  return wo;
}

}  // namespace

template <typename T>
void maxpool2x2_forward(const Pool2dShape& s, const T* x, T* y, uint8_t* argmax) {
  const int planes = s.n * s.c, ho = s.h_out(), wo = s.w_out();
  const std::size_t in_plane = std::size_t(s.h_in) * s.w_in, out_plane = std::size_t(ho) * wo;
#pragma omp parallel for schedule(static)
  for (int p = 0; p < planes; ++p) {
    for (int oh = 0; oh < ho; ++oh) {
      const T* top = x + p * in_plane + std::size_t(2 * oh) * s.w_in;
      const std::size_t o = p * out_plane + std::size_t(oh) * wo;
      int from = 0;
      if constexpr (std::is_same_v<T, float>)
        from = for_blocks8(wo, [&](int ow) { forward_block8(ow, top, top + s.w_in, y + o, argmax + o); });
      forward_windows(from, wo, top, top + s.w_in, y + o, argmax + o);
    }
  }
}

template <typename T>
void maxpool2x2_backward(const Pool2dShape& s, const T* dy, const uint8_t* argmax, T* dx) {
  const int planes = s.n * s.c, ho = s.h_out(), wo = s.w_out();
  const std::size_t in_plane = std::size_t(s.h_in) * s.w_in, out_plane = std::size_t(ho) * wo;
#pragma omp parallel for schedule(static)
  for (int p = 0; p < planes; ++p) {
    T* dxp = dx + p * in_plane;
    for (int oh = 0; oh < ho; ++oh) {
      T* top = dxp + std::size_t(2 * oh) * s.w_in;
      const std::size_t o = p * out_plane + std::size_t(oh) * wo;
      int from = 0;
      if constexpr (std::is_same_v<T, float>)
        from = for_blocks8(wo, [&](int ow) { backward_block8(ow, dy + o, argmax + o, top, top + s.w_in); });
      backward_windows(from, wo, dy + o, argmax + o, top, top + s.w_in);
      // A dropped odd last column gets no gradient.
      if (s.w_in % 2) top[s.w_in - 1] = top[2 * s.w_in - 1] = T(0);
    }
    // Likewise a dropped odd last row.
    if (s.h_in % 2) std::fill_n(dxp + std::size_t(s.h_in - 1) * s.w_in, s.w_in, T(0));
  }
}

#define UNET_INSTANTIATE(T)                                                        \
  template void maxpool2x2_forward<T>(const Pool2dShape&, const T*, T*, uint8_t*); \
  template void maxpool2x2_backward<T>(const Pool2dShape&, const T*, const uint8_t*, T*);
UNET_INSTANTIATE(float)
UNET_INSTANTIATE(double)
#undef UNET_INSTANTIATE

}  // namespace unet::cpu
