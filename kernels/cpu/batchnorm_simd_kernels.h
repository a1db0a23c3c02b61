// Batch normalisation in float vector registers, written once as templates on V
// (kernels/cpu/simd.h) and compiled by batchnorm_avx2.cpp and batchnorm_avx512.cpp.
//
// Why a second implementation: the reference (batchnorm.cpp) widens every value to double and
// works on four doubles at a time, which makes it compute-bound at 7-14 GB/s. Here every value is
// handled in float, 8 or 16 to a register, and double is used only per run and per channel.
//
// Accuracy. The cut into runs is the reference's: each plane is cut into runs of at most 4096
// values, fixed by the shape. Within a run, sums are float, spread over 4 x kLanes accumulator
// lanes (32 or 64), so each lane adds at most 128 values; each run's sums are then widened to
// double and the runs are combined in run order, in double. The statistics stay two-pass per run
// (the run is in L1 for the second pass): the run's mean m in float, then the sums of d = x - m
// and d^2, from which the run's exact mean m + sum(d)/n and its centred m2 = sum(d^2) - sum(d)^2/n
// follow with no cancellation (d is centred). The runs are merged with Chan's formula, as in the
// reference. The per-element passes are float multiply-adds with per-channel coefficients
// computed in double and then rounded, centred on the mean before scaling:
// y = (x - mean) * scale + beta and dx = a dy' + b (x - mean) + c. The uncentred
// y = x * scale + (beta - mean * scale) would cost one operation less but lose |mean| / std
// float ulps to cancellation (1e-4 at mean 1000, std 0.6); centred, the error does not grow with
// the mean (tests/kernels/test_batchnorm_dropout_simd.cpp).
//
// Determinism. Runs, the accumulator each vector feeds, the folding of accumulators and the order
// in which runs are merged depend on the shape alone; threads only decide who computes which run,
// so results are bitwise identical for any thread count.
//
// Cache. A training pass sweeps a channel twice (sums, then outputs), with a barrier between the
// sweeps. Channels go a group of about 8 MiB of input at a time: with the group's outputs that is
// half to all of Zen 4's 32 MiB L3, so the second sweep reads the L3 rather than memory, while the
// barriers (two a group, tens of microseconds each when threads sleep) stay few: 1 MiB groups
// (near the reference's choice) measured up to 2x slower on the 60x60 and 30x30 layers. Each thread takes the same
// contiguous block of runs in both sweeps and walks it backwards in the second, so it starts on
// the runs it read last, those still in its L2, instead of those the cache evicted first.
#pragma once

#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <vector>

#include "kernels/cpu/batchnorm_runs.h"
#include "kernels/cpu/reduce.h"
#include "kernels/cpu/simd.h"
#include "kernels/cpu/streaming.h"
#include "kernels/shapes.h"

namespace unet::cpu::bn_simd {
// Internal linkage: both ISA files compile this header, and a function they both emitted out of
// line could be linked from its AVX-512 copy into the AVX2 path (scripts/check_isa_symbols.sh).
namespace {

// GCC 12 reports the undefined register inside _mm512_max_ps and _mm512_extractf64x4_pd (V::max,
// V::hsum) as uninitialised once inlined at -O3 (a false positive, GCC bug 105593).
#pragma GCC diagnostic push
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

using detail::kParallelMin;
using namespace bn_runs;

constexpr int kInterleave = 4;  // accumulators a sum: hides the add latency
// Input read by a channel group (see "Cache" above).
constexpr std::size_t kGroupBytes = std::size_t(8) << 20;

// What simd.h does not have: zeroing lanes outside a tail mask, and the ReLU backward select.
template <typename V>
struct Ops;
#if defined(__AVX2__) && defined(__FMA__)
template <>
struct Ops<simd::Avx2> {
  using Reg = __m256;
  static Reg keep(Reg v, __m256i m) { return _mm256_and_ps(v, _mm256_castsi256_ps(m)); }
  // relu_backward's y > 0 ? d : 0 (false for a NaN y).
  static Reg where_positive(Reg y, Reg d) {
    return _mm256_and_ps(_mm256_cmp_ps(y, _mm256_setzero_ps(), _CMP_GT_OQ), d);
  }
};
#endif
#if defined(__AVX512F__)
template <>
struct Ops<simd::Avx512> {
  using Reg = __m512;
  static Reg keep(Reg v, __mmask16 m) { return _mm512_maskz_mov_ps(m, v); }
  static Reg where_positive(Reg y, Reg d) {
    return _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(y, _mm512_setzero_ps(), _CMP_GT_OQ), d);
  }
};
#endif

// A whole vector, as opposed to a run's last, partial one (a V::Mask): plain loads and stores.
struct Full {};
template <typename V>
typename V::Reg load(const float* p, Full) { return V::load(p); }
template <typename V>
typename V::Reg load(const float* p, typename V::Mask m) { return V::load(p, m); }
template <typename V>
void store(float* p, typename V::Reg v, Full) { V::store(p, v); }
template <typename V>
void store(float* p, typename V::Reg v, typename V::Mask m) { V::store(p, v, m); }
template <typename V>
typename V::Reg keep(typename V::Reg v, Full) { return v; }
template <typename V>
typename V::Reg keep(typename V::Reg v, typename V::Mask m) { return Ops<V>::keep(v, m); }

// relu_forward's x < 0 ? 0 : x: maxps returns its second operand when either is a NaN and when
// both are zeros, so a NaN propagates and -0 stays -0, bit for bit.
template <typename V>
typename V::Reg relu(typename V::Reg v) { return V::max(V::zero(), v); }

// out + i = f(i, m) on every vector of a run: whole vectors, then the masked tail. With `stream`,
// the whole vectors from the first aligned one on bypass the caches (kernels/cpu/streaming.h);
// the caller fences.
template <typename V, typename F>
void store_vectors(float* out, int size, bool stream, F f) {
  int i = 0;
  if (stream) {
    const auto misaligned = int(reinterpret_cast<std::uintptr_t>(out) % sizeof(typename V::Reg) / sizeof(float));
    const int head = std::min(size, misaligned == 0 ? 0 : V::kLanes - misaligned);
    if (head > 0) store<V>(out, f(0, V::first(head)), V::first(head));
    for (i = head; i + V::kLanes <= size; i += V::kLanes) V::stream(out + i, f(i, Full{}));
  }
  for (; i + V::kLanes <= size; i += V::kLanes) store<V>(out + i, f(i, Full{}), Full{});
  if (i < size) store<V>(out + i, f(i, V::first(size - i)), V::first(size - i));
}

template <int K>
struct Sums {
  double v[K];
};

// K float sums over a run: term(i, m, acc) adds the vector at i into acc[0..K). Vector j feeds
// accumulator j % kInterleave; the accumulators are folded in a fixed tree, then the lanes
// (V::hsum), and the result widened: the order of additions depends on the run's length alone.
template <typename V, int K, typename Term>
Sums<K> lane_sums(int size, Term term) {
  using Reg = typename V::Reg;
  Reg acc[kInterleave][K];
  for (auto& a : acc)
    for (Reg& r : a) r = V::zero();
  constexpr int kStep = kInterleave * V::kLanes;
  int i = 0;
  for (; i + kStep <= size; i += kStep) {
#pragma GCC unroll 4
    for (int u = 0; u < kInterleave; ++u) term(i + u * V::kLanes, Full{}, acc[u]);
  }
  int u = 0;
  for (; i + V::kLanes <= size; i += V::kLanes, ++u) term(i, Full{}, acc[u]);
  if (i < size) term(i, V::first(size - i), acc[u]);
  Sums<K> out;
  for (int k = 0; k < K; ++k)
    out.v[k] = double(V::hsum(V::add(V::add(acc[0][k], acc[1][k]), V::add(acc[2][k], acc[3][k]))));
  return out;
}

// Channels a group: about kGroupBytes of input (bytes_per_value from each input), at least one.
int channels_per_group(const BatchNormShape& s, std::size_t bytes_per_value) {
  const std::size_t channel = std::max<std::size_t>(s.per_channel(), 1) * bytes_per_value;
  return int(std::clamp<std::size_t>(kGroupBytes / channel, 1, std::size_t(s.c)));
}

// This thread's contiguous block of `work` items: the same block for the same work, so a thread
// meets its own runs again in the second sweep.
struct Share {
  int begin = 0, end = 0;
  explicit Share(int work) {
    const int64_t t = omp_get_thread_num(), n = omp_get_num_threads();
    begin = int(work * t / n);
    end = int(work * (t + 1) / n);
  }
};



template <typename V>
Moments run_moments(const float* x, int size) {
  using Reg = typename V::Reg;
  const double total = lane_sums<V, 1>(size, [&](int i, auto m, Reg* acc) {
    acc[0] = V::add(acc[0], load<V>(x + i, m));
  }).v[0];
  const float shift = float(total / size);
  const Reg shift_v = V::set1(shift);
  const Sums<2> d = lane_sums<V, 2>(size, [&](int i, auto m, Reg* acc) {
    const Reg di = keep<V>(V::sub(load<V>(x + i, m), shift_v), m);
    acc[0] = V::add(acc[0], di);
    acc[1] = V::fma(di, di, acc[1]);
  });
  // shift is the mean up to rounding; sum(d) / n is what it missed.
  return {double(size), double(shift) + d.v[0] / size, d.v[1] - d.v[0] * d.v[0] / size};
}

// y = ((x - mean_hi) - mean_lo) * scale + beta, through the ReLU when Relu. The mean is carried
// as two floats (hi + lo) and subtracted before scaling: x - mean_hi is exact near the mean, so
// the error does not grow with |mean| / std, as x * scale + (beta - mean * scale) would.
struct Normalise {
  float mean_hi, mean_lo, scale, beta;
};

template <typename V, bool Relu>
void normalise_run(const float* x, int size, Normalise n, bool stream, float* y) {
  using Reg = typename V::Reg;
  const Reg hi = V::set1(n.mean_hi), lo = V::set1(n.mean_lo), scale = V::set1(n.scale), beta = V::set1(n.beta);
  store_vectors<V>(y, size, stream, [&](int i, auto m) {
    const Reg v = V::fma(V::sub(V::sub(load<V>(x + i, m), hi), lo), scale, beta);
    return Relu ? relu<V>(v) : v;
  });
}

template <typename V>
void normalise_run(const float* x, int size, Normalise n, bool relu, bool stream, float* y) {
  if (relu) normalise_run<V, true>(x, size, n, stream, y);
  else normalise_run<V, false>(x, size, n, stream, y);
}

// The gradient reaching the normalisation: dy, zeroed where the fused ReLU's output was not
// positive. y (null without the ReLU) is read only when Relu.
template <typename V, bool Relu, typename M>
typename V::Reg masked_dy(const float* dy, const float* y, int i, M m) {
  const typename V::Reg d = load<V>(dy + i, m);
  if constexpr (Relu) return Ops<V>::where_positive(load<V>(y + i, m), d);
  return d;
}

// sum(dy') and sum(dy' (x - mean)) over a run.
template <typename V, bool Relu>
Sums<2> grad_sums_run(const float* dy, const float* x, const float* y, int size, float mean) {
  using Reg = typename V::Reg;
  const Reg mean_v = V::set1(mean);
  return lane_sums<V, 2>(size, [&](int i, auto m, Reg* acc) {
    const Reg d = masked_dy<V, Relu>(dy, y, i, m);
    acc[0] = V::add(acc[0], d);
    acc[1] = V::fma(d, V::sub(load<V>(x + i, m), mean_v), acc[1]);
  });
}

// dx = a dy' + b (x - mean) + c, per channel.
struct GradAffine {
  float a, b, c, mean;
};

template <typename V, bool Relu>
void dx_run(const float* dy, const float* x, const float* y, int size, GradAffine g, bool stream, float* dx) {
  using Reg = typename V::Reg;
  const Reg a = V::set1(g.a), b = V::set1(g.b), c = V::set1(g.c), mean = V::set1(g.mean);
  store_vectors<V>(dx, size, stream, [&](int i, auto m) {
    const Reg centred = V::sub(load<V>(x + i, m), mean);
    return V::fma(a, masked_dy<V, Relu>(dy, y, i, m), V::fma(b, centred, c));
  });
}


template <typename V>
void forward_train(const BatchNormShape& s, const float* x, const float* gamma, const float* beta, float eps,
                   float momentum, float* running_mean, float* running_var, float* y, float* save_mean,
                   float* save_invstd, bool relu) {
  // The unbiased variance divides by N * HW - 1.
  if (s.per_channel() < 2) throw std::invalid_argument("batchnorm_forward_train: needs at least 2 values per channel");
  const Runs runs(s);
  const int group = channels_per_group(s, sizeof(float));
  const double mom = double(momentum);
  std::vector<Moments> partial(std::size_t(s.c) * runs.per_channel);
  std::vector<Normalise> norm(s.c);
  const bool stream = streaming_pays(s.size() * sizeof(float));
#pragma omp parallel if (s.size() >= kParallelMin)
  for (int c0 = 0; c0 < s.c; c0 += group) {
    const int c1 = std::min(s.c, c0 + group), work = (c1 - c0) * runs.per_channel;
    const std::size_t first = std::size_t(c0) * runs.per_channel;
    const Share mine(work);
    for (int w = mine.begin; w < mine.end; ++w) {
      const auto r = runs.run(s, c0 + w / runs.per_channel, w % runs.per_channel);
      partial[first + w] = run_moments<V>(x + r.begin, r.size);
    }
#pragma omp barrier
#pragma omp for schedule(static)
    for (int c = c0; c < c1; ++c) {
      const Moments* p = &partial[std::size_t(c) * runs.per_channel];
      Moments mo = p[0];
      for (int k = 1; k < runs.per_channel; ++k) mo = merge(mo, p[k]);
      const double var = mo.m2 / mo.count;  // biased
      const double invstd = inverse_std(var, double(eps));
      const float mean_hi = float(mo.mean);
      norm[c] = {mean_hi, float(mo.mean - double(mean_hi)), float(double(gamma[c]) * invstd), beta[c]};
      save_mean[c] = float(mo.mean);
      save_invstd[c] = float(invstd);
      running_mean[c] = float((1 - mom) * double(running_mean[c]) + mom * mo.mean);
      running_var[c] = float((1 - mom) * double(running_var[c]) + mom * var * mo.count / (mo.count - 1));
    }
    for (int w = mine.end - 1; w >= mine.begin; --w) {
      const int c = c0 + w / runs.per_channel;
      const auto r = runs.run(s, c, w % runs.per_channel);
      normalise_run<V>(x + r.begin, r.size, norm[c], relu, stream, y + r.begin);
    }
    if (stream) _mm_sfence();
  }
}

template <typename V>
void forward_infer(const BatchNormShape& s, const float* x, const float* gamma, const float* beta,
                   const float* running_mean, const float* running_var, float eps, float* y, bool relu) {
  std::vector<Normalise> norm(s.c);
  const bool stream = streaming_pays(s.size() * sizeof(float));
  for (int c = 0; c < s.c; ++c) {
    const double scale = double(gamma[c]) * inverse_std(double(running_var[c]), double(eps));
    norm[c] = {running_mean[c], 0.0f, float(scale), beta[c]};
  }
  const Runs runs(s);
  const int work = s.c * runs.per_channel;
#pragma omp parallel if (s.size() >= kParallelMin)
  {
#pragma omp for schedule(static) nowait
    for (int w = 0; w < work; ++w) {
      const int c = w / runs.per_channel;
      const auto r = runs.run(s, c, w % runs.per_channel);
      normalise_run<V>(x + r.begin, r.size, norm[c], relu, stream, y + r.begin);
    }
    if (stream) _mm_sfence();
  }
}

// dx = gamma invstd (dy' - mean(dy') - xhat mean(dy' xhat)), as the affine map
// a dy' + b (x - mean) + c with a = gamma invstd, b = -a invstd mean(dy' xhat), c = -a mean(dy').
template <typename V, bool Relu>
void backward_train(const BatchNormShape& s, const float* dy, const float* x, const float* y, const float* gamma,
                    const float* save_mean, const float* save_invstd, float* dx, float* dgamma, float* dbeta) {
  const Runs runs(s);
  const int group = channels_per_group(s, Relu ? 3 * sizeof(float) : 2 * sizeof(float));
  const double count = double(s.per_channel());
  std::vector<Sums<2>> partial(std::size_t(s.c) * runs.per_channel);
  std::vector<GradAffine> affine(s.c);
  const bool stream = streaming_pays(s.size() * sizeof(float));
#pragma omp parallel if (s.size() >= kParallelMin)
  for (int c0 = 0; c0 < s.c; c0 += group) {
    const int c1 = std::min(s.c, c0 + group), work = (c1 - c0) * runs.per_channel;
    const std::size_t first = std::size_t(c0) * runs.per_channel;
    const Share mine(work);
    for (int w = mine.begin; w < mine.end; ++w) {
      const int c = c0 + w / runs.per_channel;
      const auto r = runs.run(s, c, w % runs.per_channel);
      partial[first + w] =
          grad_sums_run<V, Relu>(dy + r.begin, x + r.begin, Relu ? y + r.begin : y, r.size, save_mean[c]);
    }
#pragma omp barrier
#pragma omp for schedule(static)
    for (int c = c0; c < c1; ++c) {
      double sum_dy = 0, sum_dy_x = 0;
      for (int k = 0; k < runs.per_channel; ++k) {
        const Sums<2>& p = partial[std::size_t(c) * runs.per_channel + k];
        sum_dy += p.v[0];
        sum_dy_x += p.v[1];
      }
      const double invstd = double(save_invstd[c]), dy_xhat = sum_dy_x * invstd;
      dgamma[c] = float(dy_xhat);
      dbeta[c] = float(sum_dy);
      const double a = double(gamma[c]) * invstd;
      affine[c] = {float(a), float(-a * invstd * dy_xhat / count), float(-a * sum_dy / count), save_mean[c]};
    }
    for (int w = mine.end - 1; w >= mine.begin; --w) {
      const int c = c0 + w / runs.per_channel;
      const auto r = runs.run(s, c, w % runs.per_channel);
      dx_run<V, Relu>(dy + r.begin, x + r.begin, Relu ? y + r.begin : y, r.size, affine[c], stream, dx + r.begin);
    }
    if (stream) _mm_sfence();
  }
}

template <typename V>
void backward_train(const BatchNormShape& s, const float* dy, const float* x, const float* y, const float* gamma,
                    const float* save_mean, const float* save_invstd, float* dx, float* dgamma, float* dbeta,
                    bool relu) {
  if (relu) backward_train<V, true>(s, dy, x, y, gamma, save_mean, save_invstd, dx, dgamma, dbeta);
  else backward_train<V, false>(s, dy, x, y, gamma, save_mean, save_invstd, dx, dgamma, dbeta);
}

#pragma GCC diagnostic pop

}  // namespace
}  // namespace unet::cpu::bn_simd
