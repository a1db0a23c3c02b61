// The CUDA flat sum and segmentation losses (kernels/cuda/loss.cu) against their CPU twins
// (kernels/cpu/loss.cpp and cpu::sum, float inputs, double results), forward and backward, on
// the U-Net's output sizes (1 x 240 x 240, 2 x 120 x 120, ...), odd sizes, a single element and
// an array just past the elementwise backward's capped grid, with binary and soft targets, and
// logits out to +-60 for the BCE family.
//
// Tolerances: loss values and sums |cuda - cpu| <= 1e-6 + 1e-5 |cpu| (both sum in double; the
// GPU's per-element exp / log1p / sigmoid are float); gradients |cuda - cpu| <= 1e-5 |cpu| +
// 1e-6 max|cpu| + 5e-7 dloss / count (float per-element arithmetic from double coefficients; the
// last term is the float sigmoid's absolute rounding, ~1e-7, where p - t cancels for a confident
// logit, times the per-element scale dloss / count of a mean loss). Outputs are poisoned with
// NaN before each launch, every launch runs twice and must give bitwise equal results, and over
// the emulator every case runs under each ThreadOrder (the forward and the Dice-family backward
// are block reductions).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "kernels/cpu/elementwise.h"
#include "kernels/cpu/loss.h"
#include "tests/support/cuda_test.h"
#include "tests/support/gradcheck.h"

namespace {

namespace cu = unet::UNET_CUDA_NS;
using unet::kernels::LossKind;
using unet::test::DeviceBuffer;
using unet::test::repeat_runs;
using unet::test::random_vector;
using unet::test::require_close;
using Vec = std::vector<float>;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kSmooth = 1.0f;
constexpr float kUpstream = 0.75f;

const char* name(LossKind kind) {
  switch (kind) {
    case LossKind::MSE: return "mse";
    case LossKind::BCE: return "bce_with_logits";
    case LossKind::Dice: return "soft_dice";
    case LossKind::BCEDice: return "bce_dice";
    case LossKind::NegLogIoU: return "neg_log_iou";
  }
  return "?";
}

bool takes_logits(LossKind kind) { return kind == LossKind::BCE || kind == LossKind::BCEDice; }

double cpu_forward(LossKind kind, const Vec& in, const Vec& t) {
  const std::size_t n = in.size();
  switch (kind) {
    case LossKind::MSE: return unet::cpu::mse_forward<float>(n, in.data(), t.data());
    case LossKind::BCE: return unet::cpu::bce_with_logits_forward<float>(n, in.data(), t.data());
    case LossKind::Dice:
      return unet::cpu::soft_dice_forward<float>(n, in.data(), t.data(), kSmooth);
    case LossKind::BCEDice:
      return unet::cpu::bce_dice_forward<float>(n, in.data(), t.data(), kSmooth);
    case LossKind::NegLogIoU:
      return unet::cpu::neg_log_iou_forward<float>(n, in.data(), t.data(), kSmooth);
  }
  return 0;
}

Vec cpu_backward(LossKind kind, const Vec& in, const Vec& t) {
  const std::size_t n = in.size();
  Vec d(n);
  switch (kind) {
    case LossKind::MSE:
      unet::cpu::mse_backward<float>(n, in.data(), t.data(), kUpstream, d.data());
      break;
    case LossKind::BCE:
      unet::cpu::bce_with_logits_backward<float>(n, in.data(), t.data(), kUpstream, d.data());
      break;
    case LossKind::Dice:
      unet::cpu::soft_dice_backward<float>(n, in.data(), t.data(), kSmooth, kUpstream, d.data());
      break;
    case LossKind::BCEDice:
      unet::cpu::bce_dice_backward<float>(n, in.data(), t.data(), kSmooth, kUpstream, d.data());
      break;
    case LossKind::NegLogIoU:
      unet::cpu::neg_log_iou_backward<float>(n, in.data(), t.data(), kSmooth, kUpstream, d.data());
      break;
  }
  return d;
}

// Probabilities in (0, 1), or logits in [-8, 8] with a few at +-60; binary or soft targets.
struct Case {
  Vec input, target;
};

Case make_case(LossKind kind, std::size_t n, bool soft, uint32_t seed) {
  Case c{takes_logits(kind) ? random_vector<float>(n, seed, -8.0, 8.0)
                            : random_vector<float>(n, seed, 0.01, 0.99),
         random_vector<float>(n, seed + 1, 0.0, 1.0)};
  if (!soft)
    for (float& t : c.target) t = t < 0.3f ? 1.0f : 0.0f;  // a minority foreground, like tumours
  if (takes_logits(kind))
    for (std::size_t i = 3; i < n; i += 101) c.input[i] = (i / 101) % 2 ? 60.0f : -60.0f;
  return c;
}

void check(LossKind kind, std::size_t n, bool soft, uint32_t seed) {
  INFO(name(kind) << " count " << n << (soft ? " soft" : " binary") << " targets");
  const Case c = make_case(kind, n, soft, seed);
  const double loss_ref = cpu_forward(kind, c.input, c.target);
  const Vec grad_ref = cpu_backward(kind, c.input, c.target);
  double grad_scale = 0;
  for (const float g : grad_ref) grad_scale = std::max(grad_scale, double(std::abs(g)));

  DeviceBuffer<float> d_in(c.input), d_t(c.target), d_out(1), d_upstream(Vec{kUpstream}),
      d_grad(n);
  repeat_runs([&] {
    const auto forward = [&] {
      d_out.upload(Vec{kNaN});
      cu::loss_forward(kind, n, d_in.get(), d_t.get(), kSmooth, d_out.get(), nullptr);
      return d_out.download();
    };
    const Vec loss = forward();
    INFO("loss " << loss[0] << " expected " << loss_ref);
    REQUIRE(std::abs(double(loss[0]) - loss_ref) <= 1e-6 + 1e-5 * std::abs(loss_ref));
    REQUIRE(std::memcmp(forward().data(), loss.data(), sizeof(float)) == 0);

    const auto backward = [&] {
      d_grad.upload(Vec(n, kNaN));
      cu::loss_backward(kind, n, d_in.get(), d_t.get(), kSmooth, d_upstream.get(), d_grad.get(),
                        nullptr);
      return d_grad.download();
    };
    const Vec grad = backward();
    require_close(grad, grad_ref, 1e-6 * grad_scale + 5e-7 * kUpstream / double(n), 1e-5,
                  "gradient");
    const Vec grad2 = backward();
    REQUIRE(std::memcmp(grad2.data(), grad.data(), n * sizeof(float)) == 0);
  });
}

constexpr LossKind kAllKinds[] = {LossKind::MSE, LossKind::BCE, LossKind::Dice, LossKind::BCEDice,
                                  LossKind::NegLogIoU};

}  // namespace

TEST_CASE("cuda losses: a 1 x 240 x 240 output", "[cuda][loss]") {
  UNET_REQUIRE_GPU();
  uint32_t seed = 10;
  for (const LossKind kind : kAllKinds) check(kind, 240 * 240, false, seed += 10);
}

TEST_CASE("cuda losses: a 2 x 120 x 120 output with soft targets", "[cuda][loss]") {
  UNET_REQUIRE_GPU();
  uint32_t seed = 100;
  for (const LossKind kind : kAllKinds) check(kind, 2 * 120 * 120, true, seed += 10);
}

TEST_CASE("cuda losses: 2 x 15 x 15, odd and single elements", "[cuda][loss]") {
  UNET_REQUIRE_GPU();
  uint32_t seed = 200;
  for (const LossKind kind : kAllKinds) {
    check(kind, 2 * 15 * 15, false, seed += 10);
    check(kind, 7 * 5, true, seed += 10);
    check(kind, 1, false, seed += 10);
  }
}

TEST_CASE("cuda losses: MSE and BCE gradients past the grid cap", "[cuda][loss]") {
  UNET_REQUIRE_GPU();
  // Their backward is a grid-stride loop over kMaxBlocks x kElementwiseThreads = 524288 threads
  // (kernels/cuda/loss.cu): 301 elements more take a second iteration.
  check(LossKind::MSE, 2048 * 256 + 301, true, 300);
  check(LossKind::BCE, 2048 * 256 + 301, false, 310);
}

TEST_CASE("cuda sum: matches the CPU's double sum, deterministically", "[cuda][loss]") {
  UNET_REQUIRE_GPU();
  for (const std::size_t n : {std::size_t(2 * 240 * 240), std::size_t(1001), std::size_t(1),
                              std::size_t(0)}) {
    INFO("count " << n);
    // Offset from zero so that the sum is far from cancelling to nothing.
    const Vec x = random_vector<float>(n, uint32_t(n) + 5, -0.5, 1.5);
    const double ref = unet::cpu::sum<float>(n, x.data());
    double magnitude = 0;
    for (const float v : x) magnitude += std::abs(double(v));
    DeviceBuffer<float> d_x(x), d_out(1);
    repeat_runs([&] {
      const auto run = [&] {
        d_out.upload(Vec{kNaN});
        cu::sum(n, d_x.get(), d_out.get(), nullptr);
        return d_out.download()[0];
      };
      const float s = run();
      INFO("sum " << s << " expected " << ref);
      REQUIRE(std::abs(double(s) - ref) <= 1e-7 * magnitude + 1e-6 * std::abs(ref));
      const float again = run();
      REQUIRE(std::memcmp(&again, &s, sizeof(float)) == 0);
    });
  }
}
