// The segmentation losses as one op each: a single kernel computes the scalar, a second its
// gradient (the fusion with sigmoid for BCE and BCE+Dice lives inside those kernels).
#include <cmath>

#include "engine/autograd.h"
#include "engine/ops.h"
#include "engine/ops/check.h"
#include "engine/trace.h"

namespace unet::ops {

Tensor loss(LossKind kind, const Tensor& input, const Tensor& target, float smooth) {
  const std::string name = to_string(kind) + "_loss";
  const char* op = name.c_str();
  check_defined(input, op, "input");
  check_defined(target, op, "target");
  check_same_shape(input, target, op, "input", "target");
  check(input.numel() > 0, op, "input is empty");
  check(std::isfinite(smooth) && smooth >= 0.0f, op, "smooth must be finite and >= 0");
  const auto count = std::size_t(input.numel());
  Tensor y = Tensor::empty({1}, input.device());
  backend(input.device()).loss_forward(kind, count, input.data(), target.data(), smooth, y.data());

  if (recording_ops()) record_op({name, y.shape(), 0, 0, 4.0 * double(count)});
  if (autograd::needs_graph({&input})) {
    autograd::record(y, name, {input, target}, [kind, count, smooth](const Tensor& gy, GradContext& ctx) {
      if (!ctx.needs(0)) return;
      const Tensor& in = ctx.input(0);
      Tensor dx = Tensor::empty(in.shape(), in.device());
      backend(in.device()).loss_backward(kind, count, in.data(), ctx.input(1).data(), smooth,
                                         gy.data(), dx.data());
      ctx.add(0, dx);
    });
  }
  return y;
}

}  // namespace unet::ops
