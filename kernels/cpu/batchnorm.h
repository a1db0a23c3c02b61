// CPU batch normalisation, optionally fused with the ReLU that follows it in every U-Net block.
//
// Training mode normalises with the batch's own mean and biased variance and updates the running
// statistics as running = (1 - momentum) * running + momentum * batch, with the unbiased batch
// variance for running_var (PyTorch's convention; Keras' momentum 0.99 is our momentum 0.01).
// Inference mode normalises with the running statistics. With relu = true the output is
// max(bn(x), 0) and the backward pass masks dy where the output is zero.
#pragma once

#include "kernels/shapes.h"

namespace unet::cpu {

using kernels::BatchNormShape;

// save_mean / save_invstd (c each) receive the batch mean and 1/sqrt(var + eps) for backward.
template <typename T>
void batchnorm_forward_train(const BatchNormShape& s, const T* x, const T* gamma, const T* beta,
                             T eps, T momentum, T* running_mean, T* running_var, T* y, T* save_mean,
                             T* save_invstd, bool relu);

template <typename T>
void batchnorm_forward_infer(const BatchNormShape& s, const T* x, const T* gamma, const T* beta,
                             const T* running_mean, const T* running_var, T eps, T* y, bool relu);

// y is the forward output (used only for the ReLU mask when relu = true).
template <typename T>
void batchnorm_backward_train(const BatchNormShape& s, const T* dy, const T* x, const T* y,
                              const T* gamma, const T* save_mean, const T* save_invstd, T* dx,
                              T* dgamma, T* dbeta, bool relu);

// Backward of inference-mode BN: the statistics are constants, so dx = dy * gamma * invstd.
template <typename T>
void batchnorm_backward_infer(const BatchNormShape& s, const T* dy, const T* x, const T* y,
                              const T* gamma, const T* running_mean, const T* running_var, T eps,
                              T* dx, T* dgamma, T* dbeta, bool relu);

}  // namespace unet::cpu
