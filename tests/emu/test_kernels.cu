// Kernels that exercise the CUDA emulation layer; see test_kernels.h. Written against
// kernels/cuda/runtime.h only, so nvcc compiles them too (checked by hand: nvcc -c).
#include "tests/emu/test_kernels.h"

#if defined(UNET_CUDA_EMULATION)
#include <stdexcept>
#endif

namespace unet::emu_test {

namespace {

// ---- block reductions -----------------------------------------------------------------------

__global__ void block_sum_kernel(const float* __restrict__ x, int n, float* __restrict__ partial) {
  __shared__ float s[1024];
  const int tid = threadIdx.x;
  const int stride_all = gridDim.x * blockDim.x;
  float v = 0.0f;
  for (int i = blockIdx.x * blockDim.x + tid; i < n; i += stride_all) v += x[i];
  s[tid] = v;
  __syncthreads();
  for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
    if (tid < stride) s[tid] += s[tid + stride];
    __syncthreads();
  }
  if (tid == 0) partial[blockIdx.x] = s[0];
}

// BROKEN ON PURPOSE: the __syncthreads() after filling s[] is missing, so the first tree step
// may read s[tid + stride] before thread tid + stride has written it. The emulator runs each
// thread up to its next barrier in one go, so in forward order thread 0 reads thread 128's slot
// before thread 128 has run at all.
__global__ void block_sum_missing_sync_kernel(const float* __restrict__ x, int n,
                                              float* __restrict__ partial) {
  __shared__ float s[1024];
  const int tid = threadIdx.x;
  const int stride_all = gridDim.x * blockDim.x;
  float v = 0.0f;
  for (int i = blockIdx.x * blockDim.x + tid; i < n; i += stride_all) v += x[i];
  s[tid] = v;
  for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
    if (tid < stride) s[tid] += s[tid + stride];
    __syncthreads();
  }
  if (tid == 0) partial[blockIdx.x] = s[0];
}

// ---- SGEMM ----------------------------------------------------------------------------------

template <int TILE>
__global__ void sgemm_tiled_kernel(int m, int n, int k, const float* __restrict__ a,
                                   const float* __restrict__ b, float* __restrict__ c) {
  __shared__ float as[TILE][TILE];
  __shared__ float bs[TILE][TILE + 1];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int row = blockIdx.y * TILE + ty;
  const int col = blockIdx.x * TILE + tx;
  float acc = 0.0f;
  for (int t = 0; t < k; t += TILE) {
    as[ty][tx] = row < m && t + tx < k ? a[row * k + t + tx] : 0.0f;
    bs[ty][tx] = t + ty < k && col < n ? b[(t + ty) * n + col] : 0.0f;
    __syncthreads();
#pragma unroll
    for (int i = 0; i < TILE; ++i) acc += as[ty][i] * bs[i][tx];
    __syncthreads();
  }
  if (row < m && col < n) c[row * n + col] = acc;
}

// ---- batch-norm style statistics ------------------------------------------------------------

__device__ __forceinline__ float warp_sum(float v) {
  for (int offset = warpSize / 2; offset > 0; offset /= 2)
    v += __shfl_down_sync(0xffffffffu, v, offset);
  return v;
}

__global__ void __launch_bounds__(256) channel_stats_kernel(int batch, int channels, int spatial,
                                                            const float* __restrict__ x,
                                                            float* __restrict__ sum,
                                                            float* __restrict__ sumsq) {
  __shared__ float partial[2][8];
  const int c = blockIdx.x;
  const int tid = threadIdx.x;
  float s = 0.0f, q = 0.0f;
  for (int nb = 0; nb < batch; ++nb) {
    const float* plane = x + (static_cast<long>(nb) * channels + c) * spatial;
    for (int i = tid; i < spatial; i += blockDim.x) {
      const float v = __ldg(plane + i);
      s += v;
      q += v * v;
    }
  }
  s = warp_sum(s);
  q = warp_sum(q);
  if (tid % warpSize == 0) {
    partial[0][tid / warpSize] = s;
    partial[1][tid / warpSize] = q;
  }
  __syncthreads();
  if (tid < warpSize) {
    const int warps = blockDim.x / warpSize;
    s = tid < warps ? partial[0][tid] : 0.0f;
    q = tid < warps ? partial[1][tid] : 0.0f;
    s = warp_sum(s);
    q = warp_sum(q);
    if (tid == 0) {
      sum[c] = s;
      sumsq[c] = q;
    }
  }
}

// ---- coordinates and many blocks ------------------------------------------------------------

__global__ void coordinates_kernel(unsigned* out) {
  const unsigned block = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
  const unsigned thread = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
  unsigned* o = out + (block * blockDim.x * blockDim.y * blockDim.z + thread) * 12;
  o[0] = blockIdx.x;
  o[1] = blockIdx.y;
  o[2] = blockIdx.z;
  o[3] = threadIdx.x;
  o[4] = threadIdx.y;
  o[5] = threadIdx.z;
  o[6] = blockDim.x;
  o[7] = blockDim.y;
  o[8] = blockDim.z;
  o[9] = gridDim.x;
  o[10] = gridDim.y;
  o[11] = gridDim.z;
}

__global__ void scale_kernel(int n, const float* __restrict__ x, float s, float* __restrict__ y) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) y[i] = s * x[i];
}

// ---- barrier faults -------------------------------------------------------------------------

constexpr int kDivergentBase = __LINE__;
__global__ void divergent_barrier_kernel(int* out) {
  if (threadIdx.x % 2 == 0) {
    __syncthreads(); static_assert(__LINE__ == kDivergentBase + 3);
  } else {
    __syncthreads(); static_assert(__LINE__ == kDivergentBase + 5);
  }
  out[threadIdx.x] = 1;
}

constexpr int kReturnBase = __LINE__;
__global__ void return_before_barrier_kernel(int* out) {
  if (threadIdx.x == 0) return;
  out[threadIdx.x] = 1;
  __syncthreads(); static_assert(__LINE__ == kReturnBase + 4);
  out[threadIdx.x] = 2;
}

// ---- warp operations ------------------------------------------------------------------------

__global__ void shuffles_kernel(const int* in, int* out, unsigned delta, int lane_mask,
                                int src_lane, int width) {
  const unsigned full = 0xffffffffu;
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  const int v = in[i];
  int* o = out + i * 7;
  o[0] = __shfl_down_sync(full, v, delta, width);
  o[1] = __shfl_up_sync(full, v, delta, width);
  o[2] = __shfl_xor_sync(full, v, lane_mask, width);
  o[3] = __shfl_sync(full, v, src_lane, width);
  o[4] = static_cast<int>(__shfl_down_sync(full, static_cast<float>(v) + 0.5f, delta, width));
  o[5] = static_cast<int>(__shfl_xor_sync(full, v * 4.0, lane_mask, width) / 4.0);
  o[6] = static_cast<int>(__shfl_sync(full, static_cast<unsigned>(v), src_lane, width));
}

__global__ void votes_kernel(const int* pred, unsigned* ballot, int* any, int* all) {
  const int i = threadIdx.x;
  const int p = pred[i];
  __syncwarp();
  ballot[i] = __ballot_sync(0xffffffffu, p);
  any[i] = __any_sync(0xffffffffu, p);
  all[i] = __all_sync(0xffffffffu, p);
}

__global__ void half_warp_sums_kernel(const int* in, int* out) {
  const unsigned lane = threadIdx.x % 32;
  const unsigned mask = lane < 16 ? 0x0000ffffu : 0xffff0000u;
  int v = in[threadIdx.x];
  for (int m = 8; m > 0; m /= 2) v += __shfl_xor_sync(mask, v, m, 16);
  __syncwarp(mask);
  out[threadIdx.x] = v;
}

__global__ void warp_sums_kernel(const float* x, float* out) {
  const float v = warp_sum(x[threadIdx.x]);
  if (threadIdx.x % warpSize == 0) out[threadIdx.x / warpSize] = v;
}

__global__ void shuffle_outside_mask_kernel(int* out) {
  out[threadIdx.x] = __shfl_sync(0x1u, static_cast<int>(threadIdx.x), 0);
}

__global__ void shuffle_after_return_kernel(int* out) {
  if (threadIdx.x == 3) return;
  out[threadIdx.x] = __shfl_down_sync(0xffffffffu, static_cast<int>(threadIdx.x), 1);
}

// ---- atomics --------------------------------------------------------------------------------

__global__ void atomics_kernel(int* tickets, int* counters, int* exchanged,
                               unsigned long long* ull, float* f, double* d) {
  const int t = blockIdx.x * blockDim.x + threadIdx.x;
  tickets[t] = atomicAdd(&counters[0], 1);
  atomicAdd(reinterpret_cast<unsigned*>(&counters[1]), 2u);
  atomicMax(&counters[2], t);
  atomicMin(&counters[3], -t);
  atomicMax(reinterpret_cast<unsigned*>(&counters[4]), static_cast<unsigned>(t));
  atomicMin(reinterpret_cast<unsigned*>(&counters[5]), static_cast<unsigned>(t + 5));
  exchanged[t] = atomicExch(&counters[6], t);
  int old = counters[7];
  for (;;) {
    const int assumed = old;
    old = atomicCAS(&counters[7], assumed, assumed + 1);
    if (old == assumed) break;
  }
  atomicAdd(ull, 3ull);
  atomicAdd(f, 0.5f);
  atomicAdd(d, 0.25);
}

// ---- dynamic shared memory ------------------------------------------------------------------

__global__ void dynamic_shared_kernel(float* before, float* after) {
  UNET_DYNAMIC_SHARED(float, smem);
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  before[i] = smem[threadIdx.x];
  smem[threadIdx.x] = static_cast<float>(threadIdx.x);
  __syncthreads();
  after[i] = smem[blockDim.x - 1 - threadIdx.x];
}

#if defined(UNET_CUDA_EMULATION)
int destroyed = 0;
struct Guard {
  ~Guard() { ++destroyed; }
};

__global__ void throwing_kernel(int bad_block, int bad_thread, int* out) {
  Guard guard;
  out[blockIdx.x * blockDim.x + threadIdx.x] = 1;
  __syncthreads();
  if (static_cast<int>(blockIdx.x) == bad_block && static_cast<int>(threadIdx.x) == bad_thread)
    throw std::runtime_error("thrown on purpose by throwing_kernel");
  __syncthreads();
}

__global__ void nested_launch_kernel(int* out) {
  UNET_LAUNCH(scale_kernel, 1, 1, 0, 0)(0, nullptr, 1.0f, nullptr);
  out[0] = 1;
}
#endif

}  // namespace

const int kDivergentBarrierEvenLine = kDivergentBase + 3;
const int kDivergentBarrierOddLine = kDivergentBase + 5;
const int kReturnBarrierLine = kReturnBase + 4;

void block_sum(const float* x, int n, float* partial, int blocks, int threads) {
  UNET_LAUNCH(block_sum_kernel, blocks, threads, 0, 0)(x, n, partial);
}

void block_sum_missing_sync(const float* x, int n, float* partial, int blocks, int threads) {
  UNET_LAUNCH(block_sum_missing_sync_kernel, blocks, threads, 0, 0)(x, n, partial);
}

void sgemm_tiled(int m, int n, int k, const float* a, const float* b, float* c,
                 cudaStream_t stream) {
  constexpr int kTile = 16;
  const dim3 grid((n + kTile - 1) / kTile, (m + kTile - 1) / kTile);
  const dim3 block(kTile, kTile);
  UNET_LAUNCH(sgemm_tiled_kernel<kTile>, grid, block, 0, stream)(m, n, k, a, b, c);
}

void channel_stats(int batch, int channels, int spatial, const float* x, float* sum, float* sumsq) {
  UNET_LAUNCH(channel_stats_kernel, channels, 256, 0, 0)(batch, channels, spatial, x, sum, sumsq);
}

void coordinates(dim3 grid, dim3 block, unsigned* out, cudaStream_t stream) {
  UNET_LAUNCH(coordinates_kernel, grid, block, 0, stream)(out);
}

void scale(int n, const float* x, float s, float* y) {
  UNET_LAUNCH(scale_kernel, (n + 63) / 64, 64, 0, 0)(n, x, s, y);
}

void divergent_barrier(int* out) { UNET_LAUNCH(divergent_barrier_kernel, 2, 64, 0, 0)(out); }

void return_before_barrier(int* out) {
  UNET_LAUNCH(return_before_barrier_kernel, 1, 64, 0, 0)(out);
}

void shuffles(int threads, const int* in, int* out, unsigned delta, int lane_mask, int src_lane,
              int width) {
  UNET_LAUNCH(shuffles_kernel, 1, threads, 0, 0)(in, out, delta, lane_mask, src_lane, width);
}

void votes(int threads, const int* pred, unsigned* ballot, int* any, int* all) {
  UNET_LAUNCH(votes_kernel, 1, threads, 0, 0)(pred, ballot, any, all);
}

void half_warp_sums(int threads, const int* in, int* out) {
  UNET_LAUNCH(half_warp_sums_kernel, 1, threads, 0, 0)(in, out);
}

void warp_sums(int threads, const float* x, float* out) {
  UNET_LAUNCH(warp_sums_kernel, 1, threads, 0, 0)(x, out);
}

void shuffle_outside_mask(int* out) { UNET_LAUNCH(shuffle_outside_mask_kernel, 1, 32, 0, 0)(out); }

void shuffle_after_return(int* out) { UNET_LAUNCH(shuffle_after_return_kernel, 1, 32, 0, 0)(out); }

void atomics(int blocks, int threads, int* tickets, int* counters, int* exchanged,
             unsigned long long* ull, float* f, double* d) {
  UNET_LAUNCH(atomics_kernel, blocks, threads, 0, 0)(tickets, counters, exchanged, ull, f, d);
}

void dynamic_shared(int blocks, int threads, std::size_t shared_bytes, float* before,
                    float* after) {
  UNET_LAUNCH(dynamic_shared_kernel, blocks, threads, shared_bytes, 0)(before, after);
}

cudaError_t allow_dynamic_shared(int bytes) {
  return cudaFuncSetAttribute(dynamic_shared_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                              bytes);
}

#if defined(UNET_CUDA_EMULATION)
void throwing(int blocks, int threads, int bad_block, int bad_thread, int* out) {
  UNET_LAUNCH(throwing_kernel, blocks, threads, 0, 0)(bad_block, bad_thread, out);
}

int destroyed_guards() { return destroyed; }

void nested_launch(int* out) { UNET_LAUNCH(nested_launch_kernel, 1, 1, 0, 0)(out); }
#endif

}  // namespace unet::emu_test
