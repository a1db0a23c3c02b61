// CPU batch normalisation (training and inference), optionally fused with the ReLU after it.
//
// One thread owns each channel and walks its N planes in order, so every per-channel sum is
// accumulated in double in a fixed order: results are bitwise identical for any thread count.
// The fused ReLU uses relu_forward's and relu_backward's exact expressions, so fused and unfused
// results agree bit for bit.
#include "kernels/cpu/batchnorm.h"

#include <cmath>
#include <stdexcept>

namespace unet::cpu {
namespace {

// Calls f(i) for every flat index i of channel c: the channel is N contiguous planes of hw.
template <typename F>
void for_channel(const BatchNormShape& s, int c, F f) {
  for (int n = 0; n < s.n; ++n) {
    const std::size_t start = (std::size_t(n) * s.c + c) * s.hw;
    const std::size_t end = start + s.hw;
    for (std::size_t i = start; i < end; ++i) f(i);
  }
}

struct Moments {
  double mean, var;  // var is biased (divided by N * HW)
};

// Mean first, then the mean squared deviation: unlike E[x^2] - E[x]^2 this does not cancel
// catastrophically when the mean is large compared with the spread.
template <typename T>
Moments channel_moments(const BatchNormShape& s, int c, const T* x) {
  const double count = double(s.per_channel());
  double total = 0;
  for_channel(s, c, [&](std::size_t i) { total += double(x[i]); });
  const double mean = total / count;
  double squares = 0;
  for_channel(s, c, [&](std::size_t i) {
    const double d = double(x[i]) - mean;
    squares += d * d;
  });
  return {mean, squares / count};
}

template <typename T>
void normalise_channel(const BatchNormShape& s, int c, const T* x, double mean, double invstd,
                       T gamma, T beta, bool relu, T* y) {
  const double scale = double(gamma) * invstd;
  for_channel(s, c, [&](std::size_t i) {
    const T v = T((double(x[i]) - mean) * scale + double(beta));
    y[i] = relu && v < T(0) ? T(0) : v;
  });
}

// The gradient reaching the normalisation's output: dy, zeroed where the ReLU was off.
template <typename T>
double masked_dy(const T* dy, const T* y, std::size_t i, bool relu) {
  return relu && !(y[i] > T(0)) ? 0.0 : double(dy[i]);
}

struct GradSums {
  double dy = 0, dy_xhat = 0;  // sum(dy') and sum(dy' * xhat): dbeta and dgamma
};

template <typename T>
GradSums channel_grad_sums(const BatchNormShape& s, int c, const T* dy, const T* x, const T* y,
                           double mean, double invstd, bool relu) {
  GradSums g;
  for_channel(s, c, [&](std::size_t i) {
    const double d = masked_dy(dy, y, i, relu);
    g.dy += d;
    g.dy_xhat += d * (double(x[i]) - mean) * invstd;
  });
  return g;
}

double inverse_std(double var, double eps) { return 1.0 / std::sqrt(var + eps); }

}  // namespace

template <typename T>
void batchnorm_forward_train(const BatchNormShape& s, const T* x, const T* gamma, const T* beta,
                             T eps, T momentum, T* running_mean, T* running_var, T* y, T* save_mean,
                             T* save_invstd, bool relu) {
  // The unbiased variance divides by N * HW - 1.
  if (s.per_channel() < 2)
    throw std::invalid_argument("batchnorm_forward_train: needs at least 2 values per channel");
  const double count = double(s.per_channel());
  const double mom = double(momentum);
#pragma omp parallel for schedule(static)
  for (int c = 0; c < s.c; ++c) {
    const Moments mo = channel_moments(s, c, x);
    const double invstd = inverse_std(mo.var, double(eps));
    normalise_channel(s, c, x, mo.mean, invstd, gamma[c], beta[c], relu, y);
    save_mean[c] = T(mo.mean);
    save_invstd[c] = T(invstd);
    running_mean[c] = T((1 - mom) * double(running_mean[c]) + mom * mo.mean);
    running_var[c] = T((1 - mom) * double(running_var[c]) + mom * mo.var * count / (count - 1));
  }
}

template <typename T>
void batchnorm_forward_infer(const BatchNormShape& s, const T* x, const T* gamma, const T* beta,
                             const T* running_mean, const T* running_var, T eps, T* y, bool relu) {
#pragma omp parallel for schedule(static)
  for (int c = 0; c < s.c; ++c) {
    const double invstd = inverse_std(double(running_var[c]), double(eps));
    normalise_channel(s, c, x, double(running_mean[c]), invstd, gamma[c], beta[c], relu, y);
  }
}

// dx = gamma invstd / M * (M dy' - sum(dy') - xhat sum(dy' xhat)), M = N * HW, written with the
// two sums divided by M first.
template <typename T>
void batchnorm_backward_train(const BatchNormShape& s, const T* dy, const T* x, const T* y,
                              const T* gamma, const T* save_mean, const T* save_invstd, T* dx,
                              T* dgamma, T* dbeta, bool relu) {
  const double count = double(s.per_channel());
#pragma omp parallel for schedule(static)
  for (int c = 0; c < s.c; ++c) {
    const double mean = double(save_mean[c]), invstd = double(save_invstd[c]);
    const GradSums g = channel_grad_sums(s, c, dy, x, y, mean, invstd, relu);
    dgamma[c] = T(g.dy_xhat);
    dbeta[c] = T(g.dy);
    const double k = double(gamma[c]) * invstd;
    const double mean_dy = g.dy / count, mean_dy_xhat = g.dy_xhat / count;
    for_channel(s, c, [&](std::size_t i) {
      const double xhat = (double(x[i]) - mean) * invstd;
      dx[i] = T(k * (masked_dy(dy, y, i, relu) - mean_dy - xhat * mean_dy_xhat));
    });
  }
}

template <typename T>
void batchnorm_backward_infer(const BatchNormShape& s, const T* dy, const T* x, const T* y,
                              const T* gamma, const T* running_mean, const T* running_var, T eps,
                              T* dx, T* dgamma, T* dbeta, bool relu) {
#pragma omp parallel for schedule(static)
  for (int c = 0; c < s.c; ++c) {
    const double mean = double(running_mean[c]);
    const double invstd = inverse_std(double(running_var[c]), double(eps));
    const GradSums g = channel_grad_sums(s, c, dy, x, y, mean, invstd, relu);
    dgamma[c] = T(g.dy_xhat);
    dbeta[c] = T(g.dy);
    const double k = double(gamma[c]) * invstd;
    for_channel(s, c, [&](std::size_t i) { dx[i] = T(k * masked_dy(dy, y, i, relu)); });
  }
}

#define UNET_INSTANTIATE(T)                                                                        \
  template void batchnorm_forward_train<T>(const BatchNormShape&, const T*, const T*, const T*, T, \
                                           T, T*, T*, T*, T*, T*, bool);                           \
  template void batchnorm_forward_infer<T>(const BatchNormShape&, const T*, const T*, const T*,    \
                                           const T*, const T*, T, T*, bool);                       \
  template void batchnorm_backward_train<T>(const BatchNormShape&, const T*, const T*, const T*,   \
                                            const T*, const T*, const T*, T*, T*, T*, bool);       \
  template void batchnorm_backward_infer<T>(const BatchNormShape&, const T*, const T*, const T*,   \
                                            const T*, const T*, const T*, T, T*, T*, T*, bool);
UNET_INSTANTIATE(float)
UNET_INSTANTIATE(double)
#undef UNET_INSTANTIATE

}  // namespace unet::cpu
