// The one list of backend primitives. Everything that must know every primitive is generated from
// it: the Backend interface (engine/backend.h), the kernels::Kernel enum and its names
// (kernels/kernel_call.h), the profiling wrapper (engine/profiler.cpp), and the CPU backend's
// dispatch to registered kernel variants (engine/backends/cpu_backend.cpp). The few places that
// need per-primitive knowledge the list cannot hold (the cost formula, the benchmark's operands)
// switch over Kernel without a default, so the compiler names each one a new line leaves out.
//
// One line per primitive: X(name, (parameters), (arguments), (call))
//   name        the Backend method, the Kernel enumerator, the profiler's row and the prefix of
//               every variant's name: one spelling everywhere
//   parameters  the method's parameter list; every pointer belongs to the backend's device
//   arguments   the same names, to forward a call
//   call        what make_call() needs after the kernel to describe the call (shape, flags)
//
// Conventions: outputs are overwritten unless the name says accumulate; bias / dbias may be null;
// scalars that are results of reductions (sum, losses) stay on the device as one-element arrays.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "kernels/shapes.h"

#define UNET_PRIMITIVES(X)                                                                                            \
  /* Memory. */                                                                                                       \
  X(copy_from_host, (void* dst, const void* src, std::size_t bytes), (dst, src, bytes), (bytes))                     \
  X(copy_to_host, (void* dst, const void* src, std::size_t bytes), (dst, src, bytes), (bytes))                       \
  X(copy, (void* dst, const void* src, std::size_t bytes), (dst, src, bytes), (bytes))                               \
  X(fill, (std::size_t count, float value, float* y), (count, value, y), (count))                                   \
  /* Convolutions. */                                                                                                 \
  X(conv2d_forward, (const Conv2dShape& s, const float* x, const float* w, const float* bias, float* y),             \
    (s, x, w, bias, y), (s, bias != nullptr))                                                                         \
  X(conv2d_backward_data, (const Conv2dShape& s, const float* dy, const float* w, float* dx), (s, dy, w, dx),        \
    (s, false))                                                                                                       \
  X(conv2d_backward_filter, (const Conv2dShape& s, const float* x, const float* dy, float* dw, float* dbias),        \
    (s, x, dy, dw, dbias), (s, dbias != nullptr))                                                                     \
  X(conv_transpose2d_forward,                                                                                         \
    (const ConvTranspose2dShape& s, const float* x, const float* w, const float* bias, float* y),                    \
    (s, x, w, bias, y), (s, bias != nullptr))                                                                         \
  X(conv_transpose2d_backward_data, (const ConvTranspose2dShape& s, const float* dy, const float* w, float* dx),     \
    (s, dy, w, dx), (s, false))                                                                                       \
  X(conv_transpose2d_backward_filter,                                                                                 \
    (const ConvTranspose2dShape& s, const float* x, const float* dy, float* dw, float* dbias),                       \
    (s, x, dy, dw, dbias), (s, dbias != nullptr))                                                                     \
  /* Batch normalisation, optionally fused with ReLU (the maths is in kernels/cpu/batchnorm.h). */                   \
  X(batchnorm_forward_train,                                                                                          \
    (const BatchNormShape& s, const float* x, const float* gamma, const float* beta, float eps, float momentum,      \
     float* running_mean, float* running_var, float* y, float* save_mean, float* save_invstd, bool relu),            \
    (s, x, gamma, beta, eps, momentum, running_mean, running_var, y, save_mean, save_invstd, relu), (s, relu))       \
  X(batchnorm_forward_infer,                                                                                          \
    (const BatchNormShape& s, const float* x, const float* gamma, const float* beta, const float* running_mean,      \
     const float* running_var, float eps, float* y, bool relu),                                                       \
    (s, x, gamma, beta, running_mean, running_var, eps, y, relu), (s, relu))                                         \
  X(batchnorm_backward_train,                                                                                         \
    (const BatchNormShape& s, const float* dy, const float* x, const float* y, const float* gamma,                   \
     const float* save_mean, const float* save_invstd, float* dx, float* dgamma, float* dbeta, bool relu),           \
    (s, dy, x, y, gamma, save_mean, save_invstd, dx, dgamma, dbeta, relu), (s, relu))                                \
  X(batchnorm_backward_infer,                                                                                         \
    (const BatchNormShape& s, const float* dy, const float* x, const float* y, const float* gamma,                   \
     const float* running_mean, const float* running_var, float eps, float* dx, float* dgamma, float* dbeta,         \
     bool relu),                                                                                                      \
    (s, dy, x, y, gamma, running_mean, running_var, eps, dx, dgamma, dbeta, relu), (s, relu))                        \
  /* 2x2 max pooling; argmax holds which of the four inputs won (0..3). */                                           \
  X(maxpool2x2_forward, (const Pool2dShape& s, const float* x, float* y, uint8_t* argmax), (s, x, y, argmax), (s))   \
  X(maxpool2x2_backward, (const Pool2dShape& s, const float* dy, const uint8_t* argmax, float* dx),                  \
    (s, dy, argmax, dx), (s))                                                                                         \
  /* Inverted dropout with a Philox stream (seed, offset): the mask is the same on every backend. */                 \
  X(dropout_forward,                                                                                                  \
    (std::size_t count, float p, uint64_t seed, uint64_t offset, const float* x, float* y, uint8_t* mask),           \
    (count, p, seed, offset, x, y, mask), (count))                                                                    \
  X(dropout_backward, (std::size_t count, float p, const float* dy, const uint8_t* mask, float* dx),                 \
    (count, p, dy, mask, dx), (count))                                                                                \
  X(concat_channels, (const ConcatShape& s, const float* a, const float* b, float* out), (s, a, b, out), (s))        \
  X(split_channels, (const ConcatShape& s, const float* in, float* a, float* b), (s, in, a, b), (s))                 \
  /* Elementwise. scale_by: y = a * s[0], s a one-element device array (a scalar op's backward). */                  \
  X(add, (std::size_t count, const float* a, const float* b, float* y), (count, a, b, y), (count))                  \
  X(mul, (std::size_t count, const float* a, const float* b, float* y), (count, a, b, y), (count))                  \
  X(scale, (std::size_t count, const float* a, float s, float* y), (count, a, s, y), (count))                       \
  X(scale_by, (std::size_t count, const float* a, const float* s, float* y), (count, a, s, y), (count))             \
  X(accumulate, (std::size_t count, const float* a, float* y), (count, a, y), (count))                              \
  X(relu_forward, (std::size_t count, const float* x, float* y), (count, x, y), (count))                            \
  X(relu_backward, (std::size_t count, const float* dy, const float* y, float* dx), (count, dy, y, dx), (count))     \
  X(sigmoid_forward, (std::size_t count, const float* x, float* y), (count, x, y), (count))                         \
  X(sigmoid_backward, (std::size_t count, const float* dy, const float* y, float* dx), (count, dy, y, dx), (count))  \
  /* Reductions into a one-element device array. Losses take a probability for MSE, Dice and     */                  \
  /* -log IoU and a logit for BCE and BCE+Dice; loss_backward gives d(loss)/d(input) * dloss[0]. */                  \
  X(sum, (std::size_t count, const float* x, float* out), (count, x, out), (count))                                 \
  X(loss_forward,                                                                                                     \
    (LossKind kind, std::size_t count, const float* input, const float* target, float smooth, float* out),           \
    (kind, count, input, target, smooth, out), (kind, count))                                                         \
  X(loss_backward,                                                                                                    \
    (LossKind kind, std::size_t count, const float* input, const float* target, float smooth, const float* dloss,    \
     float* dinput),                                                                                                  \
    (kind, count, input, target, smooth, dloss, dinput), (kind, count))                                              \
  /* One Adam step on every listed parameter array, in place; the list itself is host memory. */                     \
  X(adam_update, (const AdamParams& a, const std::vector<AdamTensor>& tensors), (a, tensors), (tensors))

// Strips one pair of parentheses: UNET_UNPAREN (a, b) -> a, b.
#define UNET_UNPAREN(...) __VA_ARGS__
