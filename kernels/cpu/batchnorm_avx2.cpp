// The float batch normalisation instantiated for avx2 (this file is compiled with its flags only).
#include "kernels/cpu/batchnorm_simd.h"
#include "kernels/cpu/batchnorm_simd_kernels.h"

namespace unet::cpu::bn_simd {

void forward_train_avx2(const BatchNormShape& s, const float* x, const float* gamma, const float* beta, float eps,
                        float momentum, float* running_mean, float* running_var, float* y, float* save_mean,
                        float* save_invstd, bool relu) {
  forward_train<simd::Avx2>(s, x, gamma, beta, eps, momentum, running_mean, running_var, y, save_mean, save_invstd,
                            relu);
}

void forward_infer_avx2(const BatchNormShape& s, const float* x, const float* gamma, const float* beta,
                        const float* running_mean, const float* running_var, float eps, float* y, bool relu) {
  forward_infer<simd::Avx2>(s, x, gamma, beta, running_mean, running_var, eps, y, relu);
}

void backward_train_avx2(const BatchNormShape& s, const float* dy, const float* x, const float* y, const float* gamma,
                         const float* save_mean, const float* save_invstd, float* dx, float* dgamma, float* dbeta,
                         bool relu) {
  backward_train<simd::Avx2>(s, dy, x, y, gamma, save_mean, save_invstd, dx, dgamma, dbeta, relu);
}

}  // namespace unet::cpu::bn_simd
