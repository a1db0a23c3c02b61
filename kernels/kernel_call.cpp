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
  switch (kernel) {
    case Kernel::Conv2dForward: return "conv2d_forward";
    case Kernel::Conv2dBackwardData: return "conv2d_backward_data";
    case Kernel::Conv2dBackwardFilter: return "conv2d_backward_filter";
    case Kernel::ConvTranspose2dForward: return "conv_transpose2d_forward";
    case Kernel::ConvTranspose2dBackwardData: return "conv_transpose2d_backward_data";
    case Kernel::ConvTranspose2dBackwardFilter: return "conv_transpose2d_backward_filter";
    case Kernel::BatchNormForwardTrain: return "batchnorm_forward_train";
    case Kernel::BatchNormForwardInfer: return "batchnorm_forward_infer";
    case Kernel::BatchNormBackwardTrain: return "batchnorm_backward_train";
    case Kernel::BatchNormBackwardInfer: return "batchnorm_backward_infer";
    case Kernel::MaxPoolForward: return "maxpool2x2_forward";
    case Kernel::MaxPoolBackward: return "maxpool2x2_backward";
    case Kernel::DropoutForward: return "dropout_forward";
    case Kernel::DropoutBackward: return "dropout_backward";
    case Kernel::ConcatChannels: return "concat_channels";
    case Kernel::SplitChannels: return "split_channels";
    case Kernel::Fill: return "fill";
    case Kernel::Add: return "add";
    case Kernel::Mul: return "mul";
    case Kernel::Scale: return "scale";
    case Kernel::ScaleBy: return "scale_by";
    case Kernel::Accumulate: return "accumulate";
    case Kernel::ReluForward: return "relu_forward";
    case Kernel::ReluBackward: return "relu_backward";
    case Kernel::SigmoidForward: return "sigmoid_forward";
    case Kernel::SigmoidBackward: return "sigmoid_backward";
    case Kernel::Sum: return "sum";
    case Kernel::LossForward: return "loss_forward";
    case Kernel::LossBackward: return "loss_backward";
    case Kernel::AdamUpdate: return "adam_update";
    case Kernel::CopyToDevice: return "copy_from_host";
    case Kernel::CopyToHost: return "copy_to_host";
    case Kernel::CopyOnDevice: return "copy";
  }
  return "unknown";
}

Cost cost(const KernelCall& c) {
  const double n = double(c.count);
  switch (c.kernel) {
    case Kernel::Conv2dForward:
    case Kernel::Conv2dBackwardFilter: return conv_cost(c.conv, c.has_bias);
    case Kernel::Conv2dBackwardData: return conv_cost(c.conv, false);
    case Kernel::ConvTranspose2dForward:
    case Kernel::ConvTranspose2dBackwardFilter: return conv_cost(c.conv_t, c.has_bias);
    case Kernel::ConvTranspose2dBackwardData: return conv_cost(c.conv_t, false);
    // BN: statistics 3 FLOPs per element (sum, sum of squares), normalisation 2 (one FMA), ReLU 1;
    // backward 11 (+1 ReLU mask): the two sums 5, the input gradient 6.
    case Kernel::BatchNormForwardTrain:
      return {double(c.bn.size()) * (5 + c.relu), kF * (2 * double(c.bn.size()) + 8.0 * c.bn.c)};
    case Kernel::BatchNormForwardInfer:
      return {double(c.bn.size()) * (2 + c.relu), kF * (2 * double(c.bn.size()) + 4.0 * c.bn.c)};
    case Kernel::BatchNormBackwardTrain:
    case Kernel::BatchNormBackwardInfer: {
      const double per = c.kernel == Kernel::BatchNormBackwardTrain ? 11 : 5;
      return {double(c.bn.size()) * (per + c.relu), kF * ((3 + c.relu) * double(c.bn.size()) + 5.0 * c.bn.c)};
    }
    // Pooling: 3 comparisons per output; the argmax is one byte per output.
    case Kernel::MaxPoolForward:
      return {3 * double(c.pool.y_size()), kF * double(c.pool.x_size() + c.pool.y_size()) + double(c.pool.y_size())};
    case Kernel::MaxPoolBackward:
      return {0, kF * double(c.pool.y_size() + c.pool.x_size()) + double(c.pool.y_size())};
    case Kernel::DropoutForward:
    case Kernel::DropoutBackward: return {n, n * (2 * kF + 1)};
    case Kernel::ConcatChannels:
    case Kernel::SplitChannels: return {0, 2 * kF * double(c.concat.out_size())};
    case Kernel::Fill: return {0, n * kF};
    case Kernel::Add:
    case Kernel::Mul:
    case Kernel::Accumulate:
    case Kernel::ReluBackward: return {n, 3 * kF * n};
    case Kernel::Scale:
    case Kernel::ScaleBy:
    case Kernel::ReluForward: return {n, 2 * kF * n};
    case Kernel::SigmoidForward:
    case Kernel::SigmoidBackward: return {3 * n, (c.kernel == Kernel::SigmoidForward ? 2 : 3) * kF * n};
    case Kernel::Sum: return {n, kF * n};
    case Kernel::LossForward: return {loss_flops(c.loss, false) * n, 2 * kF * n};
    case Kernel::LossBackward: return {loss_flops(c.loss, true) * n, 3 * kF * n};
    // Adam: 14 FLOPs per element (two moment updates, bias corrections, sqrt, eps, divide, step);
    // reads parameter, gradient and both moments, writes parameter and moments.
    case Kernel::AdamUpdate: {
      const double e = double(std::accumulate(c.tensors.begin(), c.tensors.end(), std::size_t(0)));
      return {14 * e, 7 * kF * e};
    }
    case Kernel::CopyToDevice:
    case Kernel::CopyToHost:
    case Kernel::CopyOnDevice: return {0, 2 * n};
  }
  return {};
}

std::string describe(const KernelCall& c) {
  switch (c.kernel) {
    case Kernel::Conv2dForward:
    case Kernel::Conv2dBackwardData:
    case Kernel::Conv2dBackwardFilter: return describe_conv(c.conv, c.has_bias);
    case Kernel::ConvTranspose2dForward:
    case Kernel::ConvTranspose2dBackwardData:
    case Kernel::ConvTranspose2dBackwardFilter: return describe_conv(c.conv_t, c.has_bias);
    case Kernel::BatchNormForwardTrain:
    case Kernel::BatchNormForwardInfer:
    case Kernel::BatchNormBackwardTrain:
    case Kernel::BatchNormBackwardInfer:
      return std::to_string(c.bn.n) + "x" + std::to_string(c.bn.c) + "x" + std::to_string(c.bn.hw) + (c.relu ? " +relu" : "");
    case Kernel::MaxPoolForward:
    case Kernel::MaxPoolBackward: return nchw(c.pool.n, c.pool.c, c.pool.h_in, c.pool.w_in);
    case Kernel::ConcatChannels:
    case Kernel::SplitChannels:
      return std::to_string(c.concat.n) + "x(" + std::to_string(c.concat.c_a) + "+" + std::to_string(c.concat.c_b) + ")x" +
             std::to_string(c.concat.hw);
    case Kernel::LossForward:
    case Kernel::LossBackward: return to_string(c.loss) + " " + std::to_string(c.count);
    case Kernel::AdamUpdate:
      return std::to_string(c.tensors.size()) + " tensors, " + std::to_string(std::size_t(cost(c).flops / 14)) + " elements";
    case Kernel::CopyToDevice:
    case Kernel::CopyToHost:
    case Kernel::CopyOnDevice: return std::to_string(c.count) + " bytes";
    default: return std::to_string(c.count);
  }
}

}  // namespace unet::kernels
