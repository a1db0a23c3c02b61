// Direct forward convolution and backward-data for stride 1 (see kernels/cpu/conv_direct.h).
//
// How it works, for one image and one band of output rows:
//  1. The input rows the band needs are copied into a scratch buffer with the padding written out
//     as zeros: xp[ci][r][c] = x[ci][band_top - pad_top + r][c - pad_left], or 0 outside x. Each
//     scratch row is long enough for every tap of every output vector (the masked tail vector
//     included), so the micro-kernel reads plain unaligned vectors and never tests an edge.
//  2. The band's output vectors (kLanes consecutive pixels of one output row; the last vector of
//     a row is partly past its end) are taken NV at a time, so a narrow image (30 or 15 pixels
//     wide) still fills the tile with vectors of several rows.
//  3. The micro-kernel holds NV vectors x CO output channels in registers, starting from the
//     bias, and walks (ci, kh, kw): NV loads, CO broadcasts of packed weights and NV * CO
//     multiply-adds per tap. Then it stores (masked on row tails).
// Every output element is summed from its bias in the same (ci, kh, kw) order whatever the band,
// the tile or the thread, so results do not depend on the number of threads.
//
// Backward-data is the same forward pass over dy with the kernel flipped in space and transposed
// in channels (the adjoint of a stride-1 correlation), so both share one micro-kernel.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <memory>

#include "kernels/cpu/simd.h"
#include "kernels/shapes.h"

namespace unet::cpu::direct {

using kernels::Conv2dShape;

// Every function that could compile to vector code is a template on V, and memcpy/memset stand
// in for std::copy/std::fill: the AVX-512 translation unit compiles this header too, and a
// function that both units emit out of line (an inline function, one template instantiation
// shared by both) could be linked from its AVX-512 copy into the AVX2 path.
namespace forward_detail {

// The register tile: kChannels output channels x vectors(kChannels) vectors of output pixels.
// The accumulators, one register per input vector and one for the broadcast weight must fit with
// a register to spare: AVX-512 3 x 8 (28 of 32 registers), AVX2 2 x 4 (11 of 16; 3 x 4 would take
// all 16 and measured no faster). 8 and 4 channels divide every channel count of the U-Net
// (16..256); a remainder block (the 1-channel head, the 3 channels of the input image) gets more
// vectors instead.
template <typename V>
struct Tile {
  static constexpr int kChannels = V::kRegisters == 32 ? 8 : 4;
  // Capped: a band's last tile is padded with repeated vectors, and each vector takes an
  // address register.
  static constexpr int vectors(int channels) {
    return std::min(6, (V::kRegisters - 2) / (channels + 1));
  }
};

// Scratch per thread; a band is as many output rows as keep its padded input rows within this
// budget, so they stay in the L2 cache (1 MB a core on Zen 4) next to the packed weights.
constexpr std::size_t kScratchBytes = 512 * 1024;
// Tasks at least (when the shape allows): enough for two cores to share a batch-1 call evenly.
constexpr int kMinTasks = 8;

// How a call is cut into tasks (image, band of output rows, group of channel blocks): from the
// shape alone.
struct Plan {
  int lanes = 0;          // floats a vector
  int row_vectors = 0;    // vectors an output row, the last one possibly partial
  int row_stride = 0;     // floats a scratch row
  int band_rows = 0;      // output rows a band (the last band may have fewer)
  int input_rows = 0;     // scratch rows a channel: band_rows + kh - 1
  int bands = 0;
  int blocks = 0;         // blocks of kChannels output channels, the last one possibly partial
  int group_blocks = 0;   // blocks a task
  int groups = 0;
};

constexpr int ceil_div(int a, int b) { return (a + b - 1) / b; }

template <typename V>
Plan make_plan(const Conv2dShape& s) {
  Plan p;
  p.lanes = V::kLanes;
  p.row_vectors = ceil_div(s.w_out, p.lanes);
  // The last vector of a row reads up to kw - 1 floats past its last lane.
  p.row_stride = p.row_vectors * p.lanes + s.kw - 1;
  const std::size_t row_bytes = std::size_t(std::max(s.c_in, 1)) * p.row_stride * sizeof(float);
  const int rows_fitting = int(std::max<std::size_t>(1, kScratchBytes / row_bytes));
  const int band_rows = std::clamp(rows_fitting - (s.kh - 1), 1, s.h_out);
  p.bands = ceil_div(s.h_out, band_rows);
  p.band_rows = ceil_div(s.h_out, p.bands);  // as even as the same number of bands allows
  p.input_rows = p.band_rows + s.kh - 1;
  p.blocks = ceil_div(s.c_out, Tile<V>::kChannels);
  // Groups of equal size (a divisor of the block count), so that equal tasks share out evenly.
  p.groups = std::min(p.blocks, ceil_div(kMinTasks, s.n * p.bands));
  while (p.blocks % p.groups != 0) ++p.groups;
  p.group_blocks = p.blocks / p.groups;
  return p;
}

// The weights of a convolution as strided memory: element (co, ci, tap) with tap = i * kw + j is
// base[co * out_stride + ci * in_stride + tap * tap_stride]. Backward-data reads the forward
// weights transposed and flipped (tap_stride -1) through one of these.
struct WeightView {
  const float* base;
  std::ptrdiff_t out_stride, in_stride, tap_stride;
};

// packed[block][ci][tap][c] = weight(block * kChannels + c, ci, tap): a tap's kChannels weights
// are adjacent and the micro-kernel's broadcasts walk forward through memory. The last block holds
// only the channels that exist. Blocks are packed in parallel (called inside a parallel region).
template <typename V>
void pack_weights(const Conv2dShape& s, WeightView w, float* packed) {
  constexpr int kChannels = Tile<V>::kChannels;
  const int taps = s.kh * s.kw;
  const std::size_t block_size = std::size_t(kChannels) * s.c_in * taps;
  const int blocks = ceil_div(s.c_out, kChannels);
#pragma omp for schedule(static)
  for (int b = 0; b < blocks; ++b) {
    const int co0 = b * kChannels;
    const int channels = std::min(kChannels, s.c_out - co0);
    float* dst = packed + b * block_size;
    for (int ci = 0; ci < s.c_in; ++ci)
      for (int t = 0; t < taps; ++t) {
        const float* src = w.base + co0 * w.out_stride + ci * w.in_stride + t * w.tap_stride;
        for (int c = 0; c < channels; ++c) *dst++ = src[c * w.out_stride];
      }
  }
}

// Writes the band's scratch rows (p.input_rows a channel), zeros outside x.
template <typename V>
void fill_band(const Conv2dShape& s, const Plan& p, const float* x_image, int band_top, float* xp) {
  // Scratch columns [c_lo, c_hi) come from x; the rest is padding.
  const int c_lo = std::clamp(s.pad_left, 0, p.row_stride);
  const int c_hi = std::clamp(s.pad_left + s.w_in, 0, p.row_stride);
  for (int ci = 0; ci < s.c_in; ++ci)
    for (int r = 0; r < p.input_rows; ++r) {
      float* dst = xp + (std::size_t(ci) * p.input_rows + r) * p.row_stride;
      const int ih = band_top - s.pad_top + r;
      if (ih < 0 || ih >= s.h_in || c_lo >= c_hi) {
        std::memset(dst, 0, p.row_stride * sizeof(float));
        continue;
      }
      const float* src = x_image + (std::size_t(ci) * s.h_in + ih) * s.w_in + (c_lo - s.pad_left);
      std::memset(dst, 0, c_lo * sizeof(float));
      std::memcpy(dst + c_lo, src, (c_hi - c_lo) * sizeof(float));
      std::memset(dst + c_hi, 0, (p.row_stride - c_hi) * sizeof(float));
    }
}

// Where the NV vectors of one tile read (in the scratch) and write (in y), and how many lanes
// each stores: 0 for a stand-in that repeats the band's last vector when the band runs out.
template <int NV>
struct VectorGroup {
  const float* in[NV];
  float* out[NV];
  int lanes[NV];
};

// The distances between the scratch reads of the taps: per input channel, row and column.
struct TapStrides {
  std::ptrdiff_t channel, row;
};

// K > 0: a K x K kernel known at compile time (the tap loops unroll); K = 0: s.kh x s.kw.
template <typename V, int NV, int CO, int K>
void micro_kernel(const Conv2dShape& s, const VectorGroup<NV>& g, TapStrides st, const float* wp,
                  const float* bias, std::size_t y_plane) {
  // The loops over vectors and channels are unrolled by pragma: left as loops (GCC 12 declines
  // some at -O3), the accumulator array stays in memory and every multiply-add goes through it.
  using Reg = typename V::Reg;
  const int kh = K > 0 ? K : s.kh;
  const int kw = K > 0 ? K : s.kw;
  Reg acc[CO][NV];
#pragma GCC unroll 16
  for (int c = 0; c < CO; ++c) {
    const Reg b = bias ? V::set1(bias[c]) : V::zero();
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) acc[c][v] = b;
  }
  for (int ci = 0; ci < s.c_in; ++ci) {
    const std::ptrdiff_t channel_offset = ci * st.channel;
    for (int i = 0; i < kh; ++i)
      for (int j = 0; j < kw; ++j) {
        const std::ptrdiff_t offset = channel_offset + i * st.row + j;
        Reg xv[NV];
#pragma GCC unroll 16
        for (int v = 0; v < NV; ++v) xv[v] = V::load(g.in[v] + offset);
#pragma GCC unroll 16
        for (int c = 0; c < CO; ++c) {
          const Reg wv = V::broadcast(wp + c);
#pragma GCC unroll 16
          for (int v = 0; v < NV; ++v) acc[c][v] = V::fma(xv[v], wv, acc[c][v]);
        }
        wp += CO;
      }
  }
#pragma GCC unroll 16
  for (int v = 0; v < NV; ++v) {
    if (g.lanes[v] == V::kLanes) {
#pragma GCC unroll 16
      for (int c = 0; c < CO; ++c) V::store(g.out[v] + c * y_plane, acc[c][v]);
    } else if (g.lanes[v] > 0) {
      const auto mask = V::first(g.lanes[v]);
#pragma GCC unroll 16
      for (int c = 0; c < CO; ++c) V::store(g.out[v] + c * y_plane, acc[c][v], mask);
    }
  }
}

// One block of CO output channels over the band's rows: the band's vectors, row by row, NV at a
// time; a last, partial tile repeats the band's last vector without storing it.
template <typename V, int CO, int K>
void run_block(const Conv2dShape& s, const Plan& p, const float* xp, int band_top, int band_rows,
               const float* wp, const float* bias, float* y_block) {
  constexpr int NV = Tile<V>::vectors(CO);
  const TapStrides st{std::ptrdiff_t(p.input_rows) * p.row_stride, p.row_stride};
  const std::size_t y_plane = std::size_t(s.h_out) * s.w_out;
  int row = 0, col = 0;  // of the band's next vector
  while (row < band_rows) {
    VectorGroup<NV> g;
    for (int v = 0; v < NV; ++v) {
      if (row == band_rows) {
        g.in[v] = g.in[v - 1];
        g.out[v] = g.out[v - 1];
        g.lanes[v] = 0;
        continue;
      }
      g.in[v] = xp + std::size_t(row) * p.row_stride + col;
      g.out[v] = y_block + std::size_t(band_top + row) * s.w_out + col;
      g.lanes[v] = std::min(p.lanes, s.w_out - col);
      col += p.lanes;
      if (col >= s.w_out) {
        col = 0;
        ++row;
      }
    }
    micro_kernel<V, NV, CO, K>(s, g, st, wp, bias, y_plane);
  }
}

// A block of `channels` < kChannels output channels (the last block) gets its own instantiation,
// so that no multiply-add is spent on channels that do not exist.
template <typename V, int CO, int K>
void run_block_for(int channels, const Conv2dShape& s, const Plan& p, const float* xp, int band_top,
                   int band_rows, const float* wp, const float* bias, float* y_block) {
  if constexpr (CO > 1) {
    if (channels < CO) {
      return run_block_for<V, CO - 1, K>(channels, s, p, xp, band_top, band_rows, wp, bias, y_block);
    }
  }
  run_block<V, CO, K>(s, p, xp, band_top, band_rows, wp, bias, y_block);
}

// One task: output channel blocks [block_begin, block_end) of the band's rows of one image.
template <typename V, int K>
void run_band(const Conv2dShape& s, const Plan& p, const float* xp, int band_top, int band_rows,
              const float* packed, const float* bias, float* y_image, int block_begin,
              int block_end) {
  constexpr int CO = Tile<V>::kChannels;
  const std::size_t y_plane = std::size_t(s.h_out) * s.w_out;
  const std::size_t block_size = std::size_t(CO) * s.c_in * s.kh * s.kw;
  for (int b = block_begin; b < block_end; ++b) {
    const int co0 = b * CO;
    run_block_for<V, CO, K>(std::min(CO, s.c_out - co0), s, p, xp, band_top, band_rows,
                            packed + b * block_size, bias ? bias + co0 : nullptr,
                            y_image + co0 * y_plane);
  }
}

// y = conv(x, weights) + bias with the weights already packed by pack_weights.
template <typename V, int K>
void run_tasks(const Conv2dShape& s, const Plan& p, const float* x, const float* packed,
               const float* bias, float* y) {
  const int tasks = s.n * p.bands * p.groups;
  const std::size_t scratch_size = std::size_t(s.c_in) * p.input_rows * p.row_stride;
  const auto scratch = std::make_unique_for_overwrite<float[]>(scratch_size);
  int filled = -1;  // the (image, band) whose rows the scratch holds
  // Channel groups vary fastest, so a thread's consecutive tasks often share one band's scratch.
#pragma omp for schedule(static)
  for (int t = 0; t < tasks; ++t) {
    const int image_band = t / p.groups;
    const int group = t % p.groups;
    const int image = image_band / p.bands;
    const int band_top = image_band % p.bands * p.band_rows;
    const float* x_image = x + std::size_t(image) * s.c_in * s.h_in * s.w_in;
    if (image_band != filled) {
      fill_band<V>(s, p, x_image, band_top, scratch.get());
      filled = image_band;
    }
    float* y_image = y + std::size_t(image) * s.c_out * s.h_out * s.w_out;
    const int block_begin = group * p.group_blocks;
    run_band<V, K>(s, p, scratch.get(), band_top, std::min(p.band_rows, s.h_out - band_top),
                   packed, bias, y_image, block_begin, block_begin + p.group_blocks);
  }
}

// Packs the weights and runs the forward pass over x.
template <typename V>
void convolve(const Conv2dShape& s, const float* x, WeightView weight, const float* bias, float* y) {
  if (s.n <= 0 || s.c_out <= 0 || s.h_out <= 0 || s.w_out <= 0) return;  // no output
  const Plan p = make_plan<V>(s);
  const auto packed = std::make_unique_for_overwrite<float[]>(s.w_size());
#pragma omp parallel
  {
    pack_weights<V>(s, weight, packed.get());  // ends with a barrier: packed is complete after it
    if (s.kh == 3 && s.kw == 3) {
      run_tasks<V, 3>(s, p, x, packed.get(), bias, y);
    } else if (s.kh == 1 && s.kw == 1) {
      run_tasks<V, 1>(s, p, x, packed.get(), bias, y);
    } else {
      run_tasks<V, 0>(s, p, x, packed.get(), bias, y);
    }
  }
}

}  // namespace forward_detail

template <typename V>
void forward(const Conv2dShape& s, const float* x, const float* w, const float* bias, float* y) {
  const int taps = s.kh * s.kw;
  const forward_detail::WeightView weight{w, std::ptrdiff_t(s.c_in) * taps, taps, 1};
  forward_detail::convolve<V>(s, x, weight, bias, y);
}

// dx[ci][ih][iw] = sum over (co, i, j) of dy[co][ih - (kh-1-pad_top) + i][iw - (kw-1-pad_left) + j]
//                                        * w[co][ci][kh-1-i][kw-1-j]:
// a forward pass over dy (c_out channels in, c_in out, h_in x w_in outputs) with the kernel
// transposed in channels and flipped in space, and the padding the forward pass leaves after x.
template <typename V>
void backward_data(const Conv2dShape& s, const float* dy, const float* w, float* dx) {
  // Flipping both axes reverses the taps: (kh-1-i) * kw + (kw-1-j) = taps-1 - (i * kw + j).
  const int taps = s.kh * s.kw;
  const forward_detail::WeightView flipped{w + taps - 1, taps, std::ptrdiff_t(s.c_in) * taps, -1};
  forward_detail::convolve<V>(kernels::backward_data_as_forward(s), dy, flipped, nullptr, dx);
}

}  // namespace unet::cpu::direct
