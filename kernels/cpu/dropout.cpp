// CPU inverted dropout with a Philox mask (see dropout.h and kernels/philox.h).
//
// The mask is a pure function of (seed, offset + i), so splitting the array among threads cannot
// change it. One Philox evaluation gives four words, so the mask is drawn a block at a time and
// each evaluation serves four consecutive elements.
#include "kernels/cpu/dropout.h"

#include <algorithm>
#include <stdexcept>

#include "kernels/cpu/reduce.h"
#include "kernels/philox.h"

namespace unet::cpu {
namespace {

// Elements per unit of parallel work.
constexpr std::size_t kBlock = 4096;
using detail::kParallelMin;

template <typename T>
void check_probability(T p) {
  if (!(p >= T(0) && p < T(1)))
    throw std::invalid_argument("dropout: the drop probability p must lie in [0, 1)");
}

// mask[i] = (u_i >= p) for i in [begin, end), u_i element i of the stream (seed, offset): the
// same numbers as kernels::philox_uniform_at, one Philox evaluation per counter.
template <typename T>
void draw_mask(std::size_t begin, std::size_t end, T p, uint64_t seed, uint64_t offset,
               uint8_t* mask) {
  std::size_t i = begin;
  while (i < end) {
    const uint64_t element = offset + i;
    const kernels::Philox4 r = kernels::philox4x32_10(element >> 2, seed);
    for (uint64_t word = element & 3; word < 4 && i < end; ++word, ++i)
      mask[i] = kernels::philox_uniform(r.v[word]) >= p;
  }
}

}  // namespace

template <typename T>
void dropout_forward(std::size_t count, T p, uint64_t seed, uint64_t offset, const T* x, T* y,
                     uint8_t* mask) {
  check_probability(p);
  if (p == T(0)) {
    std::copy_n(x, count, y);
    std::fill_n(mask, count, uint8_t(1));
    return;
  }
  const T keep_scale = T(1) / (T(1) - p);
#pragma omp parallel for schedule(static) if (count >= kParallelMin)
  for (std::size_t begin = 0; begin < count; begin += kBlock) {
    const std::size_t end = std::min(count, begin + kBlock);
    draw_mask(begin, end, p, seed, offset, mask);
    for (std::size_t i = begin; i < end; ++i) y[i] = mask[i] ? x[i] * keep_scale : T(0);
  }
}

template <typename T>
void dropout_backward(std::size_t count, T p, const T* dy, const uint8_t* mask, T* dx) {
  check_probability(p);
  const T keep_scale = T(1) / (T(1) - p);
#pragma omp parallel for simd schedule(static) if (count >= kParallelMin)
  for (std::size_t i = 0; i < count; ++i) dx[i] = mask[i] ? dy[i] * keep_scale : T(0);
}

#define UNET_INSTANTIATE(T)                                                                     \
  template void dropout_forward<T>(std::size_t, T, uint64_t, uint64_t, const T*, T*, uint8_t*); \
  template void dropout_backward<T>(std::size_t, T, const T*, const uint8_t*, T*);
UNET_INSTANTIATE(float)
UNET_INSTANTIATE(double)
#undef UNET_INSTANTIATE

}  // namespace unet::cpu
