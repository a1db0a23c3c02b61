#include "bench/gpu.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <stdexcept>

namespace unet::bench::gpu {
namespace {

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(e));
}

constexpr int kChains = 8, kIterations = 4096;

__global__ void fma_chains(float* out, float seed) {
  float acc[kChains];
#pragma unroll
  for (int i = 0; i < kChains; ++i) acc[i] = seed * float(threadIdx.x + i);
  for (int it = 0; it < kIterations; ++it) {
#pragma unroll
    for (int i = 0; i < kChains; ++i) acc[i] = fmaf(acc[i], 0.999999f, 1e-7f);
  }
  float total = 0;
#pragma unroll
  for (int i = 0; i < kChains; ++i) total += acc[i];
  if (total == 12345.0f) out[0] = total;  // keeps the chains alive
}

__global__ void copy4(const float4* __restrict__ in, float4* __restrict__ out, size_t n) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x) {
    out[i] = in[i];
  }
}

struct Scratch {
  void* ptr = nullptr;
  size_t bytes = 0;
  ~Scratch() { cudaFree(ptr); }
};

}  // namespace

bool available(std::string* why) {
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) {
    *why = cudaGetErrorString(e);
    return false;
  }
  if (count == 0) {
    *why = "no CUDA device";
    return false;
  }
  return true;
}

std::string device_name() {
  cudaDeviceProp p{};
  check(cudaGetDeviceProperties(&p, 0), "cudaGetDeviceProperties");
  return p.name;
}

Peak probe_peak() {
  int sms = 0;
  check(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0), "cudaDeviceGetAttribute");
  Scratch out;
  check(cudaMalloc(&out.ptr, sizeof(float)), "cudaMalloc");
  EventTimer timer;
  Peak peak;
  const int blocks = sms * 8, threads = 256;
  for (int run = 0; run < 5; ++run) {
    timer.start();
    fma_chains<<<blocks, threads>>>(static_cast<float*>(out.ptr), 1e-3f);
    const double s = timer.stop_seconds();
    check(cudaGetLastError(), "fma_chains");
    peak.gflops = std::max(peak.gflops, 2.0 * kChains * kIterations * blocks * threads / s / 1e9);
  }
  const size_t bytes = size_t(512) << 20;
  Scratch a, b;
  check(cudaMalloc(&a.ptr, bytes), "cudaMalloc");
  check(cudaMalloc(&b.ptr, bytes), "cudaMalloc");
  check(cudaMemset(a.ptr, 0, bytes), "cudaMemset");
  for (int run = 0; run < 5; ++run) {
    timer.start();
    copy4<<<sms * 4, 512>>>(static_cast<const float4*>(a.ptr), static_cast<float4*>(b.ptr), bytes / sizeof(float4));
    const double s = timer.stop_seconds();
    check(cudaGetLastError(), "copy4");
    peak.gbps = std::max(peak.gbps, 2.0 * double(bytes) / s / 1e9);
  }
  return peak;
}

void flush_l2() {
  static Scratch scratch;
  if (!scratch.ptr) {
    int l2 = 0;
    check(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, 0), "cudaDeviceGetAttribute");
    scratch.bytes = std::max<size_t>(size_t(l2) * 2, 1 << 20);
    check(cudaMalloc(&scratch.ptr, scratch.bytes), "cudaMalloc");
  }
  check(cudaMemsetAsync(scratch.ptr, 0, scratch.bytes, 0), "cudaMemsetAsync");
}

EventTimer::EventTimer() {
  cudaEvent_t a, b;
  check(cudaEventCreate(&a), "cudaEventCreate");
  check(cudaEventCreate(&b), "cudaEventCreate");
  start_ = a;
  stop_ = b;
}

EventTimer::~EventTimer() {
  cudaEventDestroy(static_cast<cudaEvent_t>(start_));
  cudaEventDestroy(static_cast<cudaEvent_t>(stop_));
}

void EventTimer::start() { check(cudaEventRecord(static_cast<cudaEvent_t>(start_), 0), "cudaEventRecord"); }

double EventTimer::stop_seconds() {
  check(cudaEventRecord(static_cast<cudaEvent_t>(stop_), 0), "cudaEventRecord");
  check(cudaEventSynchronize(static_cast<cudaEvent_t>(stop_)), "cudaEventSynchronize");
  float ms = 0;
  check(cudaEventElapsedTime(&ms, static_cast<cudaEvent_t>(start_), static_cast<cudaEvent_t>(stop_)), "cudaEventElapsedTime");
  return ms / 1000.0;
}

}  // namespace unet::bench::gpu
