// CPU batch normalisation (training and inference), optionally fused with the ReLU after it.
//
// Each channel's N planes are cut into runs of at most kChunk contiguous values, a cut fixed by
// the shape alone. A per-channel sum is one double partial per run, and the partials are combined
// in run order, so results are bitwise identical for any thread count; and since the runs, not
// the channels, are shared among threads, a batch-1 layer with few channels still uses every core.
//
// Training sweeps each channel twice (statistics, then the output or input gradient). Channels go
// a cache-sized group at a time and a static schedule gives each thread the same runs in both
// sweeps, so the second sweep reads the cache instead of memory.
//
// The fused ReLU uses relu_forward's and relu_backward's exact expressions, so fused and unfused
// results agree bit for bit.
#include "kernels/cpu/batchnorm.h"

#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <type_traits>
#include <utility>
#include <vector>

#include "kernels/cpu/batchnorm_runs.h"
#include "kernels/cpu/reduce.h"

namespace unet::cpu {
namespace {

using detail::kParallelMin;
using namespace bn_runs;

// Values of one channel group: the group's x, dy and y (12 bytes a value) fit in the L2 caches
// of two cores, so a training pass's second sweep hits the cache. A group is at least a channel.
constexpr std::size_t kGroupValues = std::size_t(1) << 18;

int channels_per_group(const BatchNormShape& s) {
  return int(std::clamp<std::size_t>(kGroupValues / std::max<std::size_t>(s.per_channel(), 1), 1,
                                     std::size_t(s.c)));
}

// Four doubles in an AVX2 register. GCC's vector operators accept it mixed with scalars, so each
// loop body below is a generic lambda written once and run on four values at a time (W = Quad)
// and on the last few values of a run one at a time (W = double). All arithmetic is in double.
using Quad = __m256d;

double widen(const float* p, double) { return double(*p); }
double widen(const double* p, double) { return *p; }
Quad widen(const float* p, Quad) { return _mm256_cvtps_pd(_mm_loadu_ps(p)); }
Quad widen(const double* p, Quad) { return _mm256_loadu_pd(p); }

// Rounds to T, in a scalar or a register of T.
float narrow(double v, float*) { return float(v); }
double narrow(double v, double*) { return v; }
__m128 narrow(Quad v, float*) { return _mm256_cvtpd_ps(v); }
Quad narrow(Quad v, double*) { return v; }

void store(float* p, float v) { *p = v; }
void store(double* p, double v) { *p = v; }
void store(float* p, __m128 v) { _mm_storeu_ps(p, v); }
void store(double* p, Quad v) { _mm256_storeu_pd(p, v); }

template <typename F>
void for_run(int size, F f) {
  int i = 0;
  for (; i + 4 <= size; i += 4) f(i, Quad{});
  for (; i < size; ++i) f(i, 0.0);
}

// K sums over a run, each in eight interleaved accumulators (value i into lane i % 8) that are
// folded in a fixed tree at the end: the order of additions depends on the run's length alone.
// term(i, acc) adds the terms of value i into acc[0..K), or of values i..i+3 when acc holds
// registers.
template <int K, typename Term>
std::array<double, K> lane_sums(int size, Term term) {
  Quad low[K] = {}, high[K] = {};  // lanes 0-3 and 4-7
  int i = 0;
  for (; i + 8 <= size; i += 8) {
    term(i, low);
    term(i + 4, high);
  }
  double lanes[8][K];
  for (int k = 0; k < K; ++k) {
    double q[8];
    _mm256_storeu_pd(q, low[k]);
    _mm256_storeu_pd(q + 4, high[k]);
    for (int l = 0; l < 8; ++l) lanes[l][k] = q[l];
  }
  for (int l = 0; i < size; ++i, ++l) term(i, lanes[l]);
  std::array<double, K> sums;
  for (int k = 0; k < K; ++k) {
    const auto pair = [&](int l) { return lanes[l][k] + lanes[l + 1][k]; };
    sums[k] = (pair(0) + pair(2)) + (pair(4) + pair(6));
  }
  return sums;
}

// The value type (double or Quad) of an accumulator array passed to a lane_sums term.
template <typename Acc>
using Wide = std::remove_cvref_t<decltype(std::declval<Acc>()[0])>;


// Mean first, then the squared deviations from it (the run is in L1 by then): unlike
// E[x^2] - E[x]^2 this does not cancel catastrophically when the mean is large compared with the
// spread.
template <typename T>
Moments run_moments(const T* x, int size) {
  const double total = lane_sums<1>(size, [&](int i, auto& acc) {
    acc[0] += widen(x + i, Wide<decltype(acc)>{});
  })[0];
  const double mean = total / size;
  const double m2 = lane_sums<1>(size, [&](int i, auto& acc) {
    const auto d = widen(x + i, Wide<decltype(acc)>{}) - mean;
    acc[0] += d * d;
  })[0];
  return {double(size), mean, m2};
}


// Stores v rounded to T, through relu_forward's expression when relu is set.
template <typename T, typename W>
void store_output(T* y, W v, bool relu) {
  const auto t = narrow(v, y);
  store(y, relu ? (t < T(0) ? T(0) : t) : t);
}

template <typename T>
void normalise_run(const T* x, int size, double mean, double scale, double beta, bool relu,
                   T* y) {
  for_run(size, [&](int i, auto w) {
    store_output(y + i, (widen(x + i, w) - mean) * scale + beta, relu);
  });
}

// The gradient reaching the normalisation's output: dy, zeroed where the ReLU was off (as
// relu_backward does). Relu is a template parameter so that y, which may be null without the
// ReLU, is read only with it.
template <bool Relu, typename T, typename W>
W masked_dy(const T* dy, const T* y, int i, W w) {
  const W d = widen(dy + i, w);
  if constexpr (Relu) return widen(y + i, w) > 0.0 ? d : 0.0;
  return d;
}

struct GradSums {
  double dy = 0, dy_x = 0;  // sum(dy') and sum(dy' (x - mean)): dbeta and dgamma / invstd
};

template <bool Relu, typename T>
GradSums run_grad_sums(const T* dy, const T* x, const T* y, int size, double mean) {
  const auto sums = lane_sums<2>(size, [&](int i, auto& acc) {
    using W = Wide<decltype(acc)>;
    const W d = masked_dy<Relu>(dy, y, i, W{});
    acc[0] += d;
    acc[1] += d * (widen(x + i, W{}) - mean);
  });
  return {sums[0], sums[1]};
}

// A channel's sums from its runs' partials, added in run order.
GradSums channel_sums(const std::vector<GradSums>& partial, int c, int per_channel) {
  GradSums g;
  for (int k = 0; k < per_channel; ++k) {
    const GradSums& p = partial[std::size_t(c) * per_channel + k];
    g.dy += p.dy;
    g.dy_x += p.dy_x;
  }
  return g;
}

// The training input gradient (formula at batchnorm_backward_train) over one run.
template <bool Relu, typename T>
void train_dx_run(const T* dy, const T* x, const T* y, int size, double mean, double invstd,
                  double k, double mean_dy, double mean_dy_xhat, T* dx) {
  for_run(size, [&](int i, auto w) {
    const auto xhat = (widen(x + i, w) - mean) * invstd;
    store(dx + i, narrow(k * (masked_dy<Relu>(dy, y, i, w) - mean_dy - xhat * mean_dy_xhat),
                         dx));
  });
}

// The inference input gradient dx = k dy' over one run, then the sums (the run is in cache).
template <bool Relu, typename T>
GradSums infer_dx_run(const T* dy, const T* x, const T* y, int size, double mean, double k,
                      T* dx) {
  for_run(size, [&](int i, auto w) {
    store(dx + i, narrow(k * masked_dy<Relu>(dy, y, i, w), dx));
  });
  return run_grad_sums<Relu>(dy, x, y, size, mean);
}

}  // namespace

template <typename T>
void batchnorm_forward_train(const BatchNormShape& s, const T* x, const T* gamma, const T* beta,
                             T eps, T momentum, T* running_mean, T* running_var, T* y, T* save_mean,
                             T* save_invstd, bool relu) {
  // The unbiased variance divides by N * HW - 1.
  if (s.per_channel() < 2)
    throw std::invalid_argument("batchnorm_forward_train: needs at least 2 values per channel");
  const Runs runs(s);
  const int group = channels_per_group(s);
  const double mom = double(momentum);
  std::vector<Moments> partial(std::size_t(s.c) * runs.per_channel);
  std::vector<double> mean(s.c), invstd(s.c);
#pragma omp parallel if (s.size() >= kParallelMin)
  for (int c0 = 0; c0 < s.c; c0 += group) {
    const int c1 = std::min(s.c, c0 + group), work = (c1 - c0) * runs.per_channel;
    const std::size_t first = std::size_t(c0) * runs.per_channel;
#pragma omp for schedule(static)
    for (int w = 0; w < work; ++w) {
      const auto r = runs.run(s, c0 + w / runs.per_channel, w % runs.per_channel);
      partial[first + w] = run_moments(x + r.begin, r.size);
    }
#pragma omp for schedule(static)
    for (int c = c0; c < c1; ++c) {
      const Moments* p = &partial[std::size_t(c) * runs.per_channel];
      Moments mo = p[0];
      for (int k = 1; k < runs.per_channel; ++k) mo = merge(mo, p[k]);
      const double var = mo.m2 / mo.count;  // biased
      mean[c] = mo.mean;
      invstd[c] = inverse_std(var, double(eps));
      save_mean[c] = T(mean[c]);
      save_invstd[c] = T(invstd[c]);
      running_mean[c] = T((1 - mom) * double(running_mean[c]) + mom * mo.mean);
      running_var[c] =
          T((1 - mom) * double(running_var[c]) + mom * var * mo.count / (mo.count - 1));
    }
#pragma omp for schedule(static)
    for (int w = 0; w < work; ++w) {
      const int c = c0 + w / runs.per_channel;
      const auto r = runs.run(s, c, w % runs.per_channel);
      normalise_run(x + r.begin, r.size, mean[c], double(gamma[c]) * invstd[c], double(beta[c]),
                    relu, y + r.begin);
    }
  }
}

template <typename T>
void batchnorm_forward_infer(const BatchNormShape& s, const T* x, const T* gamma, const T* beta,
                             const T* running_mean, const T* running_var, T eps, T* y, bool relu) {
  const Runs runs(s);
  const int work = s.c * runs.per_channel;
#pragma omp parallel for schedule(static) if (s.size() >= kParallelMin)
  for (int w = 0; w < work; ++w) {
    const int c = w / runs.per_channel;
    const auto r = runs.run(s, c, w % runs.per_channel);
    const double invstd = inverse_std(double(running_var[c]), double(eps));
    normalise_run(x + r.begin, r.size, double(running_mean[c]), double(gamma[c]) * invstd,
                  double(beta[c]), relu, y + r.begin);
  }
}

// dx = gamma invstd / M * (M dy' - sum(dy') - xhat sum(dy' xhat)), M = N * HW, written with the
// two sums divided by M first.
template <typename T>
void batchnorm_backward_train(const BatchNormShape& s, const T* dy, const T* x, const T* y,
                              const T* gamma, const T* save_mean, const T* save_invstd, T* dx,
                              T* dgamma, T* dbeta, bool relu) {
  const Runs runs(s);
  const int group = channels_per_group(s);
  const double count = double(s.per_channel());
  std::vector<GradSums> partial(std::size_t(s.c) * runs.per_channel);
  std::vector<double> mean_dy(s.c), mean_dy_xhat(s.c);
#pragma omp parallel if (s.size() >= kParallelMin)
  for (int c0 = 0; c0 < s.c; c0 += group) {
    const int c1 = std::min(s.c, c0 + group), work = (c1 - c0) * runs.per_channel;
    const std::size_t first = std::size_t(c0) * runs.per_channel;
#pragma omp for schedule(static)
    for (int w = 0; w < work; ++w) {
      const int c = c0 + w / runs.per_channel;
      const auto r = runs.run(s, c, w % runs.per_channel);
      const T* yr = y ? y + r.begin : y;
      const double mean = double(save_mean[c]);
      partial[first + w] = relu ? run_grad_sums<true>(dy + r.begin, x + r.begin, yr, r.size, mean)
                                : run_grad_sums<false>(dy + r.begin, x + r.begin, yr, r.size, mean);
    }
#pragma omp for schedule(static)
    for (int c = c0; c < c1; ++c) {
      const GradSums g = channel_sums(partial, c, runs.per_channel);
      const double dy_xhat = g.dy_x * double(save_invstd[c]);
      dgamma[c] = T(dy_xhat);
      dbeta[c] = T(g.dy);
      mean_dy[c] = g.dy / count;
      mean_dy_xhat[c] = dy_xhat / count;
    }
#pragma omp for schedule(static)
    for (int w = 0; w < work; ++w) {
      const int c = c0 + w / runs.per_channel;
      const auto r = runs.run(s, c, w % runs.per_channel);
      const double mean = double(save_mean[c]), invstd = double(save_invstd[c]);
      const double k = double(gamma[c]) * invstd;
      const T* yr = y ? y + r.begin : y;
      if (relu)
        train_dx_run<true>(dy + r.begin, x + r.begin, yr, r.size, mean, invstd, k, mean_dy[c],
                           mean_dy_xhat[c], dx + r.begin);
      else
        train_dx_run<false>(dy + r.begin, x + r.begin, yr, r.size, mean, invstd, k, mean_dy[c],
                            mean_dy_xhat[c], dx + r.begin);
    }
  }
}

template <typename T>
void batchnorm_backward_infer(const BatchNormShape& s, const T* dy, const T* x, const T* y,
                              const T* gamma, const T* running_mean, const T* running_var, T eps,
                              T* dx, T* dgamma, T* dbeta, bool relu) {
  const Runs runs(s);
  const int work = s.c * runs.per_channel;
  std::vector<GradSums> partial(std::size_t(s.c) * runs.per_channel);
#pragma omp parallel if (s.size() >= kParallelMin)
  {
#pragma omp for schedule(static)
    for (int w = 0; w < work; ++w) {
      const int c = w / runs.per_channel;
      const auto r = runs.run(s, c, w % runs.per_channel);
      const double mean = double(running_mean[c]);
      const double k = double(gamma[c]) * inverse_std(double(running_var[c]), double(eps));
      const T* yr = y ? y + r.begin : y;
      partial[w] = relu ? infer_dx_run<true>(dy + r.begin, x + r.begin, yr, r.size, mean, k,
                                             dx + r.begin)
                        : infer_dx_run<false>(dy + r.begin, x + r.begin, yr, r.size, mean, k,
                                              dx + r.begin);
    }
#pragma omp for schedule(static)
    for (int c = 0; c < s.c; ++c) {
      const GradSums g = channel_sums(partial, c, runs.per_channel);
      dgamma[c] = T(g.dy_x * inverse_std(double(running_var[c]), double(eps)));
      dbeta[c] = T(g.dy);
    }
  }
}

#define UNET_INSTANTIATE(T)                                                                        \
  template void batchnorm_forward_train<T>(const BatchNormShape&, const T*, const T*, const T*, T, \
                                           T, T*, T*, T*, T*, T*, bool);                           \
  template void batchnorm_forward_infer<T>(const BatchNormShape&, const T*, const T*, const T*,    \
                                           const T*, const T*, T, T*, bool);                       \
  template void batchnorm_backward_train<T>(const BatchNormShape&, const T*, const T*, const T*,   \
                                            const T*, const T*, const T*, T*, T*, T*, bool);       \
  template void batchnorm_backward_infer<T>(const BatchNormShape&, const T*, const T*, const T*,   \
                                            const T*, const T*, const T*, T, T*, T*, T*, bool);
UNET_INSTANTIATE(float)
UNET_INSTANTIATE(double)
#undef UNET_INSTANTIATE

}  // namespace unet::cpu
