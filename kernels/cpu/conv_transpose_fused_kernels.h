// The micro-kernels and blocking of the fused polyphase transposed convolution (the maths is in
// kernels/cpu/conv_transpose_fused.h). Compiled twice, with AVX-512 and with AVX2 flags, so every
// function is a template on V (kernels/cpu/simd.h) and memset/memcpy stand in for std::fill /
// std::copy: a function both objects emitted out of line could carry AVX-512 code into the AVX2
// path through the linker.
//
// Layouts. x, dx: [n][c_in][h][w]; y, dy: [n][c_out][2h][2w]; w, dw: [c_in][c_out][3][3], tap
// t = 3a + b. A "vector" is V::kLanes consecutive input columns q0 .. q0 + kLanes - 1 of one row;
// a row's last vector is partial. The kernels read x and dy from small zero-padded copies in
// scratch, so a micro-kernel never tests an edge, and only stores the partial vector under a mask.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <utility>

#include "kernels/cpu/conv_transpose_fused.h"
#include "kernels/cpu/simd.h"
#include "kernels/cpu/simd_even_odd.h"

namespace unet::cpu::fused {
namespace detail {

// The register tiles. Forward: kCo output channels x 4 phases of one vector of accumulators, and
// one input vector and one broadcast weight in flight: AVX-512 4 x 4 (16 + 2 of 32 registers; 8
// channels would take all 32), AVX2 3 x 4 (12 + 2 of 16). Backward-data: kCi input channels x one
// vector, plus a dy row's even, odd and next-even vectors and a weight (AVX-512 16 + 4, AVX2 8 + 4).
// Backward-filter: kGradCi input channels x 9 taps, the 4 dy phase vectors, and per input channel
// its vector, its left neighbour and the two of the row above (AVX-512 18 + 4 + 8 of 32; AVX2
// 9 + 4 + 4 of 16: one spills, and measured still faster than reloading the row above).
template <typename V>
struct Tile {
  static constexpr bool kWide = V::kRegisters == 32;
  static constexpr int kCo = kWide ? 4 : 3;
  static constexpr int kCi = kWide ? 16 : 8;
  static constexpr int kGradCi = kWide ? 2 : 1;
};

constexpr int kMinTasks = 8;  // tasks at least where the shape allows: two cores share batch 1 evenly
constexpr int ceil_div(int a, int b) { return (a + b - 1) / b; }

// Scratch is 64-byte aligned (a cache line, an AVX-512 register), so that the row strides below,
// multiples of a register, make the micro-kernels' loads aligned wherever possible.
constexpr std::size_t kAlignFloats = 16;
template <typename V>
std::unique_ptr<float[]> make_scratch(std::size_t floats) {
  return std::make_unique_for_overwrite<float[]>(floats + kAlignFloats);
}
template <typename V>
float* aligned(const std::unique_ptr<float[]>& scratch) {
  const std::size_t misalign = reinterpret_cast<std::uintptr_t>(scratch.get()) / sizeof(float) % kAlignFloats;
  return scratch.get() + (kAlignFloats - misalign) % kAlignFloats;
}

// even[q] = row[2q], odd[q] = row[2q + 1] for q < ceil(w_out / 2 / kLanes) * kLanes: zero past
// the row's w_out floats, which are read under a mask.
template <typename V>
void split_row(const float* row, int w_out, float* even, float* odd) {
  constexpr int L = V::kLanes;
  for (int q = 0; 2 * q < w_out; q += L) {
    const int left = w_out - 2 * q;
    const typename V::Reg r0 = V::load(row + 2 * q, V::first(std::min(left, L)));
    const typename V::Reg r1 = V::load(row + 2 * q + L, V::first(std::clamp(left - L, 0, L)));
    V::store(even + q, EvenOdd<V>::even(r0, r1));
    V::store(odd + q, EvenOdd<V>::odd(r0, r1));
  }
}

// Forward and backward-data run tasks (image, band of input rows, group of channel blocks), the
// group varying fastest. A task first copies the input rows its band reads into per-thread
// scratch (zero padding written out, so the micro-kernel reads plain vectors and tests no edge;
// dy split into even and odd columns), as many rows as keep the scratch within kScratchBytes
// (half of Zen 4's 1 MB L2), and a thread's consecutive tasks of one band reuse the copy. Read
// in place, the model's 120x120 layers (16 or 32 channels at 57 or 230 KB apart, 2 or 3 rows
// each) take more streams than the prefetchers follow and ran at a third of the speed.
// Channel groups are equal, at least kMinTasks tasks where the shape allows: all from the shape.
constexpr std::size_t kScratchBytes = 512 * 1024;

struct Plan {
  int band_rows = 0, bands = 0;
  int blocks = 0, groups = 0, group_blocks = 0;
  int tasks(int n) const { return n * bands * groups; }
};

// row_bytes: scratch a band row takes; extra_bytes: scratch a band needs besides its rows.
template <typename V>
Plan make_plan(int n, int rows, std::size_t row_bytes, std::size_t extra_bytes, int blocks) {
  Plan p;
  const std::size_t budget = kScratchBytes > extra_bytes ? kScratchBytes - extra_bytes : 0;
  const int fitting = int(std::clamp<std::size_t>(budget / std::max<std::size_t>(row_bytes, 1), 1, std::max(rows, 1)));
  p.bands = ceil_div(std::max(rows, 1), fitting);
  p.band_rows = ceil_div(std::max(rows, 1), p.bands);
  p.blocks = blocks;
  p.groups = std::clamp(ceil_div(kMinTasks, std::max(n * p.bands, 1)), 1, std::max(blocks, 1));
  while (blocks % p.groups != 0) ++p.groups;
  p.group_blocks = blocks / p.groups;
  return p;
}

// ---------------------------------------------------------------------------------------------
// Forward.
//
// Scratch: xs[ci][r][c] = x[ci][top - 1 + r][c - 1] (r = 0 .. band_rows, c = 0 .. x_row - 1),
// zero outside x: the row above the band and the column left of x come along, so the 2x2
// neighbourhood of input pixel (p, q) is xs[.][p - top + {0, 1}][q + {0, 1}].

template <typename V>
int forward_row(const ConvTranspose2dShape& s) {  // floats a scratch row: the tiles' reads, padded
  return ceil_div(s.w_in, V::kLanes) * V::kLanes + 1;
}

// packed[block][ci][t][c] = w[ci][block * kCo + c][t]: the broadcasts of one input channel walk
// forward through memory. The last block holds only the channels that exist.
template <typename V>
void pack_forward(const ConvTranspose2dShape& s, const float* w, float* packed) {
  constexpr int kCo = Tile<V>::kCo;
  const int blocks = ceil_div(s.c_out, kCo);
#pragma omp for schedule(static)
  for (int b = 0; b < blocks; ++b) {
    const int co0 = b * kCo;
    const int channels = std::min(kCo, s.c_out - co0);
    float* dst = packed + std::size_t(b) * kCo * s.c_in * 9;
    for (int ci = 0; ci < s.c_in; ++ci)
      for (int t = 0; t < 9; ++t)
        for (int c = 0; c < channels; ++c) *dst++ = w[(std::size_t(ci) * s.c_out + co0 + c) * 9 + t];
  }
}

template <typename V>
void fill_forward(const ConvTranspose2dShape& s, const Plan& p, const float* x_image, int top, float* xs) {
  const int row = forward_row<V>(s);
  for (int ci = 0; ci < s.c_in; ++ci)
    for (int r = 0; r <= p.band_rows; ++r) {
      float* dst = xs + (std::size_t(ci) * (p.band_rows + 1) + r) * row;
      const int ih = top - 1 + r;
      std::memset(dst, 0, row * sizeof(float));
      if (ih >= 0 && ih < s.h_in)
        std::memcpy(dst + 1, x_image + (std::size_t(ci) * s.h_in + ih) * s.w_in, s.w_in * sizeof(float));
    }
}

// One tile: CO output channels x one vector of input row p from column q0, all four phases, i.e.
// output rows 2p and 2p + 1, columns 2q0 .. 2q0 + 2 * kLanes - 1. xs: the scratch at the row above
// p, column q0 - 1 (input channel 0).
template <typename V, int CO>
void forward_tile(const ConvTranspose2dShape& s, const float* xs, std::size_t xs_channel, std::ptrdiff_t xs_row,
                  const float* wp, const float* bias, float* y, int count) {
  using Reg = typename V::Reg;
  Reg acc[CO][4];  // phase k = 2 * (row parity) + column parity
#pragma GCC unroll 8
  for (int c = 0; c < CO; ++c) {
    const Reg b = bias ? V::set1(bias[c]) : V::zero();
#pragma GCC unroll 4
    for (int k = 0; k < 4; ++k) acc[c][k] = b;
  }
  // The four inputs one after the other, each with the taps it feeds, so that one input register
  // is live (AVX2's 16 registers hold its 12 accumulators, the input and a weight).
  auto taps = [&](const float* in_ptr, const float* k, auto... phase_tap) {
    const Reg in = V::load(in_ptr);
#pragma GCC unroll 8
    for (int c = 0; c < CO; ++c)
      (
          [&](auto pt) {  // tap t of channel c is k[t * CO + c]
            acc[c][pt.first] = V::fma(in, V::broadcast(k + pt.second * CO + c), acc[c][pt.first]);
          }(phase_tap),
          ...);
  };
  using PT = std::pair<int, int>;  // (phase, tap)
  for (int ci = 0; ci < s.c_in; ++ci) {
    taps(xs + xs_row + 1, wp, PT{0, 0}, PT{1, 1}, PT{2, 3}, PT{3, 4});  // x[p][q]
    taps(xs + xs_row, wp, PT{0, 2}, PT{2, 5});                          // x[p][q-1]
    taps(xs + 1, wp, PT{0, 6}, PT{1, 7});                               // x[p-1][q]
    taps(xs, wp, PT{0, 8});                                             // x[p-1][q-1]
    wp += 9 * CO;
    xs += xs_channel;
  }
  const std::size_t y_plane = std::size_t(s.h_out) * s.w_out;
#pragma GCC unroll 8
  for (int c = 0; c < CO; ++c) {
    float* out = y + c * y_plane;
    EvenOdd<V>::merge_store(out, acc[c][0], acc[c][1], count);
    EvenOdd<V>::merge_store(out + s.w_out, acc[c][2], acc[c][3], count);
  }
}

// One block of CO output channels over the band's rows [top, top + rows) of one image.
template <typename V, int CO>
void forward_block(const ConvTranspose2dShape& s, const Plan& p, const float* xs, int top, int rows,
                   const float* wp, const float* bias, float* y_block) {
  const int row = forward_row<V>(s);
  const std::size_t xs_channel = std::size_t(p.band_rows + 1) * row;
  for (int r = 0; r < rows; ++r)
    for (int q0 = 0; q0 < s.w_in; q0 += V::kLanes)
      forward_tile<V, CO>(s, xs + std::size_t(r) * row + q0, xs_channel, row, wp, bias,
                          y_block + std::size_t(2 * (top + r)) * s.w_out + 2 * q0, s.w_out - 2 * q0);
}

// This thread's share of a plan's tasks, inside a parallel region (forward and backward-data walk
// the same plan): task t is block group t % groups of the (image, band) t / groups. fill(image,
// top) loads the band into this thread's scratch when the task's (image, band) differs from the
// last one it loaded; run(image, top, rows, block) computes one block of channels of the band.
template <typename V, typename Fill, typename Run>
void for_each_task(int images, int h_in, const Plan& p, Fill fill, Run run) {
  int filled = -1;  // the (image, band) the scratch holds
#pragma omp for schedule(static)
  for (int t = 0; t < p.tasks(images); ++t) {
    const int image_band = t / p.groups;
    const int image = image_band / p.bands;
    const int top = image_band % p.bands * p.band_rows;
    if (image_band != filled) {
      fill(image, top);
      filled = image_band;
    }
    for (int block = t % p.groups * p.group_blocks; block < (t % p.groups + 1) * p.group_blocks; ++block)
      run(image, top, std::min(p.band_rows, h_in - top), block);
  }
}

// The last block, with fewer than kCo channels, gets its own instantiation.
template <typename V, int CO>
void forward_block_for(int channels, const ConvTranspose2dShape& s, const Plan& p, const float* xs, int top,
                       int rows, const float* wp, const float* bias, float* y_block) {
  if constexpr (CO > 1) {
    if (channels < CO) return forward_block_for<V, CO - 1>(channels, s, p, xs, top, rows, wp, bias, y_block);
  }
  forward_block<V, CO>(s, p, xs, top, rows, wp, bias, y_block);
}

template <typename V>
void forward(const ConvTranspose2dShape& s, const float* x, const float* w, const float* bias, float* y) {
  if (s.n <= 0 || s.c_out <= 0 || s.h_in <= 0 || s.w_in <= 0) return;
  constexpr int kCo = Tile<V>::kCo;
  const int row = forward_row<V>(s);
  const std::size_t channel_row = std::size_t(std::max(s.c_in, 1)) * row * sizeof(float);
  const Plan p = make_plan<V>(s.n, s.h_in, channel_row, channel_row, ceil_div(s.c_out, kCo));
  const std::size_t block_size = std::size_t(kCo) * s.c_in * 9;
  const auto packed = std::make_unique_for_overwrite<float[]>(p.blocks * block_size);
  const std::size_t x_image = std::size_t(s.c_in) * s.h_in * s.w_in;
  const std::size_t y_plane = std::size_t(s.h_out) * s.w_out;
#pragma omp parallel
  {
    pack_forward<V>(s, w, packed.get());  // ends with a barrier
    const auto scratch = make_scratch<V>(std::size_t(s.c_in) * (p.band_rows + 1) * row);
    float* xs = aligned<V>(scratch);
    for_each_task<V>(
        s.n, s.h_in, p, [&](int image, int top) { fill_forward<V>(s, p, x + image * x_image, top, xs); },
        [&](int image, int top, int rows, int block) {
          const int co0 = block * kCo;
          forward_block_for<V, kCo>(std::min(kCo, s.c_out - co0), s, p, xs, top, rows, packed.get() + block * block_size,
                                    bias ? bias + co0 : nullptr, y + (std::size_t(image) * s.c_out + co0) * y_plane);
        });
  }
}

// ---------------------------------------------------------------------------------------------
// Backward-data.
//
// Scratch: per output channel, the 2 * band_rows + 1 dy rows 2 top .. 2 (top + band_rows) that the
// band's dx rows read (zero past dy), each split into its even columns then its odd columns,
// half_row floats each (zero past the row): dx row p reads split rows 2r, 2r + 1, 2r + 2
// (r = p - top), taps b = 0, 1, 2 from even[q], odd[q], even[q + 1].

template <typename V>
int half_row(const ConvTranspose2dShape& s) {  // a vector's even[q + 1] reads one float past it
  return ceil_div(s.w_in, V::kLanes) * V::kLanes + kAlignFloats;
}

// packed[block][co][t][c] = w[block * kCi + c][co][t].
template <typename V>
void pack_backward_data(const ConvTranspose2dShape& s, const float* w, float* packed) {
  constexpr int kCi = Tile<V>::kCi;
  const int blocks = ceil_div(s.c_in, kCi);
#pragma omp for schedule(static)
  for (int b = 0; b < blocks; ++b) {
    const int ci0 = b * kCi;
    const int channels = std::min(kCi, s.c_in - ci0);
    float* dst = packed + std::size_t(b) * kCi * s.c_out * 9;
    for (int co = 0; co < s.c_out; ++co)
      for (int t = 0; t < 9; ++t)
        for (int c = 0; c < channels; ++c) *dst++ = w[(std::size_t(ci0 + c) * s.c_out + co) * 9 + t];
  }
}

template <typename V>
void fill_backward_data(const ConvTranspose2dShape& s, const Plan& p, const float* dy_image, int top, float* ds) {
  const int half = half_row<V>(s);
  const int rows = 2 * p.band_rows + 1;
  for (int co = 0; co < s.c_out; ++co)
    for (int k = 0; k < rows; ++k) {
      float* even = ds + (std::size_t(co) * rows + k) * 2 * half;
      float* odd = even + half;
      std::memset(even, 0, 2 * half * sizeof(float));
      const int oh = 2 * top + k;
      if (oh >= s.h_out) continue;
      split_row<V>(dy_image + (std::size_t(co) * s.h_out + oh) * s.w_out, s.w_out, even, odd);
    }
}

// One tile: CI input channels x one vector of dx row p from column q0. ds: the scratch at split
// row 2 (p - top), column q0 (output channel 0).
template <typename V, int CI>
void data_tile(const ConvTranspose2dShape& s, const float* ds, std::size_t ds_channel, int half, const float* wp,
               float* dx, int count) {
  using Reg = typename V::Reg;
  Reg acc[CI];
#pragma GCC unroll 16
  for (int c = 0; c < CI; ++c) acc[c] = V::zero();
  for (int co = 0; co < s.c_out; ++co) {
#pragma GCC unroll 3
    for (int a = 0; a < 3; ++a) {
      const float* even = ds + a * 2 * half;
      const Reg e = V::load(even), o = V::load(even + half), next = V::load(even + 1);
      const float* k = wp + 3 * a * CI;  // taps 3a, 3a + 1, 3a + 2
#pragma GCC unroll 16
      for (int c = 0; c < CI; ++c) {
        acc[c] = V::fma(e, V::broadcast(k + c), acc[c]);
        acc[c] = V::fma(o, V::broadcast(k + CI + c), acc[c]);
        acc[c] = V::fma(next, V::broadcast(k + 2 * CI + c), acc[c]);
      }
    }
    wp += 9 * CI;
    ds += ds_channel;
  }
  const std::size_t dx_plane = std::size_t(s.h_in) * s.w_in;
  if (count >= V::kLanes) {
#pragma GCC unroll 16
    for (int c = 0; c < CI; ++c) V::store(dx + c * dx_plane, acc[c]);
  } else {
    const auto mask = V::first(count);
#pragma GCC unroll 16
    for (int c = 0; c < CI; ++c) V::store(dx + c * dx_plane, acc[c], mask);
  }
}

template <typename V, int CI>
void data_block(const ConvTranspose2dShape& s, const Plan& p, const float* ds, int top, int rows, const float* wp,
                float* dx_block) {
  const int half = half_row<V>(s);
  const std::size_t ds_channel = std::size_t(2 * p.band_rows + 1) * 2 * half;
  for (int r = 0; r < rows; ++r)
    for (int q0 = 0; q0 < s.w_in; q0 += V::kLanes)
      data_tile<V, CI>(s, ds + std::size_t(2 * r) * 2 * half + q0, ds_channel, half, wp,
                       dx_block + std::size_t(top + r) * s.w_in + q0, s.w_in - q0);
}

template <typename V, int CI>
void data_block_for(int channels, const ConvTranspose2dShape& s, const Plan& p, const float* ds, int top, int rows,
                    const float* wp, float* dx_block) {
  if constexpr (CI > 1) {
    if (channels < CI) return data_block_for<V, CI - 1>(channels, s, p, ds, top, rows, wp, dx_block);
  }
  data_block<V, CI>(s, p, ds, top, rows, wp, dx_block);
}

template <typename V>
void backward_data(const ConvTranspose2dShape& s, const float* dy, const float* w, float* dx) {
  if (s.n <= 0 || s.c_in <= 0 || s.h_in <= 0 || s.w_in <= 0) return;
  constexpr int kCi = Tile<V>::kCi;
  const int half = half_row<V>(s);
  const std::size_t split_bytes = std::size_t(std::max(s.c_out, 1)) * 2 * half * sizeof(float);
  const Plan p = make_plan<V>(s.n, s.h_in, 2 * split_bytes, split_bytes, ceil_div(s.c_in, kCi));
  const std::size_t block_size = std::size_t(kCi) * s.c_out * 9;
  const auto packed = std::make_unique_for_overwrite<float[]>(p.blocks * block_size);
  const std::size_t dy_image = std::size_t(s.c_out) * s.h_out * s.w_out;
  const std::size_t dx_plane = std::size_t(s.h_in) * s.w_in;
#pragma omp parallel
  {
    pack_backward_data<V>(s, w, packed.get());  // ends with a barrier
    const auto scratch = make_scratch<V>(std::size_t(s.c_out) * (2 * p.band_rows + 1) * 2 * half);
    float* ds = aligned<V>(scratch);
    for_each_task<V>(
        s.n, s.h_in, p, [&](int image, int top) { fill_backward_data<V>(s, p, dy + image * dy_image, top, ds); },
        [&](int image, int top, int rows, int block) {
          const int ci0 = block * kCi;
          data_block_for<V, kCi>(std::min(kCi, s.c_in - ci0), s, p, ds, top, rows, packed.get() + block * block_size,
                                 dx + (std::size_t(image) * s.c_in + ci0) * dx_plane);
        });
  }
}

// ---------------------------------------------------------------------------------------------
// Backward-filter.
//
// With the phase planes D_rc[p][q] = dy[2p + r][2q + c] (p < h, q < w), tap (a, b) reads phase
// (a mod 2, b mod 2) and pairs it with x shifted by (a / 2, b / 2):
//   dw[ci][co][a][b] = sum over p, q of D_{a%2,b%2}[p][q] * x[ci][p - a/2][q - b/2]
// so per vector of pixels a tile loads the 4 phase vectors of each output channel once and the
// 4 shifted x vectors of each input channel once, for 9 multiply-adds per channel pair.
//
// The batch is walked in chunks (several whole small images, or a band of rows of one image) of
// about kChunkVectors pixel vectors a channel: few enough that one output channel's phase planes
// (4 x kChunkVectors vectors) stay in L1 while every input-channel tile of its block passes over
// them, many enough that the per-chunk lane sums cost a few percent. All threads first copy the
// chunk together: x with a zero row above, each row twice, as is and shifted right by a column
// (so that all loads are aligned and none crosses a cache line), and dy split into its phase
// planes; zero past w in both. Then they share out
// fixed blocks of dw; each (ci tile, co) sums its accumulators across lanes and adds them into dw,
// chunk after chunk in image order.
//
// Where dw has fewer than kMinTasks blocks (the last up-convolution, 32 -> 16 channels: 4), the
// threads would wait at two barriers a chunk for little work each (tens of microseconds a barrier
// when OpenMP threads sleep). There the chunks are shared out instead ("private chunks", as in
// conv_direct_filter.h): a task fills its own copy of a chunk, half as long (kPrivateChunkVectors,
// so that x and dy of all channels stay in its core's L2), computes all of dw for it into the
// chunk's partial, and the partials are added in chunk order at the end.
constexpr int kChunkVectors = 128;
constexpr int kPrivateChunkVectors = 64;
constexpr int kBlockCi = 16, kBlockCo = 8;  // a block of dw: 16 x 8 channels, the rest at the edges

struct FilterPlan {
  int vectors = 0;      // vectors a row
  int row = 0;          // floats a dy phase row: vectors * kLanes
  int x_row = 0;        // floats a scratch x row: x[p][q] then x[p][q - 1], row floats each
  int images = 0;       // images a chunk
  int band_rows = 0;    // rows a chunk of each image (h when a chunk is whole images)
  int bands = 0;        // chunks an image
  int ci_blocks = 0, co_blocks = 0;
  int chunks = 0;               // (image groups) x bands
  bool private_chunks = false;  // one task a chunk, see above
  std::size_t x_channel() const { return std::size_t(images) * (band_rows + 1) * x_row; }
  std::size_t dy_channel() const { return std::size_t(images) * 4 * band_rows * row; }
};

template <typename V>
FilterPlan make_filter_plan(const ConvTranspose2dShape& s) {
  FilterPlan p;
  p.vectors = ceil_div(s.w_in, V::kLanes);
  p.row = p.vectors * V::kLanes;
  p.x_row = 2 * p.row;
  p.ci_blocks = ceil_div(s.c_in, kBlockCi);
  p.co_blocks = ceil_div(s.c_out, kBlockCo);
  p.private_chunks = p.ci_blocks * p.co_blocks < kMinTasks;
  const int chunk_vectors = p.private_chunks ? kPrivateChunkVectors : kChunkVectors;
  const int image_vectors = p.vectors * s.h_in;
  if (image_vectors <= chunk_vectors) {
    p.images = std::clamp(chunk_vectors / image_vectors, 1, std::max(s.n, 1));
    p.band_rows = s.h_in;
    p.bands = 1;
  } else {
    p.images = 1;
    p.bands = ceil_div(s.h_in, std::max(chunk_vectors / p.vectors, 1));
    p.band_rows = ceil_div(s.h_in, p.bands);
    p.bands = ceil_div(s.h_in, p.band_rows);
  }
  p.chunks = ceil_div(s.n, p.images) * p.bands;
  return p;
}

// GCC 12 reports the undefined upper half inside _mm512_extractf64x4_pd, which V::hsum uses, as
// uninitialised once inlined at -O3 (a false positive, GCC bug 105593).
#pragma GCC diagnostic push
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

// One input channel of chunk (images [image0, image0 + images), rows [top, top + rows)) into xb.
template <typename V>
void fill_x(const ConvTranspose2dShape& s, const FilterPlan& p, const float* x, int ci, int image0, int images,
            int top, int rows, float* xb) {
  const std::size_t x_plane = std::size_t(s.h_in) * s.w_in;
  for (int i = 0; i < p.images; ++i) {
    float* dst = xb + ci * p.x_channel() + std::size_t(i) * (p.band_rows + 1) * p.x_row;
    for (int r = 0; r <= p.band_rows; ++r, dst += p.x_row) {
      const int ih = top - 1 + r;
      std::memset(dst, 0, p.x_row * sizeof(float));
      if (i >= images || ih < 0 || r > rows) continue;
      const float* src = x + (std::size_t(image0 + i) * s.c_in + ci) * x_plane + std::size_t(ih) * s.w_in;
      std::memcpy(dst, src, s.w_in * sizeof(float));
      // x[p][w - 1] would land at q = w, past a row that is exactly full: no tap reads it there.
      std::memcpy(dst + p.row + 1, src, std::min(s.w_in, p.row - 1) * sizeof(float));
    }
  }
}

// One output channel of the chunk's dy into its phase planes in dyb; returns the sum of that dy,
// images then rows then columns in order (for dbias), when `sum`.
template <typename V>
float fill_dy(const ConvTranspose2dShape& s, const FilterPlan& p, const float* dy, int co, int image0, int images,
              int top, int rows, float* dyb, bool sum) {
  const std::size_t dy_plane = std::size_t(s.h_out) * s.w_out;
  typename V::Reg total = V::zero();
  for (int i = 0; i < p.images; ++i) {
    float* planes = dyb + co * p.dy_channel() + std::size_t(i) * 4 * p.band_rows * p.row;
    std::memset(planes, 0, 4 * std::size_t(p.band_rows) * p.row * sizeof(float));
    if (i >= images) continue;
    const float* image = dy + (std::size_t(image0 + i) * s.c_out + co) * dy_plane;
    for (int r = 0; r < rows; ++r)
      for (int parity = 0; parity < 2; ++parity) {
        const float* src = image + std::size_t(2 * (top + r) + parity) * s.w_out;
        float* even = planes + (std::size_t(2 * parity) * p.band_rows + r) * p.row;
        float* odd = even + std::size_t(p.band_rows) * p.row;
        split_row<V>(src, s.w_out, even, odd);
        if (!sum) continue;
        for (int q = 0; q < p.row; q += V::kLanes) total = V::add(total, V::add(V::load(even + q), V::load(odd + q)));
      }
  }
  return sum ? V::hsum(total) : 0.0f;
}

// Chunk c: its first image, image count, first row and row count.
struct FilterChunk {
  int image0, images, top, rows;
};
template <typename V>
FilterChunk filter_chunk(const ConvTranspose2dShape& s, const FilterPlan& p, int c) {
  const int image0 = c / p.bands * p.images, top = c % p.bands * p.band_rows;
  return {image0, std::min(p.images, s.n - image0), top, std::min(p.band_rows, s.h_in - top)};
}

// The CI x 9 accumulators of input channels ci0.. and output channel co over the chunk's pixels,
// added into dw.
template <typename V, int CI>
void filter_tile(const ConvTranspose2dShape& s, const FilterPlan& p, const float* xb, const float* dyb, int ci0,
                 int co, float* dw) {
  using Reg = typename V::Reg;
  constexpr int L = V::kLanes;
  Reg acc[CI][9];
#pragma GCC unroll 4
  for (int c = 0; c < CI; ++c)
#pragma GCC unroll 9
    for (int t = 0; t < 9; ++t) acc[c][t] = V::zero();
  const std::size_t phase = std::size_t(p.band_rows) * p.row;
  for (int i = 0; i < p.images; ++i) {
    const float* d_image = dyb + co * p.dy_channel() + i * 4 * phase;
    const float* x_image = xb + ci0 * p.x_channel() + std::size_t(i) * (p.band_rows + 1) * p.x_row;
    // Down a column of vectors: x[p - 1] is the previous row's x[p], kept in registers, so each
    // x vector is loaded once (with its shifted twin) rather than twice.
    for (int j = 0; j < p.row; j += L) {
      Reg up[CI], up_left[CI];  // x[p-1][q], x[p-1][q-1]: the zero or halo row above the chunk first
#pragma GCC unroll 4
      for (int c = 0; c < CI; ++c) {
        up[c] = V::load(x_image + c * p.x_channel() + j);
        up_left[c] = V::load(x_image + c * p.x_channel() + j + p.row);
      }
      for (int r = 0; r < p.band_rows; ++r) {
        const float* d = d_image + std::size_t(r) * p.row + j;
        const Reg d00 = V::load(d), d01 = V::load(d + phase), d10 = V::load(d + 2 * phase),
                  d11 = V::load(d + 3 * phase);
        const float* xr = x_image + std::size_t(r + 1) * p.x_row + j;  // x[p][q]
#pragma GCC unroll 4
        for (int c = 0; c < CI; ++c) {
          const float* xc = xr + c * p.x_channel();
          const Reg a = V::load(xc);
          acc[c][0] = V::fma(a, d00, acc[c][0]);
          acc[c][1] = V::fma(a, d01, acc[c][1]);
          acc[c][3] = V::fma(a, d10, acc[c][3]);
          acc[c][4] = V::fma(a, d11, acc[c][4]);
          const Reg l = V::load(xc + p.row);  // x[p][q-1]
          acc[c][2] = V::fma(l, d00, acc[c][2]);
          acc[c][5] = V::fma(l, d10, acc[c][5]);
          acc[c][6] = V::fma(up[c], d00, acc[c][6]);
          acc[c][7] = V::fma(up[c], d01, acc[c][7]);
          acc[c][8] = V::fma(up_left[c], d00, acc[c][8]);
          up[c] = a;
          up_left[c] = l;
        }
      }
    }
  }
#pragma GCC unroll 4
  for (int c = 0; c < CI; ++c) {
    float* out = dw + (std::size_t(ci0 + c) * s.c_out + co) * 9;
#pragma GCC unroll 9
    for (int t = 0; t < 9; ++t) out[t] += V::hsum(acc[c][t]);
  }
}
#pragma GCC diagnostic pop

template <typename V>
void filter_block(const ConvTranspose2dShape& s, const FilterPlan& p, const float* xb, const float* dyb, int block,
                  float* dw) {
  constexpr int kCi = Tile<V>::kGradCi;
  const int ci_begin = block / p.co_blocks * kBlockCi, co_begin = block % p.co_blocks * kBlockCo;
  const int ci_end = std::min(ci_begin + kBlockCi, s.c_in), co_end = std::min(co_begin + kBlockCo, s.c_out);
  for (int co = co_begin; co < co_end; ++co) {
    int ci = ci_begin;
    for (; ci + kCi <= ci_end; ci += kCi) filter_tile<V, kCi>(s, p, xb, dyb, ci, co, dw);
    for (; ci < ci_end; ++ci) filter_tile<V, 1>(s, p, xb, dyb, ci, co, dw);
  }
}

// Private chunks (see above): each task fills its own scratch with a chunk and adds all of dw, and
// dbias, for it into the chunk's partial; dw is the sum of the partials in chunk order.
template <typename V>
void backward_filter_private(const ConvTranspose2dShape& s, const FilterPlan& p, const float* x, const float* dy,
                             float* dw, float* dbias) {
  const std::size_t dw_size = s.w_size(), stride = dw_size + std::size_t(s.c_out);
  const std::unique_ptr<float[]> partials = std::make_unique_for_overwrite<float[]>(stride * p.chunks);
  const int blocks = p.ci_blocks * p.co_blocks;
#pragma omp parallel
  {
    const auto x_scratch = make_scratch<V>(std::size_t(s.c_in) * p.x_channel());
    const auto dy_scratch = make_scratch<V>(std::size_t(s.c_out) * p.dy_channel());
    float* const xb = aligned<V>(x_scratch);
    float* const dyb = aligned<V>(dy_scratch);
#pragma omp for schedule(dynamic, 1)
    for (int c = 0; c < p.chunks; ++c) {
      const FilterChunk ch = filter_chunk<V>(s, p, c);
      float* part = partials.get() + std::size_t(c) * stride;
      for (int ci = 0; ci < s.c_in; ++ci) fill_x<V>(s, p, x, ci, ch.image0, ch.images, ch.top, ch.rows, xb);
      for (int co = 0; co < s.c_out; ++co)
        part[dw_size + co] = fill_dy<V>(s, p, dy, co, ch.image0, ch.images, ch.top, ch.rows, dyb, dbias != nullptr);
      std::memset(part, 0, dw_size * sizeof(float));
      for (int b = 0; b < blocks; ++b) filter_block<V>(s, p, xb, dyb, b, part);
    }
#pragma omp for schedule(static)
    for (std::size_t e = 0; e < dw_size; ++e) {
      float sum = 0.0f;
      for (int c = 0; c < p.chunks; ++c) sum += partials[std::size_t(c) * stride + e];
      dw[e] = sum;
    }
  }
  for (int co = 0; co < (dbias ? s.c_out : 0); ++co) {
    double sum = 0;
    for (int c = 0; c < p.chunks; ++c) sum += partials[std::size_t(c) * stride + dw_size + co];
    dbias[co] = float(sum);
  }
}

template <typename V>
void backward_filter(const ConvTranspose2dShape& s, const float* x, const float* dy, float* dw, float* dbias) {
  const FilterPlan p = make_filter_plan<V>(s);
  if (p.private_chunks) return backward_filter_private<V>(s, p, x, dy, dw, dbias);
  const auto x_scratch = make_scratch<V>(std::size_t(s.c_in) * p.x_channel());
  const auto dy_scratch = make_scratch<V>(std::size_t(s.c_out) * p.dy_channel());
  float* const xb = aligned<V>(x_scratch);
  float* const dyb = aligned<V>(dy_scratch);
  const std::unique_ptr<double[]> sums(new double[dbias ? s.c_out : 0]());
  const int blocks = p.ci_blocks * p.co_blocks;
  std::memset(dw, 0, s.w_size() * sizeof(float));
#pragma omp parallel
  for (int c = 0; c < p.chunks; ++c) {
    const FilterChunk ch = filter_chunk<V>(s, p, c);
#pragma omp for schedule(static) nowait
    for (int ci = 0; ci < s.c_in; ++ci) fill_x<V>(s, p, x, ci, ch.image0, ch.images, ch.top, ch.rows, xb);
#pragma omp for schedule(static)
    for (int co = 0; co < s.c_out; ++co) {
      const float sum = fill_dy<V>(s, p, dy, co, ch.image0, ch.images, ch.top, ch.rows, dyb, dbias != nullptr);
      if (dbias) sums[co] += sum;
    }
    // (the fill's barrier: the chunk is complete)
#pragma omp for schedule(static)
    for (int b = 0; b < blocks; ++b) filter_block<V>(s, p, xb, dyb, b, dw);
    // (and this one: nobody refills the chunk while a block still reads it)
  }
  for (int co = 0; co < (dbias ? s.c_out : 0); ++co) dbias[co] = float(sums[co]);
}

}  // namespace detail
}  // namespace unet::cpu::fused
