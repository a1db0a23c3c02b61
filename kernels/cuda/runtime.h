// The one include of every CUDA source in kernels/cuda/: the CUDA runtime under nvcc, or the
// CPU emulation layer (kernels/emu/) when compiled by a host compiler with UNET_CUDA_EMULATION.
//
// Kernels use only what both provide:
//   UNET_LAUNCH(kernel, grid, block, shared_bytes, stream)(args...)   instead of <<<...>>>
//   UNET_DYNAMIC_SHARED(type, name);                                   extern __shared__ storage
//   __global__ __device__ __host__ __forceinline__ __shared__ __restrict__
//   threadIdx blockIdx blockDim gridDim warpSize  dim3
//   __syncthreads __syncwarp __shfl_sync __shfl_down_sync __shfl_up_sync __shfl_xor_sync
//   __ballot_sync __any_sync __all_sync  atomicAdd atomicMax atomicMin atomicExch atomicCAS
//   the math functions of <cmath> for float, __expf __logf __fdividef rsqrtf __ldg min max
//   the runtime calls listed in kernels/emu/emu.h
// and UNET_CUDA_NS names the namespace their host launchers live in, so that the real and the
// emulated builds of the same sources can be linked into one program.
#pragma once

#if defined(UNET_CUDA_EMULATION)
#include "kernels/emu/emu.h"
#define UNET_CUDA_NS cuda_emu
#else
#include <cuda_runtime.h>
#define UNET_CUDA_NS cuda
#define UNET_LAUNCH(kernel, grid, block, shared_bytes, stream) kernel<<<grid, block, shared_bytes, stream>>>
#define UNET_DYNAMIC_SHARED(type, name) extern __shared__ type name[]
#endif
