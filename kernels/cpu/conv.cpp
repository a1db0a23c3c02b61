// CPU conv2d: forward, backward-data and backward-filter, each as im2col + one GEMM per band.
//
// The column matrix has one row per tap r = (ci, kh, kw) (K = c_in*kh*kw rows) and one column per
// output pixel p, holding the input value that tap reads (zero outside the input). Every pass is
// then a dense matrix product, so the arithmetic runs in Eigen's tuned GEMM and this file only
// moves data:
//   forward          Y[c_out, P]  = W[c_out, K] * col[K, P]
//   backward-data    dcol[K, P]   = W^T * dY, scattered back onto dx (col2im)
//   backward-filter  dW[c_out, K] = sum over bands of dY * col^T
// The column matrix is built one band of output rows at a time, sized to stay within a couple of
// MB: the whole matrix would be K*H*W (66 MB for 288 taps at 240x240) and would fall out of cache.
// A 1x1 stride-1 unpadded convolution needs no column matrix: x already is one.
//
// Threads come from OpenMP over images (and, in forward, over bands); Eigen stays single-threaded
// inside (EIGEN_DONT_PARALLELIZE, set by the build). Every output element is computed by one
// fixed task whose matrix sizes do not depend on the thread count, and backward-filter sums
// per-image partial gradients in image order, so the results are bitwise identical for any
// number of threads.

#include "kernels/cpu/conv.h"

#include <omp.h>

#include <Eigen/Dense>
#include <algorithm>
#include <cstddef>
#include <type_traits>
#include <vector>

namespace unet::cpu {
namespace {

template <typename T>
using RowMajorMatrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <typename T>
using MatrixMap = Eigen::Map<RowMajorMatrix<T>, Eigen::Unaligned, Eigen::OuterStride<>>;
template <typename T>
using ConstMatrixMap = Eigen::Map<const RowMajorMatrix<T>, Eigen::Unaligned, Eigen::OuterStride<>>;

// Large enough that each GEMM has thousands of columns, small enough to stay near the L2/L3 cache.
constexpr std::size_t kColumnBudgetBytes = std::size_t(2) << 20;

// Floor division that is also right for negative numerators (d > 0).
int floor_div(int a, int d) { return a >= 0 ? a / d : -((-a + d - 1) / d); }

// The output positions o in [lo, hi) whose tap o*stride - pad + tap lands inside [0, in_len).
struct Range {
  int lo, hi;
};
Range valid_outputs(int out_len, int in_len, int stride, int pad, int tap) {
  const int lo = std::max(0, floor_div(pad - tap + stride - 1, stride));
  const int hi = std::min(out_len, floor_div(in_len - 1 + pad - tap, stride) + 1);
  return {lo, std::max(lo, hi)};
}

struct Band {
  int row0, rows, pixels;
};

// How one image is cut into bands of output rows, fixed by the shape alone.
struct Geometry {
  int taps = 0;               // K: rows of the column matrix
  std::size_t in_plane = 0;   // h_in * w_in
  std::size_t out_plane = 0;  // h_out * w_out
  int w_out = 0, h_out = 0;
  int band_rows = 1, bands = 0;
  bool direct = false;  // 1x1, stride 1, no padding, same size: x is the column matrix

  Band band(int k) const {
    const int row0 = k * band_rows;
    const int rows = std::min(band_rows, h_out - row0);
    return {row0, rows, rows * w_out};
  }
  std::size_t column_capacity() const { return direct ? 0 : std::size_t(taps) * band_rows * w_out; }
};

template <typename T>
Geometry geometry(const Conv2dShape& s) {
  Geometry g;
  g.taps = s.c_in * s.kh * s.kw;
  g.in_plane = std::size_t(s.h_in) * s.w_in;
  g.out_plane = std::size_t(s.h_out) * s.w_out;
  g.w_out = s.w_out;
  g.h_out = s.h_out;
  const std::size_t row_bytes = std::max<std::size_t>(1, std::size_t(g.taps) * s.w_out * sizeof(T));
  g.band_rows = int(std::clamp<std::size_t>(kColumnBudgetBytes / row_bytes, 1,
                                            std::size_t(std::max(s.h_out, 1))));
  g.bands = (s.h_out + g.band_rows - 1) / g.band_rows;
  g.direct = s.kh == 1 && s.kw == 1 && s.stride == 1 && s.pad_top == 0 && s.pad_left == 0 &&
             s.h_out == s.h_in && s.w_out == s.w_in;
  return g;
}

// Calls f(col_row, x_row, ow_lo, ow_hi, offset) for every (tap, output row) of the band, where
// column element ow pairs with input element x_row[ow*stride + offset] for ow in [ow_lo, ow_hi);
// x_row is null where the tap's input row lies outside the image. Shared by im2col and col2im so
// that both walk exactly the same taps.
template <typename T, typename X, typename F>
void for_each_tap_row(const Conv2dShape& s, X* x_img, T* col, const Band& band, F f) {
  for (int ci = 0; ci < s.c_in; ++ci)
    for (int i = 0; i < s.kh; ++i)
      for (int j = 0; j < s.kw; ++j) {
        const Range cols = valid_outputs(s.w_out, s.w_in, s.stride, s.pad_left, j);
        T* col_row = col + std::size_t((ci * s.kh + i) * s.kw + j) * band.pixels;
        for (int r = 0; r < band.rows; ++r, col_row += s.w_out) {
          const int ih = (band.row0 + r) * s.stride - s.pad_top + i;
          X* x_row =
              ih >= 0 && ih < s.h_in ? x_img + (std::size_t(ci) * s.h_in + ih) * s.w_in : nullptr;
          f(col_row, x_row, cols.lo, cols.hi, j - s.pad_left);
        }
      }
}

template <typename T>
void im2col(const Conv2dShape& s, const T* x_img, const Band& band, T* col) {
  for_each_tap_row(s, x_img, col, band, [&](T* dst, const T* src, int lo, int hi, int offset) {
    if (!src) {
      std::fill(dst, dst + s.w_out, T(0));
      return;
    }
    std::fill(dst, dst + lo, T(0));
    if (s.stride == 1) {
      std::copy(src + lo + offset, src + hi + offset, dst + lo);
    } else {
      for (int ow = lo; ow < hi; ++ow) dst[ow] = src[ow * s.stride + offset];
    }
    std::fill(dst + hi, dst + s.w_out, T(0));
  });
}

// dx_img += the column matrix scattered back onto the input positions its taps read.
template <typename T>
void col2im_add(const Conv2dShape& s, const T* col, const Band& band, T* dx_img) {
  for_each_tap_row(s, dx_img, col, band, [&](const T* src, T* dst, int lo, int hi, int offset) {
    if (!dst) return;
    if (s.stride == 1) {  // through Eigen so that it vectorises even at -O2
      using Row = Eigen::Array<T, Eigen::Dynamic, 1>;
      Eigen::Map<Row>(dst + lo + offset, hi - lo) += Eigen::Map<const Row>(src + lo, hi - lo);
    } else {
      for (int ow = lo; ow < hi; ++ow) dst[ow * s.stride + offset] += src[ow];
    }
  });
}

// The band's column matrix [K, pixels]: x itself on the direct path, else built into col.
template <typename T>
ConstMatrixMap<T> columns(const Conv2dShape& s, const Geometry& g, const T* x_img, const Band& band,
                          T* col) {
  if (g.direct) {
    return {x_img + std::size_t(band.row0) * s.w_in, g.taps, band.pixels,
            Eigen::OuterStride<>(Eigen::Index(g.in_plane))};
  }
  im2col(s, x_img, band, col);
  return {col, g.taps, band.pixels, Eigen::OuterStride<>(band.pixels)};
}

// The band's rows of an output-sized image [channels, h_out*w_out] as a [channels, pixels] matrix.
template <typename P>
auto band_of(P* img, int channels, const Geometry& g, const Band& band) {
  using Map =
      std::conditional_t<std::is_const_v<P>, ConstMatrixMap<std::remove_const_t<P>>, MatrixMap<P>>;
  return Map(img + std::size_t(band.row0) * g.w_out, channels, band.pixels,
             Eigen::OuterStride<>(Eigen::Index(g.out_plane)));
}

template <typename T>
ConstMatrixMap<T> weights(const Conv2dShape& s, const Geometry& g, const T* w) {
  return {w, s.c_out, g.taps, Eigen::OuterStride<>(g.taps)};
}

template <typename T>
void data_grad_image(const Conv2dShape& s, const Geometry& g, const T* w, const T* dy_img, T* col,
                     T* dx_img) {
  const auto W = weights(s, g, w);
  if (g.direct) {  // bands tile dx exactly, so each is assigned once
    for (int k = 0; k < g.bands; ++k) {
      const Band band = g.band(k);
      band_of(dx_img, s.c_in, g, band).noalias() =
          W.transpose() * band_of(dy_img, s.c_out, g, band);
    }
    return;
  }
  std::fill(dx_img, dx_img + std::size_t(s.c_in) * g.in_plane, T(0));
  for (int k = 0; k < g.bands; ++k) {
    const Band band = g.band(k);
    MatrixMap<T> dcol(col, g.taps, band.pixels, Eigen::OuterStride<>(band.pixels));
    dcol.noalias() = W.transpose() * band_of(dy_img, s.c_out, g, band);
    col2im_add(s, col, band, dx_img);
  }
}

// One image's filter gradient into partial[0, c_out*K) and, if wanted, its bias gradient into
// partial[c_out*K, c_out*K + c_out).
template <typename T>
void filter_grad_image(const Conv2dShape& s, const Geometry& g, const T* x_img, const T* dy_img,
                       bool with_bias, T* col, T* partial) {
  MatrixMap<T> dW(partial, s.c_out, g.taps, Eigen::OuterStride<>(g.taps));
  dW.setZero();
  for (int k = 0; k < g.bands; ++k) {
    const Band band = g.band(k);
    dW.noalias() += band_of(dy_img, s.c_out, g, band) * columns(s, g, x_img, band, col).transpose();
  }
  if (!with_bias) return;
  T* db = partial + s.w_size();
  for (int co = 0; co < s.c_out; ++co) {
    const T* plane = dy_img + co * g.out_plane;
    T sum = 0;
    for (std::size_t p = 0; p < g.out_plane; ++p) sum += plane[p];
    db[co] = sum;
  }
}

// dst[e] += partials[0][e] + partials[1][e] + ..., added one image at a time in image order.
template <typename T>
void add_in_order(const T* partials, int count, std::size_t stride, std::size_t len, T* dst) {
#pragma omp parallel for schedule(static)
  for (std::size_t e = 0; e < len; ++e) {
    T acc = dst[e];
    for (int i = 0; i < count; ++i) acc += partials[i * stride + e];
    dst[e] = acc;
  }
}

}  // namespace

template <typename T>
void conv2d_forward(const Conv2dShape& s, const T* x, const T* w, const T* bias, T* y) {
  const Geometry g = geometry<T>(s);
  const auto W = weights(s, g, w);
  const int tasks = s.n * g.bands;
#pragma omp parallel
  {
    std::vector<T> col(g.column_capacity());
#pragma omp for schedule(static)
    for (int t = 0; t < tasks; ++t) {
      const int b = t / g.bands;
      const Band band = g.band(t % g.bands);
      auto Y = band_of(y + b * s.c_out * g.out_plane, s.c_out, g, band);
      Y.noalias() = W * columns(s, g, x + b * s.c_in * g.in_plane, band, col.data());
      if (bias) Y.colwise() += Eigen::Map<const Eigen::Matrix<T, Eigen::Dynamic, 1>>(bias, s.c_out);
    }
  }
}

// Parallel over images only: bands of one image scatter onto overlapping rows of dx.
template <typename T>
void conv2d_backward_data(const Conv2dShape& s, const T* dy, const T* w, T* dx) {
  const Geometry g = geometry<T>(s);
#pragma omp parallel
  {
    std::vector<T> col(g.column_capacity());
#pragma omp for schedule(static)
    for (int b = 0; b < s.n; ++b) {
      data_grad_image(s, g, w, dy + b * s.c_out * g.out_plane, col.data(),
                      dx + b * s.c_in * g.in_plane);
    }
  }
}

// Images are processed in waves of one per thread so that the partial gradients take
// threads * |dW| memory, not n * |dW|; adding each wave's partials in image order keeps the sum
// independent of the wave size.
template <typename T>
void conv2d_backward_filter(const Conv2dShape& s, const T* x, const T* dy, T* dw, T* dbias) {
  const Geometry g = geometry<T>(s);
  const std::size_t w_size = s.w_size();
  const std::size_t stride = w_size + s.c_out;
  const int wave = std::max(1, std::min(s.n, omp_get_max_threads()));
  std::vector<T> partials(wave * stride);
  std::fill(dw, dw + w_size, T(0));
  if (dbias) std::fill(dbias, dbias + s.c_out, T(0));
  for (int b0 = 0; b0 < s.n; b0 += wave) {
    const int count = std::min(wave, s.n - b0);
#pragma omp parallel
    {
      std::vector<T> col(g.column_capacity());
#pragma omp for schedule(static)
      for (int i = 0; i < count; ++i) {
        const int b = b0 + i;
        filter_grad_image(s, g, x + b * s.c_in * g.in_plane, dy + b * s.c_out * g.out_plane,
                          dbias != nullptr, col.data(), partials.data() + i * stride);
      }
    }
    add_in_order(partials.data(), count, stride, w_size, dw);
    if (dbias) add_in_order(partials.data() + w_size, count, stride, std::size_t(s.c_out), dbias);
  }
}

template void conv2d_forward<float>(const Conv2dShape&, const float*, const float*, const float*,
                                    float*);
template void conv2d_forward<double>(const Conv2dShape&, const double*, const double*,
                                     const double*, double*);
template void conv2d_backward_data<float>(const Conv2dShape&, const float*, const float*, float*);
template void conv2d_backward_data<double>(const Conv2dShape&, const double*, const double*,
                                           double*);
template void conv2d_backward_filter<float>(const Conv2dShape&, const float*, const float*, float*,
                                            float*);
template void conv2d_backward_filter<double>(const Conv2dShape&, const double*, const double*,
                                             double*, double*);

}  // namespace unet::cpu
