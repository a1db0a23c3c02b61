// Helpers for tests of the CUDA kernels. The same test sources build twice: over the emulation
// layer (UNET_CUDA_EMULATION, always) and over the real CUDA runtime (when nvcc is present). On a
// machine without a usable GPU the real build's tests return early and say so.
#pragma once

#include <catch2/catch.hpp>

#include <cstddef>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/cuda/kernels.h"

namespace unet::test {

namespace cu = unet::UNET_CUDA_NS;

inline bool gpu_available() {
  int devices = 0;
  return cudaGetDeviceCount(&devices) == cudaSuccess && devices > 0;
}

// Returns from the test case (with a visible message) when there is no GPU to run on.
#define UNET_REQUIRE_GPU()                                                          \
  do {                                                                              \
    if (!::unet::test::gpu_available()) {                                           \
      WARN("skipped: no usable CUDA GPU on this machine (the emulated build runs "  \
           "these kernels on the CPU)");                                            \
      return;                                                                       \
    }                                                                               \
  } while (0)

inline void check_cuda(cudaError_t status, const char* what) {
  if (status != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(status));
}

// A device array with host round trips, freed on scope exit.
template <typename T>
class DeviceBuffer {
 public:
  explicit DeviceBuffer(std::size_t count) : count_(count) {
    check_cuda(cudaMalloc(reinterpret_cast<void**>(&ptr_), bytes()), "cudaMalloc");
  }
  explicit DeviceBuffer(const std::vector<T>& host) : DeviceBuffer(host.size()) { upload(host); }
  ~DeviceBuffer() { cudaFree(ptr_); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  void upload(const std::vector<T>& host) {
    REQUIRE(host.size() == count_);
    check_cuda(cudaMemcpy(ptr_, host.data(), bytes(), cudaMemcpyHostToDevice), "cudaMemcpy to device");
  }
  std::vector<T> download() const {
    check_cuda(cudaDeviceSynchronize(), "kernel");
    std::vector<T> host(count_);
    check_cuda(cudaMemcpy(host.data(), ptr_, bytes(), cudaMemcpyDeviceToHost), "cudaMemcpy to host");
    return host;
  }
  T* get() const { return ptr_; }
  std::size_t size() const { return count_; }

 private:
  std::size_t bytes() const { return count_ * sizeof(T); }
  T* ptr_ = nullptr;
  std::size_t count_;
};

}  // namespace unet::test
