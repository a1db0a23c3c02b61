// One call of one backend primitive, described by value: which kernel, on which shape. The
// profiler records these while a model trains, and the benchmarks replay them, so that both speak
// of the same kernels on the same shapes. cost() states the work each call must do: the FLOPs and
// the bytes it must move at least (each input read once, each output written once); the formulas
// are listed per kernel in docs/KERNELS.md.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "kernels/shapes.h"

namespace unet::kernels {

enum class Kernel {
  Conv2dForward, Conv2dBackwardData, Conv2dBackwardFilter,
  ConvTranspose2dForward, ConvTranspose2dBackwardData, ConvTranspose2dBackwardFilter,
  BatchNormForwardTrain, BatchNormForwardInfer, BatchNormBackwardTrain, BatchNormBackwardInfer,
  MaxPoolForward, MaxPoolBackward,
  DropoutForward, DropoutBackward,
  ConcatChannels, SplitChannels,
  Fill, Add, Mul, Scale, ScaleBy, Accumulate,
  ReluForward, ReluBackward, SigmoidForward, SigmoidBackward,
  Sum, LossForward, LossBackward,
  AdamUpdate,
  CopyToDevice, CopyToHost, CopyOnDevice,
};
inline constexpr int kKernelCount = int(Kernel::CopyOnDevice) + 1;

// "mse", "bce", "dice", "bce_dice", "neg_log_iou".
std::string to_string(LossKind kind);

// "conv2d_forward", "batchnorm_backward_train", ... (the Backend method's name).
const char* name(Kernel kernel);

struct KernelCall {
  Kernel kernel = Kernel::Fill;
  Conv2dShape conv;                  // Conv2d*
  ConvTranspose2dShape conv_t;       // ConvTranspose2d*
  BatchNormShape bn;                 // BatchNorm*
  Pool2dShape pool;                  // MaxPool*
  ConcatShape concat;                // Concat / Split
  std::size_t count = 0;             // elements (elementwise, dropout, sum, losses); bytes (copies)
  bool has_bias = false;             // conv / conv_t: a bias (forward) or dbias (backward filter)
  bool relu = false;                 // BatchNorm*: fused ReLU
  LossKind loss = LossKind::MSE;     // Loss*
  std::vector<std::size_t> tensors;  // AdamUpdate: the element count of each parameter array
};

struct Cost {
  double flops = 0;  // floating-point operations; a multiply-add counts 2
  double bytes = 0;  // compulsory memory traffic
};
Cost cost(const KernelCall& call);

// The shape in words, e.g. "6x16x240x240 -> 6x32x240x240 k3 s1 +bias"; with name() it identifies
// a distinct call.
std::string describe(const KernelCall& call);

}  // namespace unet::kernels
