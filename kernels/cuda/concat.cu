// CUDA channel concatenation of two NCHW tensors (the U-Net's skip connections) and its inverse,
// which is also its backward pass: the twin of kernels/cpu/concat.cpp.
//
// Decomposition: every (image, joined channel) plane is one contiguous run of HW floats in both
// the joined tensor and the part it comes from, so a 2-D grid puts planes on y (striding by
// gridDim.y) and grid-strides along the plane on x: each thread works out its source and
// destination planes once per plane, not per element, and consecutive threads copy consecutive
// floats. Pure copies, so the results equal the CPU's bit for bit.
#include <cstddef>

#include "kernels/cuda/kernels.h"
#include "kernels/cuda/reduce.cuh"

namespace unet::UNET_CUDA_NS {
namespace {

constexpr int kConcatThreads = 256;
constexpr std::size_t kMaxPlaneBlocks = 256;

// Offset, in the part it belongs to, of joined plane q = n * (c_a + c_b) + c; sets in_a.
__device__ __forceinline__ std::size_t part_plane(const ConcatShape& s, int q, bool& in_a) {
  const int channels = s.c_a + s.c_b, n = q / channels, c = q - n * channels;
  in_a = c < s.c_a;
  const std::size_t plane =
      in_a ? std::size_t(n) * s.c_a + c : std::size_t(n) * s.c_b + (c - s.c_a);
  return plane * s.hw;
}

__global__ void concat_channels_kernel(ConcatShape s, const float* __restrict__ a,
                              const float* __restrict__ b, float* __restrict__ out) {
  const int planes = s.n * (s.c_a + s.c_b);
  for (int q = int(blockIdx.y); q < planes; q += int(gridDim.y)) {
    bool in_a = false;
    const std::size_t part = part_plane(s, q, in_a);
    const float* src = (in_a ? a : b) + part;
    float* dst = out + std::size_t(q) * s.hw;
    for (int j = int(blockIdx.x * blockDim.x + threadIdx.x); j < s.hw;
         j += int(gridDim.x * blockDim.x))
      dst[j] = src[j];
  }
}

__global__ void split_channels_kernel(ConcatShape s, const float* __restrict__ in, float* __restrict__ a,
                             float* __restrict__ b) {
  const int planes = s.n * (s.c_a + s.c_b);
  for (int q = int(blockIdx.y); q < planes; q += int(gridDim.y)) {
    bool in_a = false;
    const std::size_t part = part_plane(s, q, in_a);
    const float* src = in + std::size_t(q) * s.hw;
    float* dst = (in_a ? a : b) + part;
    for (int j = int(blockIdx.x * blockDim.x + threadIdx.x); j < s.hw;
         j += int(gridDim.x * blockDim.x))
      dst[j] = src[j];
  }
}

dim3 plane_grid(const ConcatShape& s) {
  return dim3(detail::grid_blocks(std::size_t(s.hw), kConcatThreads, kMaxPlaneBlocks),
              std::min(unsigned(s.n * (s.c_a + s.c_b)), detail::kMaxGridY));
}

}  // namespace

void concat_channels(const ConcatShape& s, const float* a, const float* b, float* out,
                     cudaStream_t stream) {
  if (s.out_size() == 0) return;
  UNET_LAUNCH(concat_channels_kernel, plane_grid(s), dim3(kConcatThreads), 0, stream)(s, a, b, out);
  UNET_CHECK_LAUNCH("concat_channels_kernel");
}

void split_channels(const ConcatShape& s, const float* in, float* a, float* b,
                    cudaStream_t stream) {
  if (s.out_size() == 0) return;
  UNET_LAUNCH(split_channels_kernel, plane_grid(s), dim3(kConcatThreads), 0, stream)(s, in, a, b);
  UNET_CHECK_LAUNCH("split_channels_kernel");
}

}  // namespace unet::UNET_CUDA_NS
