// Fused polyphase transposed convolution for the U-Net's up-convolutions: 3x3 kernel, stride 2,
// no padding before the input, output exactly twice the input (TensorFlow's 'same'), on CPU.
//
// The maths. Output y[2i + a][2j + b] receives x[i][j] * w[a][b] (a, b = 0..2); the row and column
// 2h (tap 2 of the last input row / column) fall outside the 2h x 2w output and are dropped. So
// the output pixels of one "phase" (row parity r, column parity c) receive fixed taps: with
// x_pq = x[p][q] and its neighbours above / to the left (zero outside x),
//   y[2p  ][2q  ] = x_pq w00 + x_p,q-1 w02 + x_p-1,q w20 + x_p-1,q-1 w22
//   y[2p  ][2q+1] = x_pq w01 + x_p-1,q w21
//   y[2p+1][2q  ] = x_pq w10 + x_p,q-1 w12
//   y[2p+1][2q+1] = x_pq w11
// 9 multiply-adds per (input channel, output channel, input pixel): exactly the kernel's taps,
// none spent on the zeros a stride-2 scatter would insert, and all four phases in one pass over
// x (rather than 4 stride-1 convolutions with 2x2, 2x1, 1x2, 1x1 kernels and copies in between).
//
// The three directions, vectorised along input columns q (V::kLanes of them a register):
//   forward          a register tile of output channels x 4 phases loads the 2x2 neighbourhood
//                    of x once per input channel and does the 9 taps for every channel; the even
//                    and odd column phases are interleaved in registers and y is written once.
//   backward-data    dx[ci][p][q] = sum over co, a, b of w[ci][co][a][b] dy[co][2p+a][2q+b]: a
//                    stride-2 correlation of dy. Each dy row, split once into its even and odd
//                    columns, gives the taps b = 0 (even, q), 1 (odd, q) and 2 (even, q + 1) as
//                    plain loads for a tile of input channels.
//   backward-filter  dw[ci][co][a][b] = sum over images and pixels of x[ci][p][q] dy[co][2p+a][2q+b],
//                    a GEMM whose reduction runs over pixels (as in conv_direct_filter.h): dy is
//                    split once per chunk into its four phase planes, and one accumulator per
//                    (input channel, tap) collects lanes of pixel products.
// Determinism: each y / dx element is summed by one task in a fixed (channel, tap) order, and
// each dw element by one block of dw over chunks in image order and lanes in a fixed tree, all
// fixed by the shape, so results are bitwise independent of the number of threads.
#pragma once

#include "kernels/shapes.h"

namespace unet::cpu::fused {

using kernels::ConvTranspose2dShape;

// The shapes these kernels compute: the U-Net's 3x3 stride-2 'same' up-convolutions, any size.
inline bool supports(const ConvTranspose2dShape& s) {
  return s.stride == 2 && s.kh == 3 && s.kw == 3 && s.pad_top == 0 && s.pad_left == 0 &&
         s.h_out == 2 * s.h_in && s.w_out == 2 * s.w_in;
}

// The contract of kernels/primitives.h (outputs overwritten, bias / dbias may be null), for the
// AVX-512 (conv_transpose_fused_avx512.cpp) and the AVX2 (conv_transpose_fused_avx2.cpp) build of
// conv_transpose_fused_kernels.h.
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

}  // namespace unet::cpu::fused
