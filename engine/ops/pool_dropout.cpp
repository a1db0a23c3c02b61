// max_pool2x2 and dropout: ops that save a byte mask (which input won, which element was kept)
// for their backward pass.
#include <memory>

#include "engine/autograd.h"
#include "engine/ops.h"
#include "engine/ops/check.h"
#include "engine/trace.h"

namespace unet::ops {

Tensor max_pool2x2(const Tensor& x) {
  constexpr const char* op = "max_pool2x2";
  check_ndim(x, 4, op, "x");
  const kernels::Pool2dShape s{as_int(x.size(0)), as_int(x.size(1)), as_int(x.size(2)),
                               as_int(x.size(3))};
  check(s.h_out() > 0 && s.w_out() > 0, op,
        "x of shape " + to_string(x.shape()) + " is smaller than the 2x2 window");
  Tensor y = Tensor::empty({s.n, s.c, s.h_out(), s.w_out()}, x.device());
  auto argmax = std::make_shared<Storage>(x.device(), s.y_size());
  backend(x.device()).maxpool2x2_forward(s, x.data(), y.data(), static_cast<uint8_t*>(argmax->data()));

  if (recording_ops()) record_op({op, y.shape(), 0, 0, 3.0 * double(s.y_size())});
  if (autograd::needs_graph({&x})) {
    autograd::record(y, op, {x}, [s, argmax](const Tensor& gy, GradContext& ctx) {
      Tensor dx = Tensor::empty(ctx.input(0).shape(), gy.device());
      backend(gy.device()).maxpool2x2_backward(s, gy.data(), static_cast<const uint8_t*>(argmax->data()),
                                               dx.data());
      ctx.add(0, dx);
    });
  }
  return y;
}

Tensor dropout(const Tensor& x, float p, uint64_t seed, uint64_t offset) {
  constexpr const char* op = "dropout";
  check_defined(x, op, "x");
  check(p >= 0.0f && p < 1.0f, op, "p must be in [0, 1), got " + std::to_string(p));
  const auto count = std::size_t(x.numel());
  Tensor y = Tensor::empty(x.shape(), x.device());
  auto mask = std::make_shared<Storage>(x.device(), count);
  backend(x.device()).dropout_forward(count, p, seed, offset, x.data(), y.data(),
                                      static_cast<uint8_t*>(mask->data()));

  if (recording_ops()) record_op({op, y.shape(), 0, 0, double(count)});
  if (autograd::needs_graph({&x})) {
    autograd::record(y, op, {x}, [p, count, mask](const Tensor& gy, GradContext& ctx) {
      Tensor dx = Tensor::empty(gy.shape(), gy.device());
      backend(gy.device()).dropout_backward(count, p, gy.data(), static_cast<const uint8_t*>(mask->data()),
                                            dx.data());
      ctx.add(0, dx);
    });
  }
  return y;
}

}  // namespace unet::ops
