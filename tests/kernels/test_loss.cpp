// Segmentation losses: hand-worked 4-element values, perfect predictions, bce at extreme logits,
// a naive reference across several reduction blocks, thread-count independence, and every
// gradient against finite differences.
#include <omp.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <functional>
#include <vector>

#include "kernels/cpu/loss.h"
#include "tests/support/gradcheck.h"

namespace {

namespace cpu = unet::cpu;
using unet::test::numeric_gradient;
using unet::test::random_vector;
using unet::test::require_close;

using Vec = std::vector<double>;
constexpr double kSmooth = 1.0;

// A loss seen as a function of its first input (probabilities or logits) for fixed targets.
struct Loss {
  const char* name;
  std::function<double(const Vec&, const Vec&)> forward;
  std::function<void(const Vec&, const Vec&, double, Vec&)> backward;
};

std::vector<Loss> all_losses() {
  const auto n = [](const Vec& v) { return v.size(); };
  return {
      {"mse",
       [=](const Vec& p, const Vec& t) { return cpu::mse_forward(n(p), p.data(), t.data()); },
       [=](const Vec& p, const Vec& t, double g, Vec& d) {
         cpu::mse_backward(n(p), p.data(), t.data(), g, d.data());
       }},
      {"bce_with_logits",
       [=](const Vec& z, const Vec& t) {
         return cpu::bce_with_logits_forward(n(z), z.data(), t.data());
       },
       [=](const Vec& z, const Vec& t, double g, Vec& d) {
         cpu::bce_with_logits_backward(n(z), z.data(), t.data(), g, d.data());
       }},
      {"soft_dice",
       [=](const Vec& p, const Vec& t) {
         return cpu::soft_dice_forward(n(p), p.data(), t.data(), kSmooth);
       },
       [=](const Vec& p, const Vec& t, double g, Vec& d) {
         cpu::soft_dice_backward(n(p), p.data(), t.data(), kSmooth, g, d.data());
       }},
      {"neg_log_iou",
       [=](const Vec& p, const Vec& t) {
         return cpu::neg_log_iou_forward(n(p), p.data(), t.data(), kSmooth);
       },
       [=](const Vec& p, const Vec& t, double g, Vec& d) {
         cpu::neg_log_iou_backward(n(p), p.data(), t.data(), kSmooth, g, d.data());
       }},
      {"bce_dice",
       [=](const Vec& z, const Vec& t) {
         return cpu::bce_dice_forward(n(z), z.data(), t.data(), kSmooth);
       },
       [=](const Vec& z, const Vec& t, double g, Vec& d) {
         cpu::bce_dice_backward(n(z), z.data(), t.data(), kSmooth, g, d.data());
       }},
  };
}

const Loss& loss_named(const std::vector<Loss>& losses, const std::string& name) {
  for (const Loss& l : losses)
    if (name == l.name) return l;
  FAIL("no loss " << name);
  return losses.front();
}

// Binary targets, as in segmentation masks.
Vec binary_targets(std::size_t n, uint32_t seed) {
  Vec t = random_vector(n, seed, 0.0, 1.0);
  for (auto& v : t) v = v < 0.4 ? 0.0 : 1.0;
  return t;
}

double sigmoid(double z) { return 1 / (1 + std::exp(-z)); }

}  // namespace

TEST_CASE("losses: hand-worked 4-element values", "[loss]") {
  const auto losses = all_losses();
  const Vec p = {0.9, 0.2, 0.7, 0.1}, z = {2, -1, 0.5, -3}, t = {1, 0, 1, 0};
  // (0.01 + 0.04 + 0.09 + 0.01) / 4
  CHECK(loss_named(losses, "mse").forward(p, t) == Approx(0.0375).epsilon(1e-14));
  // sum(pt) = 1.6, sum(p) = 1.9, sum(t) = 2: 1 - 4.2 / 4.9 = 1/7
  CHECK(loss_named(losses, "soft_dice").forward(p, t) == Approx(1.0 / 7).epsilon(1e-14));
  // -log(2.6 / 3.3)
  CHECK(loss_named(losses, "neg_log_iou").forward(p, t) ==
        Approx(0.23841102344499823).epsilon(1e-14));
  // mean(log(1 + e^-2), log(1 + e^-1), log(1 + e^-0.5), log(1 + e^-3))
  CHECK(loss_named(losses, "bce_with_logits").forward(z, t) ==
        Approx(0.24071350857876103).epsilon(1e-14));
  CHECK(loss_named(losses, "bce_dice").forward(z, t) == Approx(0.4094218840353343).epsilon(1e-14));

  Vec d(4);
  loss_named(losses, "mse").backward(p, t, 1.0, d);
  require_close(d, Vec{-0.05, 0.1, -0.15, 0.05}, 1e-15, 1e-13, "mse gradient");
  loss_named(losses, "bce_with_logits").backward(z, t, 2.0, d);
  require_close(d,
                Vec{2 * -0.02980073050552942, 2 * 0.06723535534249878, 2 * -0.09438516719953635,
                    2 * 0.011856468294391695},
                1e-15, 1e-13, "bce gradient");
}

TEST_CASE("losses: a perfect prediction gives zero dice and iou loss", "[loss]") {
  const std::vector<float> t = {1, 0, 1, 1, 0};
  CHECK(cpu::soft_dice_forward(t.size(), t.data(), t.data(), 1.0f) == 0.0);
  CHECK(cpu::neg_log_iou_forward(t.size(), t.data(), t.data(), 1.0f) == 0.0);
  CHECK(cpu::mse_forward(t.size(), t.data(), t.data()) == 0.0);
}

TEST_CASE("losses: bce with logits is finite and correct at +-100", "[loss]") {
  const std::vector<float> z = {100, -100, 100, -100}, t = {1, 1, 0, 0};
  // Per element: ~0, 100, 100, ~0 (the ~0 terms are log(1 + e^-100) = 3.7e-44).
  const double loss = cpu::bce_with_logits_forward(4, z.data(), t.data());
  CHECK(std::isfinite(loss));
  CHECK(loss == Approx(50.0).epsilon(1e-14));
  std::vector<float> dz(4);
  cpu::bce_with_logits_backward(4, z.data(), t.data(), 1.0f, dz.data());
  require_close(dz, std::vector<float>{0.0f, -0.25f, 0.25f, 0.0f}, 1e-30, 0.0, "gradient");

  // A confident correct logit keeps its tiny loss instead of rounding 1 + e^-40 to 1.
  const double z40 = 40, one = 1;
  CHECK(cpu::bce_with_logits_forward(1, &z40, &one) ==
        Approx(4.248354255291589e-18).epsilon(1e-12));

  const double combined = cpu::bce_dice_forward(4, z.data(), t.data(), 1.0f);
  CHECK(std::isfinite(combined));
  cpu::bce_dice_backward(4, z.data(), t.data(), 1.0f, 1.0f, dz.data());
  for (const float g : dz) CHECK(std::isfinite(g));
}

TEST_CASE("losses: forward matches a naive reference over several blocks", "[loss]") {
  const std::size_t n = 10007;
  const Vec p = random_vector(n, 1, 0.01, 0.99), z = random_vector(n, 2, -5.0, 5.0);
  const Vec t = binary_targets(n, 3);
  double se = 0, bce = 0, pt = 0, ps = 0, ts = 0, spt = 0, sps = 0;
  for (std::size_t i = 0; i < n; ++i) {
    se += (p[i] - t[i]) * (p[i] - t[i]);
    // The textbook form is fine for |z| <= 5.
    bce += -(t[i] * std::log(sigmoid(z[i])) + (1 - t[i]) * std::log(1 - sigmoid(z[i])));
    pt += p[i] * t[i];
    ps += p[i];
    ts += t[i];
    spt += sigmoid(z[i]) * t[i];
    sps += sigmoid(z[i]);
  }
  const auto losses = all_losses();
  const auto value = [&](const char* name, const Vec& x) {
    return loss_named(losses, name).forward(x, t);
  };
  CHECK(value("mse", p) == Approx(se / n).epsilon(1e-12));
  CHECK(value("bce_with_logits", z) == Approx(bce / n).epsilon(1e-12));
  CHECK(value("soft_dice", p) == Approx(1 - (2 * pt + 1) / (ps + ts + 1)).epsilon(1e-12));
  CHECK(value("neg_log_iou", p) == Approx(-std::log((pt + 1) / (ps + ts - pt + 1))).epsilon(1e-12));
  CHECK(value("bce_dice", z) ==
        Approx(bce / n + 1 - (2 * spt + 1) / (sps + ts + 1)).epsilon(1e-12));
}

TEST_CASE("losses: bitwise identical with 1 and 2 threads", "[loss][determinism]") {
  const std::size_t n = 100003;
  const auto z = random_vector<float>(n, 4, -3.0, 3.0);
  const auto t = random_vector<float>(n, 5, 0.0, 1.0);
  const auto run = [&] {
    std::vector<float> dz(n);
    cpu::bce_dice_backward(n, z.data(), t.data(), 1.0f, 1.0f, dz.data());
    return std::make_pair(cpu::bce_dice_forward(n, z.data(), t.data(), 1.0f), dz);
  };
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  const auto one = run();
  omp_set_num_threads(2);
  const auto two = run();
  omp_set_num_threads(saved);
  CHECK(std::memcmp(&one.first, &two.first, sizeof(double)) == 0);
  CHECK(one.second == two.second);
}

TEST_CASE("losses: gradients match finite differences", "[loss][gradient]") {
  const double dloss = 0.7;
  const Vec t = binary_targets(37, 6);
  for (const Loss& l : all_losses()) {
    const bool logits = std::string(l.name).find("bce") != std::string::npos;
    Vec x = logits ? random_vector(t.size(), 7, -4.0, 4.0) : random_vector(t.size(), 8, 0.05, 0.95);
    Vec d(x.size());
    l.backward(x, t, dloss, d);
    require_close(d, numeric_gradient([&] { return dloss * l.forward(x, t); }, x), 1e-6, 1e-5,
                  l.name);
  }
}
