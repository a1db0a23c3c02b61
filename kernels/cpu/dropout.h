// CPU inverted dropout: y = x * mask / (1 - p) with mask[i] = (u_i >= p), where u_i is element i
// of the Philox stream (seed, offset) (kernels/philox.h). The same (seed, offset) gives the same
// mask on every backend and for any thread count.
#pragma once

#include <cstddef>
#include <cstdint>

namespace unet::cpu {

template <typename T>
void dropout_forward(std::size_t count, T p, uint64_t seed, uint64_t offset, const T* x, T* y,
                     uint8_t* mask);
template <typename T>
void dropout_backward(std::size_t count, T p, const T* dy, const uint8_t* mask, T* dx);

}  // namespace unet::cpu
