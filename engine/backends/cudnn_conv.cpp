#include "engine/backends/cudnn_conv.h"

#include <cstdio>
#include <stdexcept>
#include <vector>

#include "engine/backends/cuda_check.h"
#include "engine/options.h"

namespace unet::cuda {

std::string cudnn_error_string(cudnnStatus_t status) { return cudnnGetErrorString(status); }

CudnnConvDescriptors::CudnnConvDescriptors(const Conv2dShape& s) {
  UNET_CUDNN_CHECK(cudnnCreateTensorDescriptor(&x));
  UNET_CUDNN_CHECK(cudnnCreateTensorDescriptor(&y));
  UNET_CUDNN_CHECK(cudnnCreateTensorDescriptor(&bias));
  UNET_CUDNN_CHECK(cudnnCreateFilterDescriptor(&w));
  UNET_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&conv));
  UNET_CUDNN_CHECK(cudnnSetTensor4dDescriptor(x, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, s.n, s.c_in, s.h_in, s.w_in));
  UNET_CUDNN_CHECK(cudnnSetTensor4dDescriptor(y, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, s.n, s.c_out, s.h_out, s.w_out));
  UNET_CUDNN_CHECK(cudnnSetTensor4dDescriptor(bias, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1, s.c_out, 1, 1));
  UNET_CUDNN_CHECK(cudnnSetFilter4dDescriptor(w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, s.c_out, s.c_in, s.kh, s.kw));
  UNET_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(conv, s.pad_top, s.pad_left, s.stride, s.stride, 1, 1,
                                                   CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
  // Plain FP32: TF32 tensor-core math would round inputs to 10 mantissa bits.
  UNET_CUDNN_CHECK(cudnnSetConvolutionMathType(conv, CUDNN_FMA_MATH));
}

CudnnConvDescriptors::~CudnnConvDescriptors() {
  cudnnDestroyConvolutionDescriptor(conv);
  cudnnDestroyFilterDescriptor(w);
  cudnnDestroyTensorDescriptor(bias);
  cudnnDestroyTensorDescriptor(y);
  cudnnDestroyTensorDescriptor(x);
}

std::array<int, 4> CudnnConvDescriptors::output_dims() const {
  std::array<int, 4> d{};
  UNET_CUDNN_CHECK(cudnnGetConvolution2dForwardOutputDim(conv, x, w, &d[0], &d[1], &d[2], &d[3]));
  return d;
}

namespace {

// The first candidate that ran, fits the cap and (if asked) is deterministic; else the fallback.
template <typename Perf, typename Algo>
Algo choose(const std::vector<Perf>& candidates, int returned, Algo fallback, std::size_t* workspace) {
  const EngineOptions& o = engine_options();
  for (int i = 0; i < returned; ++i) {
    const Perf& p = candidates[std::size_t(i)];
    if (p.status != CUDNN_STATUS_SUCCESS || p.memory > o.cudnn_workspace_limit) continue;
    if (o.deterministic && p.determinism != CUDNN_DETERMINISTIC) continue;
    *workspace = p.memory;
    return p.algo;
  }
  *workspace = 0;
  return fallback;
}

void log_choice(const char* direction, const Conv2dShape& s, int algo, std::size_t workspace) {
  if (!engine_options().log_cudnn) return;
  std::fprintf(stderr, "cudnn: conv %s x[%d,%d,%d,%d] w[%d,%d,%d,%d] stride %d: algorithm %d, workspace %zu B\n",
               direction, s.n, s.c_in, s.h_in, s.w_in, s.c_out, s.c_in, s.kh, s.kw, s.stride, algo, workspace);
}

}  // namespace

struct CudnnConv::Plan {
  explicit Plan(const Conv2dShape& s) : desc(s) {}
  CudnnConvDescriptors desc;
  cudnnConvolutionFwdAlgo_t fwd{};
  cudnnConvolutionBwdDataAlgo_t bwd_data{};
  cudnnConvolutionBwdFilterAlgo_t bwd_filter{};
  std::size_t fwd_bytes = 0, bwd_data_bytes = 0, bwd_filter_bytes = 0;
};

CudnnConv::CudnnConv(cudaStream_t stream, CachingAllocator& allocator) : allocator_(allocator) {
  UNET_CUDNN_CHECK(cudnnCreate(&handle_));
  UNET_CUDNN_CHECK(cudnnSetStream(handle_, stream));
}

CudnnConv::~CudnnConv() {
  plans_.clear();
  if (workspace_) allocator_.deallocate(workspace_, workspace_capacity_);
  cudnnDestroy(handle_);
}

bool CudnnConv::supports(const Conv2dShape& s) {
  auto out = [&](int in, int k, int pad) { return (in + 2 * pad - k) / s.stride + 1; };
  return out(s.h_in, s.kh, s.pad_top) == s.h_out && out(s.w_in, s.kw, s.pad_left) == s.w_out;
}

CudnnConv::Plan& CudnnConv::plan(const Conv2dShape& s) {
  const std::array<int, 12> key{s.n, s.c_in, s.h_in, s.w_in, s.c_out, s.kh, s.kw, s.stride, s.pad_top, s.pad_left, s.h_out, s.w_out};
  auto& slot = plans_[key];
  if (slot) return *slot;
  auto p = std::make_unique<Plan>(s);
  const CudnnConvDescriptors& d = p->desc;
  int returned = 0;
  {
    std::vector<cudnnConvolutionFwdAlgoPerf_t> c(CUDNN_CONVOLUTION_FWD_ALGO_COUNT);
    UNET_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(handle_, d.x, d.w, d.conv, d.y, int(c.size()), &returned, c.data()));
    p->fwd = choose(c, returned, CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, &p->fwd_bytes);
    log_choice("forward", s, int(p->fwd), p->fwd_bytes);
  }
  {
    std::vector<cudnnConvolutionBwdDataAlgoPerf_t> c(CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT);
    UNET_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(handle_, d.w, d.y, d.conv, d.x, int(c.size()), &returned, c.data()));
    p->bwd_data = choose(c, returned, CUDNN_CONVOLUTION_BWD_DATA_ALGO_1, &p->bwd_data_bytes);
    log_choice("backward-data", s, int(p->bwd_data), p->bwd_data_bytes);
  }
  {
    std::vector<cudnnConvolutionBwdFilterAlgoPerf_t> c(CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT);
    UNET_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(handle_, d.x, d.y, d.conv, d.w, int(c.size()), &returned, c.data()));
    p->bwd_filter = choose(c, returned, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1, &p->bwd_filter_bytes);
    log_choice("backward-filter", s, int(p->bwd_filter), p->bwd_filter_bytes);
  }
  slot = std::move(p);
  return *slot;
}

void* CudnnConv::workspace(std::size_t bytes) {
  if (bytes == 0) return nullptr;
  if (bytes > workspace_capacity_) {
    // Stream order makes this safe: work already queued on the stream finishes with the old
    // block before anything queued later can reuse it.
    if (workspace_) allocator_.deallocate(workspace_, workspace_capacity_);
    workspace_ = allocator_.allocate(bytes, &workspace_capacity_);
  }
  return workspace_;
}

void CudnnConv::forward(const Conv2dShape& s, const float* x, const float* w, const float* bias, float* y) {
  Plan& p = plan(s);
  const float one = 1.0f, zero = 0.0f;
  UNET_CUDNN_CHECK(cudnnConvolutionForward(handle_, &one, p.desc.x, x, p.desc.w, w, p.desc.conv, p.fwd,
                                           workspace(p.fwd_bytes), p.fwd_bytes, &zero, p.desc.y, y));
  if (bias) UNET_CUDNN_CHECK(cudnnAddTensor(handle_, &one, p.desc.bias, bias, &one, p.desc.y, y));
}

void CudnnConv::backward_data(const Conv2dShape& s, const float* dy, const float* w, float* dx) {
  Plan& p = plan(s);
  const float one = 1.0f, zero = 0.0f;
  UNET_CUDNN_CHECK(cudnnConvolutionBackwardData(handle_, &one, p.desc.w, w, p.desc.y, dy, p.desc.conv, p.bwd_data,
                                                workspace(p.bwd_data_bytes), p.bwd_data_bytes, &zero, p.desc.x, dx));
}

void CudnnConv::backward_filter(const Conv2dShape& s, const float* x, const float* dy, float* dw, float* dbias) {
  Plan& p = plan(s);
  const float one = 1.0f, zero = 0.0f;
  UNET_CUDNN_CHECK(cudnnConvolutionBackwardFilter(handle_, &one, p.desc.x, x, p.desc.y, dy, p.desc.conv, p.bwd_filter,
                                                  workspace(p.bwd_filter_bytes), p.bwd_filter_bytes, &zero, p.desc.w, dw));
  if (dbias) UNET_CUDNN_CHECK(cudnnConvolutionBackwardBias(handle_, &one, p.desc.y, dy, &zero, p.desc.bias, dbias));
}

}  // namespace unet::cuda
