// The Backend interface: one method per primitive that the ops need, over raw device pointers and
// the kernel shape structs of kernels/shapes.h.
//
// Ops (engine/ops/) check shapes, allocate outputs and record autograd nodes; they never branch
// on the device. They ask backend(tensor.device()) to run the primitive. A CUDA backend plugs in
// by implementing this interface (engine/backends/), without touching any op. All pointers given
// to a backend belong to its device; scalars that are results of reductions (losses, sums) stay
// on the device as one-element arrays.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "engine/allocator.h"
#include "kernels/kernel_call.h"
#include "kernels/shapes.h"

namespace unet {

enum class Device { CPU, CUDA };
std::string to_string(Device device);

using kernels::AdamParams;
using kernels::AdamTensor;
using kernels::BatchNormShape;
using kernels::ConcatShape;
using kernels::Conv2dShape;
using kernels::ConvTranspose2dShape;
using kernels::Pool2dShape;

using kernels::LossKind;
using kernels::to_string;  // of a LossKind


class Backend {
 public:
  virtual ~Backend() = default;
  virtual Device device() const = 0;
  virtual CachingAllocator& allocator() = 0;
  // Waits until all queued work is done (a no-op on the CPU).
  virtual void synchronize() = 0;

  // Memory.
  virtual void copy_from_host(void* dst, const void* src, std::size_t bytes) = 0;
  virtual void copy_to_host(void* dst, const void* src, std::size_t bytes) = 0;
  virtual void copy(void* dst, const void* src, std::size_t bytes) = 0;
  virtual void fill(std::size_t count, float value, float* y) = 0;

  // Convolutions. Outputs are overwritten; bias and dbias may be null.
  virtual void conv2d_forward(const Conv2dShape& s, const float* x, const float* w,
                              const float* bias, float* y) = 0;
  virtual void conv2d_backward_data(const Conv2dShape& s, const float* dy, const float* w,
                                    float* dx) = 0;
  virtual void conv2d_backward_filter(const Conv2dShape& s, const float* x, const float* dy,
                                      float* dw, float* dbias) = 0;
  virtual void conv_transpose2d_forward(const ConvTranspose2dShape& s, const float* x,
                                        const float* w, const float* bias, float* y) = 0;
  virtual void conv_transpose2d_backward_data(const ConvTranspose2dShape& s, const float* dy,
                                              const float* w, float* dx) = 0;
  virtual void conv_transpose2d_backward_filter(const ConvTranspose2dShape& s, const float* x,
                                                const float* dy, float* dw, float* dbias) = 0;

  // Batch normalisation, optionally fused with ReLU (see kernels/cpu/batchnorm.h for the maths).
  virtual void batchnorm_forward_train(const BatchNormShape& s, const float* x, const float* gamma,
                                       const float* beta, float eps, float momentum,
                                       float* running_mean, float* running_var, float* y,
                                       float* save_mean, float* save_invstd, bool relu) = 0;
  virtual void batchnorm_forward_infer(const BatchNormShape& s, const float* x, const float* gamma,
                                       const float* beta, const float* running_mean,
                                       const float* running_var, float eps, float* y,
                                       bool relu) = 0;
  virtual void batchnorm_backward_train(const BatchNormShape& s, const float* dy, const float* x,
                                        const float* y, const float* gamma,
                                        const float* save_mean, const float* save_invstd,
                                        float* dx, float* dgamma, float* dbeta, bool relu) = 0;
  virtual void batchnorm_backward_infer(const BatchNormShape& s, const float* dy, const float* x,
                                        const float* y, const float* gamma,
                                        const float* running_mean, const float* running_var,
                                        float eps, float* dx, float* dgamma, float* dbeta,
                                        bool relu) = 0;

  // 2x2 max pooling; argmax holds which of the four inputs won (0..3).
  virtual void maxpool2x2_forward(const Pool2dShape& s, const float* x, float* y,
                                  uint8_t* argmax) = 0;
  virtual void maxpool2x2_backward(const Pool2dShape& s, const float* dy, const uint8_t* argmax,
                                   float* dx) = 0;

  // Inverted dropout with a Philox stream (seed, offset): the mask is the same on every backend.
  virtual void dropout_forward(std::size_t count, float p, uint64_t seed, uint64_t offset,
                               const float* x, float* y, uint8_t* mask) = 0;
  virtual void dropout_backward(std::size_t count, float p, const float* dy, const uint8_t* mask,
                                float* dx) = 0;

  virtual void concat_channels(const ConcatShape& s, const float* a, const float* b,
                               float* out) = 0;
  virtual void split_channels(const ConcatShape& s, const float* in, float* a, float* b) = 0;

  // Elementwise.
  virtual void add(std::size_t count, const float* a, const float* b, float* y) = 0;
  virtual void mul(std::size_t count, const float* a, const float* b, float* y) = 0;
  virtual void scale(std::size_t count, const float* a, float s, float* y) = 0;
  // y = a * s[0] where s is a one-element device array (the backward of a scalar-valued op).
  virtual void scale_by(std::size_t count, const float* a, const float* s, float* y) = 0;
  virtual void accumulate(std::size_t count, const float* a, float* y) = 0;
  virtual void relu_forward(std::size_t count, const float* x, float* y) = 0;
  virtual void relu_backward(std::size_t count, const float* dy, const float* y, float* dx) = 0;
  virtual void sigmoid_forward(std::size_t count, const float* x, float* y) = 0;
  virtual void sigmoid_backward(std::size_t count, const float* dy, const float* y,
                                float* dx) = 0;

  // Reductions into a one-element device array.
  virtual void sum(std::size_t count, const float* x, float* out) = 0;
  // loss(input, target) into out[0]; `input` is a probability for MSE, Dice and -log IoU and a
  // logit for BCE and BCE+Dice.
  virtual void loss_forward(LossKind kind, std::size_t count, const float* input,
                            const float* target, float smooth, float* out) = 0;
  // d(loss)/d(input) * dloss[0].
  virtual void loss_backward(LossKind kind, std::size_t count, const float* input,
                             const float* target, float smooth, const float* dloss,
                             float* dinput) = 0;

  // One Adam step on every listed parameter array, in place on param, m and v. The list itself
  // is host memory.
  virtual void adam_update(const AdamParams& a, const std::vector<AdamTensor>& tensors) = 0;
};

// The backend for a device, created on first use. Throws a one-line std::runtime_error when the
// device is unavailable (a build without CUDA, or no usable GPU).
Backend& backend(Device device);

// "cpu", "cuda" (throws the reason when unusable) or "auto" (CUDA when usable, else the CPU,
// saying so once on stderr).
Device resolve_device(const std::string& name);

// Makes backend(device) return `wrapper` (nullptr: the real backend again). The profiler wraps
// the real backend this way; the wrapper shares the real backend's allocator, so tensors made
// before, during and after live on.
void set_backend_wrapper(Device device, Backend* wrapper);

// Routes Device::CUDA to the CUDA backend compiled over the CPU emulation layer (also set by the
// environment variable UNET_CUDA_EMULATION=1): every CUDA kernel then runs on the CPU, one fiber
// per GPU thread. For tests and for reading kernels at work; slow. Takes effect only before the
// CUDA backend is first used.
void set_cuda_emulation(bool on);

}  // namespace unet
