// cuDNN convolutions for the CUDA backend (real GPUs only; cuDNN is not emulated).
//
// Per distinct shape, the descriptors and the chosen algorithms (forward, backward-data,
// backward-filter) are built once and cached: cuDNN's heuristic query (_v7) ranks candidates,
// and we take the first that succeeds, fits the workspace cap and, in deterministic mode, is
// marked deterministic; if none qualifies, an algorithm that needs no workspace and is
// deterministic (IMPLICIT_GEMM / ALGO_1) is the guaranteed fallback. Math is plain FP32 FMA
// (no TF32), so cuDNN and our handwritten kernels compute the same function.
#pragma once

#include <cudnn.h>

#include <array>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>

#include "engine/allocator.h"
#include "kernels/shapes.h"

// Throws with the call, its place and cuDNN's words when a cuDNN call fails.
#define UNET_CUDNN_CHECK(call)                                                                  \
  do {                                                                                          \
    const cudnnStatus_t unet_status_ = (call);                                                  \
    if (unet_status_ != CUDNN_STATUS_SUCCESS) {                                                 \
      throw std::runtime_error(std::string(__FILE__) + ":" + std::to_string(__LINE__) + ": " + \
                               #call + " failed: " + cudnn_error_string(unet_status_));         \
    }                                                                                           \
  } while (0)

namespace unet::cuda {

using kernels::Conv2dShape;

// The descriptors of one convolution shape. Building them needs no GPU or driver, which is what
// lets CI test this shape logic.
class CudnnConvDescriptors {
 public:
  explicit CudnnConvDescriptors(const Conv2dShape& s);
  ~CudnnConvDescriptors();
  CudnnConvDescriptors(const CudnnConvDescriptors&) = delete;
  CudnnConvDescriptors& operator=(const CudnnConvDescriptors&) = delete;

  // cuDNN's own output shape (n, c, h, w) for these descriptors.
  std::array<int, 4> output_dims() const;

  cudnnTensorDescriptor_t x = nullptr, y = nullptr, bias = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;
};

class CudnnConv {
 public:
  CudnnConv(cudaStream_t stream, CachingAllocator& allocator);
  ~CudnnConv();
  CudnnConv(const CudnnConv&) = delete;
  CudnnConv& operator=(const CudnnConv&) = delete;

  // cuDNN pads symmetrically: a shape is supported when symmetric padding of pad_top / pad_left
  // yields exactly its output size (then the two compute the same sums).
  static bool supports(const Conv2dShape& s);

  void forward(const Conv2dShape& s, const float* x, const float* w, const float* bias, float* y);
  void backward_data(const Conv2dShape& s, const float* dy, const float* w, float* dx);
  void backward_filter(const Conv2dShape& s, const float* x, const float* dy, float* dw,
                       float* dbias);

  cudnnHandle_t handle() const { return handle_; }

 private:
  struct Plan;
  Plan& plan(const Conv2dShape& s);
  void* workspace(std::size_t bytes);

  cudnnHandle_t handle_ = nullptr;
  CachingAllocator& allocator_;
  std::map<std::array<int, 12>, std::unique_ptr<Plan>> plans_;
  void* workspace_ = nullptr;
  std::size_t workspace_capacity_ = 0;
};

std::string cudnn_error_string(cudnnStatus_t status);

}  // namespace unet::cuda
