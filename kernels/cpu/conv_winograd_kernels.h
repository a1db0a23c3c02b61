// Winograd F(2x2, 3x3) forward convolution and backward-data (see kernels/cpu/conv_winograd.h).
//
// The maths (Lavin & Gray, 2016). A 2x2 block of outputs Y reads a 4x4 tile d of the (padded)
// input. With
//   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1],  G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1],
//   A^T = [1 1 1 0; 0 1 -1 -1],
// the correlation of d with a 3x3 kernel g is Y = A^T [(G g G^T) . (B^T d B)] A, "." elementwise.
// Summed over input channels, the 16 elementwise products become 16 independent matrix products:
//   M[p][co][tile] = sum_ci U[p][co][ci] V[p][ci][tile],  U = G g G^T, V = B^T d B, p = 0..15,
// 16 multiply-adds per (ci, co, 2x2 outputs) where the direct convolution spends 36.
//
// How a call runs, for one image and one band of tile rows (a task):
//  1. Weights: U for all channels, once per call, packed as [p][block][ci][c] (c: kChannels output
//     channels of a block, zero past c_out) so the multiply's broadcasts walk forward in memory.
//  2. Input: per input channel, the band's input rows are copied into a zero-padded row buffer,
//     and V is computed for every tile of the band, vectorised over kLanes neighbouring tiles of a
//     tile row (even and odd columns split in registers). V is stored as [p][ci][tile], the band's
//     tiles numbered row after row, so a vector of tiles may span tile rows (15 tiles a row at
//     30x30 still fill 16-lane vectors) and the multiply never looks at the geometry.
//  3. Multiply: per block of kTiles tiles and kChannels output channels, a register-blocked
//     micro-kernel (vectors of tiles x output channels, as the direct kernels) computes M for the
//     16 points into a small buffer, summing over ci in order.
//  4. Output: A^T M A + bias per output channel and tile, the two columns of each tile row merged
//     back into NCHW in registers, masked at the plane's right and bottom edges.
// Every output element is one fixed sequence of operations whatever the band, the block or the
// thread, so results do not depend on the number of threads.
//
// Backward-data is the forward pass over dy with the kernel flipped and transposed (as in
// conv_direct_forward.h), so both share all of the above.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <memory>

#include "kernels/cpu/simd.h"
#include "kernels/cpu/simd_even_odd.h"
#include "kernels/shapes.h"

namespace unet::cpu::winograd {

using kernels::Conv2dShape;

// Every function here that could compile to vector code is a template on V, for the reason given
// in conv_direct_forward.h: the AVX-512 and AVX2 objects must share no out-of-line code.

// The multiply's register tile: kChannels output channels x kVectors vectors of tiles, as the
// direct forward kernel's (AVX-512 8 x 3: 24 accumulators + 3 loads + 1 broadcast of 32
// registers; AVX2 4 x 2). A block of tiles is kVectors vectors.
template <typename V>
struct Tile {
  static constexpr int kChannels = V::kRegisters == 32 ? 8 : 4;
  static constexpr int kVectors = V::kRegisters == 32 ? 3 : 2;
  static constexpr int kTiles = kVectors * V::kLanes;
};

constexpr int kPoints = 16;  // of a transformed 4x4 tile
// Transformed input per thread: a band is as many tile rows as keep V within this budget, so it
// stays in the L2 cache (1 MB a core on Zen 4) while every block of output channels reads it.
constexpr std::size_t kBandBytes = 512 * 1024;
// Tasks at least (when the shape allows): enough for two cores to share a batch-1 call evenly.
constexpr int kMinTasks = 8;
constexpr int kLineFloats = 16;  // a 64-byte cache line

// How a call is cut into tasks (image, band of tile rows, group of channel blocks): from the
// shape alone.
struct Plan {
  int tiles_h = 0, tiles_w = 0;  // 2x2 output tiles a plane; the last row / column may hang over
  int band_rows = 0;             // tile rows a band (the last band may have fewer)
  int bands = 0;
  int band_stride = 0;           // floats a (point, input channel) row of V: the band's tiles, whole vectors
  // Floats from one point to the next in V and in the packed weights. Padded by a cache line:
  // at a power of two apart (32 KB, 256 KB on the 15x15 layers) the 16 points' stores all fell
  // in the same cache sets and evicted one another.
  std::size_t v_point = 0, u_point = 0;
  int row_stride = 0;            // floats a padded input row
  int blocks = 0;                // blocks of kChannels output channels, the last one possibly partial
  int group_blocks = 0;          // blocks a task
  int groups = 0;
};

// A template on V only so that each instruction set's object has its own copy.
template <typename V>
int ceil_div(int a, int b) {
  return (a + b - 1) / b;
}

template <typename V>
Plan make_plan(const Conv2dShape& s) {
  Plan p;
  p.tiles_h = ceil_div<V>(s.h_out, 2);
  p.tiles_w = ceil_div<V>(s.w_out, 2);
  const std::size_t tile_bytes = std::size_t(kPoints) * std::max(s.c_in, 1) * sizeof(float);
  const int tiles_fitting = int(std::max<std::size_t>(1, kBandBytes / tile_bytes));
  p.bands = ceil_div<V>(p.tiles_h, std::clamp(tiles_fitting / p.tiles_w, 1, p.tiles_h));
  p.band_rows = ceil_div<V>(p.tiles_h, p.bands);  // as even as the same number of bands allows
  p.band_stride = ceil_div<V>(p.band_rows * p.tiles_w, V::kLanes) * V::kLanes;
  p.v_point = std::size_t(s.c_in) * p.band_stride + kLineFloats;
  // A vector of tiles starting at tile column j reads padded columns 2j .. 2j + 2 kLanes + 1.
  p.row_stride = 2 * ceil_div<V>(p.tiles_w, V::kLanes) * V::kLanes + 2;
  p.blocks = ceil_div<V>(s.c_out, Tile<V>::kChannels);
  // Groups of equal size (a divisor of the block count), so that equal tasks share out evenly.
  p.groups = std::min(p.blocks, ceil_div<V>(kMinTasks, s.n * p.bands));
  while (p.blocks % p.groups != 0) ++p.groups;
  p.group_blocks = p.blocks / p.groups;
  p.u_point = std::size_t(p.blocks) * s.c_in * Tile<V>::kChannels + kLineFloats;
  return p;
}

// The first n lanes of a vector (n <= kLanes), masked when short.
template <typename V>
typename V::Reg load_n(const float* p, int n) {
  return n == V::kLanes ? V::load(p) : V::load(p, V::first(n));
}
template <typename V>
void store_n(float* p, typename V::Reg v, int n) {
  if (n == V::kLanes) {
    V::store(p, v);
  } else {
    V::store(p, v, V::first(n));
  }
}

// The weights of a convolution as strided memory: element (co, ci, tap) with tap = i * 3 + j is
// base[co * out_stride + ci * in_stride + tap * tap_stride]. Backward-data reads the forward
// weights transposed and flipped (tap_stride -1) through one of these.
struct WeightView {
  const float* base;
  std::ptrdiff_t out_stride, in_stride, tap_stride;
};

// packed[p][block][ci][c] = (G g G^T)[p] for the kernel g of (block * kChannels + c, ci); zero for
// channels past c_out, so a partial block runs the same micro-kernel. One output channel's kernels
// at a time, so its weights are read in order. Blocks are transformed in parallel (called inside a
// parallel region; the loop's barrier completes `packed`).
template <typename V>
void transform_weights(const Conv2dShape& s, const Plan& p, WeightView w, float* packed) {
  constexpr int kChannels = Tile<V>::kChannels;
#pragma omp for schedule(static)
  for (int b = 0; b < p.blocks; ++b)
    for (int c = 0; c < kChannels; ++c) {
      const int co = b * kChannels + c;
      float* dst = packed + std::size_t(b) * s.c_in * kChannels + c;
      for (int ci = 0; ci < s.c_in; ++ci, dst += kChannels) {
        float u[kPoints] = {};
        if (co < s.c_out) {
          const float* g = w.base + co * w.out_stride + ci * w.in_stride;
          float gg[4][3];  // G g
          for (int j = 0; j < 3; ++j) {
            const float g0 = g[j * w.tap_stride], g1 = g[(3 + j) * w.tap_stride], g2 = g[(6 + j) * w.tap_stride];
            gg[0][j] = g0;
            gg[1][j] = 0.5f * (g0 + g1 + g2);
            gg[2][j] = 0.5f * (g0 - g1 + g2);
            gg[3][j] = g2;
          }
          for (int i = 0; i < 4; ++i) {  // (G g) G^T
            u[4 * i + 0] = gg[i][0];
            u[4 * i + 1] = 0.5f * (gg[i][0] + gg[i][1] + gg[i][2]);
            u[4 * i + 2] = 0.5f * (gg[i][0] - gg[i][1] + gg[i][2]);
            u[4 * i + 3] = gg[i][2];
          }
        }
        for (int k = 0; k < kPoints; ++k) dst[k * p.u_point] = u[k];
      }
    }
}

// Copies `rows` input rows of one channel from row `top` on into buf, zeros outside x.
template <typename V>
void fill_rows(const Conv2dShape& s, const Plan& p, const float* x_channel, int top, int rows, float* buf) {
  // Buffer columns [c_lo, c_hi) come from x; the rest is padding.
  const int c_lo = std::clamp(s.pad_left, 0, p.row_stride);
  const int c_hi = std::clamp(s.pad_left + s.w_in, 0, p.row_stride);
  for (int r = 0; r < rows; ++r) {
    float* dst = buf + std::size_t(r) * p.row_stride;
    const int ih = top + r;
    if (ih < 0 || ih >= s.h_in || c_lo >= c_hi) {
      std::memset(dst, 0, p.row_stride * sizeof(float));
      continue;
    }
    std::memset(dst, 0, c_lo * sizeof(float));
    std::memcpy(dst + c_lo, x_channel + std::size_t(ih) * s.w_in + (c_lo - s.pad_left), (c_hi - c_lo) * sizeof(float));
    std::memset(dst + c_hi, 0, (p.row_stride - c_hi) * sizeof(float));
  }
}

// d B for one row of kLanes neighbouring tiles: the row's 4 columns of each tile (one tile a
// lane, even and odd columns split in registers) combined along the row.
template <typename V>
void transform_row(const float* row, typename V::Reg h[4]) {
  typename V::Reg d0, d1, d2, d3;
  EvenOdd<V>::split(row, d0, d1);
  EvenOdd<V>::split(row + 2, d2, d3);
  h[0] = V::sub(d0, d2);
  h[1] = V::add(d1, d2);
  h[2] = V::sub(d2, d1);
  h[3] = V::sub(d1, d3);
}

// V = B^T d B for every tile of `rows` tile rows from tile row `row0` and every input channel.
// Down a column of tiles, the last two rows of one tile are the first two of the next, so each
// input row is transformed along once and its d B kept in registers for the tile below.
template <typename V>
void transform_input(const Conv2dShape& s, const Plan& p, const float* x_image, int row0, int rows, float* buf,
                     float* v) {
  using Reg = typename V::Reg;
  for (int ci = 0; ci < s.c_in; ++ci) {
    fill_rows<V>(s, p, x_image + std::size_t(ci) * s.h_in * s.w_in, 2 * row0 - s.pad_top, 2 * rows + 2, buf);
    for (int tj = 0; tj < p.tiles_w; tj += V::kLanes) {
      const int n = std::min(V::kLanes, p.tiles_w - tj);
      const float* column = buf + 2 * tj;
      Reg h[4][4];  // d B for the tile's 4 rows
      transform_row<V>(column, h[0]);
      transform_row<V>(column + p.row_stride, h[1]);
      for (int tr = 0; tr < rows; ++tr) {
        transform_row<V>(column + std::size_t(2 * tr + 2) * p.row_stride, h[2]);
        transform_row<V>(column + std::size_t(2 * tr + 3) * p.row_stride, h[3]);
        float* out = v + std::size_t(ci) * p.band_stride + tr * p.tiles_w + tj;
        for (int j = 0; j < 4; ++j) {  // B^T (d B), point (i, j) at 4 i + j
          store_n<V>(out + (0 + j) * p.v_point, V::sub(h[0][j], h[2][j]), n);
          store_n<V>(out + (4 + j) * p.v_point, V::add(h[1][j], h[2][j]), n);
          store_n<V>(out + (8 + j) * p.v_point, V::sub(h[2][j], h[1][j]), n);
          store_n<V>(out + (12 + j) * p.v_point, V::sub(h[1][j], h[3][j]), n);
        }
        for (int j = 0; j < 4; ++j) {
          h[0][j] = h[2][j];
          h[1][j] = h[3][j];
        }
      }
    }
  }
}

// m[c * kTiles + tile] = sum over ci of u[ci][c] v[ci][tile] for NV vectors of tiles and kChannels
// channels, ci in order. The loops over vectors and channels are unrolled by pragma, as in the
// direct micro-kernel, so that the accumulators stay in registers.
template <typename V, int NV>
void multiply(int c_in, const float* v, std::size_t ci_stride, const float* u, float* m) {
  using Reg = typename V::Reg;
  constexpr int CO = Tile<V>::kChannels;
  Reg acc[CO][NV];
#pragma GCC unroll 16
  for (int c = 0; c < CO; ++c)
#pragma GCC unroll 16
    for (int k = 0; k < NV; ++k) acc[c][k] = V::zero();
  for (int ci = 0; ci < c_in; ++ci) {
    Reg vv[NV];
#pragma GCC unroll 16
    for (int k = 0; k < NV; ++k) vv[k] = V::load(v + k * V::kLanes);
#pragma GCC unroll 16
    for (int c = 0; c < CO; ++c) {
      const Reg uc = V::broadcast(u + c);
#pragma GCC unroll 16
      for (int k = 0; k < NV; ++k) acc[c][k] = V::fma(vv[k], uc, acc[c][k]);
    }
    v += ci_stride;
    u += CO;
  }
#pragma GCC unroll 16
  for (int c = 0; c < CO; ++c)
#pragma GCC unroll 16
    for (int k = 0; k < NV; ++k) V::store(m + c * Tile<V>::kTiles + k * V::kLanes, acc[c][k]);
}

// Y = A^T M A + bias for `channels` output channels and the band's tiles [t0, t_end), written to
// the output rows of tile rows from `row0` on.
template <typename V>
void transform_output(const Conv2dShape& s, const Plan& p, const float* m, int channels, int t0, int t_end, int row0,
                      const float* bias, float* y_block) {
  using Reg = typename V::Reg;
  constexpr int kPointStride = Tile<V>::kChannels * Tile<V>::kTiles;
  const std::size_t y_plane = std::size_t(s.h_out) * s.w_out;
  for (int c = 0; c < channels; ++c) {
    const Reg b = bias ? V::set1(bias[c]) : V::zero();
    // Vectors of tiles along one tile row at a time: the merge writes neighbouring columns.
    for (int t = t0; t < t_end;) {
      const int tr = t / p.tiles_w, tj = t % p.tiles_w;
      const int n = std::min({V::kLanes, p.tiles_w - tj, t_end - t});
      const float* mc = m + c * Tile<V>::kTiles + (t - t0);
      Reg r[4][2];  // M A: each of the 4 rows of M transformed along the row
      for (int i = 0; i < 4; ++i) {
        const Reg m0 = load_n<V>(mc + (4 * i + 0) * kPointStride, n);
        const Reg m1 = load_n<V>(mc + (4 * i + 1) * kPointStride, n);
        const Reg m2 = load_n<V>(mc + (4 * i + 2) * kPointStride, n);
        const Reg m3 = load_n<V>(mc + (4 * i + 3) * kPointStride, n);
        r[i][0] = V::add(V::add(m0, m1), m2);
        r[i][1] = V::sub(V::sub(m1, m2), m3);
      }
      Reg y[2][2];  // A^T (M A) + bias
      for (int j = 0; j < 2; ++j) {
        y[0][j] = V::add(V::add(V::add(r[0][j], r[1][j]), r[2][j]), b);
        y[1][j] = V::add(V::sub(V::sub(r[1][j], r[2][j]), r[3][j]), b);
      }
      const int oh = 2 * (row0 + tr), ow = 2 * tj;
      const int columns = std::min(2 * n, s.w_out - ow);
      float* out = y_block + c * y_plane + std::size_t(oh) * s.w_out + ow;
      EvenOdd<V>::merge_store(out, y[0][0], y[0][1], columns);
      if (oh + 1 < s.h_out) EvenOdd<V>::merge_store(out + s.w_out, y[1][0], y[1][1], columns);
      t += n;
    }
  }
}

// The 16 products of one block of NV vectors of tiles (at v) and one block of channels (at u).
template <typename V, int NV>
void multiply_points(const Conv2dShape& s, const Plan& p, const float* v, const float* u, float* m) {
  for (int point = 0; point < kPoints; ++point) {
    multiply<V, NV>(s.c_in, v + point * p.v_point, p.band_stride, u + point * p.u_point,
                    m + point * Tile<V>::kChannels * Tile<V>::kTiles);
  }
}

// One task: channel blocks [block_begin, block_end) over the `rows` tile rows from `row0`, whose
// transformed input is v.
template <typename V>
void run_band(const Conv2dShape& s, const Plan& p, const float* v, int row0, int rows, const float* packed,
              const float* bias, float* y_image, float* m, int block_begin, int block_end) {
  constexpr int CO = Tile<V>::kChannels, T = Tile<V>::kTiles;
  const std::size_t y_plane = std::size_t(s.h_out) * s.w_out;
  const int band_tiles = rows * p.tiles_w;
  for (int t0 = 0; t0 < band_tiles; t0 += T) {
    const int t_end = std::min(t0 + T, band_tiles);
    const int vectors = ceil_div<V>(t_end - t0, V::kLanes);  // the band's last block may be short
    for (int b = block_begin; b < block_end; ++b) {
      const float* u = packed + std::size_t(b) * s.c_in * CO;
      if (vectors == 1) {
        multiply_points<V, 1>(s, p, v + t0, u, m);
      } else if (vectors == 2) {
        multiply_points<V, 2>(s, p, v + t0, u, m);
      } else {
        multiply_points<V, Tile<V>::kVectors>(s, p, v + t0, u, m);
      }
      transform_output<V>(s, p, m, std::min(CO, s.c_out - b * CO), t0, t_end, row0, bias ? bias + b * CO : nullptr,
                          y_image + b * CO * y_plane);
    }
  }
}

template <typename V>
void run_tasks(const Conv2dShape& s, const Plan& p, const float* x, const float* packed, const float* bias, float* y) {
  static_assert(Tile<V>::kVectors <= 3, "run_band dispatches 1, 2 or kVectors vectors");
  const int tasks = s.n * p.bands * p.groups;
  // Zeroed: the tiles past a band's end, which the multiply reads but nobody stores, stay finite.
  const auto v = std::make_unique<float[]>(kPoints * p.v_point);
  const auto buf = std::make_unique_for_overwrite<float[]>(std::size_t(2 * p.band_rows + 2) * p.row_stride);
  const auto m = std::make_unique_for_overwrite<float[]>(std::size_t(kPoints) * Tile<V>::kChannels * Tile<V>::kTiles);
  int filled = -1;  // the (image, band) whose transformed input v holds
  // Channel groups vary fastest, so a thread's consecutive tasks often share one band's V.
#pragma omp for schedule(static)
  for (int t = 0; t < tasks; ++t) {
    const int image_band = t / p.groups;
    const int group = t % p.groups;
    const int image = image_band / p.bands;
    const int row0 = image_band % p.bands * p.band_rows;
    const int rows = std::min(p.band_rows, p.tiles_h - row0);
    if (image_band != filled) {
      transform_input<V>(s, p, x + std::size_t(image) * s.c_in * s.h_in * s.w_in, row0, rows, buf.get(), v.get());
      filled = image_band;
    }
    const int block_begin = group * p.group_blocks;
    run_band<V>(s, p, v.get(), row0, rows, packed, bias, y + std::size_t(image) * s.c_out * s.h_out * s.w_out,
                m.get(), block_begin, block_begin + p.group_blocks);
  }
}

template <typename V>
void convolve(const Conv2dShape& s, const float* x, WeightView weight, const float* bias, float* y) {
  if (s.n <= 0 || s.c_out <= 0 || s.h_out <= 0 || s.w_out <= 0) return;  // no output
  const Plan p = make_plan<V>(s);
  const auto packed = std::make_unique_for_overwrite<float[]>(kPoints * p.u_point);
#pragma omp parallel
  {
    transform_weights<V>(s, p, weight, packed.get());  // ends with a barrier
    run_tasks<V>(s, p, x, packed.get(), bias, y);
  }
}

template <typename V>
void forward(const Conv2dShape& s, const float* x, const float* w, const float* bias, float* y) {
  convolve<V>(s, x, WeightView{w, std::ptrdiff_t(s.c_in) * 9, 9, 1}, bias, y);
}

// The forward pass over dy with the kernel transposed in channels and flipped in space, and the
// padding the forward pass leaves after x (as direct::backward_data, conv_direct_forward.h).
template <typename V>
void backward_data(const Conv2dShape& s, const float* dy, const float* w, float* dx) {
  convolve<V>(kernels::backward_data_as_forward(s), dy, WeightView{w + 8, 9, std::ptrdiff_t(s.c_in) * 9, -1},
              nullptr, dx);
}

}  // namespace unet::cpu::winograd
