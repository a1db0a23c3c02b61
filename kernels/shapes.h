// Shape descriptions shared by every backend's kernels (CPU and CUDA).
//
// Kernels take raw pointers plus one of these small structs: no engine types, so each kernel can
// be read, tested and benchmarked alone. All tensors are dense NCHW float arrays. The helper
// functions compute padding and output sizes the way Keras/TensorFlow do, because the reference
// model is a Keras model and 'same' padding is asymmetric there for even kernels and strides.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>

namespace unet::kernels {

enum class Padding { Same, Valid };

// Convolution (cross-correlation, as in every DL framework):
//   y[n, co, oh, ow] = b[co] + sum_{ci, kh, kw} x[n, ci, oh*stride - pad_top + kh, ow*stride - pad_left + kw]
//                                               * w[co, ci, kh, kw]
// Taps that fall outside the input read zero. Weight layout: [c_out, c_in, kh, kw].
struct Conv2dShape {
  int n = 0, c_in = 0, h_in = 0, w_in = 0;
  int c_out = 0, kh = 0, kw = 0;
  int stride = 1;
  int pad_top = 0, pad_left = 0;  // padding after the input is implied by h_out / w_out
  int h_out = 0, w_out = 0;

  std::size_t x_size() const { return std::size_t(n) * c_in * h_in * w_in; }
  std::size_t w_size() const { return std::size_t(c_out) * c_in * kh * kw; }
  std::size_t y_size() const { return std::size_t(n) * c_out * h_out * w_out; }
  // Multiply-adds of the forward pass; backward-data and backward-filter cost the same each.
  double macs() const { return double(n) * c_out * h_out * w_out * c_in * kh * kw; }
};

// Transposed convolution: the adjoint of Conv2dShape's convolution with the roles of x and y
// swapped. Each input pixel scatters its kernel-weighted value onto the output:
//   y[n, co, i*stride - pad_top + kh, j*stride - pad_left + kw] += x[n, ci, i, j] * w[ci, co, kh, kw]
// Targets outside [0, h_out) x [0, w_out) are dropped. Weight layout: [c_in, c_out, kh, kw]
// (as PyTorch; Keras stores (kh, kw, c_out, c_in)).
struct ConvTranspose2dShape {
  int n = 0, c_in = 0, h_in = 0, w_in = 0;
  int c_out = 0, kh = 0, kw = 0;
  int stride = 1;
  int pad_top = 0, pad_left = 0;
  int h_out = 0, w_out = 0;

  std::size_t x_size() const { return std::size_t(n) * c_in * h_in * w_in; }
  std::size_t w_size() const { return std::size_t(c_in) * c_out * kh * kw; }
  std::size_t y_size() const { return std::size_t(n) * c_out * h_out * w_out; }
  double macs() const { return double(n) * c_in * h_in * w_in * c_out * kh * kw; }
};

// TensorFlow's rule: 'same' gives out = ceil(in / stride) and pads (out-1)*stride + k - in in
// total, the smaller half before the input. 'valid' pads nothing.
inline Conv2dShape conv2d_shape(int n, int c_in, int h, int w, int c_out, int k, int stride,
                                Padding padding) {
  Conv2dShape s{n, c_in, h, w, c_out, k, k, stride, 0, 0, 0, 0};
  if (padding == Padding::Same) {
    s.h_out = (h + stride - 1) / stride;
    s.w_out = (w + stride - 1) / stride;
    s.pad_top = std::max((s.h_out - 1) * stride + k - h, 0) / 2;
    s.pad_left = std::max((s.w_out - 1) * stride + k - w, 0) / 2;
  } else {
    s.h_out = (h - k) / stride + 1;
    s.w_out = (w - k) / stride + 1;
  }
  return s;
}

// A stride-1 convolution's backward-data pass is a forward pass over dy (c_out channels in, c_in
// out, h_in x w_in outputs) with the kernel transposed in channels and flipped in space, padded
// by what the forward pass leaves after x: this is that forward pass's shape.
inline Conv2dShape backward_data_as_forward(const Conv2dShape& s) {
  Conv2dShape t = s;
  t.c_in = s.c_out;
  t.h_in = s.h_out;
  t.w_in = s.w_out;
  t.c_out = s.c_in;
  t.h_out = s.h_in;
  t.w_out = s.w_in;
  t.pad_top = s.kh - 1 - s.pad_top;
  t.pad_left = s.kw - 1 - s.pad_left;
  return t;
}

// Keras Conv2DTranspose: 'same' gives out = in * stride and is the exact adjoint of a 'same'
// convolution from the output size, so the padding before is the smaller half of
// (in-1)*stride + k - out. For 3x3 stride 2 this is 0 before and 1 after: the last tap of the
// last input column falls off the output. 'valid' gives out = (in-1)*stride + k.
inline ConvTranspose2dShape conv_transpose2d_shape(int n, int c_in, int h, int w, int c_out, int k,
                                                   int stride, Padding padding) {
  ConvTranspose2dShape s{n, c_in, h, w, c_out, k, k, stride, 0, 0, 0, 0};
  if (padding == Padding::Same) {
    s.h_out = h * stride;
    s.w_out = w * stride;
    s.pad_top = std::max((h - 1) * stride + k - s.h_out, 0) / 2;
    s.pad_left = std::max((w - 1) * stride + k - s.w_out, 0) / 2;
  } else {
    s.h_out = (h - 1) * stride + k;
    s.w_out = (w - 1) * stride + k;
  }
  return s;
}

// The convolution a transposed convolution is the adjoint of: from y's c_out channels and size
// to x's c_in channels and size, with the same kernel, stride and padding before (the padding
// after is what the sizes leave). The transposed convolution's forward pass is this
// convolution's backward-data pass, its backward-data pass this forward pass, and its weights
// [c_in, c_out, kh, kw] are this convolution's [c_out, c_in, kh, kw] as they lie in memory.
inline Conv2dShape adjoint_convolution(const ConvTranspose2dShape& t) {
  return {t.n, t.c_out, t.h_out, t.w_out, t.c_in, t.kh, t.kw, t.stride, t.pad_top, t.pad_left, t.h_in, t.w_in};
}

// Per-channel normalisation over N x HW elements of each of C channels.
struct BatchNormShape {
  int n = 0, c = 0, hw = 0;
  std::size_t size() const { return std::size_t(n) * c * hw; }
  std::size_t per_channel() const { return std::size_t(n) * hw; }
};

// 2x2 max pooling with stride 2; odd trailing rows/columns are dropped (Keras 'valid').
struct Pool2dShape {
  int n = 0, c = 0, h_in = 0, w_in = 0;
  int h_out() const { return h_in / 2; }
  int w_out() const { return w_in / 2; }
  std::size_t x_size() const { return std::size_t(n) * c * h_in * w_in; }
  std::size_t y_size() const { return std::size_t(n) * c * h_out() * w_out(); }
};

// Concatenation of two NCHW tensors along channels: out = [a (c_a channels), b (c_b channels)].
struct ConcatShape {
  int n = 0, c_a = 0, c_b = 0, hw = 0;
  std::size_t a_size() const { return std::size_t(n) * c_a * hw; }
  std::size_t b_size() const { return std::size_t(n) * c_b * hw; }
  std::size_t out_size() const { return a_size() + b_size(); }
};

// The segmentation losses (formulas in kernels/cpu/loss.h). MSE, Dice and -log IoU take
// probabilities; BCE and BCE+Dice take logits.
enum class LossKind { MSE, BCE, Dice, BCEDice, NegLogIoU };

// Hyper-parameters of one Adam step (the maths is in kernels/cpu/adam.h).
struct AdamParams {
  float lr = 2e-3f;
  float beta1 = 0.9f, beta2 = 0.999f;
  float eps = 1e-7f;  // Keras' default, as in the reference work
  float weight_decay = 0.0f;
  long step = 1;      // counted from 1, for bias correction
};

// One parameter array for a multi-tensor Adam update: all parameters move in one call.
struct AdamTensor {
  float* param;
  const float* grad;
  float* m;
  float* v;
  std::size_t count;
};

}  // namespace unet::kernels
