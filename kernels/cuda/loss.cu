// CUDA flat sum and segmentation losses (formulas in kernels/cpu/loss.h), forward and backward:
// the twins of kernels/cpu/loss.cpp and cpu::sum.
//
// Decomposition. The sum and every loss forward are one fused reduction in a single block of
// 1024 threads: thread k accumulates elements k, k + 1024, ... in double, then the block folds the
// 1024 partials with a fixed tree (reduce.cuh) and thread 0 finishes the formula and writes
// out[0]. A single block is chosen for determinism without scratch memory: a multi-block
// reduction needs a buffer for the block partials and a second launch (or atomics, whose order
// varies). The cost is that one SM does the whole pass: for the U-Net's output
// (N x 1 x 240 x 240, ~0.5 M floats at N = 8) that is some tens of microseconds, against
// milliseconds for the convolutions of a training step.
// Backward: Dice, -log IoU and BCE+Dice need the overlap sums (sum p t, sum p, sum t) before any
// gradient exists, so one single-block kernel first reduces them into shared memory, synchronises,
// then writes dinput; MSE and BCE need no sums and run as a grid-stride elementwise kernel over
// many blocks. The upstream gradient dloss is read from device memory.
//
// BCE takes logits in the stable form max(z, 0) - z t + log1p(exp(-|z|)), and the sigmoid is
// fused into BCE and BCE+Dice (never materialised). Precision: sums are in double like the CPU's;
// the transcendental per-element terms are float (expf, log1pf) and the gradients are float from
// double coefficients. Agreement with the CPU (tests/cuda/test_loss.cpp): loss values and sums
// within 1e-5 relative + 1e-6 absolute, gradients within 1e-5 relative + 1e-6 x max|gradient|.
// Determinism: fixed element-to-thread assignment and a fixed tree: bitwise reproducible.
#include <cmath>
#include <cstddef>
#include <stdexcept>

#include "kernels/cuda/kernels.h"
#include "kernels/cuda/reduce.cuh"

namespace unet::UNET_CUDA_NS {
namespace {

using detail::block_sum;
using detail::Sums;

constexpr int kReduceThreads = 1024;
constexpr int kReduceWarps = kReduceThreads / detail::kWarp;
constexpr int kElementwiseThreads = 256;
constexpr std::size_t kMaxBlocks = 2048;

// sigmoid_forward's stable expression (elementwise.cu).
__device__ __forceinline__ float sigmoid(float z) {
  const float e = expf(-fabsf(z));
  const float r = 1.0f / (1.0f + e);
  return z >= 0.0f ? r : e * r;
}

__device__ __forceinline__ double bce_term(float z, float t) {
  return double(fmaxf(z, 0.0f)) - double(z) * double(t) + double(log1pf(expf(-fabsf(z))));
}

// Adds (p t, p, t) to acc[first], acc[first + 1], acc[first + 2].
template <int N>
__device__ __forceinline__ void add_overlap(double p, double t, Sums<N>& acc, int first) {
  acc.v[first] += p * t;
  acc.v[first + 1] += p;
  acc.v[first + 2] += t;
}

// 1 - (2 sum(pt) + s) / (sum(p) + sum(t) + s) from the overlap sums at s.v[first..first+2].
template <int N>
__device__ __forceinline__ double soft_dice(const Sums<N>& s, int first, double smooth) {
  return 1 - (2 * s.v[first] + smooth) / (s.v[first + 1] + s.v[first + 2] + smooth);
}

// A gradient a - b t (Dice and IoU are affine in the target once the sums are known).
struct Affine {
  float a, b;
  __device__ float at(float t) const { return a - b * t; }
};

// d(dice)/dp_i * dloss = dloss (num - 2 t_i den) / den^2 = dloss num / den^2 - 2 dloss / den * t_i.
__device__ __forceinline__ Affine dice_gradient(const Sums<3>& s, double smooth, double upstream) {
  const double num = 2 * s.v[0] + smooth, den = s.v[1] + s.v[2] + smooth;
  return {float(upstream * num / (den * den)), float(upstream * 2 / den)};
}

// Each loss: kSums and add() / value() for the forward reduction; for the backward either
// kGradSums == 0 and coefficients(count, dloss), or kGradSums sums gathered by add_grad() and
// coefficients(sums, count, dloss); then gradient(i, coefficients).

struct FlatSum {
  static constexpr int kSums = 1;
  const float* x;
  __device__ void add(std::size_t i, Sums<1>& acc) const { acc.v[0] += double(x[i]); }
  __device__ double value(const Sums<1>& s, double) const { return s.v[0]; }
};

struct Mse {
  static constexpr int kSums = 1, kGradSums = 0;
  const float* p;
  const float* t;
  __device__ void add(std::size_t i, Sums<1>& acc) const {
    const double d = double(p[i]) - double(t[i]);
    acc.v[0] += d * d;
  }
  __device__ double value(const Sums<1>& s, double count) const { return s.v[0] / count; }
  __device__ float coefficients(double count, double upstream) const {
    return float(2 * upstream / count);
  }
  __device__ float gradient(std::size_t i, float k) const { return k * (p[i] - t[i]); }
};

struct Bce {
  static constexpr int kSums = 1, kGradSums = 0;
  const float* z;
  const float* t;
  __device__ void add(std::size_t i, Sums<1>& acc) const { acc.v[0] += bce_term(z[i], t[i]); }
  __device__ double value(const Sums<1>& s, double count) const { return s.v[0] / count; }
  __device__ float coefficients(double count, double upstream) const {
    return float(upstream / count);
  }
  __device__ float gradient(std::size_t i, float k) const { return k * (sigmoid(z[i]) - t[i]); }
};

struct Dice {
  static constexpr int kSums = 3, kGradSums = 3;
  const float* p;
  const float* t;
  double smooth;
  __device__ void add(std::size_t i, Sums<3>& acc) const {
    add_overlap(double(p[i]), double(t[i]), acc, 0);
  }
  __device__ double value(const Sums<3>& s, double) const { return soft_dice(s, 0, smooth); }
  __device__ void add_grad(std::size_t i, Sums<3>& acc) const { add(i, acc); }
  __device__ Affine coefficients(const Sums<3>& s, double, double upstream) const {
    return dice_gradient(s, smooth, upstream);
  }
  __device__ float gradient(std::size_t i, const Affine& g) const { return g.at(t[i]); }
};

struct NegLogIou {
  static constexpr int kSums = 3, kGradSums = 3;
  const float* p;
  const float* t;
  double smooth;
  __device__ void add(std::size_t i, Sums<3>& acc) const {
    add_overlap(double(p[i]), double(t[i]), acc, 0);
  }
  __device__ double value(const Sums<3>& s, double) const {
    return -log((s.v[0] + smooth) / (s.v[1] + s.v[2] - s.v[0] + smooth));
  }
  __device__ void add_grad(std::size_t i, Sums<3>& acc) const { add(i, acc); }
  // dL/dp_i = (1 - t_i) / den - t_i / num = 1 / den - (1 / den + 1 / num) t_i.
  __device__ Affine coefficients(const Sums<3>& s, double, double upstream) const {
    const double num = s.v[0] + smooth, den = s.v[1] + s.v[2] - s.v[0] + smooth;
    return {float(upstream / den), float(upstream * (1 / den + 1 / num))};
  }
  __device__ float gradient(std::size_t i, const Affine& g) const { return g.at(t[i]); }
};

// BCE on the logits plus Dice on their sigmoid; the Dice part reaches z through p (1 - p).
struct BceDice {
  static constexpr int kSums = 4, kGradSums = 3;
  const float* z;
  const float* t;
  double smooth;
  struct Coefficients {
    float bce;
    Affine dice;
  };
  __device__ void add(std::size_t i, Sums<4>& acc) const {
    const float zi = z[i], ti = t[i];
    acc.v[0] += bce_term(zi, ti);
    add_overlap(double(sigmoid(zi)), double(ti), acc, 1);
  }
  __device__ double value(const Sums<4>& s, double count) const {
    return s.v[0] / count + soft_dice(s, 1, smooth);
  }
  __device__ void add_grad(std::size_t i, Sums<3>& acc) const {
    add_overlap(double(sigmoid(z[i])), double(t[i]), acc, 0);
  }
  __device__ Coefficients coefficients(const Sums<3>& s, double count, double upstream) const {
    return {float(upstream / count), dice_gradient(s, smooth, upstream)};
  }
  __device__ float gradient(std::size_t i, const Coefficients& g) const {
    const float p = sigmoid(z[i]), ti = t[i];
    return g.bce * (p - ti) + g.dice.at(ti) * p * (1.0f - p);
  }
};

// Single block of kReduceThreads: the fused forward reduction.
template <typename Loss>
__global__ void loss_forward_kernel(std::size_t count, Loss loss, float* __restrict__ out) {
  __shared__ Sums<Loss::kSums> scratch[kReduceWarps + 1];
  Sums<Loss::kSums> acc{};
  for (std::size_t i = threadIdx.x; i < count; i += kReduceThreads) loss.add(i, acc);
  const Sums<Loss::kSums> total = block_sum<kReduceThreads>(acc, scratch);
  if (threadIdx.x == 0) out[0] = float(loss.value(total, double(count)));
}

// kGradSums == 0: any grid, grid-stride. Otherwise a single block of kReduceThreads that reduces
// the sums, shares them through shared memory (block_sum returns them to every thread after its
// final barrier), then writes dinput.
template <typename Loss>
__global__ void loss_backward_kernel(std::size_t count, Loss loss, const float* __restrict__ dloss,
                                     float* __restrict__ dinput) {
  const double upstream = double(dloss[0]);
  if constexpr (Loss::kGradSums == 0) {
    const auto k = loss.coefficients(double(count), upstream);
    const std::size_t stride = std::size_t(gridDim.x) * blockDim.x;
    for (std::size_t i = std::size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < count;
         i += stride)
      dinput[i] = loss.gradient(i, k);
  } else {
    __shared__ Sums<Loss::kGradSums> scratch[kReduceWarps + 1];
    Sums<Loss::kGradSums> acc{};
    for (std::size_t i = threadIdx.x; i < count; i += kReduceThreads) loss.add_grad(i, acc);
    const Sums<Loss::kGradSums> total = block_sum<kReduceThreads>(acc, scratch);
    const auto k = loss.coefficients(total, double(count), upstream);
    for (std::size_t i = threadIdx.x; i < count; i += kReduceThreads)
      dinput[i] = loss.gradient(i, k);
  }
}

template <typename Loss>
void launch_forward(std::size_t count, const Loss& loss, float* out, cudaStream_t stream,
                    const char* name) {
  auto* kernel = &loss_forward_kernel<Loss>;
  UNET_LAUNCH(kernel, dim3(1), dim3(kReduceThreads), 0, stream)(count, loss, out);
  detail::check_launch(__FILE__, __LINE__, name);
}

template <typename Loss>
void launch_backward(std::size_t count, const Loss& loss, const float* dloss, float* dinput,
                     cudaStream_t stream, const char* name) {
  if (count == 0) return;
  auto* kernel = &loss_backward_kernel<Loss>;
  if constexpr (Loss::kGradSums == 0) {
    const dim3 grid(detail::grid_blocks(count, kElementwiseThreads, kMaxBlocks));
    UNET_LAUNCH(kernel, grid, dim3(kElementwiseThreads), 0, stream)(count, loss, dloss, dinput);
  } else {
    UNET_LAUNCH(kernel, dim3(1), dim3(kReduceThreads), 0, stream)(count, loss, dloss, dinput);
  }
  detail::check_launch(__FILE__, __LINE__, name);
}

}  // namespace

void sum(std::size_t count, const float* x, float* out, cudaStream_t stream) {
  launch_forward(count, FlatSum{x}, out, stream, "sum");
}

void loss_forward(LossKind kind, std::size_t count, const float* input, const float* target,
                  float smooth, float* out, cudaStream_t stream) {
  const double s = double(smooth);
  switch (kind) {
    case LossKind::MSE: return launch_forward(count, Mse{input, target}, out, stream, "mse");
    case LossKind::BCE: return launch_forward(count, Bce{input, target}, out, stream, "bce");
    case LossKind::Dice:
      return launch_forward(count, Dice{input, target, s}, out, stream, "soft_dice");
    case LossKind::BCEDice:
      return launch_forward(count, BceDice{input, target, s}, out, stream, "bce_dice");
    case LossKind::NegLogIoU:
      return launch_forward(count, NegLogIou{input, target, s}, out, stream, "neg_log_iou");
  }
  throw std::invalid_argument("loss_forward: unknown loss kind");
}

void loss_backward(LossKind kind, std::size_t count, const float* input, const float* target,
                   float smooth, const float* dloss, float* dinput, cudaStream_t stream) {
  const double s = double(smooth);
  switch (kind) {
    case LossKind::MSE:
      return launch_backward(count, Mse{input, target}, dloss, dinput, stream, "mse");
    case LossKind::BCE:
      return launch_backward(count, Bce{input, target}, dloss, dinput, stream, "bce");
    case LossKind::Dice:
      return launch_backward(count, Dice{input, target, s}, dloss, dinput, stream, "soft_dice");
    case LossKind::BCEDice:
      return launch_backward(count, BceDice{input, target, s}, dloss, dinput, stream, "bce_dice");
    case LossKind::NegLogIoU:
      return launch_backward(count, NegLogIou{input, target, s}, dloss, dinput, stream,
                             "neg_log_iou");
  }
  throw std::invalid_argument("loss_backward: unknown loss kind");
}

}  // namespace unet::UNET_CUDA_NS
