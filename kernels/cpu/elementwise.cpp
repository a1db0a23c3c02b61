// CPU elementwise kernels and the flat-array sum.
//
// Loops are plain so that the compiler vectorises them; OpenMP splits them only when the array is
// large enough to repay starting the threads. The sum is a blocked double sum (reduce.h), so its
// value does not depend on the number of threads.
#include "kernels/cpu/elementwise.h"

#include <array>
#include <cmath>

#include "kernels/cpu/reduce.h"

namespace unet::cpu {
using detail::for_each_index;

template <typename T>
void fill(std::size_t count, T value, T* y) {
  for_each_index(count, [=](std::size_t i) { y[i] = value; });
}

template <typename T>
void add(std::size_t count, const T* a, const T* b, T* y) {
  for_each_index(count, [=](std::size_t i) { y[i] = a[i] + b[i]; });
}

template <typename T>
void mul(std::size_t count, const T* a, const T* b, T* y) {
  for_each_index(count, [=](std::size_t i) { y[i] = a[i] * b[i]; });
}

template <typename T>
void scale(std::size_t count, const T* a, T s, T* y) {
  for_each_index(count, [=](std::size_t i) { y[i] = a[i] * s; });
}

template <typename T>
void accumulate(std::size_t count, const T* a, T* y) {
  for_each_index(count, [=](std::size_t i) { y[i] += a[i]; });
}

template <typename T>
double sum(std::size_t count, const T* x) {
  return detail::blocked_sums<1>(count, [=](std::size_t i, std::array<double, 1>& acc) { acc[0] += double(x[i]); })[0];
}

// Written as "negative -> 0" rather than "positive -> x" so that a NaN propagates instead of
// being silently zeroed. batchnorm.cpp's fused ReLU uses the same expression, which keeps the two
// paths bitwise identical.
template <typename T>
void relu_forward(std::size_t count, const T* x, T* y) {
  for_each_index(count, [=](std::size_t i) { y[i] = x[i] < T(0) ? T(0) : x[i]; });
}

template <typename T>
void relu_backward(std::size_t count, const T* dy, const T* y, T* dx) {
  for_each_index(count, [=](std::size_t i) { dx[i] = y[i] > T(0) ? dy[i] : T(0); });
}

// exp(-|x|) never overflows, and both branches are formed from it: sigmoid(x) = 1 / (1 + e) for
// x >= 0 and e / (1 + e) for x < 0, so +-100 (or +-inf) give 1 and a tiny positive number.
template <typename T>
void sigmoid_forward(std::size_t count, const T* x, T* y) {
  for_each_index(count, [=](std::size_t i) {
    const T e = std::exp(-std::abs(x[i]));
    const T r = T(1) / (T(1) + e);
    y[i] = x[i] >= T(0) ? r : e * r;
  });
}

template <typename T>
void sigmoid_backward(std::size_t count, const T* dy, const T* y, T* dx) {
  for_each_index(count, [=](std::size_t i) { dx[i] = dy[i] * y[i] * (T(1) - y[i]); });
}

#define UNET_INSTANTIATE(T)                                            \
  template void fill<T>(std::size_t, T, T*);                           \
  template void add<T>(std::size_t, const T*, const T*, T*);           \
  template void mul<T>(std::size_t, const T*, const T*, T*);           \
  template void scale<T>(std::size_t, const T*, T, T*);                \
  template void accumulate<T>(std::size_t, const T*, T*);              \
  template double sum<T>(std::size_t, const T*);                       \
  template void relu_forward<T>(std::size_t, const T*, T*);            \
  template void relu_backward<T>(std::size_t, const T*, const T*, T*); \
  template void sigmoid_forward<T>(std::size_t, const T*, T*);         \
  template void sigmoid_backward<T>(std::size_t, const T*, const T*, T*);
UNET_INSTANTIATE(float)
UNET_INSTANTIATE(double)
#undef UNET_INSTANTIATE

}  // namespace unet::cpu
