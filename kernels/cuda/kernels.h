// Host launchers of the handwritten CUDA kernels: the same primitives as kernels/cpu/, on device
// pointers, queued on `stream`. Outputs are overwritten; nullable pointers are marked. None of
// them allocates or synchronises, and none uses atomics in a value that feeds training, so every
// result is bitwise reproducible run to run (see docs/KERNELS.md per kernel).
//
// Compiled twice from the same sources: by nvcc into namespace unet::cuda, and by the host
// compiler over the emulation layer into unet::cuda_emu (kernels/cuda/runtime.h).
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/cuda/runtime.h"
#include "kernels/shapes.h"

namespace unet::UNET_CUDA_NS {

using kernels::AdamParams;
using kernels::AdamTensor;
using kernels::BatchNormShape;
using kernels::ConcatShape;
using kernels::Conv2dShape;
using kernels::ConvTranspose2dShape;
using kernels::LossKind;
using kernels::Pool2dShape;

// conv.cu: shared-memory tiled implicit GEMM. bias / dbias nullable.
void conv2d_forward(const Conv2dShape& s, const float* x, const float* w, const float* bias,
                    float* y, cudaStream_t stream);
void conv2d_backward_data(const Conv2dShape& s, const float* dy, const float* w, float* dx,
                          cudaStream_t stream);
// dx = backward-data + bias[channel of dx]: the forward pass of the transposed convolution whose
// adjoint s is (kernels::adjoint_convolution).
void conv2d_backward_data_plus_bias(const Conv2dShape& s, const float* dy, const float* w,
                                    const float* bias, float* dx, cudaStream_t stream);
// workspace: conv2d_backward_filter_workspace(s) bytes of device memory (nullptr when 0), for
// the partial dW of the pixel splits; the next call on the stream may reuse it.
void conv2d_backward_filter(const Conv2dShape& s, const float* x, const float* dy, float* dw,
                            float* dbias, float* workspace, cudaStream_t stream);
std::size_t conv2d_backward_filter_workspace(const Conv2dShape& s);
// out[c] = sum of dy[img, c, :] over images and pixels: the bias gradient of conv2d and
// conv_transpose2d. One block per channel, a fixed summation order.
void channel_sum(const float* dy, int n, int channels, int plane, float* out, cudaStream_t stream);

// conv_transpose.cu: each pass is a pass of the adjoint convolution above (no kernels of its
// own). workspace: conv_transpose2d_backward_filter_workspace(s) bytes, as for conv2d.
void conv_transpose2d_forward(const ConvTranspose2dShape& s, const float* x, const float* w,
                              const float* bias, float* y, cudaStream_t stream);
void conv_transpose2d_backward_data(const ConvTranspose2dShape& s, const float* dy, const float* w,
                                    float* dx, cudaStream_t stream);
void conv_transpose2d_backward_filter(const ConvTranspose2dShape& s, const float* x,
                                      const float* dy, float* dw, float* dbias, float* workspace,
                                      cudaStream_t stream);
std::size_t conv_transpose2d_backward_filter_workspace(const ConvTranspose2dShape& s);

// batchnorm.cu: fused BN(+ReLU); per-channel statistics by block reductions over slices of each
// channel, merged in a fixed order. y (forward) and dx (backward) must not overlap an input: they
// hold the slices' partials until the last launch overwrites them.
void batchnorm_forward_train(const BatchNormShape& s, const float* x, const float* gamma,
                             const float* beta, float eps, float momentum, float* running_mean,
                             float* running_var, float* y, float* save_mean, float* save_invstd,
                             bool relu, cudaStream_t stream);
void batchnorm_forward_infer(const BatchNormShape& s, const float* x, const float* gamma,
                             const float* beta, const float* running_mean,
                             const float* running_var, float eps, float* y, bool relu,
                             cudaStream_t stream);
void batchnorm_backward_train(const BatchNormShape& s, const float* dy, const float* x,
                              const float* y, const float* gamma, const float* save_mean,
                              const float* save_invstd, float* dx, float* dgamma, float* dbeta,
                              bool relu, cudaStream_t stream);
void batchnorm_backward_infer(const BatchNormShape& s, const float* dy, const float* x,
                              const float* y, const float* gamma, const float* running_mean,
                              const float* running_var, float eps, float* dx, float* dgamma,
                              float* dbeta, bool relu, cudaStream_t stream);

// pool.cu
void maxpool2x2_forward(const Pool2dShape& s, const float* x, float* y, uint8_t* argmax,
                        cudaStream_t stream);
void maxpool2x2_backward(const Pool2dShape& s, const float* dy, const uint8_t* argmax, float* dx,
                         cudaStream_t stream);

// dropout.cu: Philox (kernels/philox.h), the same mask as the CPU kernel for the same stream.
void dropout_forward(std::size_t count, float p, uint64_t seed, uint64_t offset, const float* x,
                     float* y, uint8_t* mask, cudaStream_t stream);
void dropout_backward(std::size_t count, float p, const float* dy, const uint8_t* mask, float* dx,
                      cudaStream_t stream);

// concat.cu
void concat_channels(const ConcatShape& s, const float* a, const float* b, float* out,
                     cudaStream_t stream);
void split_channels(const ConcatShape& s, const float* in, float* a, float* b, cudaStream_t stream);

// elementwise.cu. scale_by reads its factor from device memory (s[0]).
void fill(std::size_t count, float value, float* y, cudaStream_t stream);
void add(std::size_t count, const float* a, const float* b, float* y, cudaStream_t stream);
void mul(std::size_t count, const float* a, const float* b, float* y, cudaStream_t stream);
void scale(std::size_t count, const float* a, float s, float* y, cudaStream_t stream);
void scale_by(std::size_t count, const float* a, const float* s, float* y, cudaStream_t stream);
void accumulate(std::size_t count, const float* a, float* y, cudaStream_t stream);
void relu_forward(std::size_t count, const float* x, float* y, cudaStream_t stream);
void relu_backward(std::size_t count, const float* dy, const float* y, float* dx,
                   cudaStream_t stream);
void sigmoid_forward(std::size_t count, const float* x, float* y, cudaStream_t stream);
void sigmoid_backward(std::size_t count, const float* dy, const float* y, float* dx,
                      cudaStream_t stream);

// loss.cu: fused reductions in a fixed order; results into out[0] (device).
void sum(std::size_t count, const float* x, float* out, cudaStream_t stream);
void loss_forward(LossKind kind, std::size_t count, const float* input, const float* target,
                  float smooth, float* out, cudaStream_t stream);
void loss_backward(LossKind kind, std::size_t count, const float* input, const float* target,
                   float smooth, const float* dloss, float* dinput, cudaStream_t stream);

// adam.cu: one launch updates every tensor. `device_table` is a device copy of `host_table`
// (the launcher reads sizes from the host copy to size the grid).
void adam_update(const AdamParams& a, const AdamTensor* host_table, const AdamTensor* device_table,
                 int tensors, cudaStream_t stream);

}  // namespace unet::UNET_CUDA_NS
