// Which kernel calls the benchmarks time: the ones the model really makes. One training step and
// one inference pass of the model run under the profiler (engine/profiler.h); every distinct
// (kernel, shape) it recorded becomes a case, so the cases follow the model when it changes.
// Kernels that a step of this model does not call (relu_forward: ReLU is fused into BN; the losses
// other than the one trained with; ...) are added on the model's own sizes, so every kernel has a
// figure.
#pragma once

#include <string>
#include <vector>

#include "kernels/kernel_call.h"
#include "models/unet.h"

namespace unet::bench {

struct KernelCase {
  std::string set;  // "ref" (the model's shapes) or "small" (one small shape per kernel)
  kernels::KernelCall call;
};

// Runs on the CPU: one training step (MSE loss) and one inference pass at `batch` x `size`.
std::vector<kernels::KernelCall> model_calls(const UNetConfig& config, int batch, int size);

// "ref": every distinct call of the model at batch x size; "small": the first call of each kernel
// at batch 1 x small_size.
std::vector<KernelCase> kernel_cases(const UNetConfig& config, int batch, int size, int small_size);

}  // namespace unet::bench
