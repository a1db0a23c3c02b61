// The Winograd convolutions instantiated for avx512 (this file is compiled with its flags only).
#include "kernels/cpu/conv_winograd.h"
#include "kernels/cpu/conv_winograd_filter.h"
#include "kernels/cpu/conv_winograd_kernels.h"

namespace unet::cpu::winograd {

void conv2d_forward_avx512(const Conv2dShape& s, const float* x, const float* w, const float* bias, float* y) {
  forward<simd::Avx512>(s, x, w, bias, y);
}
void conv2d_backward_data_avx512(const Conv2dShape& s, const float* dy, const float* w, float* dx) {
  backward_data<simd::Avx512>(s, dy, w, dx);
}
void conv2d_backward_filter_avx512(const Conv2dShape& s, const float* x, const float* dy, float* dw, float* dbias) {
  backward_filter<simd::Avx512>(s, x, dy, dw, dbias);
}

}  // namespace unet::cpu::winograd
