// CPU Adam / AdamW parameter update (see adam.h), in float like the parameters it updates.
//
// The bias corrections are the same for every element, so they are computed once per call, in
// double so that 1 - beta^t keeps its precision late in training.
#include "kernels/cpu/adam.h"

#include <cmath>
#include <stdexcept>

#include "kernels/cpu/reduce.h"

namespace unet::cpu {
using detail::kParallelMin;

void adam_update(std::size_t count, const AdamParams& a, float* param, const float* grad, float* m,
                 float* v) {
  // At t = 0 the bias corrections 1 - beta^t would be zero.
  if (a.step < 1) throw std::invalid_argument("adam_update: step counts from 1");
  const double t = double(a.step);
  const float bc1 = float(1.0 - std::pow(double(a.beta1), t));
  const float bc2 = float(1.0 - std::pow(double(a.beta2), t));
  const float decay = a.lr * a.weight_decay;
#pragma omp parallel for simd schedule(static) if (count >= kParallelMin)
  for (std::size_t i = 0; i < count; ++i) {
    const float g = grad[i];
    m[i] = a.beta1 * m[i] + (1.0f - a.beta1) * g;
    v[i] = a.beta2 * v[i] + (1.0f - a.beta2) * g * g;
    const float m_hat = m[i] / bc1, v_hat = v[i] / bc2;
    param[i] -= a.lr * m_hat / (std::sqrt(v_hat) + a.eps) + decay * param[i];
  }
}

}  // namespace unet::cpu
