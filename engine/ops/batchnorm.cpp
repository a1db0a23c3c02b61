// batch_norm (optionally fused with ReLU): shape checks, forward in training or inference mode,
// and the backward closure.
#include "engine/autograd.h"
#include "engine/ops.h"
#include "engine/ops/check.h"
#include "engine/trace.h"

namespace unet::ops {

Tensor batch_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                  const Tensor& running_mean, const Tensor& running_var,
                  const BatchNormOptions& options) {
  const char* op = options.relu ? "batch_norm_relu" : "batch_norm";
  check_ndim(x, 4, op, "x");
  const int64_t channels = x.size(1);
  const std::pair<const Tensor*, const char*> per_channel[] = {
      {&gamma, "gamma"}, {&beta, "beta"}, {&running_mean, "running_mean"}, {&running_var, "running_var"}};
  for (const auto& [t, name] : per_channel) {
    check_defined(*t, op, name);
    check(t->ndim() == 1 && t->size(0) == channels, op,
          std::string("'") + name + "' must have shape [" + std::to_string(channels) +
              "] for x of shape " + to_string(x.shape()) + ", got " + to_string(t->shape()));
    check_same_device(x, *t, op, "x", name);
  }
  const kernels::BatchNormShape s{as_int(x.size(0)), as_int(channels),
                                  as_int(x.size(2) * x.size(3))};
  check(!options.training || s.per_channel() > 1, op,
        "training mode needs more than one value per channel, x has shape " + to_string(x.shape()));

  Backend& be = backend(x.device());
  Tensor y = Tensor::empty(x.shape(), x.device());
  Tensor save_mean, save_invstd;
  if (options.training) {
    save_mean = Tensor::empty({channels}, x.device());
    save_invstd = Tensor::empty({channels}, x.device());
    be.batchnorm_forward_train(s, x.data(), gamma.data(), beta.data(), options.eps,
                               options.momentum, running_mean.data(), running_var.data(), y.data(),
                               save_mean.data(), save_invstd.data(), options.relu);
  } else {
    be.batchnorm_forward_infer(s, x.data(), gamma.data(), beta.data(), running_mean.data(),
                               running_var.data(), options.eps, y.data(), options.relu);
  }

  if (recording_ops()) {
    // Inference: one multiply-add per element (scale and shift folded per channel), plus the ReLU.
    record_op({op, y.shape(), gamma.numel() + beta.numel(),
               running_mean.numel() + running_var.numel(),
               double(s.size()) * (options.relu ? 3.0 : 2.0)});
  }
  if (autograd::needs_graph({&x, &gamma, &beta})) {
    // The output is saved detached: saving y itself would make y's node own y (a cycle).
    autograd::record(
        y, op, {x, gamma, beta},
        [s, options, y_saved = y.detach(), save_mean, save_invstd, running_mean, running_var](
            const Tensor& gy, GradContext& ctx) {
          Backend& b = backend(gy.device());
          const Tensor& in = ctx.input(0);
          const Tensor& g = ctx.input(1);
          Tensor dx = Tensor::empty(in.shape(), in.device());
          Tensor dgamma = Tensor::empty(g.shape(), g.device());
          Tensor dbeta = Tensor::empty(g.shape(), g.device());
          if (options.training) {
            b.batchnorm_backward_train(s, gy.data(), in.data(), y_saved.data(), g.data(),
                                       save_mean.data(), save_invstd.data(), dx.data(),
                                       dgamma.data(), dbeta.data(), options.relu);
          } else {
            b.batchnorm_backward_infer(s, gy.data(), in.data(), y_saved.data(), g.data(),
                                       running_mean.data(), running_var.data(), options.eps,
                                       dx.data(), dgamma.data(), dbeta.data(), options.relu);
          }
          if (ctx.needs(0)) ctx.add(0, dx);
          if (ctx.needs(1)) ctx.add(1, dgamma);
          if (ctx.needs(2)) ctx.add(2, dbeta);
        });
  }
  return y;
}

}  // namespace unet::ops
