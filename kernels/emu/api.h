// The subset of the CUDA runtime API that the emulation layer provides (implemented in
// kernels/emu/runtime.cpp). Every call is synchronous and returns a cudaError_t; a failing call
// also becomes the "last error" of the calling host thread, as in CUDA. Same names, argument
// orders, enumerator values and error strings as CUDA 12/13, so code and logs read the same.
#pragma once

#include <cstddef>
#include <cstdint>

namespace unet::emu::api {

enum cudaError {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorInvalidDevicePointer = 17,
  cudaErrorInvalidDevice = 101,
  cudaErrorInvalidResourceHandle = 400,
  cudaErrorNotReady = 600,
  cudaErrorLaunchFailure = 719,
};
using cudaError_t = cudaError;

enum cudaMemcpyKind {
  cudaMemcpyHostToHost = 0,
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3,
  cudaMemcpyDefault = 4,  // direction inferred from the pointers (unified addressing)
};

enum cudaFuncAttribute {
  cudaFuncAttributeMaxDynamicSharedMemorySize = 8,
  cudaFuncAttributePreferredSharedMemoryCarveout = 9,
};

// Opaque handles; 0 (nullptr) is the default stream.
struct EmulatedStream;
struct EmulatedEvent;
using cudaStream_t = EmulatedStream*;
using cudaEvent_t = EmulatedEvent*;

// The emulated device is shaped like an A100 (compute capability 8.0), the smaller of the two
// targets (sm_80, sm_90), so size-dependent choices in launchers take the conservative path.
struct cudaDeviceProp {
  char name[256];                      // "CPU emulation"
  std::size_t totalGlobalMem;          // the host's physical memory
  std::size_t sharedMemPerBlock;       // 48 KiB without opt-in
  std::size_t sharedMemPerBlockOptin;  // with cudaFuncAttributeMaxDynamicSharedMemorySize
  std::size_t sharedMemPerMultiprocessor;
  std::size_t totalConstMem;
  std::size_t memPitch;
  int regsPerBlock;
  int regsPerMultiprocessor;
  int warpSize;
  int maxThreadsPerBlock;
  int maxThreadsDim[3];
  int maxGridSize[3];
  int major;
  int minor;
  int multiProcessorCount;
  int maxThreadsPerMultiProcessor;
  int maxBlocksPerMultiProcessor;
  int l2CacheSize;
  int memoryBusWidth;
  int concurrentKernels;
  int unifiedAddressing;
  int asyncEngineCount;
};

// Memory. cudaMalloc returns 256-byte aligned memory filled with 0xFF bytes (NaN as float:
// reading memory nobody wrote shows up); a zero-byte request returns null.
cudaError_t cudaMalloc(void** ptr, std::size_t bytes);
template <typename T>
cudaError_t cudaMalloc(T** ptr, std::size_t bytes) {
  return cudaMalloc(reinterpret_cast<void**>(ptr), bytes);
}
cudaError_t cudaFree(void* ptr);
// The device side of a copy must lie inside one cudaMalloc allocation and the host side outside
// all of them (cudaErrorInvalidValue otherwise). Overlapping device-to-device copies are allowed.
cudaError_t cudaMemcpy(void* dst, const void* src, std::size_t bytes, cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void* dst, const void* src, std::size_t bytes, cudaMemcpyKind kind,
                            cudaStream_t stream = nullptr);
cudaError_t cudaMemset(void* ptr, int value, std::size_t bytes);
cudaError_t cudaMemsetAsync(void* ptr, int value, std::size_t bytes, cudaStream_t stream = nullptr);
cudaError_t cudaMemGetInfo(std::size_t* free_bytes, std::size_t* total_bytes);

// Streams and events: real handles, checked on use; work on them is already complete.
cudaError_t cudaStreamCreate(cudaStream_t* stream);
cudaError_t cudaStreamDestroy(cudaStream_t stream);
cudaError_t cudaStreamSynchronize(cudaStream_t stream);
cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t event, unsigned flags = 0);
cudaError_t cudaEventCreate(cudaEvent_t* event);
cudaError_t cudaEventDestroy(cudaEvent_t event);
cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream = nullptr);
cudaError_t cudaEventSynchronize(cudaEvent_t event);
cudaError_t cudaEventQuery(cudaEvent_t event);
// Wall-clock milliseconds between two recorded events.
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end);
cudaError_t cudaDeviceSynchronize();

// Errors and devices. There is exactly one device, number 0.
cudaError_t cudaGetLastError();
cudaError_t cudaPeekAtLastError();
const char* cudaGetErrorString(cudaError_t error);
const char* cudaGetErrorName(cudaError_t error);
cudaError_t cudaGetDeviceCount(int* count);
cudaError_t cudaSetDevice(int device);
cudaError_t cudaGetDevice(int* device);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device);

// Only cudaFuncAttributeMaxDynamicSharedMemorySize has an effect: it raises the 48 KiB limit on
// a kernel's dynamic shared memory up to sharedMemPerBlockOptin, which launches check.
cudaError_t cudaFuncSetAttribute(std::uintptr_t kernel, cudaFuncAttribute attribute, int value);
template <typename T>
cudaError_t cudaFuncSetAttribute(T* kernel, cudaFuncAttribute attribute, int value) {
  return cudaFuncSetAttribute(reinterpret_cast<std::uintptr_t>(kernel), attribute, value);
}

}  // namespace unet::emu::api

// Emulator-only queries for tests and launchers (not CUDA names).
namespace unet::emu {

// True when [ptr, ptr + bytes) lies inside one live cudaMalloc allocation.
bool is_device_pointer(const void* ptr, std::size_t bytes = 1);
// Bytes and allocations currently held through cudaMalloc (leak checks in tests).
std::size_t device_bytes_in_use();
std::size_t device_allocation_count();

}  // namespace unet::emu
