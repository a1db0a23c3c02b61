#include "engine/layers.h"

#include "engine/trace.h"

namespace unet {
namespace {

void init_weight(Tensor& w, Init init, int64_t fan_in, int64_t fan_out, Rng& rng) {
  if (init == Init::HeNormal) {
    he_normal_(w, fan_in, rng);
  } else {
    glorot_uniform_(w, fan_in, fan_out, rng);
  }
}

}  // namespace

Conv2d::Conv2d(int in_channels, int out_channels, int kernel, Init init, Rng& rng, int stride,
               ops::Padding padding)
    : weight(Tensor::empty({out_channels, in_channels, kernel, kernel})),
      bias(Tensor::zeros({out_channels})),
      stride_(stride),
      padding_(padding) {
  const int64_t taps = int64_t(kernel) * kernel;
  init_weight(weight, init, taps * in_channels, taps * out_channels, rng);
  register_parameter("weight", &weight);
  register_parameter("bias", &bias);
}

ConvTranspose2d::ConvTranspose2d(int in_channels, int out_channels, int kernel, int stride,
                                 Init init, Rng& rng, ops::Padding padding)
    : weight(Tensor::empty({in_channels, out_channels, kernel, kernel})),
      bias(Tensor::zeros({out_channels})),
      stride_(stride),
      padding_(padding) {
  // Keras computes a transposed kernel's fans from its (k, k, out, in) layout: fan_in uses `out`.
  const int64_t taps = int64_t(kernel) * kernel;
  init_weight(weight, init, taps * out_channels, taps * in_channels, rng);
  register_parameter("weight", &weight);
  register_parameter("bias", &bias);
}

BatchNorm2d::BatchNorm2d(int channels, float momentum, float eps)
    : gamma(Tensor::full({channels}, 1.0f)),
      beta(Tensor::zeros({channels})),
      running_mean(Tensor::zeros({channels})),
      running_var(Tensor::full({channels}, 1.0f)),
      momentum_(momentum),
      eps_(eps) {
  register_parameter("gamma", &gamma);
  register_parameter("beta", &beta);
  register_buffer("running_mean", &running_mean);
  register_buffer("running_var", &running_var);
}

Tensor BatchNorm2d::forward(const Tensor& x, bool relu) const {
  return ops::batch_norm(x, gamma, beta, running_mean, running_var,
                         {is_training(), momentum_, eps_, relu});
}

Tensor Dropout::forward(const Tensor& x) const {
  if (!is_training() || p_ == 0.0f) {
    // Still listed, so that `unet summary` shows the architecture as built.
    if (recording_ops()) record_op({"dropout", x.shape(), 0, 0, 0});
    return x;
  }
  return ops::dropout(x, p_, stream_->seed, stream_->take(uint64_t(x.numel())));
}

}  // namespace unet
