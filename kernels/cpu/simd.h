// One vocabulary over two instruction sets, so that a micro-kernel is written once as a template
// on `V` and compiled twice: in a translation unit built with AVX2+FMA (V = Avx2, 8 floats a
// register, 16 registers) and in one built with AVX-512F/BW/VL (V = Avx512, 16 floats, 32
// registers). Only the types the translation unit's flags allow are defined here, so a file built
// for AVX2 cannot use an AVX-512 instruction by accident. Which one runs is decided at run time
// from CPUID (kernels/cpu/isa.h).
#pragma once

#include <immintrin.h>

#include <cstdint>

namespace unet::cpu::simd {

#if defined(__AVX2__) && defined(__FMA__)
struct Avx2 {
  static constexpr int kLanes = 8;
  static constexpr int kRegisters = 16;
  static constexpr const char* kName = "avx2";
  using Reg = __m256;
  using Mask = __m256i;  // lane i is loaded/stored when its sign bit is set

  static Reg zero() { return _mm256_setzero_ps(); }
  static Reg set1(float v) { return _mm256_set1_ps(v); }
  static Reg load(const float* p) { return _mm256_loadu_ps(p); }
  static Reg broadcast(const float* p) { return _mm256_broadcast_ss(p); }
  static void store(float* p, Reg v) { _mm256_storeu_ps(p, v); }
  // The first n lanes (0 <= n <= kLanes).
  static Mask first(int n) {
    const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), lanes);
  }
  // Masked-off lanes read as zero and are never touched in memory (no fault past an array's end).
  static Reg load(const float* p, Mask m) { return _mm256_maskload_ps(p, m); }
  static void store(float* p, Reg v, Mask m) { _mm256_maskstore_ps(p, m, v); }
  // A store that bypasses the caches (p aligned to sizeof(Reg)); needs an sfence before others read.
  static void stream(float* p, Reg v) { _mm256_stream_ps(p, v); }
  static Reg fma(Reg a, Reg b, Reg c) { return _mm256_fmadd_ps(a, b, c); }  // a*b + c
  static Reg add(Reg a, Reg b) { return _mm256_add_ps(a, b); }
  static Reg sub(Reg a, Reg b) { return _mm256_sub_ps(a, b); }
  static Reg mul(Reg a, Reg b) { return _mm256_mul_ps(a, b); }
  static Reg max(Reg a, Reg b) { return _mm256_max_ps(a, b); }
  // Lanes added in a fixed tree order (so results do not depend on anything but the inputs).
  static float hsum(Reg v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
};
#endif

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
struct Avx512 {
  static constexpr int kLanes = 16;
  static constexpr int kRegisters = 32;
  static constexpr const char* kName = "avx512";
  using Reg = __m512;
  using Mask = __mmask16;

  static Reg zero() { return _mm512_setzero_ps(); }
  static Reg set1(float v) { return _mm512_set1_ps(v); }
  static Reg load(const float* p) { return _mm512_loadu_ps(p); }
  static Reg broadcast(const float* p) { return _mm512_set1_ps(*p); }
  static void store(float* p, Reg v) { _mm512_storeu_ps(p, v); }
  static Mask first(int n) { return Mask(n >= 16 ? 0xFFFFu : (1u << n) - 1u); }
  static Reg load(const float* p, Mask m) { return _mm512_maskz_loadu_ps(m, p); }
  static void store(float* p, Reg v, Mask m) { _mm512_mask_storeu_ps(p, m, v); }
  static void stream(float* p, Reg v) { _mm512_stream_ps(p, v); }
  static Reg fma(Reg a, Reg b, Reg c) { return _mm512_fmadd_ps(a, b, c); }
  static Reg add(Reg a, Reg b) { return _mm512_add_ps(a, b); }
  static Reg sub(Reg a, Reg b) { return _mm512_sub_ps(a, b); }
  static Reg mul(Reg a, Reg b) { return _mm512_mul_ps(a, b); }
  static Reg max(Reg a, Reg b) { return _mm512_max_ps(a, b); }
  static float hsum(Reg v) {
    const __m256 h = _mm256_add_ps(_mm512_castps512_ps256(v),
                                   _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
};
#endif

}  // namespace unet::cpu::simd
