#include "kernels/kernel_call.h"

#include <numeric>

namespace unet::kernels {
namespace {

constexpr double kF = sizeof(float);

std::string nchw(int n, int c, int h, int w) {
  return std::to_string(n) + "x" + std::to_string(c) + "x" + std::to_string(h) + "x" + std::to_string(w);
}

template <typename S>
std::string describe_conv(const S& s, bool bias) {
  return nchw(s.n, s.c_in, s.h_in, s.w_in) + " -> " + nchw(s.n, s.c_out, s.h_out, s.w_out) + " k" +
         std::to_string(s.kh) + " s" + std::to_string(s.stride) + (bias ? " +bias" : "");
}

// All three directions of a convolution do the same multiply-adds and move x (or dx), w (or dw)
// and y (or dy) once; forward and backward-filter also add (or sum) the bias per output element.
template <typename S>
Cost conv_cost(const S& s, bool bias) {
  const double b = bias ? 1 : 0;
  return {2 * s.macs() + b * double(s.y_size()), kF * (double(s.x_size() + s.w_size() + s.y_size()) + b * s.c_out)};
}

// Per-element FLOPs of the loss kernels: forward (the fused sums) and backward (the sums again
// where the gradient needs them, then the gradient itself).
double loss_flops(LossKind kind, bool backward) {
  switch (kind) {
    case LossKind::MSE: return backward ? 2 : 3;
    case LossKind::BCE: return backward ? 4 : 7;
    case LossKind::Dice:
    case LossKind::NegLogIoU: return backward ? 8 : 4;
    case LossKind::BCEDice: return backward ? 12 : 11;
  }
  return 0;
}

}  // namespace

std::string to_string(LossKind kind) {
  switch (kind) {
    case LossKind::MSE: return "mse";
    case LossKind::BCE: return "bce";
    case LossKind::Dice: return "dice";
    case LossKind::BCEDice: return "bce_dice";
    case LossKind::NegLogIoU: return "neg_log_iou";
  }
  return "unknown";
}

const char* name(Kernel kernel) {
#define UNET_KERNEL_NAME(name, params, args, call) #name,
  static const char* const names[] = {UNET_PRIMITIVES(UNET_KERNEL_NAME)};
#undef UNET_KERNEL_NAME
  const int i = int(kernel);
  return i >= 0 && i < kKernelCount ? names[i] : "unknown";
}

bool kernel_named(const std::string& wanted, Kernel* kernel) {
  for (int i = 0; i < kKernelCount; ++i) {
    if (wanted == name(Kernel(i))) {
      *kernel = Kernel(i);
      return true;
    }
  }
  return false;
}

KernelCall make_call(Kernel kernel, std::size_t count) {
  KernelCall c;
  c.kernel = kernel;
  c.count = count;
  return c;
}
KernelCall make_call(Kernel kernel, const Conv2dShape& s, bool bias) {
  KernelCall c = make_call(kernel, 0);
  c.conv = s;
  c.has_bias = bias;
  return c;
}
KernelCall make_call(Kernel kernel, const ConvTranspose2dShape& s, bool bias) {
  KernelCall c = make_call(kernel, 0);
  c.conv_t = s;
  c.has_bias = bias;
  return c;
}
KernelCall make_call(Kernel kernel, const BatchNormShape& s, bool relu) {
  KernelCall c = make_call(kernel, 0);
  c.bn = s;
  c.relu = relu;
  return c;
}
KernelCall make_call(Kernel kernel, const Pool2dShape& s) {
  KernelCall c = make_call(kernel, 0);
  c.pool = s;
  return c;
}
KernelCall make_call(Kernel kernel, const ConcatShape& s) {
  KernelCall c = make_call(kernel, 0);
  c.concat = s;
  return c;
}
KernelCall make_call(Kernel kernel, LossKind loss, std::size_t count) {
  KernelCall c = make_call(kernel, count);
  c.loss = loss;
  return c;
}
KernelCall make_call(Kernel kernel, const std::vector<AdamTensor>& tensors) {
  KernelCall c = make_call(kernel, 0);
  for (const AdamTensor& t : tensors) c.tensors.push_back(t.count);
  return c;
}

Cost cost(const KernelCall& c) {
  const double n = double(c.count);
  switch (c.kernel) {
    case Kernel::conv2d_forward:
    case Kernel::conv2d_backward_filter: return conv_cost(c.conv, c.has_bias);
    case Kernel::conv2d_backward_data: return conv_cost(c.conv, false);
    case Kernel::conv_transpose2d_forward:
    case Kernel::conv_transpose2d_backward_filter: return conv_cost(c.conv_t, c.has_bias);
    case Kernel::conv_transpose2d_backward_data: return conv_cost(c.conv_t, false);
    // BN: statistics 3 FLOPs per element (sum, sum of squares), normalisation 2 (one FMA), ReLU 1;
    // backward 11 (+1 ReLU mask): the two sums 5, the input gradient 6.
    case Kernel::batchnorm_forward_train:
      return {double(c.bn.size()) * (5 + c.relu), kF * (2 * double(c.bn.size()) + 8.0 * c.bn.c)};
    case Kernel::batchnorm_forward_infer:
      return {double(c.bn.size()) * (2 + c.relu), kF * (2 * double(c.bn.size()) + 4.0 * c.bn.c)};
    case Kernel::batchnorm_backward_train:
    case Kernel::batchnorm_backward_infer: {
      const double per = c.kernel == Kernel::batchnorm_backward_train ? 11 : 5;
      return {double(c.bn.size()) * (per + c.relu), kF * ((3 + c.relu) * double(c.bn.size()) + 5.0 * c.bn.c)};
    }
    // Pooling: 3 comparisons per output; the argmax is one byte per output.
    case Kernel::maxpool2x2_forward:
      return {3 * double(c.pool.y_size()), kF * double(c.pool.x_size() + c.pool.y_size()) + double(c.pool.y_size())};
    case Kernel::maxpool2x2_backward:
      return {0, kF * double(c.pool.y_size() + c.pool.x_size()) + double(c.pool.y_size())};
    case Kernel::dropout_forward:
    case Kernel::dropout_backward: return {n, n * (2 * kF + 1)};
    case Kernel::concat_channels:
    case Kernel::split_channels: return {0, 2 * kF * double(c.concat.out_size())};
    case Kernel::fill: return {0, n * kF};
    case Kernel::add:
    case Kernel::mul:
    case Kernel::accumulate:
    case Kernel::relu_backward: return {n, 3 * kF * n};
    case Kernel::scale:
    case Kernel::scale_by:
    case Kernel::relu_forward: return {n, 2 * kF * n};
    case Kernel::sigmoid_forward:
    case Kernel::sigmoid_backward: return {3 * n, (c.kernel == Kernel::sigmoid_forward ? 2 : 3) * kF * n};
    case Kernel::sum: return {n, kF * n};
    case Kernel::loss_forward: return {loss_flops(c.loss, false) * n, 2 * kF * n};
    case Kernel::loss_backward: return {loss_flops(c.loss, true) * n, 3 * kF * n};
    // Adam: 14 FLOPs per element (two moment updates, bias corrections, sqrt, eps, divide, step);
    // reads parameter, gradient and both moments, writes parameter and moments.
    case Kernel::adam_update: {
      const double e = double(std::accumulate(c.tensors.begin(), c.tensors.end(), std::size_t(0)));
      return {14 * e, 7 * kF * e};
    }
    case Kernel::copy_from_host:
    case Kernel::copy_to_host:
    case Kernel::copy: return {0, 2 * n};
  }
  return {};
}

std::string describe(const KernelCall& c) {
  switch (c.kernel) {
    case Kernel::conv2d_forward:
    case Kernel::conv2d_backward_data:
    case Kernel::conv2d_backward_filter: return describe_conv(c.conv, c.has_bias);
    case Kernel::conv_transpose2d_forward:
    case Kernel::conv_transpose2d_backward_data:
    case Kernel::conv_transpose2d_backward_filter: return describe_conv(c.conv_t, c.has_bias);
    case Kernel::batchnorm_forward_train:
    case Kernel::batchnorm_forward_infer:
    case Kernel::batchnorm_backward_train:
    case Kernel::batchnorm_backward_infer:
      return std::to_string(c.bn.n) + "x" + std::to_string(c.bn.c) + "x" + std::to_string(c.bn.hw) + (c.relu ? " +relu" : "");
    case Kernel::maxpool2x2_forward:
    case Kernel::maxpool2x2_backward: return nchw(c.pool.n, c.pool.c, c.pool.h_in, c.pool.w_in);
    case Kernel::concat_channels:
    case Kernel::split_channels:
      return std::to_string(c.concat.n) + "x(" + std::to_string(c.concat.c_a) + "+" + std::to_string(c.concat.c_b) + ")x" +
             std::to_string(c.concat.hw);
    case Kernel::loss_forward:
    case Kernel::loss_backward: return to_string(c.loss) + " " + std::to_string(c.count);
    case Kernel::adam_update:
      return std::to_string(c.tensors.size()) + " tensors, " + std::to_string(std::size_t(cost(c).flops / 14)) + " elements";
    case Kernel::copy_from_host:
    case Kernel::copy_to_host:
    case Kernel::copy: return std::to_string(c.count) + " bytes";
    default: return std::to_string(c.count);
  }
}

}  // namespace unet::kernels
