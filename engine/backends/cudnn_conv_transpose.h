// cuDNN for transposed convolutions (real GPUs only, like cudnn_conv.h).
//
// A transposed convolution is the adjoint of a convolution, so its three passes are that
// convolution's passes with the roles swapped, and CudnnConv runs them:
//   forward          y  = the convolution's backward-data of x
//   backward-data    dx = the convolution's forward pass over dy
//   backward-filter  dw = the convolution's backward-filter with image dy and gradient x
// The convolution (conv_of_transpose) maps an image of c_out channels to x's c_in channels with
// weights [c_in, c_out, kh, kw], which is cuDNN's KCRS filter layout with K = c_in
// (kernels::adjoint_convolution), and pads pad_top / pad_left on both sides. cuDNN pads
// symmetrically, but Keras' 'same' pads 0 before and 1 after for 3x3 stride 2; so the
// convolution's image is the full (h_in - 1) * stride + kh - 2 * pad_top rows, one more than y
// there: what lands in that extra row and column is what falls off y. Forward computes into the
// larger image and crops it into y; the backward passes copy dy into a zeroed larger image. Both
// copies are strided cudnnTransformTensor calls.
#pragma once

#include <cudnn.h>

#include <array>
#include <map>
#include <memory>

#include "engine/allocator.h"
#include "engine/backends/cudnn_conv.h"
#include "kernels/shapes.h"

namespace unet::cuda {

using kernels::ConvTranspose2dShape;

// The convolution whose adjoint `t` is (kernels::adjoint_convolution) on its full image: at
// least y's size, with as much padding after as before.
inline Conv2dShape conv_of_transpose(const ConvTranspose2dShape& t) {
  Conv2dShape c = kernels::adjoint_convolution(t);
  c.h_in = (t.h_in - 1) * t.stride + t.kh - 2 * t.pad_top;
  c.w_in = (t.w_in - 1) * t.stride + t.kw - 2 * t.pad_left;
  return c;
}

class CudnnConvTranspose {
 public:
  CudnnConvTranspose(CudnnConv& conv, CachingAllocator& allocator);
  ~CudnnConvTranspose();
  CudnnConvTranspose(const CudnnConvTranspose&) = delete;
  CudnnConvTranspose& operator=(const CudnnConvTranspose&) = delete;

  // Padding after at least padding before (y fits inside the convolution's image), which holds
  // for 'same' and 'valid'; others take the handwritten kernels.
  static bool supports(const ConvTranspose2dShape& s);

  void forward(const ConvTranspose2dShape& s, const float* x, const float* w, const float* bias, float* y);
  void backward_data(const ConvTranspose2dShape& s, const float* dy, const float* w, float* dx);
  void backward_filter(const ConvTranspose2dShape& s, const float* x, const float* dy, float* dw,
                       float* dbias);

 private:
  struct Views;
  Views& views(const ConvTranspose2dShape& s);
  // A zero-filled (or, for forward, scratch) buffer of the convolution's image; nullptr when the
  // image is y itself.
  float* image(const ConvTranspose2dShape& s, bool zeroed);

  CudnnConv& conv_;
  CachingAllocator& allocator_;
  std::map<std::array<int, 12>, std::unique_ptr<Views>> views_;
  void* buffer_ = nullptr;
  std::size_t buffer_capacity_ = 0;
};

}  // namespace unet::cuda
