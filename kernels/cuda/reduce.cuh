// Helpers shared by the non-convolution CUDA kernels: deterministic warp and block sums, grid
// sizing for grid-stride loops, and the check that follows every launch.
//
// The sums are trees of a fixed shape: each warp folds its lanes with shuffles at distances 16,
// 8, 4, 2, 1, lane 0 of each warp parks the warp's partial in shared memory, and warp 0 folds the
// partials the same way. Which value meets which depends only on threadIdx, never on timing or
// scheduling, so a sum is bitwise the same on every run; no atomics are involved.
#pragma once

#include <algorithm>
#include <cstddef>
#include <stdexcept>
#include <string>

#include "kernels/cuda/runtime.h"

namespace unet::UNET_CUDA_NS::detail {

inline constexpr int kWarp = 32;
inline constexpr unsigned kFullMask = 0xffffffffu;

// N running sums carried together, so that one pass over the data and one block reduction serve
// all of them (batch-norm backward needs two, the Dice family three or four). Double, because the
// CPU twins sum in double and a block may add up hundreds of thousands of floats.
template <int N>
struct Sums {
  double v[N];
};

// Folds the 32 lanes of a warp; lane 0 receives the warp's totals (other lanes hold partials).
template <int N>
__device__ __forceinline__ Sums<N> warp_sum(Sums<N> s) {
  for (int offset = kWarp / 2; offset > 0; offset /= 2)
    for (int k = 0; k < N; ++k) s.v[k] += __shfl_down_sync(kFullMask, s.v[k], offset);
  return s;
}

// Sums each of the N values over a block of kThreads threads (all of which must call it); every
// thread gets the totals. `scratch` is shared memory of kThreads / 32 + 1 entries.
//
// Two barriers suffice even when the same scratch serves consecutive calls: a call's first writes
// (scratch[warp]) come after the previous call's second barrier, by which point warp 0 has
// finished reading them, and its write of scratch[kWarps] comes after its own first barrier, which
// no thread reaches before it has read the previous total.
template <int kThreads, int N>
__device__ __forceinline__ Sums<N> block_sum(Sums<N> s, Sums<N>* scratch) {
  constexpr int kWarps = kThreads / kWarp;
  static_assert(kThreads % kWarp == 0 && kWarps <= kWarp, "block of whole warps, at most 1024");
  const int lane = int(threadIdx.x) % kWarp, warp = int(threadIdx.x) / kWarp;
  s = warp_sum(s);
  if (lane == 0) scratch[warp] = s;
  __syncthreads();
  if (warp == 0) {
    Sums<N> partials;
    for (int k = 0; k < N; ++k) partials.v[k] = lane < kWarps ? scratch[lane].v[k] : 0.0;
    partials = warp_sum(partials);
    if (lane == 0) scratch[kWarps] = partials;
  }
  __syncthreads();
  return scratch[kWarps];
}

// Blocks for a grid-stride loop over `count` items: one item per thread up to `cap` blocks, more
// per thread beyond. The cap bounds launch overhead (and, in the emulator, the number of fibers)
// while still filling every SM of an A100 / H100 several times over.
inline unsigned grid_blocks(std::size_t count, std::size_t threads, std::size_t cap) {
  return unsigned(std::max<std::size_t>(1, std::min(cap, (count + threads - 1) / threads)));
}

// gridDim.y (and z) may not exceed 65535; kernels that put planes or tensors on y stride by
// gridDim.y, so clamping is all a launcher needs.
inline constexpr unsigned kMaxGridY = 65535;

inline void check_launch(const char* file, int line, const char* kernel) {
  const cudaError_t status = cudaGetLastError();
  if (status != cudaSuccess)
    throw std::runtime_error(std::string(file) + ":" + std::to_string(line) + ": launch of " +
                             kernel + " failed: " + cudaGetErrorString(status));
}

}  // namespace unet::UNET_CUDA_NS::detail

// After every UNET_LAUNCH: turns a launch error into an exception naming the launch site.
#define UNET_CHECK_LAUNCH(kernel_name) \
  ::unet::UNET_CUDA_NS::detail::check_launch(__FILE__, __LINE__, kernel_name)
