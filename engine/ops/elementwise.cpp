// Elementwise ops, activations, channel concatenation and reductions.
#include "engine/autograd.h"
#include "engine/ops.h"
#include "engine/ops/check.h"
#include "engine/trace.h"

namespace unet::ops {
namespace {

std::size_t count_of(const Tensor& t) { return std::size_t(t.numel()); }

void record_elementwise(const char* op, const Tensor& y, double flops_per_element) {
  if (recording_ops()) record_op({op, y.shape(), 0, 0, flops_per_element * double(y.numel())});
}

}  // namespace

Tensor add(const Tensor& a, const Tensor& b) {
  constexpr const char* op = "add";
  check_defined(a, op, "a");
  check_defined(b, op, "b");
  check_same_shape(a, b, op, "a", "b");
  Tensor y = Tensor::empty(a.shape(), a.device());
  backend(a.device()).add(count_of(a), a.data(), b.data(), y.data());
  record_elementwise(op, y, 1);
  if (autograd::needs_graph({&a, &b})) {
    autograd::record(y, op, {a, b}, [](const Tensor& gy, GradContext& ctx) {
      if (ctx.needs(0)) ctx.add(0, gy);
      if (ctx.needs(1)) ctx.add(1, gy);
    });
  }
  return y;
}

Tensor mul(const Tensor& a, const Tensor& b) {
  constexpr const char* op = "mul";
  check_defined(a, op, "a");
  check_defined(b, op, "b");
  check_same_shape(a, b, op, "a", "b");
  Tensor y = Tensor::empty(a.shape(), a.device());
  backend(a.device()).mul(count_of(a), a.data(), b.data(), y.data());
  record_elementwise(op, y, 1);
  if (autograd::needs_graph({&a, &b})) {
    autograd::record(y, op, {a, b}, [](const Tensor& gy, GradContext& ctx) {
      Backend& be = backend(gy.device());
      for (std::size_t i = 0; i < 2; ++i) {
        if (!ctx.needs(i)) continue;
        Tensor d = Tensor::empty(gy.shape(), gy.device());
        be.mul(count_of(gy), gy.data(), ctx.input(1 - i).data(), d.data());
        ctx.add(i, d);
      }
    });
  }
  return y;
}

Tensor scale(const Tensor& x, float s) {
  constexpr const char* op = "scale";
  check_defined(x, op, "x");
  Tensor y = Tensor::empty(x.shape(), x.device());
  backend(x.device()).scale(count_of(x), x.data(), s, y.data());
  record_elementwise(op, y, 1);
  if (autograd::needs_graph({&x})) {
    autograd::record(y, op, {x}, [s](const Tensor& gy, GradContext& ctx) {
      Tensor dx = Tensor::empty(gy.shape(), gy.device());
      backend(gy.device()).scale(count_of(gy), gy.data(), s, dx.data());
      ctx.add(0, dx);
    });
  }
  return y;
}

Tensor relu(const Tensor& x) {
  constexpr const char* op = "relu";
  check_defined(x, op, "x");
  Tensor y = Tensor::empty(x.shape(), x.device());
  backend(x.device()).relu_forward(count_of(x), x.data(), y.data());
  record_elementwise(op, y, 1);
  if (autograd::needs_graph({&x})) {
    autograd::record(y, op, {x}, [y_saved = y.detach()](const Tensor& gy, GradContext& ctx) {
      Tensor dx = Tensor::empty(gy.shape(), gy.device());
      backend(gy.device()).relu_backward(count_of(gy), gy.data(), y_saved.data(), dx.data());
      ctx.add(0, dx);
    });
  }
  return y;
}

Tensor sigmoid(const Tensor& x) {
  constexpr const char* op = "sigmoid";
  check_defined(x, op, "x");
  Tensor y = Tensor::empty(x.shape(), x.device());
  backend(x.device()).sigmoid_forward(count_of(x), x.data(), y.data());
  record_elementwise(op, y, 4);
  if (autograd::needs_graph({&x})) {
    autograd::record(y, op, {x}, [y_saved = y.detach()](const Tensor& gy, GradContext& ctx) {
      Tensor dx = Tensor::empty(gy.shape(), gy.device());
      backend(gy.device()).sigmoid_backward(count_of(gy), gy.data(), y_saved.data(), dx.data());
      ctx.add(0, dx);
    });
  }
  return y;
}

Tensor concat_channels(const Tensor& a, const Tensor& b) {
  constexpr const char* op = "concat_channels";
  check_ndim(a, 4, op, "a");
  check_ndim(b, 4, op, "b");
  check_same_device(a, b, op, "a", "b");
  check(a.size(0) == b.size(0) && a.size(2) == b.size(2) && a.size(3) == b.size(3), op,
        "'a' of shape " + to_string(a.shape()) + " and 'b' of shape " + to_string(b.shape()) +
            " differ outside the channel dimension");
  const kernels::ConcatShape s{as_int(a.size(0)), as_int(a.size(1)), as_int(b.size(1)),
                               as_int(a.size(2) * a.size(3))};
  Tensor y = Tensor::empty({a.size(0), a.size(1) + b.size(1), a.size(2), a.size(3)}, a.device());
  backend(a.device()).concat_channels(s, a.data(), b.data(), y.data());
  record_elementwise(op, y, 0);
  if (autograd::needs_graph({&a, &b})) {
    autograd::record(y, op, {a, b}, [s](const Tensor& gy, GradContext& ctx) {
      Tensor da = Tensor::empty(ctx.input(0).shape(), gy.device());
      Tensor db = Tensor::empty(ctx.input(1).shape(), gy.device());
      backend(gy.device()).split_channels(s, gy.data(), da.data(), db.data());
      if (ctx.needs(0)) ctx.add(0, da);
      if (ctx.needs(1)) ctx.add(1, db);
    });
  }
  return y;
}

Tensor sum(const Tensor& x) {
  constexpr const char* op = "sum";
  check_defined(x, op, "x");
  Tensor y = Tensor::empty({1}, x.device());
  backend(x.device()).sum(count_of(x), x.data(), y.data());
  record_elementwise(op, x, 1);
  if (autograd::needs_graph({&x})) {
    autograd::record(y, op, {x}, [](const Tensor& gy, GradContext& ctx) {
      const Tensor& in = ctx.input(0);
      Tensor ones = Tensor::full(in.shape(), 1.0f, in.device());
      Tensor dx = Tensor::empty(in.shape(), in.device());
      backend(in.device()).scale_by(count_of(in), ones.data(), gy.data(), dx.data());
      ctx.add(0, dx);
    });
  }
  return y;
}

Tensor mean(const Tensor& x) {
  check_defined(x, "mean", "x");
  check(x.numel() > 0, "mean", "the mean of an empty tensor is undefined");
  return scale(sum(x), 1.0f / float(x.numel()));
}

}  // namespace unet::ops
