// One call of one backend primitive, described by value: which kernel, on which shape. The
// profiler records these while a model trains, and the benchmarks replay them, so that both speak
// of the same kernels on the same shapes. cost() states the work each call must do: the FLOPs and
// the bytes it must move at least (each input read once, each output written once); the formulas
// are listed per kernel in docs/KERNELS.md.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "kernels/primitives.h"
#include "kernels/shapes.h"

namespace unet::kernels {

#define UNET_KERNEL_ENUMERATOR(name, params, args, call) name,
enum class Kernel { UNET_PRIMITIVES(UNET_KERNEL_ENUMERATOR) };
#undef UNET_KERNEL_ENUMERATOR
#define UNET_KERNEL_COUNT(name, params, args, call) +1
inline constexpr int kKernelCount = 0 UNET_PRIMITIVES(UNET_KERNEL_COUNT);
#undef UNET_KERNEL_COUNT

// "mse", "bce", "dice", "bce_dice", "neg_log_iou".
std::string to_string(LossKind kind);

// "conv2d_forward", "batchnorm_backward_train", ...: the enumerator's and the Backend method's name.
const char* name(Kernel kernel);
// The kernel of that name; false when there is none.
bool kernel_named(const std::string& name, Kernel* kernel);

struct KernelCall {
  Kernel kernel = Kernel::fill;
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

// The call's description from the arguments a primitive receives (the last column of
// UNET_PRIMITIVES).
KernelCall make_call(Kernel kernel, std::size_t count);
KernelCall make_call(Kernel kernel, const Conv2dShape& s, bool bias);
KernelCall make_call(Kernel kernel, const ConvTranspose2dShape& s, bool bias);
KernelCall make_call(Kernel kernel, const BatchNormShape& s, bool relu);
KernelCall make_call(Kernel kernel, const Pool2dShape& s);
KernelCall make_call(Kernel kernel, const ConcatShape& s);
KernelCall make_call(Kernel kernel, LossKind loss, std::size_t count);
KernelCall make_call(Kernel kernel, const std::vector<AdamTensor>& tensors);

struct Cost {
  double flops = 0;  // floating-point operations; a multiply-add counts 2
  double bytes = 0;  // compulsory memory traffic
};
Cost cost(const KernelCall& call);

// The shape in words, e.g. "6x16x240x240 -> 6x32x240x240 k3 s1 +bias"; with name() it identifies
// a distinct call.
std::string describe(const KernelCall& call);

}  // namespace unet::kernels
