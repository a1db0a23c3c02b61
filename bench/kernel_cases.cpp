#include "bench/kernel_cases.h"

#include <set>

#include "engine/autograd.h"
#include "engine/profiler.h"
#include "train/adam.h"
#include "train/step.h"

namespace unet::bench {
namespace {

using kernels::Kernel;
using kernels::KernelCall;

bool has(const std::vector<KernelCall>& calls, Kernel kernel) {
  for (const KernelCall& c : calls) {
    if (c.kernel == kernel) return true;
  }
  return false;
}

// The kernels a step did not call, on the model's sizes: elementwise ones on the largest
// activation and on the output, losses of every kind on the output, inference-mode BN backward
// on every BN shape.
void add_missing(std::vector<KernelCall>& calls, std::size_t largest, std::size_t output) {
  const std::vector<KernelCall> recorded = calls;
  for (Kernel k : {Kernel::mul, Kernel::scale, Kernel::scale_by, Kernel::accumulate, Kernel::relu_forward,
                   Kernel::relu_backward, Kernel::sum, Kernel::add, Kernel::fill, Kernel::sigmoid_forward,
                   Kernel::sigmoid_backward, Kernel::copy}) {
    if (has(recorded, k)) continue;
    for (std::size_t n : {largest, output}) calls.push_back(kernels::make_call(k, k == Kernel::copy ? n * sizeof(float) : n));
  }
  for (Kernel k : {Kernel::loss_forward, Kernel::loss_backward}) {
    for (LossKind loss : {LossKind::MSE, LossKind::BCE, LossKind::Dice, LossKind::BCEDice, LossKind::NegLogIoU}) {
      KernelCall c = kernels::make_call(k, output);
      c.loss = loss;
      calls.push_back(c);
    }
  }
  if (!has(recorded, Kernel::batchnorm_backward_infer)) {
    for (const KernelCall& c : recorded) {
      if (c.kernel != Kernel::batchnorm_backward_train) continue;
      KernelCall infer = c;
      infer.kernel = Kernel::batchnorm_backward_infer;
      calls.push_back(infer);
    }
  }
}

std::vector<KernelCall> distinct(const std::vector<KernelCall>& calls) {
  std::vector<KernelCall> out;
  std::set<std::string> seen;
  for (const KernelCall& c : calls) {
    // Copies to and from the host measure the bus, not a kernel; the device copy stands for them.
    if (c.kernel == Kernel::copy_from_host || c.kernel == Kernel::copy_to_host) continue;
    if (seen.insert(std::string(kernels::name(c.kernel)) + " " + kernels::describe(c)).second) out.push_back(c);
  }
  return out;
}

}  // namespace

std::vector<KernelCall> model_calls(const UNetConfig& config, int batch, int size) {
  UNet model(config, 1);
  Adam adam(model.named_parameters(), AdamOptions{});
  const Tensor x = Tensor::full({batch, config.in_channels, size, size}, 0.5f);
  const Tensor y = Tensor::full({batch, config.out_channels, size, size}, 1.0f);
  std::vector<KernelCall> calls;
  {
    Profiler profiler(Device::CPU);
    model.train();
    train_step(model, adam, LossKind::MSE, x, y).item();
    model.eval();
    NoGradGuard no_grad;
    model.probabilities(x).to_vector();
    for (const ProfileEvent& e : profiler.events()) {
      if (!e.is_range) calls.push_back(e.call);
    }
  }
  const std::size_t largest = std::size_t(batch) * config.base_filters * size * size;
  const std::size_t output = std::size_t(batch) * config.out_channels * size * size;
  add_missing(calls, largest, output);
  return distinct(calls);
}

std::vector<KernelCase> kernel_cases(const UNetConfig& config, int batch, int size, int small_size) {
  std::vector<KernelCase> cases;
  for (const KernelCall& c : model_calls(config, batch, size)) cases.push_back({"ref", c});
  std::set<std::string> seen;
  for (const KernelCall& c : model_calls(config, 1, small_size)) {
    std::string key = kernels::name(c.kernel);
    if (c.kernel == Kernel::loss_forward || c.kernel == Kernel::loss_backward) key += to_string(c.loss);
    if (seen.insert(key).second) cases.push_back({"small", c});
  }
  return cases;
}

}  // namespace unet::bench
