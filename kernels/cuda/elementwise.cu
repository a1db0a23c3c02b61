// CUDA elementwise kernels over flat arrays: the twins of kernels/cpu/elementwise.cpp (the flat
// sum lives in loss.cu with the other reductions).
//
// Decomposition: one grid-stride loop, instantiated per operation from a small functor that holds
// the pointers and writes element i. The grid is capped (kMaxBlocks x 256 threads covers every
// SM of an A100 / H100 several times), so large arrays take several elements per thread and the
// launch cost stays flat. Consecutive threads touch consecutive floats (coalesced).
//
// Exactness: each element is one IEEE operation written in the CPU's order, so fill, add, mul,
// scale, scale_by, accumulate, relu and the sigmoid backward equal the CPU bit for bit (no
// expression here has the a * b + c shape that the compiler could contract into an FMA). The
// sigmoid forward uses the same stable formula, but the device expf may differ from the host's
// by an ulp or two: agreement within 1e-6 relative.
#include <cmath>
#include <cstddef>

#include "kernels/cuda/kernels.h"
#include "kernels/cuda/reduce.cuh"

namespace unet::UNET_CUDA_NS {
namespace {

constexpr int kThreads = 256;
constexpr std::size_t kMaxBlocks = 2048;

template <typename Op>
__global__ void elementwise_kernel(std::size_t count, Op op) {
  const std::size_t stride = std::size_t(gridDim.x) * blockDim.x;
  for (std::size_t i = std::size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += stride)
    op(i);
}

template <typename Op>
void launch_map(std::size_t count, Op op, cudaStream_t stream, const char* name) {
  if (count == 0) return;
  auto* kernel = &elementwise_kernel<Op>;
  UNET_LAUNCH(kernel, dim3(detail::grid_blocks(count, kThreads, kMaxBlocks)), dim3(kThreads), 0,
              stream)
  (count, op);
  detail::check_launch(__FILE__, __LINE__, name);
}

struct FillOp {
  float value;
  float* y;
  __device__ void operator()(std::size_t i) const { y[i] = value; }
};

struct AddOp {
  const float* a;
  const float* b;
  float* y;
  __device__ void operator()(std::size_t i) const { y[i] = a[i] + b[i]; }
};

struct MulOp {
  const float* a;
  const float* b;
  float* y;
  __device__ void operator()(std::size_t i) const { y[i] = a[i] * b[i]; }
};

struct ScaleOp {
  const float* a;
  float s;
  float* y;
  __device__ void operator()(std::size_t i) const { y[i] = a[i] * s; }
};

// The factor lives on the device (e.g. a loss's upstream gradient); each thread reads it.
struct ScaleByOp {
  const float* a;
  const float* s;
  float* y;
  __device__ void operator()(std::size_t i) const { y[i] = a[i] * s[0]; }
};

struct AccumulateOp {
  const float* a;
  float* y;
  __device__ void operator()(std::size_t i) const { y[i] += a[i]; }
};

// "negative -> 0" rather than "positive -> x", so that a NaN propagates (as on the CPU).
struct ReluForwardOp {
  const float* x;
  float* y;
  __device__ void operator()(std::size_t i) const { y[i] = x[i] < 0.0f ? 0.0f : x[i]; }
};

struct ReluBackwardOp {
  const float* dy;
  const float* y;
  float* dx;
  __device__ void operator()(std::size_t i) const { dx[i] = y[i] > 0.0f ? dy[i] : 0.0f; }
};

// exp(-|x|) never overflows; 1 / (1 + e) for x >= 0 and e / (1 + e) for x < 0.
struct SigmoidForwardOp {
  const float* x;
  float* y;
  __device__ void operator()(std::size_t i) const {
    const float v = x[i];
    const float e = expf(-fabsf(v));
    const float r = 1.0f / (1.0f + e);
    y[i] = v >= 0.0f ? r : e * r;
  }
};

struct SigmoidBackwardOp {
  const float* dy;
  const float* y;
  float* dx;
  __device__ void operator()(std::size_t i) const { dx[i] = dy[i] * y[i] * (1.0f - y[i]); }
};

}  // namespace

void fill(std::size_t count, float value, float* y, cudaStream_t stream) {
  launch_map(count, FillOp{value, y}, stream, "fill");
}

void add(std::size_t count, const float* a, const float* b, float* y, cudaStream_t stream) {
  launch_map(count, AddOp{a, b, y}, stream, "add");
}

void mul(std::size_t count, const float* a, const float* b, float* y, cudaStream_t stream) {
  launch_map(count, MulOp{a, b, y}, stream, "mul");
}

void scale(std::size_t count, const float* a, float s, float* y, cudaStream_t stream) {
  launch_map(count, ScaleOp{a, s, y}, stream, "scale");
}

void scale_by(std::size_t count, const float* a, const float* s, float* y, cudaStream_t stream) {
  launch_map(count, ScaleByOp{a, s, y}, stream, "scale_by");
}

void accumulate(std::size_t count, const float* a, float* y, cudaStream_t stream) {
  launch_map(count, AccumulateOp{a, y}, stream, "accumulate");
}

void relu_forward(std::size_t count, const float* x, float* y, cudaStream_t stream) {
  launch_map(count, ReluForwardOp{x, y}, stream, "relu_forward");
}

void relu_backward(std::size_t count, const float* dy, const float* y, float* dx,
                   cudaStream_t stream) {
  launch_map(count, ReluBackwardOp{dy, y, dx}, stream, "relu_backward");
}

void sigmoid_forward(std::size_t count, const float* x, float* y, cudaStream_t stream) {
  launch_map(count, SigmoidForwardOp{x, y}, stream, "sigmoid_forward");
}

void sigmoid_backward(std::size_t count, const float* dy, const float* y, float* dx,
                      cudaStream_t stream) {
  launch_map(count, SigmoidBackwardOp{dy, y, dx}, stream, "sigmoid_backward");
}

}  // namespace unet::UNET_CUDA_NS
