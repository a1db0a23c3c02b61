// The functional op API. Every op checks its arguments (errors name the op, the argument and the
// shapes), allocates its output, runs the primitive on the tensors' backend, and, when an input
// requires grad, records the backward closure next to the forward code.
#pragma once

#include <cstdint>

#include "engine/tensor.h"
#include "kernels/shapes.h"

namespace unet::ops {

using kernels::Padding;

// x [N, C_in, H, W], weight [C_out, C_in, k, k], bias [C_out] or undefined.
Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, int stride = 1,
              Padding padding = Padding::Same);
// x [N, C_in, H, W], weight [C_in, C_out, k, k], bias [C_out] or undefined. 'same' gives
// [N, C_out, H * stride, W * stride] as Keras' Conv2DTranspose.
Tensor conv_transpose2d(const Tensor& x, const Tensor& weight, const Tensor& bias, int stride = 2,
                        Padding padding = Padding::Same);

struct BatchNormOptions {
  bool training = true;
  // Weight of the batch statistics in the running ones: PyTorch's 0.1, not Keras' 0.99 (our 0.01),
  // whose running statistics need hundreds of steps to settle: until then eval-mode outputs, and
  // every validation figure, are meaningless.
  float momentum = 0.1f;
  float eps = 1e-3f;       // Keras' default
  bool relu = false;       // fuse the ReLU that follows
};
// x [N, C, H, W]; gamma, beta, running_mean, running_var [C]. Training mode updates the running
// statistics in place.
Tensor batch_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                  const Tensor& running_mean, const Tensor& running_var,
                  const BatchNormOptions& options);

Tensor relu(const Tensor& x);
Tensor sigmoid(const Tensor& x);
// 2x2, stride 2; odd trailing rows and columns are dropped.
Tensor max_pool2x2(const Tensor& x);
// Inverted dropout with the Philox stream (seed, offset); p in [0, 1).
Tensor dropout(const Tensor& x, float p, uint64_t seed, uint64_t offset);
// [N, Ca, H, W] and [N, Cb, H, W] -> [N, Ca + Cb, H, W].
Tensor concat_channels(const Tensor& a, const Tensor& b);

Tensor add(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor scale(const Tensor& x, float s);
// Sum and mean of all elements: shape [1].
Tensor sum(const Tensor& x);
Tensor mean(const Tensor& x);

// Scalar loss [1] over the whole batch. `input` holds probabilities for MSE, Dice and -log IoU and
// logits for BCE and BCE+Dice; the target never receives a gradient.
Tensor loss(LossKind kind, const Tensor& input, const Tensor& target, float smooth = 1.0f);

}  // namespace unet::ops
