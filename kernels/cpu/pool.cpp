// CPU 2x2 stride-2 max pooling, forward (with the winning position) and backward.
//
// Planes (one per image and channel) are independent, so OpenMP splits over the N*C planes.
#include "kernels/cpu/pool.h"

#include <algorithm>
#include <cmath>

namespace unet::cpu {
namespace {

// Window position 0..3 (row-major) of the winner: the first maximum, unless a NaN is present, in
// which case the first NaN, so that the NaN reaches the output.
template <typename T>
uint8_t window_argmax(const T (&v)[4]) {
  uint8_t best = 0;
  for (uint8_t k = 1; k < 4; ++k) {
    const bool beats = v[k] > v[best] || (std::isnan(v[k]) && !std::isnan(v[best]));
    if (beats) best = k;
  }
  return best;
}

// Offset of window position k from the window's top-left input, in a row of width w.
std::size_t window_offset(uint8_t k, int w) { return std::size_t(k >> 1) * w + (k & 1); }

}  // namespace

template <typename T>
void maxpool2x2_forward(const Pool2dShape& s, const T* x, T* y, uint8_t* argmax) {
  const int planes = s.n * s.c, ho = s.h_out(), wo = s.w_out();
  const std::size_t in_plane = std::size_t(s.h_in) * s.w_in, out_plane = std::size_t(ho) * wo;
#pragma omp parallel for schedule(static)
  for (int p = 0; p < planes; ++p) {
    const T* xp = x + p * in_plane;
    for (int oh = 0; oh < ho; ++oh) {
      for (int ow = 0; ow < wo; ++ow) {
        const T* top_left = xp + std::size_t(2 * oh) * s.w_in + 2 * ow;
        const T v[4] = {top_left[0], top_left[1], top_left[s.w_in], top_left[s.w_in + 1]};
        const uint8_t k = window_argmax(v);
        const std::size_t o = p * out_plane + std::size_t(oh) * wo + ow;
        y[o] = v[k];
        argmax[o] = k;
      }
    }
  }
}

template <typename T>
void maxpool2x2_backward(const Pool2dShape& s, const T* dy, const uint8_t* argmax, T* dx) {
  const int planes = s.n * s.c, ho = s.h_out(), wo = s.w_out();
  const std::size_t in_plane = std::size_t(s.h_in) * s.w_in, out_plane = std::size_t(ho) * wo;
#pragma omp parallel for schedule(static)
  for (int p = 0; p < planes; ++p) {
    T* dxp = dx + p * in_plane;
    std::fill_n(dxp, in_plane, T(0));
    for (int oh = 0; oh < ho; ++oh) {
      for (int ow = 0; ow < wo; ++ow) {
        const std::size_t o = p * out_plane + std::size_t(oh) * wo + ow;
        const std::size_t top_left = std::size_t(2 * oh) * s.w_in + 2 * ow;
        dxp[top_left + window_offset(argmax[o], s.w_in)] = dy[o];
      }
    }
  }
}

#define UNET_INSTANTIATE(T)                                                        \
  template void maxpool2x2_forward<T>(const Pool2dShape&, const T*, T*, uint8_t*); \
  template void maxpool2x2_backward<T>(const Pool2dShape&, const T*, const uint8_t*, T*);
UNET_INSTANTIATE(float)
UNET_INSTANTIATE(double)
#undef UNET_INSTANTIATE

}  // namespace unet::cpu
