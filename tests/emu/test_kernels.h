// Small kernels that exercise the CUDA emulation layer (tests/emu/test_kernels.cu). The kernels
// are plain CUDA against kernels/cuda/runtime.h, so the same file also compiles with nvcc; the
// ones that only make sense on the emulator (exceptions in kernel code) are marked.
// All pointers are device pointers; launches go to the default stream unless one is passed.
#pragma once

#include <cstddef>

#include "kernels/cuda/runtime.h"

namespace unet::emu_test {

// One partial sum per block (partial[blockIdx.x]) of a grid-stride loop over x, reduced in
// shared memory. `threads` is a power of two up to 1024.
void block_sum(const float* x, int n, float* partial, int blocks, int threads);
// The same reduction with the __syncthreads() between filling shared memory and the tree
// removed: the race that the emulator's thread orders must expose.
void block_sum_missing_sync(const float* x, int n, float* partial, int blocks, int threads);

// C[m][n] = A[m][k] * B[k][n], row-major, 16x16 shared-memory tiles, any sizes.
void sgemm_tiled(int m, int n, int k, const float* a, const float* b, float* c,
                 cudaStream_t stream = nullptr);

// Per-channel sum and sum of squares of an NCHW tensor (batch-norm statistics): one block of
// 256 threads per channel, warp shuffles then shared memory.
void channel_stats(int batch, int channels, int spatial, const float* x, float* sum, float* sumsq);

// Writes blockIdx, threadIdx, blockDim and gridDim of every thread: 12 values per thread at
// index (linear block * threads per block + linear thread) * 12.
void coordinates(dim3 grid, dim3 block, unsigned* out, cudaStream_t stream = nullptr);

// y[i] = s * x[i], one thread per element, blocks of 64.
void scale(int n, const float* x, float s, float* y);

// Barrier faults, with the lines of their barriers (for the error messages).
void divergent_barrier(int* out);      // even threads at one __syncthreads, odd ones at another
void return_before_barrier(int* out);  // thread 0 returns, the others wait
extern const int kDivergentBarrierEvenLine;
extern const int kDivergentBarrierOddLine;
extern const int kReturnBarrierLine;

// Warp shuffles with full masks, 7 outputs per thread: down(delta), up(delta), xor(lane_mask),
// idx(src_lane) on int, down on float, xor on double, idx on unsigned.
void shuffles(int threads, const int* in, int* out, unsigned delta, int lane_mask, int src_lane,
              int width);
// __ballot_sync / __any_sync / __all_sync of pred[i] with full masks, one block.
void votes(int threads, const int* pred, unsigned* ballot, int* any, int* all);
// Half-warps reduce separately with disjoint masks (xor shuffles of width 16, then __syncwarp).
void half_warp_sums(int threads, const int* in, int* out);
// Sum over each warp with __shfl_down_sync(full mask, offsets 16..1); out[warp] from lane 0.
// With a partial last warp this reads lanes that do not exist: a fault.
void warp_sums(int threads, const float* x, float* out);
// Every lane calls __shfl_sync with mask 0x1: lane 1 is not in its own mask.
void shuffle_outside_mask(int* out);
// Lane 3 returns, the others shuffle with a full mask.
void shuffle_after_return(int* out);

// Atomics from blocks x threads threads, each thread t (global index):
//   tickets[t] = atomicAdd(&counters[0], 1); atomicAdd(&counters[1], 2u) (unsigned);
//   counters[2] max of t, counters[3] min of -t (int); counters[4] max of t, counters[5] min of
//   t + 5 (unsigned); exchanged[t] = atomicExch(&counters[6], t); counters[7] += 1 by a CAS loop.
//   ull[0] += 3 (unsigned long long); f[0] += 0.5f; d[0] += 0.25.
void atomics(int blocks, int threads, int* tickets, int* counters, int* exchanged,
             unsigned long long* ull, float* f, double* d);

// Reads dynamic shared memory before writing it (before[i]), then after a barrier reads the
// value written by the mirrored thread (after[i] = blockDim.x - 1 - threadIdx.x).
void dynamic_shared(int blocks, int threads, std::size_t shared_bytes, float* before, float* after);
cudaError_t allow_dynamic_shared(int bytes);  // cudaFuncSetAttribute on that kernel

#if defined(UNET_CUDA_EMULATION)
// Emulator only: thread `bad_thread` of block `bad_block` throws std::runtime_error between two
// barriers. Every thread holds a guard object; destroyed_guards() counts their destructors, to
// show that the threads suspended at the time of the fault are unwound.
void throwing(int blocks, int threads, int bad_block, int bad_thread, int* out);
int destroyed_guards();
// Launches a kernel from inside a kernel (not emulated: an error).
void nested_launch(int* out);
#endif

}  // namespace unet::emu_test
