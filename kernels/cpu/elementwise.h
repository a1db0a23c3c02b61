// CPU elementwise kernels and reductions over flat arrays.
//
// Reductions accumulate in double over fixed-size blocks combined in a fixed order, so their
// result does not depend on the number of threads.
#pragma once

#include <cstddef>

namespace unet::cpu {

template <typename T> void fill(std::size_t count, T value, T* y);
template <typename T> void add(std::size_t count, const T* a, const T* b, T* y);
template <typename T> void mul(std::size_t count, const T* a, const T* b, T* y);
template <typename T> void scale(std::size_t count, const T* a, T s, T* y);
// y += a (gradient accumulation).
template <typename T> void accumulate(std::size_t count, const T* a, T* y);
template <typename T> double sum(std::size_t count, const T* x);

template <typename T> void relu_forward(std::size_t count, const T* x, T* y);
// Uses the output y for the mask: dx = dy where y > 0.
template <typename T> void relu_backward(std::size_t count, const T* dy, const T* y, T* dx);
template <typename T> void sigmoid_forward(std::size_t count, const T* x, T* y);
template <typename T> void sigmoid_backward(std::size_t count, const T* dy, const T* y, T* dx);

}  // namespace unet::cpu
