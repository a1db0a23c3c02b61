// Adam over a module's parameters: one moment pair per parameter, updated in place by the
// backend's fused kernel. The learning rate is public state so that schedules can change it.
#pragma once

#include <vector>

#include "engine/module.h"

namespace unet {

struct AdamOptions {
  float lr = 2e-3f;
  float beta1 = 0.9f, beta2 = 0.999f;
  float eps = 1e-7f;  // Keras' default
  float weight_decay = 0.0f;
};

class Adam {
 public:
  Adam(NamedTensors parameters, AdamOptions options);

  // Applies one update from the parameters' current gradients (parameters without a gradient
  // are skipped), then counts the step.
  void step();
  void zero_grad();

  float lr() const { return options_.lr; }
  void set_lr(float lr) { options_.lr = lr; }
  long steps() const { return step_; }
  void set_steps(long steps) { step_ = steps; }  // when resuming, with the moments restored
  // Moments by parameter name ("m.<name>", "v.<name>"), for checkpoints.
  NamedTensors state() const;

 private:
  NamedTensors parameters_;
  std::vector<Tensor> m_, v_;
  AdamOptions options_;
  long step_ = 0;
};

}  // namespace unet
