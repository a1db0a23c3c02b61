// Direct convolutions for stride-1 conv2d (the 3x3 and 1x1 layers of the U-Net): forward,
// backward-data and backward-filter on NCHW tensors, without a column matrix. Register-blocked
// micro-kernels keep a tile of outputs (several output channels x several vectors of output
// pixels) in vector registers and stream the input rows through them, one multiply-add per
// (input channel, tap). Written once as templates on the instruction set (kernels/cpu/simd.h) and
// compiled twice: conv_direct_avx2.cpp and conv_direct_avx512.cpp.
//
// Same contract as kernels/cpu/conv.h: outputs overwritten, bias/dbias may be null, and every
// output element is computed in an order fixed by the shape alone, so results are bitwise
// identical for any number of threads.
#pragma once

#include "kernels/shapes.h"

namespace unet::cpu::direct {

using kernels::Conv2dShape;

// Stride 1, any kernel size and padding (h_out / w_out as given by the shape).
inline bool supports(const Conv2dShape& s) { return s.stride == 1; }

void conv2d_forward_avx2(const Conv2dShape& s, const float* x, const float* w, const float* bias, float* y);
void conv2d_backward_data_avx2(const Conv2dShape& s, const float* dy, const float* w, float* dx);
void conv2d_backward_filter_avx2(const Conv2dShape& s, const float* x, const float* dy, float* dw, float* dbias);

void conv2d_forward_avx512(const Conv2dShape& s, const float* x, const float* w, const float* bias, float* y);
void conv2d_backward_data_avx512(const Conv2dShape& s, const float* dy, const float* w, float* dx);
void conv2d_backward_filter_avx512(const Conv2dShape& s, const float* x, const float* dy, float* dw,
                                   float* dbias);

}  // namespace unet::cpu::direct
