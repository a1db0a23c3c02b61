// CUDA emulation layer: lets the kernels of kernels/cuda/*.cu compile with a host compiler
// (g++ -x c++ -DUNET_CUDA_EMULATION) and run on the CPU, so every test run checks the GPU kernels
// against the CPU kernels on a machine without a GPU. Included only through kernels/cuda/runtime.h.
//
// The model
//   * One fiber per CUDA thread. A launch runs its blocks one at a time on the calling OS thread;
//     a block's fibers run cooperatively, so there is never more than one CUDA thread executing.
//   * Rounds. A block runs in rounds: every runnable thread is resumed once, in the order set by
//     set_thread_order() (forward, reverse, or a fresh seeded shuffle per round), and runs until
//     it reaches a barrier or returns. A barrier is __syncthreads(), or a warp operation
//     (__syncwarp, a shuffle or a vote). The last thread to arrive releases the others into the
//     next round. Because a thread runs to its next barrier in one go, a missing __syncthreads()
//     turns into a read of stale data under at least one order: run tests under all three.
//     Blocks themselves also run in forward, reverse or shuffled order.
//   * Barrier rules (each violation ends the launch with an EmulationError naming the sites):
//     all threads of a block wait at the same __syncthreads() (same file:line), and none has
//     returned while others wait; a warp operation completes when every existing lane named in
//     the mask has reached it with the same mask and at the same call site (__syncwarp may pair
//     with a __syncwarp elsewhere); the calling lane must be in the mask; a lane named in the mask
//     must not have returned; a shuffle must not read a lane outside the mask or past the end of
//     a partial last warp (stricter than CUDA, where that value is merely undefined). Lanes past
//     the end of a partial last warp are dropped from every mask, so a full mask works there.
//   * Memory. __shared__ is `static`: one block runs at a time, so a static array is exactly one
//     block's shared memory, and AddressSanitizer sees overruns of it. Dynamic shared memory
//     (UNET_DYNAMIC_SHARED) is refilled with 0xFF bytes (NaN as float) before every block, and so
//     is memory fresh from cudaMalloc, so reads before writes show up. Static __shared__ arrays
//     keep the previous block's contents (nothing can reach them to refill). Every pointer
//     argument of a launch must be null or point into a cudaMalloc allocation.
//   * The runtime API is synchronous: streams and events exist and are checked, but every call
//     and launch completes before it returns. Errors of runtime calls come back as cudaError_t
//     (and through cudaGetLastError); errors of launches are thrown as EmulationError.
//
// Not emulated: the GPU memory model and warp lock-step execution (code that relies on them is
// wrong on Volta and later too), coalescing, bank conflicts, occupancy and timing, inline PTX,
// tensor-core instructions, __CUDA_ARCH__-guarded code (never defined here), __constant__ and
// __device__ variables with cudaMemcpyToSymbol, dynamic parallelism, cooperative groups, and the
// precision of the fast intrinsics (__expf is expf). Pointers hidden inside struct arguments
// are not checked. Kernel code must not swallow exceptions with catch (...): the emulator uses
// one to unwind suspended threads after a fault.
//
// Build: link kernels/emu/runtime.cpp and kernels/emu/scheduler.cpp (+ fiber.cpp) with
// -lboost_context, or compile with -DUNET_EMU_UCONTEXT for the ucontext backend (slower; use it
// under AddressSanitizer or ThreadSanitizer, whose fiber annotations it carries). Kernel sources
// with `#pragma unroll` need -Wno-unknown-pragmas under g++.
#pragma once

#include "kernels/emu/api.h"
#include "kernels/emu/device.h"
#include "kernels/emu/launch.h"

// The CUDA names (dim3, cudaMalloc, atomicAdd, __shfl_sync, ...) live in unet::emu::api so that
// their linker symbols can never collide with libcudart's when the real and the emulated builds
// of the kernels are linked into one program; this makes them visible where CUDA code expects.
using namespace ::unet::emu::api;  // NOLINT(google-build-using-namespace)

// Execution-space and optimisation qualifiers: all functions are host functions here.
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
// Blocks run one at a time on one OS thread (launches are serialised), so static storage is
// exactly one block's shared memory.
#define __shared__ static

// Thread coordinates of the running fiber. Read-only, as in CUDA.
#define threadIdx (::unet::emu::detail::current_thread->thread_idx)
#define blockIdx (::unet::emu::detail::current_block->block_idx)
#define blockDim (::unet::emu::detail::current_block->block_dim)
#define gridDim (::unet::emu::detail::current_block->grid_dim)

// Barriers and warp operations carry their call site for error messages.
#define __syncthreads() ::unet::emu::detail::sync_threads(__FILE__, __LINE__)
#define __syncwarp(...) \
  ::unet::emu::detail::sync_warp(__FILE__, __LINE__ __VA_OPT__(, ) __VA_ARGS__)
#define __shfl_sync(...) ::unet::emu::detail::shfl_idx(__FILE__, __LINE__, __VA_ARGS__)
#define __shfl_up_sync(...) ::unet::emu::detail::shfl_up(__FILE__, __LINE__, __VA_ARGS__)
#define __shfl_down_sync(...) ::unet::emu::detail::shfl_down(__FILE__, __LINE__, __VA_ARGS__)
#define __shfl_xor_sync(...) ::unet::emu::detail::shfl_xor(__FILE__, __LINE__, __VA_ARGS__)
#define __ballot_sync(mask, predicate) \
  ::unet::emu::detail::ballot(__FILE__, __LINE__, mask, predicate)
#define __any_sync(mask, predicate) ::unet::emu::detail::any(__FILE__, __LINE__, mask, predicate)
#define __all_sync(mask, predicate) ::unet::emu::detail::all(__FILE__, __LINE__, mask, predicate)

// glibc's <math.h> already declares ::__expf and ::__logf (internal, not exported), so plain
// functions of those names would be ambiguous: route them to ours.
#define __expf(x) ::unet::emu::api::fast_expf(x)
#define __logf(x) ::unet::emu::api::fast_logf(x)

// `extern __shared__ type name[]` of nvcc: this launch's dynamic shared memory (shared_bytes of
// UNET_LAUNCH), 256-byte aligned, null when the launch asked for none.
#define UNET_DYNAMIC_SHARED(type, name) \
  type* name = static_cast<type*>(::unet::emu::detail::dynamic_shared_memory())

// `kernel<<<grid, block, shared_bytes, stream>>>(args...)` of nvcc. The kernel parameters are
// copied by value into the launch, then again into every thread, as CUDA does.
#define UNET_LAUNCH(kernel, grid, block, shared_bytes, stream)                         \
  ::unet::emu::detail::make_launcher(kernel, #kernel, __FILE__, __LINE__, grid, block, \
                                     shared_bytes, stream)
