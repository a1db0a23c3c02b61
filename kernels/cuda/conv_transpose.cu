// conv_transpose2d on the GPU, the CUDA twin of kernels/cpu/conv_transpose.cpp: each pass is a
// pass of the convolution the transposed convolution is the adjoint of
// (kernels::adjoint_convolution: y's channels and size to x's, same kernel, stride and padding
// before), run by conv.cu's implicit GEMMs:
//   forward          y  = that convolution's backward-data of x, plus the bias (fused in the store)
//   backward-data    dx = its forward pass over dy
//   backward-filter  dw = its backward-filter with image dy and gradient x (split over pixels
//                    where its dW has few tiles; hence the workspace); dbias = channel_sum(dy)
// The weights [c_in, c_out, kh, kw] are the convolution's [c_out, c_in, kh, kw] as they lie.
//
// Why no kernels of its own: the first ones were gathers with one thread per output element and
// no data reuse between threads (two global loads per multiply-add); on an H200 the forward pass
// of the reference model's up-convolutions took 1.6-1.9 ms each at batch 6, 20-70 times the
// implicit GEMM of a convolution of the same arithmetic. The adjoint form reuses those tiled
// kernels, their tests and their determinism (no atomics; a summation order fixed by the shape).
#include "kernels/cuda/kernels.h"

namespace unet::UNET_CUDA_NS {

void conv_transpose2d_forward(const ConvTranspose2dShape& s, const float* x, const float* w,
                              const float* bias, float* y, cudaStream_t stream) {
  conv2d_backward_data_plus_bias(kernels::adjoint_convolution(s), x, w, bias, y, stream);
}

void conv_transpose2d_backward_data(const ConvTranspose2dShape& s, const float* dy, const float* w,
                                    float* dx, cudaStream_t stream) {
  conv2d_forward(kernels::adjoint_convolution(s), dy, w, nullptr, dx, stream);
}

void conv_transpose2d_backward_filter(const ConvTranspose2dShape& s, const float* x,
                                      const float* dy, float* dw, float* dbias, float* workspace,
                                      cudaStream_t stream) {
  conv2d_backward_filter(kernels::adjoint_convolution(s), dy, x, dw, nullptr, workspace, stream);
  if (dbias) channel_sum(dy, s.n, s.c_out, s.h_out * s.w_out, dbias, stream);
}

std::size_t conv_transpose2d_backward_filter_workspace(const ConvTranspose2dShape& s) {
  return conv2d_backward_filter_workspace(kernels::adjoint_convolution(s));
}

}  // namespace unet::UNET_CUDA_NS
