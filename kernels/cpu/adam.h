// CPU Adam update (Kingma & Ba) with optional decoupled weight decay (AdamW, Loshchilov & Hutter):
//   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
//   p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps) + lr * weight_decay * p
// step is t, counted from 1.
#pragma once

#include <cstddef>

#include "kernels/shapes.h"

namespace unet::cpu {

using kernels::AdamParams;

void adam_update(std::size_t count, const AdamParams& a, float* param, const float* grad, float* m,
                 float* v);

}  // namespace unet::cpu
