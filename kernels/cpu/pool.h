// CPU 2x2 stride-2 max pooling. The forward pass records which of the four inputs won (0..3,
// row-major, first maximum on ties; a NaN wins so that it propagates), and the backward pass routes
// each output gradient to that input alone.
#pragma once

#include <cstdint>

#include "kernels/shapes.h"

namespace unet::cpu {

using kernels::Pool2dShape;

template <typename T>
void maxpool2x2_forward(const Pool2dShape& s, const T* x, T* y, uint8_t* argmax);
// dx is overwritten in full (zeros where no output drew from it, including dropped odd edges).
template <typename T>
void maxpool2x2_backward(const Pool2dShape& s, const T* dy, const uint8_t* argmax, T* dx);

}  // namespace unet::cpu
