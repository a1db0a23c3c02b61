// The fused polyphase transposed convolutions instantiated for avx512 (this file is compiled with its flags only).
#include "kernels/cpu/conv_transpose_fused_kernels.h"

namespace unet::cpu::fused {

void conv_transpose2d_forward_avx512(const ConvTranspose2dShape& s, const float* x, const float* w,
                                   const float* bias, float* y) {
  detail::forward<simd::Avx512>(s, x, w, bias, y);
}
void conv_transpose2d_backward_data_avx512(const ConvTranspose2dShape& s, const float* dy, const float* w,
                                         float* dx) {
  detail::backward_data<simd::Avx512>(s, dy, w, dx);
}
void conv_transpose2d_backward_filter_avx512(const ConvTranspose2dShape& s, const float* x, const float* dy,
                                           float* dw, float* dbias) {
  detail::backward_filter<simd::Avx512>(s, x, dy, dw, dbias);
}

}  // namespace unet::cpu::fused
