// CUDA multi-tensor Adam / AdamW update: the twin of kernels/cpu/adam.cpp, for every parameter
// tensor of the model in one launch.
//
// Decomposition: a 2-D grid, tensors on y (striding by gridDim.y past 65535) and chunks of a
// tensor on x. Block (x, k) reads entry k of the device table and grid-strides over that tensor
// from chunk x, so the x extent is sized for the largest tensor (capped; a large tensor then takes
// several elements per thread) and blocks past a small tensor's end exit at once. One launch
// instead of one per tensor matters because the U-Net has dozens of small tensors (biases, BN
// scales) whose separate launches would cost more than their arithmetic.
//
// The bias corrections 1 - beta^t are the same for every element: the launcher computes them once
// in double, as the CPU twin does, and passes them as floats. Each element is independent, so the
// update is deterministic; it matches the CPU to a few ulp (nvcc contracts a * b + c into FMAs,
// the host compiler may not).
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <stdexcept>

#include "kernels/cuda/kernels.h"
#include "kernels/cuda/reduce.cuh"

namespace unet::UNET_CUDA_NS {
namespace {

constexpr int kAdamThreads = 256;
// Blocks per tensor: 256 x 256 threads fill an SM's worth many times over even for the largest
// U-Net tensor (~0.6 M weights, ~9 per thread), and bound the empty blocks of small tensors.
constexpr std::size_t kMaxChunks = 256;

struct AdamStep {
  float lr, beta1, beta2, eps, decay;  // decay = lr * weight_decay
  float bc1, bc2;                      // 1 - beta1^t, 1 - beta2^t
};

__global__ void adam_update_kernel(const AdamTensor* __restrict__ table, int tensors, AdamStep a) {
  const std::size_t stride = std::size_t(gridDim.x) * blockDim.x;
  for (int k = int(blockIdx.y); k < tensors; k += int(gridDim.y)) {
    const AdamTensor t = table[k];
    for (std::size_t i = std::size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < t.count;
         i += stride) {
      const float g = t.grad[i];
      const float m = a.beta1 * t.m[i] + (1.0f - a.beta1) * g;
      const float v = a.beta2 * t.v[i] + (1.0f - a.beta2) * g * g;
      t.m[i] = m;
      t.v[i] = v;
      const float m_hat = m / a.bc1, v_hat = v / a.bc2;
      const float p = t.param[i];
      t.param[i] = p - (a.lr * m_hat / (sqrtf(v_hat) + a.eps) + a.decay * p);
    }
  }
}

}  // namespace

void adam_update(const AdamParams& a, const AdamTensor* host_table, const AdamTensor* device_table,
                 int tensors, cudaStream_t stream) {
  // At t = 0 the bias corrections 1 - beta^t would be zero.
  if (a.step < 1) throw std::invalid_argument("adam_update: step counts from 1");
  std::size_t largest = 0;
  for (int k = 0; k < tensors; ++k) largest = std::max(largest, host_table[k].count);
  if (largest == 0) return;
  const double t = double(a.step);
  const AdamStep step{a.lr,
                      a.beta1,
                      a.beta2,
                      a.eps,
                      a.lr * a.weight_decay,
                      float(1.0 - std::pow(double(a.beta1), t)),
                      float(1.0 - std::pow(double(a.beta2), t))};
  const dim3 grid(detail::grid_blocks(largest, kAdamThreads, kMaxChunks),
                  std::min(unsigned(tensors), detail::kMaxGridY));
  UNET_LAUNCH(adam_update_kernel, grid, dim3(kAdamThreads), 0, stream)(device_table, tensors, step);
  UNET_CHECK_LAUNCH("adam_update_kernel");
}

}  // namespace unet::UNET_CUDA_NS
