// CPU transposed convolution (conv_transpose2d): forward, backward-data and backward-filter.
//
// A transposed convolution is the adjoint of the convolution that maps its output back onto its
// input: with c = adjoint_conv(t), c reads from t's output space into t's input space, and its
// weight layout [c.c_out = t.c_in, c.c_in = t.c_out, kh, kw] is t's weight layout. Hence
//   forward          = conv2d backward-data of c, plus bias
//   backward-data    = conv2d forward of c
//   backward-filter  = conv2d backward-filter of c with the roles of x and dy swapped
// so both layers share one im2col + GEMM path, its banding, threading and determinism. Targets that
// fall outside t's output are exactly c's taps that read outside its input, which read zero.
#include "kernels/cpu/conv.h"

#include <cstddef>

namespace unet::cpu {
namespace {

Conv2dShape adjoint_conv(const ConvTranspose2dShape& t) {
  return {.n = t.n,
          .c_in = t.c_out,
          .h_in = t.h_out,
          .w_in = t.w_out,
          .c_out = t.c_in,
          .kh = t.kh,
          .kw = t.kw,
          .stride = t.stride,
          .pad_top = t.pad_top,
          .pad_left = t.pad_left,
          .h_out = t.h_in,
          .w_out = t.w_in};
}

template <typename T>
void add_bias(const ConvTranspose2dShape& s, const T* bias, T* y) {
  const std::size_t plane = std::size_t(s.h_out) * s.w_out;
  const int planes = s.n * s.c_out;
#pragma omp parallel for schedule(static)
  for (int p = 0; p < planes; ++p) {
    const T b = bias[p % s.c_out];
    T* out = y + p * plane;
    for (std::size_t i = 0; i < plane; ++i) out[i] += b;
  }
}

// dbias[co] = sum of dy over images and pixels, in that fixed order.
template <typename T>
void bias_grad(const ConvTranspose2dShape& s, const T* dy, T* dbias) {
  const std::size_t plane = std::size_t(s.h_out) * s.w_out;
#pragma omp parallel for schedule(static)
  for (int co = 0; co < s.c_out; ++co) {
    T sum = 0;
    for (int b = 0; b < s.n; ++b) {
      const T* in = dy + (std::size_t(b) * s.c_out + co) * plane;
      for (std::size_t i = 0; i < plane; ++i) sum += in[i];
    }
    dbias[co] = sum;
  }
}

}  // namespace

template <typename T>
void conv_transpose2d_forward(const ConvTranspose2dShape& s, const T* x, const T* w, const T* bias,
                              T* y) {
  conv2d_backward_data(adjoint_conv(s), x, w, y);
  if (bias) add_bias(s, bias, y);
}

template <typename T>
void conv_transpose2d_backward_data(const ConvTranspose2dShape& s, const T* dy, const T* w, T* dx) {
  conv2d_forward(adjoint_conv(s), dy, w, static_cast<const T*>(nullptr), dx);
}

template <typename T>
void conv_transpose2d_backward_filter(const ConvTranspose2dShape& s, const T* x, const T* dy, T* dw,
                                      T* dbias) {
  conv2d_backward_filter(adjoint_conv(s), dy, x, dw, static_cast<T*>(nullptr));
  if (dbias) bias_grad(s, dy, dbias);
}

template void conv_transpose2d_forward<float>(const ConvTranspose2dShape&, const float*,
                                              const float*, const float*, float*);
template void conv_transpose2d_forward<double>(const ConvTranspose2dShape&, const double*,
                                               const double*, const double*, double*);
template void conv_transpose2d_backward_data<float>(const ConvTranspose2dShape&, const float*,
                                                    const float*, float*);
template void conv_transpose2d_backward_data<double>(const ConvTranspose2dShape&, const double*,
                                                     const double*, double*);
template void conv_transpose2d_backward_filter<float>(const ConvTranspose2dShape&, const float*,
                                                      const float*, float*, float*);
template void conv_transpose2d_backward_filter<double>(const ConvTranspose2dShape&, const double*,
                                                       const double*, double*, double*);

}  // namespace unet::cpu
