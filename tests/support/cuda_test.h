// Helpers for tests of the CUDA kernels. The same test sources build twice: over the emulation
// layer (UNET_CUDA_EMULATION, always) and over the real CUDA runtime (when nvcc is present). On a
// machine without a usable GPU the real build's tests return early and say so.
#pragma once

#include <catch2/catch.hpp>

#include <cstddef>
#include <cstring>
#include <functional>
#include <limits>
#include <stdexcept>
#include <string>
#include <utility>
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

// Fills a device array with `value` (NaN unless a test needs another marker), so that an element a
// kernel fails to write fails the comparison.
template <typename T>
void poison(DeviceBuffer<T>& buffer, T value = std::numeric_limits<T>::quiet_NaN()) {
  buffer.upload(std::vector<T>(buffer.size(), value));
}

inline void require_bitwise_equal(const std::vector<float>& a, const std::vector<float>& b, const std::string& what) {
  INFO(what << ": must be bitwise equal");
  REQUIRE(a.size() == b.size());
  // (memcmp must not see the null data() of an empty vector)
  REQUIRE((a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0));
}

// Runs `body` several times: over the emulator once per thread order (Forward, Reverse, Random),
// so that a missing barrier shows up as a wrong or order-dependent result, then restores the order
// it found; on a GPU twice, so that results can be compared run to run.
inline void repeat_runs(const std::function<void()>& body) {
#ifdef UNET_CUDA_EMULATION
  using unet::emu::ThreadOrder;
  const ThreadOrder previous = unet::emu::thread_order();
  const ThreadOrder orders[] = {ThreadOrder::Forward, ThreadOrder::Reverse, ThreadOrder::Random};
  const char* const names[] = {"Forward", "Reverse", "Random"};
  for (int run = 0; run < 3; ++run) {
    INFO("emulated thread order " << names[run]);
    unet::emu::set_thread_order(orders[run]);
    body();
  }
  unet::emu::set_thread_order(previous);
#else
  for (int run = 0; run < 2; ++run) {
    INFO("run " << run + 1 << " of 2");
    body();
  }
#endif
}

// The first run's result of one pass; every later run must reproduce it bit for bit (no atomics,
// and a fixed summation order whatever order the threads run in).
class FirstRun {
 public:
  explicit FirstRun(std::string what) : what_(std::move(what)) {}
  void check(const std::vector<float>& result) {
    if (!seen_) {
      first_ = result;
      seen_ = true;
      return;
    }
    require_bitwise_equal(result, first_, what_ + " against the first run");
  }

 private:
  std::string what_;
  std::vector<float> first_;
  bool seen_ = false;
};

}  // namespace unet::test
