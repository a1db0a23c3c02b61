// Winograd F(2x2, 3x3) convolutions for the 3x3 stride-1 layers: forward, backward-data and
// backward-filter (conv_winograd_filter.h) on NCHW tensors. Each 2x2 block of outputs costs 16
// multiplies per (input, output) channel pair instead of the direct convolution's 36; the price
// is a transform of each 4x4 input tile before and of each 2x2 output tile after
// (kernels/cpu/conv_winograd_kernels.h has the maths).
// Compiled twice like the direct kernels: conv_winograd_avx2.cpp and conv_winograd_avx512.cpp.
//
// Same contract as kernels/cpu/conv.h: outputs overwritten, bias may be null, and every output
// element is computed in an order fixed by the shape alone, so results are bitwise identical for
// any number of threads.
#pragma once

#include "kernels/shapes.h"

namespace unet::cpu::winograd {

using kernels::Conv2dShape;

// 3x3, stride 1, any padding (backward-data runs the forward pass with padding 2 - pad).
inline bool supports(const Conv2dShape& s) { return s.kh == 3 && s.kw == 3 && s.stride == 1; }

void conv2d_forward_avx2(const Conv2dShape& s, const float* x, const float* w, const float* bias, float* y);
void conv2d_backward_data_avx2(const Conv2dShape& s, const float* dy, const float* w, float* dx);
void conv2d_backward_filter_avx2(const Conv2dShape& s, const float* x, const float* dy, float* dw, float* dbias);

void conv2d_forward_avx512(const Conv2dShape& s, const float* x, const float* w, const float* bias, float* y);
void conv2d_backward_data_avx512(const Conv2dShape& s, const float* dy, const float* w, float* dx);
void conv2d_backward_filter_avx512(const Conv2dShape& s, const float* x, const float* dy, float* dw, float* dbias);

}  // namespace unet::cpu::winograd
