// CUDA batch normalisation, optionally fused with the ReLU that follows it in every U-Net block:
// the twin of kernels/cpu/batchnorm.cpp (same formulas, same running-statistics convention:
// running = (1 - momentum) running + momentum batch, unbiased variance for running_var).
//
// Decomposition. Training forward and both backward passes need per-channel sums over the
// channel's N x HW values, so one block owns each channel (grid = C): the sums stay in registers
// and shared memory, with no scratch buffer, no second launch and no atomics. The channel is N
// planes of HW floats spaced C * HW apart; the block walks them as one flat range of N * HW
// values, consecutive threads on consecutive addresses, carrying (plane, column) forward by a
// fixed step instead of dividing per element, so that small planes (15x15) keep the whole block
// busy too. Training forward makes three passes: the sum (mean), the centred squares (variance;
// two passes because E[x^2] - E[x]^2 cancels when |mean| >> std), then normalise + scale + shift
// + ReLU with one write. Backward makes two: sum(dy') and sum(dy' (x - mean)), then dx.
// Inference forward is purely elementwise: a 2-D grid (x: chunks of a plane, y: planes) in which
// each thread derives its plane's scale from the running statistics. Inference backward still
// owes dgamma and dbeta, which are per-channel sums, so it shares the block-per-channel backward.
//
// Cost: one block per channel leaves SMs idle when C is smaller than the SM count (the 240x240
// levels have 16-32 channels on 108-132 SMs). Splitting channels across blocks would need a
// scratch buffer or atomics; at these sizes the kernels are bandwidth-bound passes over a few MB
// that mostly stay in L2, so this is the price of a fixed-order, allocation-free reduction.
//
// Determinism: each element is visited by a thread fixed by its index, each thread accumulates in
// a fixed order and the block tree (reduce.cuh) has a fixed shape, so every output is bitwise
// reproducible. Precision: sums are in double, as on the CPU (only the order of additions
// differs); the per-element arithmetic is float. Agreement with the CPU: 1e-5 abs + 1e-4 rel
// (tests/cuda/test_batchnorm.cpp).
#include <cmath>
#include <cstddef>
#include <stdexcept>

#include "kernels/cuda/kernels.h"
#include "kernels/cuda/reduce.cuh"

namespace unet::UNET_CUDA_NS {
namespace {

using detail::block_sum;
using detail::Sums;

// 512 threads: enough loads in flight per SM for a bandwidth-bound pass when only C blocks run,
// and 16 warps keep the tree's second level within a single warp.
constexpr int kBnThreads = 512;
constexpr int kBnWarps = kBnThreads / detail::kWarp;
constexpr int kElementwiseThreads = 256;

// Calls f(i) for the flat indices i of channel c that belong to this thread: element e of the
// channel's flat range [0, N * HW) goes to thread e % kBnThreads.
template <typename F>
__device__ __forceinline__ void for_channel(const BatchNormShape& s, int c, F&& f) {
  if (s.n <= 0 || s.hw <= 0) return;
  const int tid = int(threadIdx.x);
  const int step_n = kBnThreads / s.hw, step_j = kBnThreads % s.hw;
  const std::size_t plane_stride = std::size_t(s.c) * s.hw;
  int n = tid / s.hw, j = tid % s.hw;
  std::size_t plane = (std::size_t(n) * s.c + c) * s.hw;  // first element of plane n of channel c
  while (n < s.n) {
    f(plane + j);
    j += step_j;
    n += step_n;
    plane += std::size_t(step_n) * plane_stride;
    if (j >= s.hw) {
      j -= s.hw;
      ++n;
      plane += plane_stride;
    }
  }
}

__device__ __forceinline__ double channel_count(const BatchNormShape& s) {
  return double(std::size_t(s.n) * std::size_t(s.hw));
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

__global__ void batchnorm_forward_train_kernel(BatchNormShape s, const float* __restrict__ x,
                                        const float* __restrict__ gamma,
                                        const float* __restrict__ beta, float eps, float momentum,
                                        float* __restrict__ running_mean,
                                        float* __restrict__ running_var, float* __restrict__ y,
                                        float* __restrict__ save_mean,
                                        float* __restrict__ save_invstd, bool relu) {
  __shared__ Sums<1> scratch[kBnWarps + 1];
  const int c = int(blockIdx.x);
  const double count = channel_count(s);

  Sums<1> total{};
  for_channel(s, c, [&](std::size_t i) { total.v[0] += double(x[i]); });
  const double mean = block_sum<kBnThreads>(total, scratch).v[0] / count;

  Sums<1> squares{};
  for_channel(s, c, [&](std::size_t i) {
    const double d = double(x[i]) - mean;
    squares.v[0] += d * d;
  });
  const double var = block_sum<kBnThreads>(squares, scratch).v[0] / count;  // biased
  const double invstd = 1.0 / sqrt(var + double(eps));

  if (threadIdx.x == 0) {
    const double mom = double(momentum);
    save_mean[c] = float(mean);
    save_invstd[c] = float(invstd);
    running_mean[c] = float((1 - mom) * double(running_mean[c]) + mom * mean);
    running_var[c] = float((1 - mom) * double(running_var[c]) + mom * var * count / (count - 1));
  }

  const float mean_f = float(mean), scale = float(double(gamma[c]) * invstd), shift = beta[c];
  for_channel(s, c, [&](std::size_t i) {
    y[i] = fused_relu((x[i] - mean_f) * scale + shift, relu);
  });
}

// Elementwise: plane p = n * C + c on y (striding by gridDim.y), its HW values on x.
__global__ void batchnorm_forward_infer_kernel(BatchNormShape s, const float* __restrict__ x,
                                        const float* __restrict__ gamma,
                                        const float* __restrict__ beta,
                                        const float* __restrict__ running_mean,
                                        const float* __restrict__ running_var, float eps,
                                        float* __restrict__ y, bool relu) {
  const int planes = s.n * s.c;
  for (int p = int(blockIdx.y); p < planes; p += int(gridDim.y)) {
    const int c = p % s.c;
    const double invstd = 1.0 / sqrt(double(running_var[c]) + double(eps));
    const float mean = running_mean[c], scale = float(double(gamma[c]) * invstd), shift = beta[c];
    const float* xp = x + std::size_t(p) * s.hw;
    float* yp = y + std::size_t(p) * s.hw;
    for (int j = int(blockIdx.x * blockDim.x + threadIdx.x); j < s.hw;
         j += int(gridDim.x * blockDim.x))
      yp[j] = fused_relu((xp[j] - mean) * scale + shift, relu);
  }
}

// Training (kTrain): mean and invstd are the saved batch statistics, and dx also flows through
// them: dx = gamma invstd (dy' - mean(dy') - xhat mean(dy' xhat)). Inference: stat is running_var,
// the statistics are constants and dx = gamma invstd dy'. Both write dgamma = sum(dy' xhat) and
// dbeta = sum(dy').
template <bool kTrain>
__global__ void batchnorm_backward_kernel(BatchNormShape s, const float* __restrict__ dy,
                                   const float* __restrict__ x, const float* __restrict__ y,
                                   const float* __restrict__ gamma,
                                   const float* __restrict__ mean_in,
                                   const float* __restrict__ stat_in, float eps,
                                   float* __restrict__ dx, float* __restrict__ dgamma,
                                   float* __restrict__ dbeta, bool relu) {
  __shared__ Sums<2> scratch[kBnWarps + 1];
  const int c = int(blockIdx.x);
  const double count = channel_count(s);
  const double mean = double(mean_in[c]);
  const double invstd =
      kTrain ? double(stat_in[c]) : 1.0 / sqrt(double(stat_in[c]) + double(eps));

  // invstd is common to every term, so sum(dy' (x - mean)) is scaled once at the end.
  Sums<2> acc{};
  for_channel(s, c, [&](std::size_t i) {
    const double d = double(masked_dy(dy, y, i, relu));
    acc.v[0] += d;
    acc.v[1] += d * (double(x[i]) - mean);
  });
  const Sums<2> g = block_sum<kBnThreads>(acc, scratch);
  const double sum_dy = g.v[0], sum_dy_xhat = g.v[1] * invstd;
  if (threadIdx.x == 0) {
    dgamma[c] = float(sum_dy_xhat);
    dbeta[c] = float(sum_dy);
  }

  const double k = double(gamma[c]) * invstd;
  if constexpr (kTrain) {
    // dx = k dy' - k mean(dy') - k invstd mean(dy' xhat) (x - mean), constants folded in double.
    const float a = float(k), b = float(k * sum_dy / count);
    const float slope = float(k * invstd * sum_dy_xhat / count), mean_f = mean_in[c];
    for_channel(s, c, [&](std::size_t i) {
      dx[i] = a * masked_dy(dy, y, i, relu) - b - slope * (x[i] - mean_f);
    });
  } else {
    const float a = float(k);
    for_channel(s, c, [&](std::size_t i) { dx[i] = a * masked_dy(dy, y, i, relu); });
  }
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
  UNET_LAUNCH(batchnorm_forward_train_kernel, dim3(unsigned(s.c)), dim3(kBnThreads), 0, stream)
  (s, x, gamma, beta, eps, momentum, running_mean, running_var, y, save_mean, save_invstd, relu);
  UNET_CHECK_LAUNCH("batchnorm_forward_train_kernel");
}

void batchnorm_forward_infer(const BatchNormShape& s, const float* x, const float* gamma,
                             const float* beta, const float* running_mean,
                             const float* running_var, float eps, float* y, bool relu,
                             cudaStream_t stream) {
  if (s.size() == 0) return;
  const dim3 grid(detail::grid_blocks(std::size_t(s.hw), kElementwiseThreads, 1024),
                  std::min(unsigned(s.n * s.c), detail::kMaxGridY));
  UNET_LAUNCH(batchnorm_forward_infer_kernel, grid, dim3(kElementwiseThreads), 0, stream)
  (s, x, gamma, beta, running_mean, running_var, eps, y, relu);
  UNET_CHECK_LAUNCH("batchnorm_forward_infer_kernel");
}

void batchnorm_backward_train(const BatchNormShape& s, const float* dy, const float* x,
                              const float* y, const float* gamma, const float* save_mean,
                              const float* save_invstd, float* dx, float* dgamma, float* dbeta,
                              bool relu, cudaStream_t stream) {
  if (s.c <= 0) return;
  auto* kernel = &batchnorm_backward_kernel<true>;
  UNET_LAUNCH(kernel, dim3(unsigned(s.c)), dim3(kBnThreads), 0, stream)
  (s, dy, x, y, gamma, save_mean, save_invstd, 0.0f, dx, dgamma, dbeta, relu);
  UNET_CHECK_LAUNCH("batchnorm_backward_kernel<true> (train)");
}

void batchnorm_backward_infer(const BatchNormShape& s, const float* dy, const float* x,
                              const float* y, const float* gamma, const float* running_mean,
                              const float* running_var, float eps, float* dx, float* dgamma,
                              float* dbeta, bool relu, cudaStream_t stream) {
  if (s.c <= 0) return;
  auto* kernel = &batchnorm_backward_kernel<false>;
  UNET_LAUNCH(kernel, dim3(unsigned(s.c)), dim3(kBnThreads), 0, stream)
  (s, dy, x, y, gamma, running_mean, running_var, eps, dx, dgamma, dbeta, relu);
  UNET_CHECK_LAUNCH("batchnorm_backward_kernel<false> (infer)");
}

}  // namespace unet::UNET_CUDA_NS
