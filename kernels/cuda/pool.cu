// CUDA 2x2 stride-2 max pooling: the twin of kernels/cpu/pool.cpp (winner 0..3 row-major, the
// first maximum on ties, the first NaN if any so that it propagates; odd edges dropped).
//
// Decomposition: a 2-D grid, planes (n * C + c) on y (striding by gridDim.y past 65535) and the
// plane's elements on x, so that a thread finds its row and column with one 32-bit division
// instead of 64-bit ones over the whole tensor. Forward: one thread per output, which reads its
// 2x2 window. Backward: one thread per INPUT element, which gathers from the one output whose
// window holds it and writes its gradient or zero; every element of dx is written exactly once,
// so there is no separate zero fill, no scatter and no atomics.
//
// Determinism: pure per-element functions of the inputs; the results equal the CPU's bit for bit
// (max selection and copies involve no rounding).
#include <cstddef>
#include <cstdint>

#include "kernels/cuda/kernels.h"
#include "kernels/cuda/reduce.cuh"

namespace unet::UNET_CUDA_NS {
namespace {

constexpr int kPoolThreads = 256;
// Blocks along a plane: a 240x240 plane needs 225 for one input element per thread.
constexpr std::size_t kMaxPlaneBlocks = 256;

__device__ __forceinline__ bool is_nan(float v) { return v != v; }

// Folds window position k into the running winner: a larger value wins, and a NaN beats a number.
// Kept in registers (value and index) rather than indexing a local array by the winner.
__device__ __forceinline__ void challenge(float v, int k, float& best, int& best_k) {
  if (v > best || (is_nan(v) && !is_nan(best))) {
    best = v;
    best_k = k;
  }
}

__global__ void maxpool2x2_forward_kernel(Pool2dShape s, const float* __restrict__ x,
                                       float* __restrict__ y, uint8_t* __restrict__ argmax) {
  const int planes = s.n * s.c, wo = s.w_in / 2, out_plane = (s.h_in / 2) * wo;
  const std::size_t in_plane = std::size_t(s.h_in) * s.w_in;
  for (int p = int(blockIdx.y); p < planes; p += int(gridDim.y)) {
    for (int r = int(blockIdx.x * blockDim.x + threadIdx.x); r < out_plane;
         r += int(gridDim.x * blockDim.x)) {
      const int oh = r / wo, ow = r - oh * wo;
      const float* top_left = x + p * in_plane + std::size_t(2 * oh) * s.w_in + 2 * ow;
      float best = top_left[0];
      int best_k = 0;
      challenge(top_left[1], 1, best, best_k);
      challenge(top_left[s.w_in], 2, best, best_k);
      challenge(top_left[s.w_in + 1], 3, best, best_k);
      const std::size_t o = std::size_t(p) * out_plane + r;
      y[o] = best;
      argmax[o] = uint8_t(best_k);
    }
  }
}

__global__ void maxpool2x2_backward_kernel(Pool2dShape s, const float* __restrict__ dy,
                                        const uint8_t* __restrict__ argmax,
                                        float* __restrict__ dx) {
  const int planes = s.n * s.c, ho = s.h_in / 2, wo = s.w_in / 2, in_plane = s.h_in * s.w_in;
  const std::size_t out_plane = std::size_t(ho) * wo;
  for (int p = int(blockIdx.y); p < planes; p += int(gridDim.y)) {
    for (int r = int(blockIdx.x * blockDim.x + threadIdx.x); r < in_plane;
         r += int(gridDim.x * blockDim.x)) {
      const int ih = r / s.w_in, iw = r - ih * s.w_in;
      float g = 0.0f;
      // Rows and columns past 2 * ho / 2 * wo (odd edges) belong to no window.
      if (ih < 2 * ho && iw < 2 * wo) {
        const std::size_t o = p * out_plane + std::size_t(ih / 2) * wo + iw / 2;
        if (argmax[o] == ((ih & 1) << 1 | (iw & 1))) g = dy[o];
      }
      dx[std::size_t(p) * in_plane + r] = g;
    }
  }
}

dim3 plane_grid(const Pool2dShape& s, std::size_t per_plane) {
  return dim3(detail::grid_blocks(per_plane, kPoolThreads, kMaxPlaneBlocks),
              std::min(unsigned(s.n * s.c), detail::kMaxGridY));
}

}  // namespace

void maxpool2x2_forward(const Pool2dShape& s, const float* x, float* y, uint8_t* argmax,
                        cudaStream_t stream) {
  if (s.y_size() == 0) return;
  const std::size_t per_plane = std::size_t(s.h_out()) * s.w_out();
  UNET_LAUNCH(maxpool2x2_forward_kernel, plane_grid(s, per_plane), dim3(kPoolThreads), 0, stream)
  (s, x, y, argmax);
  UNET_CHECK_LAUNCH("maxpool2x2_forward_kernel");
}

void maxpool2x2_backward(const Pool2dShape& s, const float* dy, const uint8_t* argmax, float* dx,
                         cudaStream_t stream) {
  // Even with no outputs (a 1-pixel input) dx must be written: it is all zeros then.
  if (s.x_size() == 0) return;
  const std::size_t per_plane = std::size_t(s.h_in) * s.w_in;
  UNET_LAUNCH(maxpool2x2_backward_kernel, plane_grid(s, per_plane), dim3(kPoolThreads), 0, stream)
  (s, dy, argmax, dx);
  UNET_CHECK_LAUNCH("maxpool2x2_backward_kernel");
}

}  // namespace unet::UNET_CUDA_NS
