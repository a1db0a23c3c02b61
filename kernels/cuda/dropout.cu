// CUDA inverted dropout: the twin of kernels/cpu/dropout.cpp. y = x * mask / (1 - p) with
// mask[i] = (u_i >= p), u_i = kernels::philox_uniform_at(seed, offset, i), so a given
// (seed, offset) draws the same mask on the CPU and the GPU.
//
// Decomposition: one thread per Philox counter, i.e. per 4 consecutive positions of the stream
// (seed, offset): one Philox-4x32-10 evaluation yields the 4 words those positions use. With an
// offset that is not a multiple of 4 the first and last counters cover fewer than 4 elements of
// the array. Grid-stride over counters; backward is a grid-stride elementwise loop over the mask.
//
// Determinism: element i's mask bit is a pure function of (seed, offset + i); no state is shared
// between threads. Masks and outputs equal the CPU's bit for bit.
#include <cstddef>
#include <cstdint>
#include <stdexcept>

#include "kernels/cuda/kernels.h"
#include "kernels/cuda/reduce.cuh"
#include "kernels/philox.h"

namespace unet::UNET_CUDA_NS {
namespace {

constexpr int kDropoutThreads = 256;
constexpr std::size_t kMaxBlocks = 2048;

// identity (p = 0): the CPU copies x and keeps everything without drawing; so does this kernel.
__global__ void dropout_forward_kernel(std::size_t count, float p, float keep_scale, bool identity,
                                       uint64_t seed, uint64_t offset, const float* __restrict__ x,
                                       float* __restrict__ y, uint8_t* __restrict__ mask) {
  const uint64_t first = offset / 4, end = offset + count;  // stream positions [offset, end)
  const uint64_t counters = (end + 3) / 4 - first;
  const uint64_t stride = uint64_t(gridDim.x) * blockDim.x;
  for (uint64_t t = uint64_t(blockIdx.x) * blockDim.x + threadIdx.x; t < counters; t += stride) {
    const uint64_t counter = first + t;
    kernels::Philox4 r{};
    if (!identity) r = kernels::philox4x32_10(counter, seed);
    for (int word = 0; word < 4; ++word) {
      const uint64_t element = counter * 4 + uint64_t(word);
      if (element < offset || element >= end) continue;
      const std::size_t i = element - offset;
      const bool keep = identity || kernels::philox_uniform(r.v[word]) >= p;
      mask[i] = keep;
      y[i] = keep ? (identity ? x[i] : x[i] * keep_scale) : 0.0f;
    }
  }
}

__global__ void dropout_backward_kernel(std::size_t count, float keep_scale,
                                        const float* __restrict__ dy,
                                        const uint8_t* __restrict__ mask, float* __restrict__ dx) {
  const std::size_t stride = std::size_t(gridDim.x) * blockDim.x;
  for (std::size_t i = std::size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += stride)
    dx[i] = mask[i] ? dy[i] * keep_scale : 0.0f;
}

void check_probability(float p) {
  if (!(p >= 0.0f && p < 1.0f))
    throw std::invalid_argument("dropout: the drop probability p must lie in [0, 1)");
}

}  // namespace

void dropout_forward(std::size_t count, float p, uint64_t seed, uint64_t offset, const float* x,
                     float* y, uint8_t* mask, cudaStream_t stream) {
  check_probability(p);
  if (count == 0) return;
  // The CPU's float expression, so that kept values are scaled identically.
  const float keep_scale = 1.0f / (1.0f - p);
  const std::size_t counters = (offset + count + 3) / 4 - offset / 4;
  const dim3 grid(detail::grid_blocks(counters, kDropoutThreads, kMaxBlocks));
  UNET_LAUNCH(dropout_forward_kernel, grid, dim3(kDropoutThreads), 0, stream)
  (count, p, keep_scale, p == 0.0f, seed, offset, x, y, mask);
  UNET_CHECK_LAUNCH("dropout_forward_kernel");
}

void dropout_backward(std::size_t count, float p, const float* dy, const uint8_t* mask, float* dx,
                      cudaStream_t stream) {
  check_probability(p);
  if (count == 0) return;
  const float keep_scale = 1.0f / (1.0f - p);
  const dim3 grid(detail::grid_blocks(count, kDropoutThreads, kMaxBlocks));
  UNET_LAUNCH(dropout_backward_kernel, grid, dim3(kDropoutThreads), 0, stream)
  (count, keep_scale, dy, mask, dx);
  UNET_CHECK_LAUNCH("dropout_backward_kernel");
}

}  // namespace unet::UNET_CUDA_NS
