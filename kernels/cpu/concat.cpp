// CPU channel concatenation (the U-Net's skip connections) and its inverse, which is also the
// backward pass: the gradient of [a, b] splits back into the gradients of a and b.
//
// Each (image, output channel) plane is one contiguous copy; OpenMP splits over those planes.
#include "kernels/cpu/concat.h"

#include <immintrin.h>

#include <algorithm>

#include "kernels/cpu/streaming.h"

namespace unet::cpu {
namespace {

// Calls copy(joined, part) with the offsets of each output-channel plane in the joined tensor
// and in whichever of a (part_is_a) or b it belongs to.
template <typename F>
void for_each_plane(const ConcatShape& s, F copy) {
  const int channels = s.c_a + s.c_b, planes = s.n * channels;
#pragma omp parallel
  {
#pragma omp for schedule(static) nowait
    for (int p = 0; p < planes; ++p) {
      const int n = p / channels, c = p % channels;
      const bool in_a = c < s.c_a;
      const std::size_t part_plane =
          in_a ? std::size_t(n) * s.c_a + c : std::size_t(n) * s.c_b + (c - s.c_a);
      copy(std::size_t(p) * s.hw, part_plane * s.hw, in_a);
    }
    _mm_sfence();  // after copy_plane's streaming stores
  }
}

// One plane; float planes of a tensor too large for the cache are streamed (kernels/cpu/streaming.h).
template <typename T>
void copy_plane(const T* src, std::size_t n, T* dst, bool) {
  std::copy_n(src, n, dst);
}
void copy_plane(const float* src, std::size_t n, float* dst, bool stream) { copy_floats(src, n, dst, stream); }

template <typename T>
bool stream_output(const ConcatShape& s, std::size_t part_channels) {
  return streaming_pays(std::size_t(s.n) * part_channels * s.hw * sizeof(T));
}

}  // namespace

template <typename T>
void concat_channels(const ConcatShape& s, const T* a, const T* b, T* out) {
  const bool stream = stream_output<T>(s, std::size_t(s.c_a + s.c_b));
  for_each_plane(s, [&](std::size_t joined, std::size_t part, bool in_a) {
    copy_plane((in_a ? a : b) + part, s.hw, out + joined, stream);
  });
}

template <typename T>
void split_channels(const ConcatShape& s, const T* in, T* a, T* b) {
  const bool stream = stream_output<T>(s, std::size_t(s.c_a + s.c_b));
  for_each_plane(s, [&](std::size_t joined, std::size_t part, bool in_a) {
    copy_plane(in + joined, s.hw, (in_a ? a : b) + part, stream);
  });
}

#define UNET_INSTANTIATE(T)                                                     \
  template void concat_channels<T>(const ConcatShape&, const T*, const T*, T*); \
  template void split_channels<T>(const ConcatShape&, const T*, T*, T*);
UNET_INSTANTIATE(float)
UNET_INSTANTIATE(double)
#undef UNET_INSTANTIATE

}  // namespace unet::cpu
