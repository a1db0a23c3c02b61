// CPU segmentation losses (see loss.h for the formulas) and their gradients.
//
// Every sum is a blocked double sum (reduce.h), so a loss does not depend on the thread count.
// Gradients are computed per element in double and rounded once.
#include "kernels/cpu/loss.h"

#include <array>
#include <cmath>

#include "kernels/cpu/reduce.h"

namespace unet::cpu {
namespace {

using detail::blocked_sums;
using detail::for_each_index;

double sigmoid(double z) {
  const double e = std::exp(-std::abs(z));
  return z >= 0 ? 1 / (1 + e) : e / (1 + e);
}

// max(z, 0) - z t + log(1 + exp(-|z|)): exp never overflows and log1p keeps the tiny tail.
double bce_term(double z, double t) {
  return std::max(z, 0.0) - z * t + std::log1p(std::exp(-std::abs(z)));
}

// The overlap sums shared by dice and IoU: sum(p t), sum(p), sum(t), with p = prob(i).
struct Overlap {
  double pt, p, t;
};

template <typename T, typename Prob>
Overlap overlap_sums(std::size_t count, const T* t, Prob prob) {
  const auto s = blocked_sums<3>(count, [&](std::size_t i, std::array<double, 3>& acc) {
    const double p = prob(i), ti = double(t[i]);
    acc[0] += p * ti;
    acc[1] += p;
    acc[2] += ti;
  });
  return {s[0], s[1], s[2]};
}

double soft_dice(const Overlap& o, double smooth) {
  return 1 - (2 * o.pt + smooth) / (o.p + o.t + smooth);
}

// Quotient rule on 1 - num/den with num = 2 sum(pt) + s, den = sum(p) + sum(t) + s:
// d/dp_i = (num - 2 t_i den) / den^2.
struct DiceGrad {
  double num, den;
  double at(double t) const { return (num - 2 * t * den) / (den * den); }
};

DiceGrad dice_grad(const Overlap& o, double smooth) {
  return {2 * o.pt + smooth, o.p + o.t + smooth};
}

template <typename T>
auto identity_prob(const T* p) {
  return [p](std::size_t i) { return double(p[i]); };
}

template <typename T>
auto sigmoid_prob(const T* z) {
  return [z](std::size_t i) { return sigmoid(double(z[i])); };
}

}  // namespace

template <typename T>
double mse_forward(std::size_t count, const T* p, const T* t) {
  const auto s = blocked_sums<1>(count, [&](std::size_t i, std::array<double, 1>& acc) {
    const double d = double(p[i]) - double(t[i]);
    acc[0] += d * d;
  });
  return s[0] / double(count);
}

template <typename T>
void mse_backward(std::size_t count, const T* p, const T* t, T dloss, T* dp) {
  const double k = 2 * double(dloss) / double(count);
  for_each_index(count, [&](std::size_t i) { dp[i] = T(k * (double(p[i]) - double(t[i]))); });
}

template <typename T>
double bce_with_logits_forward(std::size_t count, const T* z, const T* t) {
  const auto s = blocked_sums<1>(count, [&](std::size_t i, std::array<double, 1>& acc) {
    acc[0] += bce_term(double(z[i]), double(t[i]));
  });
  return s[0] / double(count);
}

template <typename T>
void bce_with_logits_backward(std::size_t count, const T* z, const T* t, T dloss, T* dz) {
  const double k = double(dloss) / double(count);
  for_each_index(count,
                 [&](std::size_t i) { dz[i] = T(k * (sigmoid(double(z[i])) - double(t[i]))); });
}

template <typename T>
double soft_dice_forward(std::size_t count, const T* p, const T* t, T smooth) {
  return soft_dice(overlap_sums(count, t, identity_prob(p)), double(smooth));
}

template <typename T>
void soft_dice_backward(std::size_t count, const T* p, const T* t, T smooth, T dloss, T* dp) {
  const DiceGrad g = dice_grad(overlap_sums(count, t, identity_prob(p)), double(smooth));
  for_each_index(count, [&](std::size_t i) { dp[i] = T(double(dloss) * g.at(double(t[i]))); });
}

template <typename T>
double neg_log_iou_forward(std::size_t count, const T* p, const T* t, T smooth) {
  const Overlap o = overlap_sums(count, t, identity_prob(p));
  const double s = double(smooth);
  return -std::log((o.pt + s) / (o.p + o.t - o.pt + s));
}

// L = log(den) - log(num), num = sum(pt) + s, den = sum(p) + sum(t) - sum(pt) + s:
// dL/dp_i = (1 - t_i) / den - t_i / num.
template <typename T>
void neg_log_iou_backward(std::size_t count, const T* p, const T* t, T smooth, T dloss, T* dp) {
  const Overlap o = overlap_sums(count, t, identity_prob(p));
  const double s = double(smooth);
  const double num = o.pt + s, den = o.p + o.t - o.pt + s;
  for_each_index(count, [&](std::size_t i) {
    const double ti = double(t[i]);
    dp[i] = T(double(dloss) * ((1 - ti) / den - ti / num));
  });
}

template <typename T>
double bce_dice_forward(std::size_t count, const T* z, const T* t, T smooth) {
  return bce_with_logits_forward(count, z, t) +
         soft_dice(overlap_sums(count, t, sigmoid_prob(z)), double(smooth));
}

// The dice part reaches z through the sigmoid: d/dz = d/dp * p (1 - p).
template <typename T>
void bce_dice_backward(std::size_t count, const T* z, const T* t, T smooth, T dloss, T* dz) {
  const DiceGrad g = dice_grad(overlap_sums(count, t, sigmoid_prob(z)), double(smooth));
  const double k_bce = 1 / double(count);
  for_each_index(count, [&](std::size_t i) {
    const double p = sigmoid(double(z[i])), ti = double(t[i]);
    dz[i] = T(double(dloss) * (k_bce * (p - ti) + g.at(ti) * p * (1 - p)));
  });
}

#define UNET_INSTANTIATE(T)                                                          \
  template double mse_forward<T>(std::size_t, const T*, const T*);                   \
  template void mse_backward<T>(std::size_t, const T*, const T*, T, T*);             \
  template double bce_with_logits_forward<T>(std::size_t, const T*, const T*);       \
  template void bce_with_logits_backward<T>(std::size_t, const T*, const T*, T, T*); \
  template double soft_dice_forward<T>(std::size_t, const T*, const T*, T);          \
  template void soft_dice_backward<T>(std::size_t, const T*, const T*, T, T, T*);    \
  template double neg_log_iou_forward<T>(std::size_t, const T*, const T*, T);        \
  template void neg_log_iou_backward<T>(std::size_t, const T*, const T*, T, T, T*);  \
  template double bce_dice_forward<T>(std::size_t, const T*, const T*, T);           \
  template void bce_dice_backward<T>(std::size_t, const T*, const T*, T, T, T*);
UNET_INSTANTIATE(float)
UNET_INSTANTIATE(double)
#undef UNET_INSTANTIATE

}  // namespace unet::cpu
