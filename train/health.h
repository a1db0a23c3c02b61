// Numerical health of a training run, checked after every step so that a divergence stops the
// run before it reaches a checkpoint: a loss can stay finite for a while after the weights or the
// BatchNorm running statistics have become infinite (with --lr 1e6 the running variances overflow
// on the first steps), and every later epoch would then save, and be evaluated with, Inf weights.
#pragma once

#include <optional>
#include <string>

#include "engine/module.h"

namespace unet {

// The first non-finite quantity after a step, in the order a divergence spreads: the loss, the
// gradients, the parameters, the buffers (BatchNorm statistics), as "buffer 'name'[index] = inf";
// nothing when all are finite.
// It copies every parameter, gradient and buffer to the host once (about 17 MB for the reference
// model), small beside the traffic of the step it checks.
std::optional<std::string> first_non_finite(const Module& model, double loss);

}  // namespace unet
