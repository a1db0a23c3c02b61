// Emulation layer: the runtime API subset (memory, copies, streams, events, errors, device).
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "kernels/cuda/runtime.h"

namespace unet::emu_test {
namespace {

TEST_CASE("emu runtime: cudaMalloc is tracked, aligned, NaN-filled and freed", "[emu]") {
  const std::size_t bytes_before = emu::device_bytes_in_use();
  const std::size_t count_before = emu::device_allocation_count();
  float* p = nullptr;
  REQUIRE(cudaMalloc(&p, 100 * sizeof(float)) == cudaSuccess);
  REQUIRE(p != nullptr);
  CHECK(reinterpret_cast<std::uintptr_t>(p) % 256 == 0);
  CHECK(emu::device_bytes_in_use() == bytes_before + 400);
  CHECK(emu::device_allocation_count() == count_before + 1);
  CHECK(emu::is_device_pointer(p, 400));
  CHECK(emu::is_device_pointer(p + 99, 4));
  CHECK_FALSE(emu::is_device_pointer(p + 99, 8));
  std::vector<float> host(100);
  REQUIRE(cudaMemcpy(host.data(), p, 400, cudaMemcpyDeviceToHost) == cudaSuccess);
  CHECK(std::isnan(host[0]));
  CHECK(std::isnan(host[99]));
  CHECK(cudaFree(p) == cudaSuccess);
  CHECK(emu::device_bytes_in_use() == bytes_before);
  CHECK(emu::device_allocation_count() == count_before);
  CHECK(cudaFree(p) == cudaErrorInvalidValue);  // double free
  CHECK(cudaFree(nullptr) == cudaSuccess);
  void* zero = &host;
  CHECK(cudaMalloc(&zero, 0) == cudaSuccess);
  CHECK(zero == nullptr);
  CHECK(cudaMalloc(static_cast<void**>(nullptr), 4) == cudaErrorInvalidValue);
  (void)cudaGetLastError();
}

TEST_CASE("emu runtime: cudaMemcpy checks bounds and directions", "[emu]") {
  float* d = nullptr;
  float* e = nullptr;
  REQUIRE(cudaMalloc(&d, 16 * sizeof(float)) == cudaSuccess);
  REQUIRE(cudaMalloc(&e, 16 * sizeof(float)) == cudaSuccess);
  std::vector<float> host(16), back(16);
  for (int i = 0; i < 16; ++i) host[i] = static_cast<float>(i);

  CHECK(cudaMemcpy(d, host.data(), 64, cudaMemcpyHostToDevice) == cudaSuccess);
  CHECK(cudaMemcpy(e, d, 64, cudaMemcpyDeviceToDevice) == cudaSuccess);
  CHECK(cudaMemcpy(back.data(), e, 64, cudaMemcpyDeviceToHost) == cudaSuccess);
  CHECK(back == host);
  // Overlapping device-to-device copy shifts like memmove.
  CHECK(cudaMemcpy(d + 1, d, 15 * sizeof(float), cudaMemcpyDeviceToDevice) == cudaSuccess);
  CHECK(cudaMemcpy(back.data(), d, 64, cudaMemcpyDefault) == cudaSuccess);
  CHECK(back[0] == 0.0f);
  CHECK(back[1] == 0.0f);
  CHECK(back[15] == 14.0f);

  SECTION("out of bounds") {
    CHECK(cudaMemcpy(d, host.data(), 68, cudaMemcpyHostToDevice) == cudaErrorInvalidValue);
    CHECK(cudaMemcpy(back.data(), d + 8, 36, cudaMemcpyDeviceToHost) == cudaErrorInvalidValue);
    CHECK(cudaMemcpy(d, e + 1, 64, cudaMemcpyDeviceToDevice) == cudaErrorInvalidValue);
  }
  SECTION("wrong direction") {
    CHECK(cudaMemcpy(host.data(), back.data(), 64, cudaMemcpyHostToDevice) ==
          cudaErrorInvalidValue);
    CHECK(cudaMemcpy(back.data(), host.data(), 64, cudaMemcpyDeviceToHost) ==
          cudaErrorInvalidValue);
    CHECK(cudaMemcpy(d, e, 64, cudaMemcpyHostToDevice) == cudaErrorInvalidValue);  // src is device
    CHECK(cudaMemcpy(d, e, 64, cudaMemcpyHostToHost) == cudaErrorInvalidValue);
    CHECK(cudaMemcpy(d, host.data(), 64, static_cast<cudaMemcpyKind>(7)) == cudaErrorInvalidValue);
  }
  SECTION("the last error records the failure until read") {
    CHECK(cudaMemcpy(d, host.data(), 68, cudaMemcpyHostToDevice) == cudaErrorInvalidValue);
    CHECK(cudaPeekAtLastError() == cudaErrorInvalidValue);
    CHECK(cudaGetLastError() == cudaErrorInvalidValue);
    CHECK(cudaGetLastError() == cudaSuccess);
  }
  SECTION("zero bytes and default kind") {
    CHECK(cudaMemcpy(nullptr, nullptr, 0, cudaMemcpyDefault) == cudaSuccess);
    CHECK(cudaMemcpy(back.data(), host.data(), 64, cudaMemcpyDefault) == cudaSuccess);
    CHECK(cudaMemcpy(d, host.data(), 64, cudaMemcpyDefault) == cudaSuccess);
    CHECK(cudaMemcpy(d + 4, host.data(), 64, cudaMemcpyDefault) == cudaErrorInvalidValue);
  }
  (void)cudaGetLastError();
  CHECK(cudaFree(d) == cudaSuccess);
  CHECK(cudaFree(e) == cudaSuccess);
}

TEST_CASE("emu runtime: cudaMemset and the async variants on streams", "[emu]") {
  cudaStream_t stream = nullptr;
  REQUIRE(cudaStreamCreate(&stream) == cudaSuccess);
  unsigned char* d = nullptr;
  REQUIRE(cudaMalloc(&d, 32) == cudaSuccess);
  std::vector<unsigned char> back(32);
  CHECK(cudaMemsetAsync(d, 0, 32, stream) == cudaSuccess);
  CHECK(cudaMemset(d + 8, 0xAB, 8) == cudaSuccess);
  CHECK(cudaMemcpyAsync(back.data(), d, 32, cudaMemcpyDeviceToHost, stream) == cudaSuccess);
  CHECK(cudaStreamSynchronize(stream) == cudaSuccess);
  for (int i = 0; i < 32; ++i) CHECK(back[i] == (i >= 8 && i < 16 ? 0xAB : 0));
  CHECK(cudaMemset(d + 16, 0, 17) == cudaErrorInvalidValue);
  CHECK(cudaMemset(back.data(), 0, 4) == cudaErrorInvalidValue);
  CHECK(cudaStreamDestroy(stream) == cudaSuccess);
  CHECK(cudaStreamDestroy(stream) == cudaErrorInvalidResourceHandle);
  CHECK(cudaMemsetAsync(d, 0, 4, stream) == cudaErrorInvalidResourceHandle);
  CHECK(cudaStreamSynchronize(nullptr) == cudaSuccess);
  (void)cudaGetLastError();
  CHECK(cudaFree(d) == cudaSuccess);
}

TEST_CASE("emu runtime: events time wall-clock intervals", "[emu]") {
  cudaEvent_t start = nullptr, stop = nullptr;
  REQUIRE(cudaEventCreate(&start) == cudaSuccess);
  REQUIRE(cudaEventCreate(&stop) == cudaSuccess);
  float ms = -1.0f;
  CHECK(cudaEventElapsedTime(&ms, start, stop) == cudaErrorInvalidResourceHandle);  // not recorded
  CHECK(cudaEventRecord(start) == cudaSuccess);
  volatile double sink = 0.0;
  for (int i = 0; i < 100000; ++i) sink = sink + std::sqrt(static_cast<double>(i));
  CHECK(cudaEventRecord(stop, nullptr) == cudaSuccess);
  CHECK(cudaEventSynchronize(stop) == cudaSuccess);
  CHECK(cudaEventQuery(stop) == cudaSuccess);
  CHECK(cudaStreamWaitEvent(nullptr, stop) == cudaSuccess);
  CHECK(cudaEventElapsedTime(&ms, start, stop) == cudaSuccess);
  CHECK(ms >= 0.0f);
  CHECK(ms < 10000.0f);
  CHECK(cudaEventDestroy(start) == cudaSuccess);
  CHECK(cudaEventDestroy(stop) == cudaSuccess);
  CHECK(cudaEventRecord(stop) == cudaErrorInvalidResourceHandle);
  (void)cudaGetLastError();
}

TEST_CASE("emu runtime: one device with A100-like properties", "[emu]") {
  int count = 0, device = -1;
  CHECK(cudaGetDeviceCount(&count) == cudaSuccess);
  CHECK(count == 1);
  CHECK(cudaSetDevice(0) == cudaSuccess);
  CHECK(cudaSetDevice(1) == cudaErrorInvalidDevice);
  CHECK(cudaGetDevice(&device) == cudaSuccess);
  CHECK(device == 0);
  cudaDeviceProp prop{};
  CHECK(cudaGetDeviceProperties(&prop, 0) == cudaSuccess);
  CHECK(std::string(prop.name) == "CPU emulation");
  CHECK(prop.warpSize == 32);
  CHECK(prop.maxThreadsPerBlock == 1024);
  CHECK(prop.sharedMemPerBlock == 48 * 1024);
  CHECK(prop.sharedMemPerBlockOptin > prop.sharedMemPerBlock);
  CHECK(prop.multiProcessorCount > 0);
  CHECK(prop.totalGlobalMem > 0);
  CHECK(cudaGetDeviceProperties(&prop, 1) == cudaErrorInvalidDevice);
  std::size_t free_bytes = 0, total = 0;
  CHECK(cudaMemGetInfo(&free_bytes, &total) == cudaSuccess);
  CHECK(total == prop.totalGlobalMem);
  CHECK(free_bytes <= total);
  CHECK(cudaDeviceSynchronize() == cudaSuccess);
  CHECK(std::string(cudaGetErrorString(cudaErrorInvalidValue)) == "invalid argument");
  CHECK(std::string(cudaGetErrorName(cudaErrorLaunchFailure)) == "cudaErrorLaunchFailure");
  (void)cudaGetLastError();
}

}  // namespace
}  // namespace unet::emu_test
