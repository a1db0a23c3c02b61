// Batch normalisation (+ fused ReLU) in float vector registers: the simd_avx512 and simd_avx2
// variants of batchnorm_forward_train, batchnorm_forward_infer and batchnorm_backward_train.
// Same maths and contract as kernels/cpu/batchnorm.h (the reference), computed in float with
// double only where values of many runs meet: how, and why it is accurate, is in
// kernels/cpu/batchnorm_simd_kernels.h. Results are bitwise independent of the thread count.
#pragma once

#include "kernels/shapes.h"

namespace unet::cpu::bn_simd {

using kernels::BatchNormShape;

void forward_train_avx512(const BatchNormShape& s, const float* x, const float* gamma, const float* beta, float eps,
                          float momentum, float* running_mean, float* running_var, float* y, float* save_mean,
                          float* save_invstd, bool relu);
void forward_infer_avx512(const BatchNormShape& s, const float* x, const float* gamma, const float* beta,
                          const float* running_mean, const float* running_var, float eps, float* y, bool relu);
void backward_train_avx512(const BatchNormShape& s, const float* dy, const float* x, const float* y,
                           const float* gamma, const float* save_mean, const float* save_invstd, float* dx,
                           float* dgamma, float* dbeta, bool relu);

void forward_train_avx2(const BatchNormShape& s, const float* x, const float* gamma, const float* beta, float eps,
                        float momentum, float* running_mean, float* running_var, float* y, float* save_mean,
                        float* save_invstd, bool relu);
void forward_infer_avx2(const BatchNormShape& s, const float* x, const float* gamma, const float* beta,
                        const float* running_mean, const float* running_var, float eps, float* y, bool relu);
void backward_train_avx2(const BatchNormShape& s, const float* dy, const float* x, const float* y,
                         const float* gamma, const float* save_mean, const float* save_invstd, float* dx,
                         float* dgamma, float* dbeta, bool relu);

}  // namespace unet::cpu::bn_simd
