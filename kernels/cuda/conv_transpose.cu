// conv_transpose2d on the GPU: forward (bias fused), backward-data and backward-filter (dbias
// optional), the CUDA twins of kernels/cpu/conv_transpose.cpp, for the index conventions of
// ConvTranspose2dShape (shapes.h): input pixel (i, j) of channel ci adds x * w[ci, co, r, c] to
// output pixel (i*stride - pad_top + r, j*stride - pad_left + c); weights are
// [c_in, c_out, kh, kw].
//
// Decomposition. The forward pass is defined as a scatter, but scattering needs atomics (several
// input pixels hit one output pixel), which would make results depend on timing. So every kernel
// here is a gather in which one thread owns each output element and sums its terms in a fixed
// order:
//   forward          one thread per y[n, co, oy, ox]: bias + sum over ci and over the taps (r, c)
//                    with oy + pad_top - r (and ox + pad_left - c) a multiple of stride whose
//                    quotient lies inside x. Only taps of the right residue modulo stride are
//                    visited (a quarter of them for stride 2).
//   backward-data    one thread per dx[n, ci, i, j]: the plain convolution of dy, the sum over
//                    co, r, c of w[ci, co, r, c] *
//                    dy[n, co, i*stride - pad_top + r, j*stride - pad_left + c]
//                    (taps outside dy read zero).
//   backward-filter  one block per (ci, co) pair and chunk of up to 9 taps: each thread sums
//                    x * dy over a fixed strided subset of the input pixels of every image for all
//                    taps of its chunk (x is read once per chunk, not once per tap), then the
//                    block adds the 256 partials of each tap by a fixed-shape tree in shared
//                    memory.
//   dbias            one block per output channel, the same fixed-order block reduction over dy.
// Consecutive threads own consecutive output columns, so stores and the reads of x / dy along a
// row are coalesced; all threads of a warp usually share (ci, co) and read the same weights.
// Element indices are decoded in 32-bit arithmetic when the tensor allows it (64-bit division is
// several times slower on the GPU).
//
// Determinism. No atomics; each output element's terms are summed by one thread (or one block's
// fixed tree) in an order fixed by the shape, so results are bitwise reproducible run to run.
#include <algorithm>
#include <climits>
#include <cstddef>
#include <stdexcept>
#include <string>

#include "kernels/cuda/kernels.h"

namespace unet::UNET_CUDA_NS {
namespace {

constexpr int kThreads = 256;
constexpr int kTapChunk = 9;  // taps per backward-filter block: a whole 3x3 kernel
// Forward and backward-data grid-stride beyond this many blocks: as in elementwise.cu, 2048 x 256
// threads fill every SM of an A100 / H100 several times over, and a cap this low lets the
// emulated tests reach the loop's later iterations (tests/cuda/test_conv_transpose.cpp).
constexpr long long kMaxBlocks = 2048;

void check_launch(const char* file, int line) {
  const cudaError_t status = cudaGetLastError();
  if (status != cudaSuccess) {
    throw std::runtime_error(std::string(file) + ":" + std::to_string(line) +
                             ": CUDA kernel launch failed: " + cudaGetErrorString(status));
  }
}

// The shape's fields, as kernel arguments.
struct Shape {
  int n, c_in, h_in, w_in, c_out, kh, kw, stride, pad_top, pad_left, h_out, w_out;
};

Shape shape_of(const ConvTranspose2dShape& s) {
  return {s.n, s.c_in, s.h_in, s.w_in, s.c_out, s.kh, s.kw, s.stride, s.pad_top, s.pad_left,
          s.h_out, s.w_out};
}

__device__ __forceinline__ bool inside(int i, int n) {
  return static_cast<unsigned>(i) < static_cast<unsigned>(n);  // also rejects i < 0
}

// a mod m in [0, m) for any sign of a (m > 0).
__device__ __forceinline__ int mod_floor(int a, int m) {
  const int r = a % m;
  return r < 0 ? r + m : r;
}

__device__ __forceinline__ long long first_element() {
  return static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ __forceinline__ long long element_stride() {
  return static_cast<long long>(gridDim.x) * blockDim.x;
}

dim3 elementwise_grid(long long count) {
  return dim3(static_cast<unsigned>(std::min((count + kThreads - 1) / kThreads, kMaxBlocks)));
}

// y[img, co, oy, ox]. Index is int or long long: the type the element index is decoded in.
template <typename Index>
__global__ void conv_transpose2d_forward_kernel(const Shape s, const float* __restrict__ x,
                               const float* __restrict__ w, const float* __restrict__ bias,
                               float* __restrict__ y, long long count) {
  for (long long e = first_element(); e < count; e += element_stride()) {
    Index rest = static_cast<Index>(e);
    const int ox = static_cast<int>(rest % s.w_out);
    rest /= s.w_out;
    const int oy = static_cast<int>(rest % s.h_out);
    rest /= s.h_out;
    const int co = static_cast<int>(rest % s.c_out);
    const Index img = rest / s.c_out;
    // Tap r reaches oy from input row (ty - r) / stride: only r = ty mod stride (+ k*stride)
    // divide exactly.
    const int ty = oy + s.pad_top, tx = ox + s.pad_left;
    const int r0 = mod_floor(ty, s.stride), c0 = mod_floor(tx, s.stride);
    float acc = 0.0f;
    for (int ci = 0; ci < s.c_in; ++ci) {
      const float* xp = x + (static_cast<long long>(img) * s.c_in + ci) * s.h_in * s.w_in;
      const float* wp = w + (static_cast<long long>(ci) * s.c_out + co) * s.kh * s.kw;
      for (int r = r0; r < s.kh; r += s.stride) {
        const int iy = (ty - r) / s.stride;  // exact
        if (!inside(iy, s.h_in)) continue;
        const float* x_row = xp + static_cast<long long>(iy) * s.w_in;
        for (int c = c0; c < s.kw; c += s.stride) {
          const int ix = (tx - c) / s.stride;
          if (inside(ix, s.w_in)) acc += x_row[ix] * wp[r * s.kw + c];
        }
      }
    }
    y[e] = bias ? acc + bias[co] : acc;
  }
}

// dx[img, ci, i, j] = sum over co, r, c of dy[img, co, i*stride - pad_top + r, j*stride -
// pad_left + c] * w[ci, co, r, c].
template <typename Index>
__global__ void conv_transpose2d_backward_data_kernel(const Shape s, const float* __restrict__ dy,
                                     const float* __restrict__ w, float* __restrict__ dx,
                                     long long count) {
  for (long long e = first_element(); e < count; e += element_stride()) {
    Index rest = static_cast<Index>(e);
    const int j = static_cast<int>(rest % s.w_in);
    rest /= s.w_in;
    const int i = static_cast<int>(rest % s.h_in);
    rest /= s.h_in;
    const int ci = static_cast<int>(rest % s.c_in);
    const Index img = rest / s.c_in;
    const int oy0 = i * s.stride - s.pad_top, ox0 = j * s.stride - s.pad_left;
    float acc = 0.0f;
    for (int co = 0; co < s.c_out; ++co) {
      const float* dyp = dy + (static_cast<long long>(img) * s.c_out + co) * s.h_out * s.w_out;
      const float* wp = w + (static_cast<long long>(ci) * s.c_out + co) * s.kh * s.kw;
      for (int r = 0; r < s.kh; ++r) {
        const int oy = oy0 + r;
        if (!inside(oy, s.h_out)) continue;
        const float* dy_row = dyp + static_cast<long long>(oy) * s.w_out;
        for (int c = 0; c < s.kw; ++c) {
          const int ox = ox0 + c;
          if (inside(ox, s.w_out)) acc += dy_row[ox] * wp[r * s.kw + c];
        }
      }
    }
    dx[e] = acc;
  }
}

// dw[ci, co, tap] for the taps [blockIdx.y * kTapChunk, ...) of pair blockIdx.x = ci*c_out + co.
__global__ void conv_transpose2d_backward_filter_kernel(const Shape s, const float* __restrict__ x,
                                       const float* __restrict__ dy, float* __restrict__ dw) {
  __shared__ float partial[kTapChunk][kThreads];
  const int tid = static_cast<int>(threadIdx.x);
  const int pair = static_cast<int>(blockIdx.x);
  const int ci = pair / s.c_out, co = pair - ci * s.c_out;
  const int khw = s.kh * s.kw;
  const int tap0 = static_cast<int>(blockIdx.y) * kTapChunk;
  const int taps = khw - tap0 < kTapChunk ? khw - tap0 : kTapChunk;
  int tr[kTapChunk], tc[kTapChunk];
  float acc[kTapChunk];
#pragma unroll
  for (int t = 0; t < kTapChunk; ++t) {
    const int tap = tap0 + t;
    tr[t] = t < taps ? tap / s.kw : 0;
    tc[t] = t < taps ? tap - tr[t] * s.kw : 0;
    acc[t] = 0.0f;
  }
  const int plane_in = s.h_in * s.w_in;
  for (int img = 0; img < s.n; ++img) {
    const float* xp = x + (static_cast<long long>(img) * s.c_in + ci) * plane_in;
    const float* dyp = dy + (static_cast<long long>(img) * s.c_out + co) * s.h_out * s.w_out;
    for (int p = tid; p < plane_in; p += kThreads) {
      const int i = p / s.w_in, j = p - i * s.w_in;
      const float xv = xp[p];
      const int oy0 = i * s.stride - s.pad_top, ox0 = j * s.stride - s.pad_left;
#pragma unroll
      for (int t = 0; t < kTapChunk; ++t) {
        const int oy = oy0 + tr[t], ox = ox0 + tc[t];
        if (t < taps && inside(oy, s.h_out) && inside(ox, s.w_out)) {
          acc[t] += xv * dyp[static_cast<long long>(oy) * s.w_out + ox];
        }
      }
    }
  }
#pragma unroll
  for (int t = 0; t < kTapChunk; ++t) partial[t][tid] = acc[t];
  __syncthreads();
  for (int width = kThreads / 2; width > 0; width /= 2) {
    if (tid < width) {
#pragma unroll
      for (int t = 0; t < kTapChunk; ++t) partial[t][tid] += partial[t][tid + width];
    }
    __syncthreads();
  }
  if (tid < taps) dw[static_cast<long long>(pair) * khw + tap0 + tid] = partial[tid][0];
}

}  // namespace

void conv_transpose2d_forward(const ConvTranspose2dShape& s, const float* x, const float* w,
                              const float* bias, float* y, cudaStream_t stream) {
  const long long count = static_cast<long long>(s.y_size());
  if (count == 0) return;
  auto* kernel = count <= INT_MAX ? &conv_transpose2d_forward_kernel<int> : &conv_transpose2d_forward_kernel<long long>;
  UNET_LAUNCH(kernel, elementwise_grid(count), dim3(kThreads), 0, stream)(shape_of(s), x, w, bias,
                                                                         y, count);
  check_launch(__FILE__, __LINE__);
}

void conv_transpose2d_backward_data(const ConvTranspose2dShape& s, const float* dy, const float* w,
                                    float* dx, cudaStream_t stream) {
  const long long count = static_cast<long long>(s.x_size());
  if (count == 0) return;
  auto* kernel = count <= INT_MAX ? &conv_transpose2d_backward_data_kernel<int> : &conv_transpose2d_backward_data_kernel<long long>;
  UNET_LAUNCH(kernel, elementwise_grid(count), dim3(kThreads), 0, stream)(shape_of(s), dy, w, dx,
                                                                         count);
  check_launch(__FILE__, __LINE__);
}

void conv_transpose2d_backward_filter(const ConvTranspose2dShape& s, const float* x,
                                      const float* dy, float* dw, float* dbias,
                                      cudaStream_t stream) {
  if (s.w_size() > 0) {
    const long long pairs = static_cast<long long>(s.c_in) * s.c_out;
    const int chunks = (s.kh * s.kw + kTapChunk - 1) / kTapChunk;
    if (pairs > INT_MAX || chunks > 65535) {
      throw std::runtime_error(std::string(__FILE__) + ":" + std::to_string(__LINE__) +
                               ": conv_transpose2d: shape too large for the grid");
    }
    const dim3 grid(static_cast<unsigned>(pairs), static_cast<unsigned>(chunks));
    UNET_LAUNCH(conv_transpose2d_backward_filter_kernel, grid, dim3(kThreads), 0, stream)(shape_of(s), x, dy, dw);
    check_launch(__FILE__, __LINE__);
  }
  if (dbias) channel_sum(dy, s.n, s.c_out, s.h_out * s.w_out, dbias, stream);
}

}  // namespace unet::UNET_CUDA_NS
