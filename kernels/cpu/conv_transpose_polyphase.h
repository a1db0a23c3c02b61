// Transposed convolution by polyphase decomposition: a strided transposed convolution becomes
// stride x stride stride-1 convolutions, which the direct kernels of kernels/cpu/conv_direct.h
// run near the FMA peak.
//
// Why it works. Output row oh receives tap a of input row i when oh = i*stride - pad_top + a, so
// a = oh + pad_top (mod stride): the output rows of one residue r = oh mod stride ("phase") all
// receive the same taps, a0, a0 + stride, a0 + 2*stride, ... with a0 = (r + pad_top) mod stride.
// Numbering those rows p = 0, 1, ... (oh = stride*p + r), phase r is a stride-1 correlation of x
// with that sub-kernel in reverse order. With columns likewise, output class (r, c) is a stride-1
// conv2d of x (c_in -> c_out channels) with a (taps of r) x (taps of c) sub-kernel; for the
// U-Net's 3x3 stride 2 the four classes have 2x2, 2x1, 1x2 and 1x1 sub-kernels, 9 taps in all,
// so no multiply-add is spent on the zeros that a stride-2 scatter would insert.
//
// The directions, with C_k the conv2d of class k (a linear map from x to the class's outputs):
//   forward          y = interleave of C_k x (+ bias)
//   backward-data    dx = sum over k of C_k^T dy_k (conv2d backward-data), dy_k the class's dy
//   backward-filter  each tap belongs to exactly one class, so dw's taps are C_k's weight
//                    gradients (conv2d backward-filter of x and dy_k), scattered back
// Every class runs on the direct kernels; this file only moves data between the strided tensors
// and the dense class tensors the direct kernels read and write, in fixed orders, so results are
// bitwise independent of the thread count. The code is independent of the instruction set: the
// direct kernels come in as function pointers.
#pragma once

#include "kernels/shapes.h"

namespace unet::cpu::polyphase {

using kernels::Conv2dShape;
using kernels::ConvTranspose2dShape;

// The stride-1 conv2d kernels that run the classes (one instruction set's direct kernels).
struct DirectConv {
  void (*forward)(const Conv2dShape& s, const float* x, const float* w, const float* bias, float* y);
  void (*backward_data)(const Conv2dShape& s, const float* dy, const float* w, float* dx);
  void (*backward_filter)(const Conv2dShape& s, const float* x, const float* dy, float* dw, float* dbias);
};

// Any stride >= 1, kernel size and padding; stride 1 is one class, a plain conv2d.
inline bool supports(const ConvTranspose2dShape& s) { return s.stride >= 1 && s.kh >= 1 && s.kw >= 1; }

// The contract of kernels/primitives.h: outputs overwritten, bias / dbias may be null.
void conv_transpose2d_forward(const DirectConv& conv, const ConvTranspose2dShape& s, const float* x,
                              const float* w, const float* bias, float* y);
void conv_transpose2d_backward_data(const DirectConv& conv, const ConvTranspose2dShape& s, const float* dy,
                                    const float* w, float* dx);
void conv_transpose2d_backward_filter(const DirectConv& conv, const ConvTranspose2dShape& s, const float* x,
                                      const float* dy, float* dw, float* dbias);

// The variants of kernels/cpu/variants.cpp: the above on the AVX-512 or the AVX2 direct kernels.
void conv_transpose2d_forward_avx512(const ConvTranspose2dShape& s, const float* x, const float* w,
                                     const float* bias, float* y);
void conv_transpose2d_backward_data_avx512(const ConvTranspose2dShape& s, const float* dy, const float* w,
                                           float* dx);
void conv_transpose2d_backward_filter_avx512(const ConvTranspose2dShape& s, const float* x, const float* dy,
                                             float* dw, float* dbias);
void conv_transpose2d_forward_avx2(const ConvTranspose2dShape& s, const float* x, const float* w,
                                   const float* bias, float* y);
void conv_transpose2d_backward_data_avx2(const ConvTranspose2dShape& s, const float* dy, const float* w,
                                         float* dx);
void conv_transpose2d_backward_filter_avx2(const ConvTranspose2dShape& s, const float* x, const float* dy,
                                           float* dw, float* dbias);

}  // namespace unet::cpu::polyphase
