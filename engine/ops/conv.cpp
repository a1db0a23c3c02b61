// conv2d and conv_transpose2d: shape checks, forward, and their backward closures.
#include "engine/autograd.h"
#include "engine/ops.h"
#include "engine/ops/check.h"
#include "engine/trace.h"

namespace unet::ops {
namespace {

// Checks shared by both convolutions. `weight_in_dim` is the weight dimension that must equal
// the input's channels (0 for conv_transpose2d's [C_in, C_out, k, k], 1 for conv2d's).
void check_conv_args(const char* op, const Tensor& x, const Tensor& weight, const Tensor& bias,
                     int weight_in_dim, int stride) {
  check_ndim(x, 4, op, "x");
  check_ndim(weight, 4, op, "weight");
  check_same_device(x, weight, op, "x", "weight");
  check(weight.size(weight_in_dim) == x.size(1), op,
        "weight of shape " + to_string(weight.shape()) + " expects " +
            std::to_string(weight.size(weight_in_dim)) + " input channels but x of shape " +
            to_string(x.shape()) + " has " + std::to_string(x.size(1)));
  check(weight.size(2) == weight.size(3), op,
        "only square kernels are supported, weight has shape " + to_string(weight.shape()));
  check(stride >= 1, op, "stride must be at least 1, got " + std::to_string(stride));
  const int64_t out_channels = weight.size(1 - weight_in_dim);
  if (bias.defined()) {
    check(bias.ndim() == 1 && bias.size(0) == out_channels, op,
          "bias must have shape [" + std::to_string(out_channels) + "], got " +
              to_string(bias.shape()));
    check_same_device(x, bias, op, "x", "bias");
  }
}

int64_t param_elements(const Tensor& weight, const Tensor& bias) {
  return weight.numel() + (bias.defined() ? bias.numel() : 0);
}

// What both convolutions do after their forward pass: the op record and the backward closure.
// Shape is Conv2dShape or ConvTranspose2dShape; the two member pointers are its backward passes.
template <typename Shape>
void record_conv(const char* op, const Tensor& x, const Tensor& weight, const Tensor& bias,
                 const Shape& s, Tensor& y,
                 void (Backend::*backward_data)(const Shape&, const float*, const float*, float*),
                 void (Backend::*backward_filter)(const Shape&, const float*, const float*,
                                                  float*, float*)) {
  if (recording_ops()) {
    record_op({op, y.shape(), param_elements(weight, bias), 0,
               2 * s.macs() + (bias.defined() ? double(s.y_size()) : 0.0)});
  }
  if (!autograd::needs_graph({&x, &weight, &bias})) return;
  autograd::record(y, op, {x, weight, bias},
                   [s, backward_data, backward_filter](const Tensor& gy, GradContext& ctx) {
    Backend& b = backend(gy.device());
    const Tensor& in = ctx.input(0);
    const Tensor& w = ctx.input(1);
    if (ctx.needs(0)) {
      Tensor dx = Tensor::empty(in.shape(), in.device());
      (b.*backward_data)(s, gy.data(), w.data(), dx.data());
      ctx.add(0, dx);
    }
    if (ctx.needs(1) || ctx.needs(2)) {
      Tensor dw = Tensor::empty(w.shape(), w.device());
      Tensor db = ctx.needs(2) ? Tensor::empty(ctx.input(2).shape(), w.device()) : Tensor();
      (b.*backward_filter)(s, in.data(), gy.data(), dw.data(), db.defined() ? db.data() : nullptr);
      if (ctx.needs(1)) ctx.add(1, dw);
      if (db.defined()) ctx.add(2, db);
    }
  });
}

}  // namespace

Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, int stride,
              Padding padding) {
  constexpr const char* op = "conv2d";
  check_conv_args(op, x, weight, bias, 1, stride);
  const auto s = kernels::conv2d_shape(as_int(x.size(0)), as_int(x.size(1)), as_int(x.size(2)),
                                       as_int(x.size(3)), as_int(weight.size(0)),
                                       as_int(weight.size(2)), stride, padding);
  check(s.h_out > 0 && s.w_out > 0, op,
        "x of shape " + to_string(x.shape()) + " is smaller than the kernel " +
            to_string(weight.shape()) + " with 'valid' padding");
  Backend& be = backend(x.device());
  Tensor y = Tensor::empty({s.n, s.c_out, s.h_out, s.w_out}, x.device());
  be.conv2d_forward(s, x.data(), weight.data(), bias.defined() ? bias.data() : nullptr, y.data());

  record_conv(op, x, weight, bias, s, y, &Backend::conv2d_backward_data,
              &Backend::conv2d_backward_filter);
  return y;
}

Tensor conv_transpose2d(const Tensor& x, const Tensor& weight, const Tensor& bias, int stride,
                        Padding padding) {
  constexpr const char* op = "conv_transpose2d";
  check_conv_args(op, x, weight, bias, 0, stride);
  const auto s = kernels::conv_transpose2d_shape(
      as_int(x.size(0)), as_int(x.size(1)), as_int(x.size(2)), as_int(x.size(3)),
      as_int(weight.size(1)), as_int(weight.size(2)), stride, padding);
  Backend& be = backend(x.device());
  Tensor y = Tensor::empty({s.n, s.c_out, s.h_out, s.w_out}, x.device());
  be.conv_transpose2d_forward(s, x.data(), weight.data(), bias.defined() ? bias.data() : nullptr,
                              y.data());

  record_conv(op, x, weight, bias, s, y, &Backend::conv_transpose2d_backward_data,
              &Backend::conv_transpose2d_backward_filter);
  return y;
}

}  // namespace unet::ops
