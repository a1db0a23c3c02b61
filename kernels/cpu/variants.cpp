#include "kernels/cpu/variants.h"

#include <algorithm>
#include <array>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <stdexcept>

#include "kernels/cpu/adam.h"
#include "kernels/cpu/batchnorm.h"
#include "kernels/cpu/batchnorm_simd.h"
#include "kernels/cpu/concat.h"
#include "kernels/cpu/conv.h"
#include "kernels/cpu/conv_direct.h"
#include "kernels/cpu/conv_transpose_fused.h"
#include "kernels/cpu/conv_winograd.h"
#include "kernels/cpu/dropout.h"
#include "kernels/cpu/dropout_avx512.h"
#include "kernels/cpu/elementwise.h"
#include "kernels/cpu/loss.h"
#include "kernels/cpu/pool.h"

namespace unet::cpu {
namespace {

template <Kernel K>
Variant entry(const char* name, Isa isa, bool reference, const char* summary, typename Signature<K>::Fn fn,
              bool (*handles)(const KernelCall&) = nullptr, bool (*preferred)(const KernelCall&) = nullptr) {
  return {K, name, isa, reference, summary, handles, preferred, reinterpret_cast<void (*)()>(fn)};
}

bool stride_one(const KernelCall& c) { return direct::supports(c.conv); }
// Where the rule picks the direct convolutions (measured in docs/BENCHMARKS.md): not on a 1x1
// kernel, a plain GEMM that im2col_gemm runs without a column matrix while the direct kernels
// first copy the input into their padded buffer.
bool not_1x1(const KernelCall& c) { return c.conv.kh * c.conv.kw > 1; }
// The AVX2 weight gradient also loses to the GEMM on the 30x30 and 15x15 planes of the deep
// layers, where its per-tile horizontal sums and L2 traffic weigh most.
bool large_plane_not_1x1(const KernelCall& c) {
  return not_1x1(c) && std::size_t(c.conv.h_out) * std::size_t(c.conv.w_out) > 30 * 30;
}
bool winograd_handles(const KernelCall& c) { return winograd::supports(c.conv); }
// Where the rule picks Winograd over the direct kernels (single-thread timings of the model's
// shapes at batch 1 and 6, docs/KERNELS.md): its transforms cost per channel what its multiply
// saves per pair of channels, so it needs channels on both sides. AVX-512 wins from 16 x 16
// (1.0-1.15x at 16 -> 16 on 240x240, 1.25-2x from 32 channels) and loses 1.2-1.8x on the
// 3-channel image layer; AVX2, with half the lanes for the transforms, loses up to 1.2x at
// 16 -> 16 and wins from 16 -> 32.
bool winograd_avx512_preferred(const KernelCall& c) { return std::min(c.conv.c_in, c.conv.c_out) >= 16; }
bool winograd_avx2_preferred(const KernelCall& c) {
  return winograd_avx512_preferred(c) && std::max(c.conv.c_in, c.conv.c_out) >= 32;
}
// A variant the rule never picks, there to be forced and studied (`unet kernels`: "forced").
bool never(const KernelCall&) { return false; }
bool fused_handles(const KernelCall& c) { return fused::supports(c.conv_t); }
// Where the rule picks the fused transposed convolutions (bench_kernels, the model's four
// up-convolutions at batch 6, single-thread CPU time, three runs on a shared 2-core Zen 4,
// docs/KERNELS.md). AVX-512, over im2col_gemm: forward 1.2-1.65x, backward-data 1.1-2.6x,
// backward-filter 1.05-1.9x from 30x30 and a tie on 15x15 (0.92-1.15x), so all three everywhere;
// they also beat the old polyphase variants. AVX2, with half the lanes per broadcast weight, wins
// only on the larger planes: forward 1.15-1.3x on 120x120 (0.66-0.95x below), backward-data
// 1.05-1.9x and backward-filter 1.2-1.6x from 60x60 (0.86-1.0x and 0.67-1.1x below).
bool input_plane_at_least(const KernelCall& c, int side) {
  return std::size_t(c.conv_t.h_in) * std::size_t(c.conv_t.w_in) >= std::size_t(side) * std::size_t(side);
}
bool fused_avx2_forward_preferred(const KernelCall& c) { return input_plane_at_least(c, 120); }
bool fused_avx2_backward_preferred(const KernelCall& c) { return input_plane_at_least(c, 60); }
// Where the rule picks the Winograd weight gradient over the direct one (bench_kernels, 2 threads,
// the model's 3x3 shapes at batch 6, three runs side by side, docs/BENCHMARKS.md "Round 3"; the
// single-thread CPU times of docs/KERNELS.md favour it more, but its transforms stream through
// memory and scale worse to two threads). AVX-512: from 32 channels on both sides, 1.05-2x (up to
// 2.4x on the deep layers); with 16 on one side (16 -> 16 and 32 -> 16 on 240x240, 16 -> 32 on
// 120x120) it ties or loses to 0.8x. AVX2: from 64 on both sides, 1.3-1.7x over direct_avx2 and
// im2col_gemm; at 32 channels it loses to 0.7-0.9x. Neither wins on the 3-channel image layer.
bool winograd_filter_avx512_preferred(const KernelCall& c) { return std::min(c.conv.c_in, c.conv.c_out) >= 32; }
bool winograd_filter_avx2_preferred(const KernelCall& c) { return std::min(c.conv.c_in, c.conv.c_out) >= 64; }

void memcpy_bytes(void* dst, const void* src, std::size_t bytes) {
  if (bytes) std::memcpy(dst, src, bytes);
}

void sum_float(std::size_t count, const float* x, float* out) { *out = float(sum(count, x)); }

void scale_by_device_scalar(std::size_t count, const float* a, const float* s, float* y) { scale(count, a, *s, y); }

void loss_forward_any(LossKind kind, std::size_t count, const float* input, const float* target, float smooth,
                      float* out) {
  double loss = 0;
  switch (kind) {
    case LossKind::MSE: loss = mse_forward(count, input, target); break;
    case LossKind::BCE: loss = bce_with_logits_forward(count, input, target); break;
    case LossKind::Dice: loss = soft_dice_forward(count, input, target, smooth); break;
    case LossKind::BCEDice: loss = bce_dice_forward(count, input, target, smooth); break;
    case LossKind::NegLogIoU: loss = neg_log_iou_forward(count, input, target, smooth); break;
  }
  *out = float(loss);
}

void loss_backward_any(LossKind kind, std::size_t count, const float* input, const float* target, float smooth,
                       const float* dloss, float* dinput) {
  switch (kind) {
    case LossKind::MSE: return mse_backward(count, input, target, *dloss, dinput);
    case LossKind::BCE: return bce_with_logits_backward(count, input, target, *dloss, dinput);
    case LossKind::Dice: return soft_dice_backward(count, input, target, smooth, *dloss, dinput);
    case LossKind::BCEDice: return bce_dice_backward(count, input, target, smooth, *dloss, dinput);
    case LossKind::NegLogIoU: return neg_log_iou_backward(count, input, target, smooth, *dloss, dinput);
  }
}

void adam_all(const AdamParams& a, const std::vector<AdamTensor>& tensors) {
  for (const AdamTensor& t : tensors) adam_update(t.count, a, t.param, t.grad, t.m, t.v);
}

constexpr Isa kAny = Isa::Scalar;
constexpr const char* kLoops = "loops";
constexpr const char* kLoopsSummary = "OpenMP loops the compiler vectorises (AVX2)";
constexpr const char* kBnSimdAvx512 = "float sums per run in 16-lane registers, runs merged in double";
constexpr const char* kBnSimdAvx2 = "float sums per run in 8-lane registers, runs merged in double";

// The table. Within a primitive, the order is the order of preference.
std::vector<Variant> make_table() {
  using K = Kernel;
  return {
      entry<K::copy_from_host>("memcpy", kAny, true, "std::memcpy", memcpy_bytes),
      entry<K::copy_to_host>("memcpy", kAny, true, "std::memcpy", memcpy_bytes),
      entry<K::copy>("memcpy", kAny, true, "std::memcpy", memcpy_bytes),
      entry<K::fill>(kLoops, kAny, true, kLoopsSummary, fill<float>),

      entry<K::conv2d_forward>("winograd_avx512", Isa::Avx512, false,
                               "Winograd F(2x2,3x3), AVX-512 transforms and micro-kernel, 3x3 stride 1",
                               winograd::conv2d_forward_avx512, winograd_handles, winograd_avx512_preferred),
      entry<K::conv2d_forward>("winograd_avx2", Isa::Avx2, false,
                               "Winograd F(2x2,3x3), AVX2+FMA transforms and micro-kernel, 3x3 stride 1",
                               winograd::conv2d_forward_avx2, winograd_handles, winograd_avx2_preferred),
      entry<K::conv2d_forward>("direct_avx512", Isa::Avx512, false,
                               "direct conv, register-blocked AVX-512 micro-kernel, stride 1",
                               direct::conv2d_forward_avx512, stride_one, not_1x1),
      entry<K::conv2d_forward>("direct_avx2", Isa::Avx2, false,
                               "direct conv, register-blocked AVX2+FMA micro-kernel, stride 1",
                               direct::conv2d_forward_avx2, stride_one, not_1x1),
      entry<K::conv2d_forward>("im2col_gemm", kAny, true, "im2col bands + Eigen GEMM", conv2d_forward<float>),
      entry<K::conv2d_backward_data>("winograd_avx512", Isa::Avx512, false,
                                     "Winograd F(2x2,3x3) of dy with the flipped kernel, AVX-512, 3x3 stride 1",
                                     winograd::conv2d_backward_data_avx512, winograd_handles,
                                     winograd_avx512_preferred),
      entry<K::conv2d_backward_data>("winograd_avx2", Isa::Avx2, false,
                                     "Winograd F(2x2,3x3) of dy with the flipped kernel, AVX2+FMA, 3x3 stride 1",
                                     winograd::conv2d_backward_data_avx2, winograd_handles,
                                     winograd_avx2_preferred),
      entry<K::conv2d_backward_data>("direct_avx512", Isa::Avx512, false,
                                     "direct conv of dy with the flipped kernel, AVX-512, stride 1",
                                     direct::conv2d_backward_data_avx512, stride_one, not_1x1),
      entry<K::conv2d_backward_data>("direct_avx2", Isa::Avx2, false,
                                     "direct conv of dy with the flipped kernel, AVX2+FMA, stride 1",
                                     direct::conv2d_backward_data_avx2, stride_one, not_1x1),
      entry<K::conv2d_backward_data>("im2col_gemm", kAny, true, "Eigen GEMM W^T dY + col2im",
                                     conv2d_backward_data<float>),
      entry<K::conv2d_backward_filter>("winograd_avx512", Isa::Avx512, false,
                                       "Winograd F(2x2,3x3) weight gradient, AVX-512, 3x3 stride 1",
                                       winograd::conv2d_backward_filter_avx512, winograd_handles,
                                       winograd_filter_avx512_preferred),
      entry<K::conv2d_backward_filter>("winograd_avx2", Isa::Avx2, false,
                                       "Winograd F(2x2,3x3) weight gradient, AVX2+FMA, 3x3 stride 1",
                                       winograd::conv2d_backward_filter_avx2, winograd_handles,
                                       winograd_filter_avx2_preferred),
      entry<K::conv2d_backward_filter>("direct_avx512", Isa::Avx512, false,
                                       "pixel-vectorised weight gradient, AVX-512, stride 1",
                                       direct::conv2d_backward_filter_avx512, stride_one, not_1x1),
      entry<K::conv2d_backward_filter>("direct_avx2", Isa::Avx2, false,
                                       "pixel-vectorised weight gradient, AVX2+FMA, stride 1",
                                       direct::conv2d_backward_filter_avx2, stride_one, large_plane_not_1x1),
      entry<K::conv2d_backward_filter>("im2col_gemm", kAny, true, "im2col bands + Eigen GEMM dY col^T",
                                       conv2d_backward_filter<float>),
      entry<K::conv_transpose2d_forward>("fused_avx512", Isa::Avx512, false,
                                         "3x3 stride 2: all 4 phases in one pass, 9 taps (AVX-512)",
                                         fused::conv_transpose2d_forward_avx512, fused_handles),
      entry<K::conv_transpose2d_forward>("fused_avx2", Isa::Avx2, false,
                                         "3x3 stride 2: all 4 phases in one pass, 9 taps (AVX2+FMA)",
                                         fused::conv_transpose2d_forward_avx2, fused_handles,
                                         fused_avx2_forward_preferred),
      entry<K::conv_transpose2d_forward>("im2col_gemm", kAny, true, "the adjoint of conv2d: GEMM + col2im",
                                         conv_transpose2d_forward<float>),
      entry<K::conv_transpose2d_backward_data>("fused_avx512", Isa::Avx512, false,
                                               "3x3 stride 2: dy split into even/odd columns, 9 taps (AVX-512)",
                                               fused::conv_transpose2d_backward_data_avx512, fused_handles),
      entry<K::conv_transpose2d_backward_data>("fused_avx2", Isa::Avx2, false,
                                               "3x3 stride 2: dy split into even/odd columns, 9 taps (AVX2+FMA)",
                                               fused::conv_transpose2d_backward_data_avx2, fused_handles,
                                               fused_avx2_backward_preferred),
      entry<K::conv_transpose2d_backward_data>("im2col_gemm", kAny, true, "conv2d forward via im2col + GEMM",
                                               conv_transpose2d_backward_data<float>),
      entry<K::conv_transpose2d_backward_filter>("fused_avx512", Isa::Avx512, false,
                                                 "3x3 stride 2: pixel-vectorised over dy phase planes (AVX-512)",
                                                 fused::conv_transpose2d_backward_filter_avx512, fused_handles),
      entry<K::conv_transpose2d_backward_filter>("fused_avx2", Isa::Avx2, false,
                                                 "3x3 stride 2: pixel-vectorised over dy phase planes (AVX2+FMA)",
                                                 fused::conv_transpose2d_backward_filter_avx2, fused_handles,
                                                 fused_avx2_backward_preferred),
      entry<K::conv_transpose2d_backward_filter>("im2col_gemm", kAny, true, "im2col + GEMM",
                                                 conv_transpose2d_backward_filter<float>),

      entry<K::batchnorm_forward_train>("simd_avx512", Isa::Avx512, false, kBnSimdAvx512,
                                        bn_simd::forward_train_avx512),
      entry<K::batchnorm_forward_train>("simd_avx2", Isa::Avx2, false, kBnSimdAvx2, bn_simd::forward_train_avx2),
      entry<K::batchnorm_forward_train>(kLoops, kAny, true, kLoopsSummary, batchnorm_forward_train<float>),
      entry<K::batchnorm_forward_infer>("simd_avx512", Isa::Avx512, false,
                                        "(x - mean) scale + beta, 16 floats a register", bn_simd::forward_infer_avx512),
      entry<K::batchnorm_forward_infer>("simd_avx2", Isa::Avx2, false, "(x - mean) scale + beta, 8 floats a register",
                                        bn_simd::forward_infer_avx2),
      entry<K::batchnorm_forward_infer>(kLoops, kAny, true, kLoopsSummary, batchnorm_forward_infer<float>),
      entry<K::batchnorm_backward_train>("simd_avx512", Isa::Avx512, false, kBnSimdAvx512,
                                         bn_simd::backward_train_avx512),
      entry<K::batchnorm_backward_train>("simd_avx2", Isa::Avx2, false, kBnSimdAvx2, bn_simd::backward_train_avx2),
      entry<K::batchnorm_backward_train>(kLoops, kAny, true, kLoopsSummary, batchnorm_backward_train<float>),
      entry<K::batchnorm_backward_infer>(kLoops, kAny, true, kLoopsSummary, batchnorm_backward_infer<float>),
      entry<K::maxpool2x2_forward>(kLoops, kAny, true, kLoopsSummary, maxpool2x2_forward<float>),
      entry<K::maxpool2x2_backward>(kLoops, kAny, true, kLoopsSummary, maxpool2x2_backward<float>),
      entry<K::dropout_forward>("philox_avx512", Isa::Avx512, false,
                                "16 Philox counters a register, keep bits interleaved by pdep into y and the mask",
                                dropout_forward_avx512),
      entry<K::dropout_forward>(kLoops, kAny, true, "Philox-4x32-10 counters, then the mask", dropout_forward<float>),
      entry<K::dropout_backward>(kLoops, kAny, true, kLoopsSummary, dropout_backward<float>),
      entry<K::concat_channels>(kLoops, kAny, true, "plane copies", concat_channels<float>),
      entry<K::split_channels>(kLoops, kAny, true, "plane copies", split_channels<float>),

      entry<K::add>(kLoops, kAny, true, kLoopsSummary, add<float>),
      entry<K::mul>(kLoops, kAny, true, kLoopsSummary, mul<float>),
      entry<K::scale>(kLoops, kAny, true, kLoopsSummary, scale<float>),
      entry<K::scale_by>(kLoops, kAny, true, kLoopsSummary, scale_by_device_scalar),
      entry<K::accumulate>(kLoops, kAny, true, kLoopsSummary, accumulate<float>),
      entry<K::relu_forward>(kLoops, kAny, true, kLoopsSummary, relu_forward<float>),
      entry<K::relu_backward>(kLoops, kAny, true, kLoopsSummary, relu_backward<float>),
      entry<K::sigmoid_forward>(kLoops, kAny, true, kLoopsSummary, sigmoid_forward<float>),
      entry<K::sigmoid_backward>(kLoops, kAny, true, kLoopsSummary, sigmoid_backward<float>),
      entry<K::sum>(kLoops, kAny, true, "fixed-chunk sums in double", sum_float),
      entry<K::loss_forward>(kLoops, kAny, true, "fused sums in double", loss_forward_any),
      entry<K::loss_backward>(kLoops, kAny, true, "fused sums in double, then the gradient", loss_backward_any),
      entry<K::adam_update>(kLoops, kAny, true, "one pass per parameter array", adam_all),
  };
}

using Forced = std::array<const Variant*, kernels::kKernelCount>;

struct Registry {
  std::vector<Variant> table = make_table();
  std::array<std::vector<const Variant*>, kernels::kKernelCount> by_kernel;
  Forced forced{};

  Registry();
  const Variant* find(Kernel kernel, const std::string& name) const {
    for (const Variant* v : by_kernel[std::size_t(kernel)]) {
      if (name == v->name) return v;
    }
    return nullptr;
  }
};

Registry& registry() {
  static Registry r;
  return r;
}

void check_runs_here(const Variant& v) {
  if (!v.runs_here()) {
    throw std::invalid_argument(std::string(kernels::name(v.kernel)) + ":" + v.name + " needs " + to_string(v.isa) +
                                ", which this CPU (or UNET_ISA) does not allow");
  }
}

Forced parse(const Registry& r, const std::string& spec) {
  Forced forced{};
  std::stringstream items(spec);
  std::string item;
  while (std::getline(items, item, ',')) {
    if (item.empty() || item == "default") continue;
    const std::size_t eq = item.find('=');
    if (eq == std::string::npos) {
      bool any = false;
      for (int k = 0; k < kernels::kKernelCount; ++k) {
        if (const Variant* v = r.find(Kernel(k), item)) {
          check_runs_here(*v);
          forced[std::size_t(k)] = v;
          any = true;
        }
      }
      if (!any) throw std::invalid_argument("no primitive has a CPU variant named '" + item + "' (see `unet kernels`)");
      continue;
    }
    Kernel kernel{};
    const std::string primitive = item.substr(0, eq), name = item.substr(eq + 1);
    if (!kernels::kernel_named(primitive, &kernel)) {
      throw std::invalid_argument("unknown primitive '" + primitive + "' in '" + item + "' (see `unet kernels`)");
    }
    const Variant* v = r.find(kernel, name);
    if (!v) throw std::invalid_argument(primitive + " has no CPU variant named '" + name + "' (see `unet kernels`)");
    check_runs_here(*v);
    forced[std::size_t(kernel)] = v;
  }
  return forced;
}

Registry::Registry() {
  for (const Variant& v : table) by_kernel[std::size_t(v.kernel)].push_back(&v);
  for (int k = 0; k < kernels::kKernelCount; ++k) {
    if (by_kernel[std::size_t(k)].empty()) {
      throw std::logic_error(std::string("kernels/cpu/variants.cpp: no CPU variant of ") + kernels::name(Kernel(k)));
    }
  }
  if (const char* env = std::getenv("UNET_KERNELS")) {
    try {
      forced = parse(*this, env);
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument(std::string("UNET_KERNELS: ") + e.what());
    }
  }
}

}  // namespace

bool ever_preferred(const Variant& v) { return v.preferred != never; }

const std::vector<Variant>& variants() { return registry().table; }

std::vector<const Variant*> variants_of(Kernel kernel) { return registry().by_kernel[std::size_t(kernel)]; }

const Variant& choose(const KernelCall& call) {
  Registry& r = registry();
  const std::size_t k = std::size_t(call.kernel);
  if (const Variant* v = r.forced[k]; v && v->handles_call(call)) return *v;
  for (const Variant* v : r.by_kernel[k]) {
    if (v->runs_here() && v->handles_call(call) && (!v->preferred || v->preferred(call))) return *v;
  }
  throw std::logic_error(std::string("no CPU variant of ") + kernels::name(call.kernel) + " handles " +
                         kernels::describe(call));
}

void force_variant(Kernel kernel, const Variant* variant) {
  if (variant) check_runs_here(*variant);
  registry().forced[std::size_t(kernel)] = variant;
}

void force_variants(const std::string& spec) {
  Registry& r = registry();
  r.forced = parse(r, spec);
}

}  // namespace unet::cpu
