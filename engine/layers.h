// The layers a U-Net is built from, as Modules over the functional ops.
#pragma once

#include <cstdint>

#include "engine/init.h"
#include "engine/module.h"
#include "engine/ops.h"

namespace unet {

enum class Init { HeNormal, GlorotUniform };

// weight [out, in, k, k], bias [out] (zeros).
class Conv2d : public Module {
 public:
  Conv2d(int in_channels, int out_channels, int kernel, Init init, Rng& rng, int stride = 1,
         ops::Padding padding = ops::Padding::Same);
  Tensor forward(const Tensor& x) const { return ops::conv2d(x, weight, bias, stride_, padding_); }
  // The same output without the bias gradient, for a convolution whose bias a training-mode
  // BatchNorm cancels (its exact gradient is zero).
  Tensor forward_no_bias_grad(const Tensor& x) const {
    return ops::conv2d(x, weight, bias.detach(), stride_, padding_);
  }

  Tensor weight, bias;

 private:
  int stride_;
  ops::Padding padding_;
};

// weight [in, out, k, k], bias [out] (zeros).
class ConvTranspose2d : public Module {
 public:
  ConvTranspose2d(int in_channels, int out_channels, int kernel, int stride, Init init, Rng& rng,
                  ops::Padding padding = ops::Padding::Same);
  Tensor forward(const Tensor& x) const {
    return ops::conv_transpose2d(x, weight, bias, stride_, padding_);
  }

  Tensor weight, bias;

 private:
  int stride_;
  ops::Padding padding_;
};

// gamma = 1, beta = 0 (parameters); running_mean = 0, running_var = 1 (buffers).
class BatchNorm2d : public Module {
 public:
  explicit BatchNorm2d(int channels, float momentum = 0.1f, float eps = 1e-3f);
  Tensor forward(const Tensor& x, bool relu) const;

  Tensor gamma, beta, running_mean, running_var;

 private:
  float momentum_, eps_;
};

// A position in a Philox stream: each dropout call takes the next `count` numbers, so a run's
// masks are fixed by the seed and reproducible after a resume from (seed, offset).
struct PhiloxStream {
  uint64_t seed = 0;
  uint64_t offset = 0;
  uint64_t take(uint64_t count) {
    const uint64_t start = offset;
    offset += (count + 3) / 4 * 4;  // whole Philox blocks: streams never share a counter
    return start;
  }
};

// Identity in eval mode; inverted dropout with the shared stream in training mode.
class Dropout : public Module {
 public:
  Dropout(float p, PhiloxStream* stream) : p_(p), stream_(stream) {}
  Tensor forward(const Tensor& x) const;
  float p() const { return p_; }

 private:
  float p_;
  PhiloxStream* stream_;
};

}  // namespace unet
