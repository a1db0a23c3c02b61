// CUDA batch normalisation, optionally fused with the ReLU that follows it in every U-Net block:
// the twin of kernels/cpu/batchnorm.cpp (same formulas, same running-statistics convention:
// running = (1 - momentum) running + momentum batch, unbiased variance for running_var).
//
// Decomposition. Training forward and both backward passes need per-channel sums over the
// channel's N x HW values: N planes of HW floats spaced C * HW apart, taken as one flat range of
// N * HW values. That range is cut into B slices of near-equal length, one block of 512 threads
// each; consecutive threads read consecutive addresses, carrying (plane, column) forward by a
// fixed step instead of dividing per element, so that small planes (15x15) keep the whole block
// busy too. B depends on the shape alone (cut_of): C x B near 512 blocks, four per SM of a
// 132-SM GPU, but no slice under 4096 values.
//   B = 1 (many channels, or few values per channel): one launch, one block per channel, the sums
//   in registers and shared memory. Training forward makes three passes: the sum (mean), the
//   centred squares (variance; two passes because E[x^2] - E[x]^2 cancels when |mean| >> std),
//   then normalise + scale + shift + ReLU with one write. Backward makes two: sum(dy') and
//   sum(dy' (x - mean)), then dx.
//   B > 1 (at batch 6, the 16- to 64-channel layers): three launches. Each block reduces its
//   slice to a partial (forward: count, mean and centred sum of squares, the slice's second pass
//   served by the cache; backward: the two sums); one warp per channel merges the channel's B
//   partials (Chan's parallel formula for the moments, as stable as two passes over the channel;
//   plain sums for the gradients) into the saved statistics or dgamma and dbeta; an elementwise
//   kernel then normalises, or computes dx, with per-channel constants read back from those.
//   The partials are parked in the output array (y or dx), which nothing reads before the last
//   launch overwrites it: no scratch buffer and no atomics, but the output must not overlap an
//   input (the engine allocates every output afresh). Against B = 1 this costs two launches of
//   a few microseconds, and the same passes over the data.
// Inference forward is purely elementwise: a 2-D grid (x: chunks of a plane, y: planes) in which
// each thread derives its plane's scale from the running statistics. Inference backward still
// owes dgamma and dbeta, which are per-channel sums, so it shares the training backward's
// reductions.
//
// Determinism: B and the slice boundaries depend on the shape alone, never on the device or on
// timing; each element is visited by a thread fixed by its index, each thread accumulates in a
// fixed order, each partial has its own slot, and the block and warp trees (reduce.cuh, and the
// merge's fold) have a fixed shape, so every output is bitwise reproducible on any GPU.
// Precision: sums are in double, as on the CPU (only the order of additions differs); the
// per-element arithmetic is float. Agreement with the CPU: 1e-5 abs + 1e-4 rel
// (tests/cuda/test_batchnorm.cpp).
#include <algorithm>
#include <climits>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <stdexcept>

#include "kernels/cuda/kernels.h"
#include "kernels/cuda/reduce.cuh"

namespace unet::UNET_CUDA_NS {
namespace {

using detail::block_sum;
using detail::kFullMask;
using detail::kWarp;
using detail::Sums;

// 512 threads: enough loads in flight per SM for a bandwidth-bound pass when only C blocks run,
// and 16 warps keep the tree's second level within a single warp.
constexpr int kBnThreads = 512;
constexpr int kBnWarps = kBnThreads / kWarp;
constexpr int kElementwiseThreads = 256;

// Blocks per channel: the channels together aim at kTargetBlocks, about four blocks of 512
// threads per SM of a 132-SM H100 / H200 (five of a 108-SM A100), so that every SM keeps several
// blocks' loads in flight; but a slice keeps at least kMinSlice values (8 per thread), so that
// the block's tree and the merge stay small beside its loads. A constant, not the device's SM
// count: the cut, and with it every rounding, is then the same on any GPU.
constexpr std::size_t kTargetBlocks = 512;
constexpr std::size_t kMinSlice = 4096;
// So that no slice is empty: B - 1 slices of ceil(N HW / B) leave the last at least
// kMinSlice - B + 1 values.
static_assert(kMinSlice > kTargetBlocks);

// The cut of every channel into `blocks` slices of `length` values, the last one shorter (by
// fewer than `blocks` values). Channels of more than INT_MAX values (8 GiB) stay on one block:
// the several-blocks path then indexes within a channel in 32 bits, whose division costs far
// fewer registers than a 64-bit one.
struct Cut {
  int blocks, length;
};

Cut cut_of(const BatchNormShape& s) {
  const std::size_t values = s.per_channel();
  if (values > std::size_t(INT_MAX)) return {1, 0};
  const std::size_t wanted = (kTargetBlocks + std::size_t(s.c) - 1) / std::size_t(s.c);
  const std::size_t blocks = std::max<std::size_t>(1, std::min(wanted, values / kMinSlice));
  return {int(blocks), int((values + blocks - 1) / blocks)};
}

__device__ __forceinline__ std::size_t channel_values(const BatchNormShape& s) {
  return std::size_t(s.n) * std::size_t(s.hw);
}

// A contiguous part [begin, end) of a channel's flat range.
struct Slice {
  std::size_t begin, end;
};

__device__ __forceinline__ Slice whole_channel(const BatchNormShape& s) {
  return {0, channel_values(s)};
}

__device__ __forceinline__ Slice slice_of(const BatchNormShape& s, int b, int length) {
  const std::size_t begin = std::size_t(b) * std::size_t(length),
                    end = begin + std::size_t(length), values = channel_values(s);
  return {begin, end < values ? end : values};
}

// Calls f(i) for the flat indices i of channel c that belong to this thread: element e of the
// slice goes to thread (e - begin) % kBnThreads. The thread's first element is decoded in 32 bits:
// it lies below 2^32, in a channel of at most INT_MAX values (cut_of) or in the first block of
// a whole channel.
template <typename F>
__device__ __forceinline__ void for_slice(const BatchNormShape& s, int c, Slice slice, F&& f) {
  const std::size_t first = slice.begin + threadIdx.x;
  if (first >= slice.end) return;
  const std::size_t plane_stride = std::size_t(s.c) * std::size_t(s.hw);
  const int step_j = kBnThreads % s.hw;
  const std::size_t step_plane = std::size_t(kBnThreads / s.hw) * plane_stride;
  int j = int(unsigned(first) % unsigned(s.hw));
  // Element 0 of the plane of `first`.
  std::size_t plane = (std::size_t(unsigned(first) / unsigned(s.hw)) * std::size_t(s.c) +
                       std::size_t(c)) * std::size_t(s.hw);
  for (int left = int((slice.end - first - 1) / kBnThreads) + 1; left > 0; --left) {
    f(plane + std::size_t(j));
    j += step_j;
    plane += step_plane;
    if (j >= s.hw) {
      j -= s.hw;
      plane += plane_stride;
    }
  }
}

// Count, mean and sum of squared deviations from the mean (m2) of a set of values.
struct Moments {
  double count, mean, m2;
};

// The moments of the union of two disjoint sets (Chan, Golub & LeVeque), as in
// kernels/cpu/batchnorm_runs.h. An empty b (a lane without a partial) leaves a unchanged; an
// empty a takes b's values exactly.
__device__ __forceinline__ Moments merge(const Moments& a, const Moments& b) {
  if (b.count == 0) return a;
  const double count = a.count + b.count, delta = b.mean - a.mean;
  return {count, a.mean + delta * (b.count / count),
          a.m2 + b.m2 + delta * delta * (a.count * b.count / count)};
}

// The moments of a slice of channel c, by two passes (the second reads the slice from cache).
__device__ __forceinline__ Moments slice_moments(const BatchNormShape& s, int c, Slice slice,
                                                 const float* __restrict__ x,
                                                 Sums<1>* scratch) {
  const double count = double(slice.end - slice.begin);
  Sums<1> total{};
  for_slice(s, c, slice, [&](std::size_t i) { total.v[0] += double(x[i]); });
  const double mean = block_sum<kBnThreads>(total, scratch).v[0] / count;

  Sums<1> squares{};
  for_slice(s, c, slice, [&](std::size_t i) {
    const double d = double(x[i]) - mean;
    squares.v[0] += d * d;
  });
  return {count, mean, block_sum<kBnThreads>(squares, scratch).v[0]};
}

__device__ __forceinline__ double inverse_std(double var, float eps) {
  return 1.0 / sqrt(var + double(eps));
}

// Channel c's saved statistics (invstd: inverse_std of the biased variance m.m2 / m.count), and
// the running statistics moved towards the batch's (with the unbiased variance).
__device__ __forceinline__ void store_statistics(int c, const Moments& m, double invstd,
                                                 float momentum, float* running_mean,
                                                 float* running_var, float* save_mean,
                                                 float* save_invstd) {
  const double mom = double(momentum), var = m.m2 / m.count;
  save_mean[c] = float(m.mean);
  save_invstd[c] = float(invstd);
  running_mean[c] = float((1 - mom) * double(running_mean[c]) + mom * m.mean);
  running_var[c] = float((1 - mom) * double(running_var[c]) + mom * var * m.count / (m.count - 1));
}

// The invstd the normalisation (and backward) of channel c uses. kTrain: `stat` holds the saved
// batch invstd; otherwise the running variance.
template <bool kTrain>
__device__ __forceinline__ double channel_invstd(const float* stat, int c, float eps) {
  return kTrain ? double(stat[c]) : inverse_std(double(stat[c]), eps);
}

// relu_forward's expression, so that the fused and unfused paths agree bit for bit and a NaN
// passes through instead of being zeroed.
__device__ __forceinline__ float fused_relu(float v, bool relu) {
  return relu && v < 0.0f ? 0.0f : v;
}

// The gradient reaching the normalisation's output: dy, zeroed where the ReLU was off. y is read
// only when relu is set (it may be null otherwise).
__device__ __forceinline__ float masked_dy(const float* dy, const float* y, std::size_t i,
                                           bool relu) {
  return relu && !(y[i] > 0.0f) ? 0.0f : dy[i];
}

// sum(dy') and sum(dy' (x - mean)) over a slice of channel c. invstd is common to every term of
// the second, so callers scale it once at the end.
__device__ __forceinline__ Sums<2> slice_gradient_sums(const BatchNormShape& s, int c,
                                                       Slice slice, const float* __restrict__ dy,
                                                       const float* __restrict__ x,
                                                       const float* __restrict__ y, double mean,
                                                       bool relu, Sums<2>* scratch) {
  Sums<2> acc{};
  for_slice(s, c, slice, [&](std::size_t i) {
    const double d = double(masked_dy(dy, y, i, relu));
    acc.v[0] += d;
    acc.v[1] += d * (double(x[i]) - mean);
  });
  return block_sum<kBnThreads>(acc, scratch);
}

// What dx needs of channel c, in float: dx = a dy' - b - slope (x - mean) in training, where
// dx = gamma invstd (dy' - mean(dy') - xhat mean(dy' xhat)), with the constants folded in double;
// dx = a dy' in inference, where the statistics are constants.
struct DxTerms {
  float a, b, slope, mean;
};

template <bool kTrain>
__device__ __forceinline__ DxTerms dx_terms(double gamma, double mean, double invstd,
                                            double sum_dy, double sum_dy_xhat, double count) {
  const double k = gamma * invstd;
  if constexpr (kTrain)
    return {float(k), float(k * sum_dy / count), float(k * invstd * sum_dy_xhat / count),
            float(mean)};
  else
    return {float(k), 0.0f, 0.0f, 0.0f};
}

// dx[i]; inference reads no x.
template <bool kTrain>
__device__ __forceinline__ float dx_at(const DxTerms& t, const float* dy, const float* x,
                                       const float* y, std::size_t i, bool relu) {
  const float d = masked_dy(dy, y, i, relu);
  if constexpr (kTrain)
    return t.a * d - t.b - t.slope * (x[i] - t.mean);
  else
    return t.a * d;
}

// B = 1: the whole training forward of channel c in one block.
__global__ void batchnorm_forward_train_kernel(BatchNormShape s, const float* __restrict__ x,
                                               const float* __restrict__ gamma,
                                               const float* __restrict__ beta, float eps,
                                               float momentum, float* __restrict__ running_mean,
                                               float* __restrict__ running_var,
                                               float* __restrict__ y,
                                               float* __restrict__ save_mean,
                                               float* __restrict__ save_invstd, bool relu) {
  __shared__ Sums<1> scratch[kBnWarps + 1];
  const int c = int(blockIdx.x);
  const Moments m = slice_moments(s, c, whole_channel(s), x, scratch);
  const double invstd = inverse_std(m.m2 / m.count, eps);
  if (threadIdx.x == 0)
    store_statistics(c, m, invstd, momentum, running_mean, running_var, save_mean, save_invstd);

  const float mean_f = float(m.mean), scale = float(double(gamma[c]) * invstd), shift = beta[c];
  for_slice(s, c, whole_channel(s), [&](std::size_t i) {
    y[i] = fused_relu((x[i] - mean_f) * scale + shift, relu);
  });
}

// B > 1, first launch: block (c, b) parks the moments of slice b of channel c (B = gridDim.y) in
// partials[c B + b].
__global__ void batchnorm_forward_stats_kernel(BatchNormShape s, int length,
                                               const float* __restrict__ x,
                                               Moments* __restrict__ partials) {
  __shared__ Sums<1> scratch[kBnWarps + 1];
  const int c = int(blockIdx.x), b = int(blockIdx.y), blocks = int(gridDim.y);
  const Moments m = slice_moments(s, c, slice_of(s, b, length), x, scratch);
  if (threadIdx.x == 0) partials[std::size_t(c) * std::size_t(blocks) + std::size_t(b)] = m;
}

__device__ __forceinline__ Moments shfl_down(const Moments& m, int offset) {
  return {__shfl_down_sync(kFullMask, m.count, offset), __shfl_down_sync(kFullMask, m.mean, offset),
          __shfl_down_sync(kFullMask, m.m2, offset)};
}

// B > 1, second launch: one warp per channel. Lane l folds partials l, l + 32, ... in order, then
// the lanes merge in reduce.cuh's fixed tree (distances 16, 8, 4, 2, 1).
__global__ void batchnorm_forward_merge_kernel(const Moments* __restrict__ partials, int blocks,
                                               float eps, float momentum,
                                               float* __restrict__ running_mean,
                                               float* __restrict__ running_var,
                                               float* __restrict__ save_mean,
                                               float* __restrict__ save_invstd) {
  const int c = int(blockIdx.x), lane = int(threadIdx.x);
  const Moments* channel = partials + std::size_t(c) * std::size_t(blocks);
  Moments m{0.0, 0.0, 0.0};
  for (int b = lane; b < blocks; b += kWarp) m = merge(m, channel[b]);
  for (int offset = kWarp / 2; offset > 0; offset /= 2) m = merge(m, shfl_down(m, offset));
  if (lane == 0)
    store_statistics(c, m, inverse_std(m.m2 / m.count, eps), momentum, running_mean, running_var,
                     save_mean, save_invstd);
}

// Elementwise: plane p = n * C + c on y (striding by gridDim.y), its HW values on x. kTrain: the
// last launch of the B > 1 training forward, with the statistics the merge saved (stat =
// save_invstd); otherwise inference (stat = running_var).
template <bool kTrain>
__global__ void batchnorm_forward_normalize_kernel(BatchNormShape s, const float* __restrict__ x,
                                                   const float* __restrict__ gamma,
                                                   const float* __restrict__ beta,
                                                   const float* __restrict__ mean_in,
                                                   const float* __restrict__ stat_in, float eps,
                                                   float* __restrict__ y, bool relu) {
  const int planes = s.n * s.c;
  for (int p = int(blockIdx.y); p < planes; p += int(gridDim.y)) {
    const int c = p % s.c;
    const double invstd = channel_invstd<kTrain>(stat_in, c, eps);
    const float mean = mean_in[c], scale = float(double(gamma[c]) * invstd), shift = beta[c];
    const float* xp = x + std::size_t(p) * s.hw;
    float* yp = y + std::size_t(p) * s.hw;
    for (int j = int(blockIdx.x * blockDim.x + threadIdx.x); j < s.hw;
         j += int(gridDim.x * blockDim.x))
      yp[j] = fused_relu((xp[j] - mean) * scale + shift, relu);
  }
}

// B = 1: the whole backward of channel c in one block. Training (kTrain): mean and stat are the
// saved batch statistics, and dx also flows through them. Inference: stat is running_var. Both
// write dgamma = sum(dy' xhat) and dbeta = sum(dy').
template <bool kTrain>
__global__ void batchnorm_backward_kernel(BatchNormShape s, const float* __restrict__ dy,
                                          const float* __restrict__ x,
                                          const float* __restrict__ y,
                                          const float* __restrict__ gamma,
                                          const float* __restrict__ mean_in,
                                          const float* __restrict__ stat_in, float eps,
                                          float* __restrict__ dx, float* __restrict__ dgamma,
                                          float* __restrict__ dbeta, bool relu) {
  __shared__ Sums<2> scratch[kBnWarps + 1];
  const int c = int(blockIdx.x);
  const double mean = double(mean_in[c]), invstd = channel_invstd<kTrain>(stat_in, c, eps);
  const Sums<2> g = slice_gradient_sums(s, c, whole_channel(s), dy, x, y, mean, relu, scratch);
  const double sum_dy = g.v[0], sum_dy_xhat = g.v[1] * invstd;
  if (threadIdx.x == 0) {
    dgamma[c] = float(sum_dy_xhat);
    dbeta[c] = float(sum_dy);
  }

  const DxTerms t = dx_terms<kTrain>(double(gamma[c]), mean, invstd, sum_dy, sum_dy_xhat,
                                     double(channel_values(s)));
  for_slice(s, c, whole_channel(s),
            [&](std::size_t i) { dx[i] = dx_at<kTrain>(t, dy, x, y, i, relu); });
}

// B > 1, first launch: block (c, b) parks the two sums of slice b of channel c in
// partials[c B + b].
__global__ void batchnorm_backward_stats_kernel(BatchNormShape s, int length,
                                                const float* __restrict__ dy,
                                                const float* __restrict__ x,
                                                const float* __restrict__ y,
                                                const float* __restrict__ mean_in, bool relu,
                                                Sums<2>* __restrict__ partials) {
  __shared__ Sums<2> scratch[kBnWarps + 1];
  const int c = int(blockIdx.x), b = int(blockIdx.y), blocks = int(gridDim.y);
  const Sums<2> g = slice_gradient_sums(s, c, slice_of(s, b, length), dy, x, y,
                                        double(mean_in[c]), relu, scratch);
  if (threadIdx.x == 0) partials[std::size_t(c) * std::size_t(blocks) + std::size_t(b)] = g;
}

// B > 1, second launch: one warp per channel adds the channel's partials (lane l those of slices
// l, l + 32, ... in order, then reduce.cuh's warp tree) into dgamma and dbeta.
template <bool kTrain>
__global__ void batchnorm_backward_merge_kernel(const Sums<2>* __restrict__ partials, int blocks,
                                                const float* __restrict__ stat_in, float eps,
                                                float* __restrict__ dgamma,
                                                float* __restrict__ dbeta) {
  const int c = int(blockIdx.x), lane = int(threadIdx.x);
  const Sums<2>* channel = partials + std::size_t(c) * std::size_t(blocks);
  Sums<2> g{};
  for (int b = lane; b < blocks; b += kWarp)
    for (int k = 0; k < 2; ++k) g.v[k] += channel[b].v[k];
  g = detail::warp_sum(g);
  if (lane == 0) {
    dgamma[c] = float(g.v[1] * channel_invstd<kTrain>(stat_in, c, eps));
    dbeta[c] = float(g.v[0]);
  }
}

// B > 1, last launch: dx, laid out like the normalisation, each plane's constants derived from
// the sums that the merge wrote to dgamma and dbeta.
template <bool kTrain>
__global__ void batchnorm_backward_dx_kernel(BatchNormShape s, const float* __restrict__ dy,
                                             const float* __restrict__ x,
                                             const float* __restrict__ y,
                                             const float* __restrict__ gamma,
                                             const float* __restrict__ mean_in,
                                             const float* __restrict__ stat_in, float eps,
                                             const float* __restrict__ dgamma,
                                             const float* __restrict__ dbeta,
                                             float* __restrict__ dx, bool relu) {
  const int planes = s.n * s.c;
  const double count = double(channel_values(s));
  for (int p = int(blockIdx.y); p < planes; p += int(gridDim.y)) {
    const int c = p % s.c;
    const DxTerms t = dx_terms<kTrain>(double(gamma[c]), double(mean_in[c]),
                                       channel_invstd<kTrain>(stat_in, c, eps), double(dbeta[c]),
                                       double(dgamma[c]), count);
    const std::size_t plane = std::size_t(p) * s.hw;
    for (int j = int(blockIdx.x * blockDim.x + threadIdx.x); j < s.hw;
         j += int(gridDim.x * blockDim.x))
      dx[plane + std::size_t(j)] = dx_at<kTrain>(t, dy, x, y, plane + std::size_t(j), relu);
  }
}

// The B > 1 path's partials, parked in its output array. A float array may start 4 bytes off a
// double's alignment, so they begin at its first aligned address; they fit with room to spare,
// the array holding at least kMinSlice floats per partial.
template <typename Partial>
Partial* partials_in(float* out) {
  static_assert(sizeof(Partial) + alignof(Partial) <= kMinSlice * sizeof(float));
  constexpr std::uintptr_t kAlign = alignof(Partial);
  return reinterpret_cast<Partial*>((reinterpret_cast<std::uintptr_t>(out) + kAlign - 1) /
                                    kAlign * kAlign);
}

// The elementwise grid: chunks of a plane on x, planes on y.
dim3 plane_grid(const BatchNormShape& s) {
  return dim3(detail::grid_blocks(std::size_t(s.hw), kElementwiseThreads, 1024),
              std::min(unsigned(s.n * s.c), detail::kMaxGridY));
}

template <bool kTrain>
void backward(const BatchNormShape& s, const float* dy, const float* x, const float* y,
              const float* gamma, const float* mean, const float* stat, float eps, float* dx,
              float* dgamma, float* dbeta, bool relu, cudaStream_t stream) {
  if (s.c <= 0) return;
  const Cut cut = cut_of(s);
  if (cut.blocks == 1) {
    auto* kernel = &batchnorm_backward_kernel<kTrain>;
    UNET_LAUNCH(kernel, dim3(unsigned(s.c)), dim3(kBnThreads), 0, stream)
    (s, dy, x, y, gamma, mean, stat, eps, dx, dgamma, dbeta, relu);
    UNET_CHECK_LAUNCH("batchnorm_backward_kernel");
    return;
  }
  Sums<2>* partials = partials_in<Sums<2>>(dx);
  UNET_LAUNCH(batchnorm_backward_stats_kernel, dim3(unsigned(s.c), unsigned(cut.blocks)),
              dim3(kBnThreads), 0, stream)
  (s, cut.length, dy, x, y, mean, relu, partials);
  UNET_CHECK_LAUNCH("batchnorm_backward_stats_kernel");
  auto* merge_kernel = &batchnorm_backward_merge_kernel<kTrain>;
  UNET_LAUNCH(merge_kernel, dim3(unsigned(s.c)), dim3(kWarp), 0, stream)
  (partials, cut.blocks, stat, eps, dgamma, dbeta);
  UNET_CHECK_LAUNCH("batchnorm_backward_merge_kernel");
  auto* dx_kernel = &batchnorm_backward_dx_kernel<kTrain>;
  UNET_LAUNCH(dx_kernel, plane_grid(s), dim3(kElementwiseThreads), 0, stream)
  (s, dy, x, y, gamma, mean, stat, eps, dgamma, dbeta, dx, relu);
  UNET_CHECK_LAUNCH("batchnorm_backward_dx_kernel");
}

}  // namespace

void batchnorm_forward_train(const BatchNormShape& s, const float* x, const float* gamma,
                             const float* beta, float eps, float momentum, float* running_mean,
                             float* running_var, float* y, float* save_mean, float* save_invstd,
                             bool relu, cudaStream_t stream) {
  // The unbiased variance divides by N * HW - 1 (as the CPU twin checks).
  if (s.per_channel() < 2)
    throw std::invalid_argument("batchnorm_forward_train: needs at least 2 values per channel");
  if (s.c <= 0) return;
  const Cut cut = cut_of(s);
  if (cut.blocks == 1) {
    UNET_LAUNCH(batchnorm_forward_train_kernel, dim3(unsigned(s.c)), dim3(kBnThreads), 0, stream)
    (s, x, gamma, beta, eps, momentum, running_mean, running_var, y, save_mean, save_invstd,
     relu);
    UNET_CHECK_LAUNCH("batchnorm_forward_train_kernel");
    return;
  }
  Moments* partials = partials_in<Moments>(y);
  UNET_LAUNCH(batchnorm_forward_stats_kernel, dim3(unsigned(s.c), unsigned(cut.blocks)),
              dim3(kBnThreads), 0, stream)
  (s, cut.length, x, partials);
  UNET_CHECK_LAUNCH("batchnorm_forward_stats_kernel");
  UNET_LAUNCH(batchnorm_forward_merge_kernel, dim3(unsigned(s.c)), dim3(kWarp), 0, stream)
  (partials, cut.blocks, eps, momentum, running_mean, running_var, save_mean, save_invstd);
  UNET_CHECK_LAUNCH("batchnorm_forward_merge_kernel");
  auto* kernel = &batchnorm_forward_normalize_kernel<true>;
  UNET_LAUNCH(kernel, plane_grid(s), dim3(kElementwiseThreads), 0, stream)
  (s, x, gamma, beta, save_mean, save_invstd, eps, y, relu);
  UNET_CHECK_LAUNCH("batchnorm_forward_normalize_kernel<true> (train)");
}

void batchnorm_forward_infer(const BatchNormShape& s, const float* x, const float* gamma,
                             const float* beta, const float* running_mean,
                             const float* running_var, float eps, float* y, bool relu,
                             cudaStream_t stream) {
  if (s.size() == 0) return;
  auto* kernel = &batchnorm_forward_normalize_kernel<false>;
  UNET_LAUNCH(kernel, plane_grid(s), dim3(kElementwiseThreads), 0, stream)
  (s, x, gamma, beta, running_mean, running_var, eps, y, relu);
  UNET_CHECK_LAUNCH("batchnorm_forward_normalize_kernel<false> (infer)");
}

void batchnorm_backward_train(const BatchNormShape& s, const float* dy, const float* x,
                              const float* y, const float* gamma, const float* save_mean,
                              const float* save_invstd, float* dx, float* dgamma, float* dbeta,
                              bool relu, cudaStream_t stream) {
  backward<true>(s, dy, x, y, gamma, save_mean, save_invstd, 0.0f, dx, dgamma, dbeta, relu,
                 stream);
}

void batchnorm_backward_infer(const BatchNormShape& s, const float* dy, const float* x,
                              const float* y, const float* gamma, const float* running_mean,
                              const float* running_var, float eps, float* dx, float* dgamma,
                              float* dbeta, bool relu, cudaStream_t stream) {
  backward<false>(s, dy, x, y, gamma, running_mean, running_var, eps, dx, dgamma, dbeta, relu,
                  stream);
}

}  // namespace unet::UNET_CUDA_NS
