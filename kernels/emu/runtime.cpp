// The CUDA runtime API of the emulation layer (declared in kernels/emu/api.h): device memory as
// tracked host allocations, streams and events as checked handles, errors, device properties.
// Everything is synchronous. The allocation table is what lets launches reject host pointers and
// copies reject out-of-bounds or wrongly-directed ranges.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <map>
#include <mutex>
#include <new>
#include <set>

#include "kernels/emu/launch.h"

namespace unet::emu {
namespace api {

struct EmulatedStream {
  int unused = 0;
};
struct EmulatedEvent {
  bool recorded = false;
  std::chrono::steady_clock::time_point time{};
};

}  // namespace api

namespace {

using namespace api;  // NOLINT(google-build-using-namespace): this file implements these names

constexpr std::size_t kAlignment = 256;               // what cudaMalloc guarantees
constexpr std::size_t kSharedPerBlock = 48 * 1024;    // without opt-in
constexpr std::size_t kSharedPerBlockOptin = 166912;  // A100: 163 KiB
constexpr std::size_t kSharedPerMultiprocessor = 167936;

struct Registry {
  std::mutex mutex;
  std::map<std::uintptr_t, std::size_t> allocations;  // base address -> bytes
  std::size_t bytes_in_use = 0;
  std::set<const void*> streams;
  std::set<const void*> events;
  std::map<std::uintptr_t, std::size_t> shared_limits;  // kernel -> dynamic shared memory limit
};

Registry& registry() {
  static Registry r;
  return r;
}

// Like CUDA, the last error is per host thread.
thread_local cudaError_t last_error = cudaSuccess;

cudaError_t fail(cudaError_t error) {
  last_error = error;
  return error;
}

std::size_t physical_memory() {
  return static_cast<std::size_t>(sysconf(_SC_PHYS_PAGES)) *
         static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
}

// The allocation holding `address`; `allow_end`: also the one that ends exactly there.
const std::pair<const std::uintptr_t, std::size_t>* find(const Registry& r, std::uintptr_t address,
                                                         bool allow_end) {
  auto it = r.allocations.upper_bound(address);
  if (it == r.allocations.begin()) return nullptr;
  --it;
  const std::uintptr_t end = it->first + it->second;
  return address < end || (allow_end && address == end) ? &*it : nullptr;
}

bool inside_device(const Registry& r, const void* p) {
  return find(r, reinterpret_cast<std::uintptr_t>(p), false) != nullptr;
}

// [p, p + bytes) lies in one allocation.
bool device_range(const Registry& r, const void* p, std::size_t bytes) {
  const auto address = reinterpret_cast<std::uintptr_t>(p);
  const auto* a = find(r, address, false);
  return a != nullptr && bytes <= a->first + a->second - address;
}

bool valid_stream(const Registry& r, cudaStream_t s) {
  return s == nullptr || r.streams.count(s) != 0;
}

cudaError_t copy(void* dst, const void* src, std::size_t bytes, cudaMemcpyKind kind,
                 cudaStream_t stream) {
  if (kind < cudaMemcpyHostToHost || kind > cudaMemcpyDefault) return fail(cudaErrorInvalidValue);
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  if (!valid_stream(r, stream)) return fail(cudaErrorInvalidResourceHandle);
  if (bytes == 0) return cudaSuccess;
  if (dst == nullptr || src == nullptr) return fail(cudaErrorInvalidValue);
  // Which side claims to be device memory; with cudaMemcpyDefault the pointers decide.
  const bool dst_device = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice ||
                          (kind == cudaMemcpyDefault && inside_device(r, dst));
  const bool src_device = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice ||
                          (kind == cudaMemcpyDefault && inside_device(r, src));
  // A device side must be in bounds of one allocation; a host side must not be device memory
  // (a swapped kind is a bug that unified addressing would hide on a GPU).
  if (dst_device ? !device_range(r, dst, bytes) : inside_device(r, dst))
    return fail(cudaErrorInvalidValue);
  if (src_device ? !device_range(r, src, bytes) : inside_device(r, src))
    return fail(cudaErrorInvalidValue);
  std::memmove(dst, src, bytes);
  return cudaSuccess;
}

cudaError_t set(void* ptr, int value, std::size_t bytes, cudaStream_t stream) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  if (!valid_stream(r, stream)) return fail(cudaErrorInvalidResourceHandle);
  if (bytes == 0) return cudaSuccess;
  if (!device_range(r, ptr, bytes)) return fail(cudaErrorInvalidValue);
  std::memset(ptr, value, bytes);
  return cudaSuccess;
}

}  // namespace

namespace api {

cudaError_t cudaMalloc(void** ptr, std::size_t bytes) {
  if (ptr == nullptr) return fail(cudaErrorInvalidValue);
  *ptr = nullptr;
  if (bytes == 0) return cudaSuccess;
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  if (bytes > physical_memory() - std::min(r.bytes_in_use, physical_memory()))
    return fail(cudaErrorMemoryAllocation);
  // Exactly `bytes`, so AddressSanitizer reports a kernel that runs past the end.
  void* p = ::operator new (bytes, std::align_val_t{kAlignment}, std::nothrow);
  if (p == nullptr) return fail(cudaErrorMemoryAllocation);
  std::memset(p, 0xFF, bytes);  // NaN as float: reads of memory nobody wrote show up
  r.allocations.emplace(reinterpret_cast<std::uintptr_t>(p), bytes);
  r.bytes_in_use += bytes;
  *ptr = p;
  return cudaSuccess;
}

cudaError_t cudaFree(void* ptr) {
  if (ptr == nullptr) return cudaSuccess;
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  const auto it = r.allocations.find(reinterpret_cast<std::uintptr_t>(ptr));
  if (it == r.allocations.end()) return fail(cudaErrorInvalidValue);
  r.bytes_in_use -= it->second;
  r.allocations.erase(it);
  ::operator delete (ptr, std::align_val_t{kAlignment});
  return cudaSuccess;
}

cudaError_t cudaMemcpy(void* dst, const void* src, std::size_t bytes, cudaMemcpyKind kind) {
  return copy(dst, src, bytes, kind, nullptr);
}
cudaError_t cudaMemcpyAsync(void* dst, const void* src, std::size_t bytes, cudaMemcpyKind kind,
                            cudaStream_t stream) {
  return copy(dst, src, bytes, kind, stream);
}
cudaError_t cudaMemset(void* ptr, int value, std::size_t bytes) {
  return set(ptr, value, bytes, nullptr);
}
cudaError_t cudaMemsetAsync(void* ptr, int value, std::size_t bytes, cudaStream_t stream) {
  return set(ptr, value, bytes, stream);
}

cudaError_t cudaMemGetInfo(std::size_t* free_bytes, std::size_t* total_bytes) {
  if (free_bytes == nullptr || total_bytes == nullptr) return fail(cudaErrorInvalidValue);
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  *total_bytes = physical_memory();
  *free_bytes = *total_bytes - std::min(r.bytes_in_use, *total_bytes);
  return cudaSuccess;
}

cudaError_t cudaStreamCreate(cudaStream_t* stream) {
  if (stream == nullptr) return fail(cudaErrorInvalidValue);
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  *stream = new EmulatedStream;
  r.streams.insert(*stream);
  return cudaSuccess;
}

cudaError_t cudaStreamDestroy(cudaStream_t stream) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  if (stream == nullptr || r.streams.erase(stream) == 0)
    return fail(cudaErrorInvalidResourceHandle);
  delete stream;
  return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  return valid_stream(r, stream) ? cudaSuccess : fail(cudaErrorInvalidResourceHandle);
}

cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t event, unsigned flags) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  if (!valid_stream(r, stream) || r.events.count(event) == 0)
    return fail(cudaErrorInvalidResourceHandle);
  return flags == 0 ? cudaSuccess : fail(cudaErrorInvalidValue);
}

cudaError_t cudaEventCreate(cudaEvent_t* event) {
  if (event == nullptr) return fail(cudaErrorInvalidValue);
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  *event = new EmulatedEvent;
  r.events.insert(*event);
  return cudaSuccess;
}

cudaError_t cudaEventDestroy(cudaEvent_t event) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  if (r.events.erase(event) == 0) return fail(cudaErrorInvalidResourceHandle);
  delete event;
  return cudaSuccess;
}

cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  if (r.events.count(event) == 0 || !valid_stream(r, stream))
    return fail(cudaErrorInvalidResourceHandle);
  event->recorded = true;
  event->time = std::chrono::steady_clock::now();
  return cudaSuccess;
}

cudaError_t cudaEventSynchronize(cudaEvent_t event) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  return r.events.count(event) != 0 ? cudaSuccess : fail(cudaErrorInvalidResourceHandle);
}

cudaError_t cudaEventQuery(cudaEvent_t event) { return cudaEventSynchronize(event); }

cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end) {
  if (ms == nullptr) return fail(cudaErrorInvalidValue);
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  if (r.events.count(start) == 0 || r.events.count(end) == 0)
    return fail(cudaErrorInvalidResourceHandle);
  // As in CUDA, an event that was never recorded has no time.
  if (!start->recorded || !end->recorded) return fail(cudaErrorInvalidResourceHandle);
  *ms = std::chrono::duration<float, std::milli>(end->time - start->time).count();
  return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize() { return cudaSuccess; }

cudaError_t cudaGetLastError() {
  const cudaError_t e = last_error;
  last_error = cudaSuccess;
  return e;
}

cudaError_t cudaPeekAtLastError() { return last_error; }

const char* cudaGetErrorString(cudaError_t error) {
  switch (error) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidDevicePointer: return "invalid device pointer";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorInvalidResourceHandle: return "invalid resource handle";
    case cudaErrorNotReady: return "device not ready";
    case cudaErrorLaunchFailure: return "unspecified launch failure";
  }
  return "unrecognized error code";
}

const char* cudaGetErrorName(cudaError_t error) {
  switch (error) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidDevicePointer: return "cudaErrorInvalidDevicePointer";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
    case cudaErrorNotReady: return "cudaErrorNotReady";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
  }
  return "cudaErrorUnknown";
}

cudaError_t cudaGetDeviceCount(int* count) {
  if (count == nullptr) return fail(cudaErrorInvalidValue);
  *count = 1;
  return cudaSuccess;
}

cudaError_t cudaSetDevice(int device) {
  return device == 0 ? cudaSuccess : fail(cudaErrorInvalidDevice);
}

cudaError_t cudaGetDevice(int* device) {
  if (device == nullptr) return fail(cudaErrorInvalidValue);
  *device = 0;
  return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device) {
  if (prop == nullptr) return fail(cudaErrorInvalidValue);
  if (device != 0) return fail(cudaErrorInvalidDevice);
  cudaDeviceProp p{};
  std::strncpy(p.name, "CPU emulation", sizeof p.name - 1);
  p.totalGlobalMem = physical_memory();
  p.sharedMemPerBlock = kSharedPerBlock;
  p.sharedMemPerBlockOptin = kSharedPerBlockOptin;
  p.sharedMemPerMultiprocessor = kSharedPerMultiprocessor;
  p.totalConstMem = 64 * 1024;
  p.memPitch = 2147483647;
  p.regsPerBlock = 65536;
  p.regsPerMultiprocessor = 65536;
  p.warpSize = 32;
  p.maxThreadsPerBlock = 1024;
  p.maxThreadsDim[0] = 1024;
  p.maxThreadsDim[1] = 1024;
  p.maxThreadsDim[2] = 64;
  p.maxGridSize[0] = 2147483647;
  p.maxGridSize[1] = 65535;
  p.maxGridSize[2] = 65535;
  p.major = 8;
  p.minor = 0;
  p.multiProcessorCount = 108;
  p.maxThreadsPerMultiProcessor = 2048;
  p.maxBlocksPerMultiProcessor = 32;
  p.l2CacheSize = 40 * 1024 * 1024;
  p.memoryBusWidth = 5120;
  p.concurrentKernels = 1;
  p.unifiedAddressing = 1;
  p.asyncEngineCount = 2;
  *prop = p;
  return cudaSuccess;
}

cudaError_t cudaFuncSetAttribute(std::uintptr_t kernel, cudaFuncAttribute attribute, int value) {
  if (kernel == 0) return fail(cudaErrorInvalidValue);
  switch (attribute) {
    case cudaFuncAttributeMaxDynamicSharedMemorySize: {
      if (value < 0 || static_cast<std::size_t>(value) > kSharedPerBlockOptin)
        return fail(cudaErrorInvalidValue);
      Registry& r = registry();
      std::lock_guard<std::mutex> lock(r.mutex);
      r.shared_limits[kernel] = static_cast<std::size_t>(value);
      return cudaSuccess;
    }
    case cudaFuncAttributePreferredSharedMemoryCarveout:
      return value >= -1 && value <= 100 ? cudaSuccess : fail(cudaErrorInvalidValue);
  }
  return fail(cudaErrorInvalidValue);
}

}  // namespace api

namespace detail {

bool is_device_address(std::uintptr_t address) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  return find(r, address, true) != nullptr;
}

bool is_valid_stream(api::cudaStream_t stream) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  return valid_stream(r, stream);
}

std::size_t dynamic_shared_limit(std::uintptr_t kernel_address) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  const auto it = r.shared_limits.find(kernel_address);
  return it == r.shared_limits.end() ? kSharedPerBlock : std::max(it->second, kSharedPerBlock);
}

}  // namespace detail

bool is_device_pointer(const void* ptr, std::size_t bytes) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  return device_range(r, ptr, bytes);
}

std::size_t device_bytes_in_use() {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  return r.bytes_in_use;
}

std::size_t device_allocation_count() {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  return r.allocations.size();
}

}  // namespace unet::emu
