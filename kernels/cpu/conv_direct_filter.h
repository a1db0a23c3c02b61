// Direct backward-filter (weight gradient) of a stride-1 conv2d, without a column matrix.
//
//   dw[co, ci, kh, kw] = sum over n, oh, ow of
//                          dy[n, co, oh, ow] * x[n, ci, oh - pad_top + kh, ow - pad_left + kw]
//
// is the matrix product dW[c_out, K] = dY[c_out, P] * X[K, P]^T over the K = c_in*kh*kw taps,
// whose reduction runs over the P output pixels. So it is vectorised along pixels: one vector
// accumulator per (output channel, tap) collects the products of V::kLanes neighbouring pixels
// of a row, and is summed across its lanes once per chunk of pixels.
//
// A padded copy of x removes the edge cases. A chunk of x is copied into scratch with its zero
// padding, padded rows `row` floats apart, so that tap (kh, kw) of output pixel (r, c) reads x at
// (r + kh)*row + c + kw: one plain vector load for any kernel size and padding. dy is read in
// place; the last vector of an output row is loaded under a mask, so that its lanes past w_out
// read zero and contribute exactly nothing. The left and right padding columns are shared: a
// tap that runs past the end of a padded row lands on the next row's left padding, which is zero
// too, so a 3x3 'same' padded row is only w + 1 floats.
//
// Blocking and threads: the batch is walked in chunks (a band of rows of one image, or several
// whole small images). The threads share out blocks of dw (a range of output channels x a range
// of input channels) that each stream their part of the chunk, from L2, through the register
// tiles, and in the same loop copy the next chunk's x into a second scratch. So every input
// element is read from memory once, a block's x and dy stay in L2 while all its tiles pass over
// them, and a chunk costs one barrier.
//
// Where all of dw fits one block of few input channels (c_in <= 16, c_out <= 32: the image layer
// and the 16-channel layers), the chunks are shared out instead ("private chunks"), with no
// barrier between them: a task copies its own chunk of x and computes the whole of dw for it into
// a partial of its own, and the partials are summed in chunk order at the end. Sharing blocks
// would leave few of them for a chunk (4 on the image layer) and costs a barrier a chunk, which
// under a passive OpenMP wait policy (threads sleep rather than spin) takes tens of
// microseconds, as much as a small chunk's work.
//
// Determinism: the blocks, the chunks and the order in which chunks (in image order) and lanes
// are added into each dw element follow from the shape alone, never from the thread count, so
// the results are bitwise identical for any number of threads.
//
// Every function is a template on V, even where V is not used: this header is compiled once with
// AVX2 and once with AVX-512 flags, and code shared between the two through the linker (as an
// inline function's single copy would be) could carry AVX-512 instructions into the AVX2 path.
#pragma once

#include <omp.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstring>
#include <new>
#include <utility>

#include "kernels/cpu/simd.h"
#include "kernels/shapes.h"

namespace unet::cpu::direct {

using kernels::Conv2dShape;

namespace filter {

// The register tile: kCo output channels x kTaps taps, one accumulator each, plus kCo dy vectors
// and one x vector in flight. Per pixel vector it loads kCo + kTaps vectors for kCo*kTaps
// multiply-adds. AVX-512 (32 registers): 24 + 4 + 1; AVX2 (16): 12 + 3 + 1.
template <typename V>
struct Tile {
  static constexpr int kCo = V::kRegisters >= 32 ? 4 : 3;
  static constexpr int kTaps = V::kRegisters >= 32 ? 6 : 4;
};

// What one block of dw reads of a chunk (its x and dy) stays within half of the L2 cache.
constexpr std::size_t kBlockBytes = std::size_t(512) << 10;
// The largest block of channels a task owns, in each of c_out and c_in: large enough to reuse
// each loaded vector many times, small enough for long chunks within kBlockBytes.
constexpr int kMaxBlock = 32;
// Private chunks (see the top) where c_in is at most this. A private chunk holds dy and x of all
// channels within kBlockBytes, so its bands get shorter as the channels grow; at 32 input
// channels the shorter bands cost more than the barriers they save (bench_kernels, 2 threads:
// 32 -> 16 at 240x240 1.1x slower, 32 -> 32 at 120x120 even; 16 -> 16 at 240x240 1.1x faster
// and the 3-channel image layer 1.5x).
constexpr int kMaxPrivateCi = 16;
// Blocks are split until a chunk has this many (where the channels allow), so that both cores
// get work on the small layers too and uneven progress evens out.
constexpr int kMinTasks = 8;
constexpr std::size_t kAlignBytes = 64;

template <typename V>
std::size_t round_up(std::size_t v, std::size_t m) {
  return (v + m - 1) / m * m;
}

// The chunks, and where a chunk's x sits in scratch: `plane` floats per input channel, one
// segment of `segment` floats per image of the chunk, holding the padded input rows of a band of
// output rows: those that tap row kh of output row r reads start at (r + kh)*row.
struct Layout {
  int row = 0;        // floats per padded row
  int band_rows = 0;  // output rows per band (the last band of an image may have fewer)
  int bands = 0;      // bands per image
  int images = 0;     // images per chunk: 1 when images are cut into several bands
  std::size_t segment = 0;
  std::size_t plane = 0;
  int chunks = 0;
};

// One chunk: `images` consecutive images from `image`, output rows [row0, row0 + rows) of each.
struct Chunk {
  int image, images, row0, rows;
};

// The blocks of dw that the tasks of a chunk own, and the chunks; or, with private_chunks, one
// block holding all of dw and one task a chunk.
struct Plan {
  int co_block = 0, ci_block = 0;  // channels per block (the last block may have fewer)
  int co_blocks = 0, ci_blocks = 0;
  bool private_chunks = false;
  Layout layout;
};

// Shortest padded row such that every tap read lands on x or on a zero: reads reach column
// w_out - 1 + kw - 1, and those past the row's end wrap onto the next row's pad_left zeros, as
// long as the row holds all of x's columns that are read.
template <typename V>
int padded_row(const Conv2dShape& s) {
  const int reach = s.w_out + s.kw - 1;
  return std::max(reach - s.pad_left, std::min(s.pad_left + s.w_in, reach));
}

// A band's segment: its padded rows, and room for the furthest read of the last row's last
// (partly masked) vector.
template <typename V>
std::size_t segment_floats(const Conv2dShape& s, const Layout& l, int rows) {
  const std::size_t last_row = std::size_t(rows - 1 + s.kh - 1) * l.row;
  return round_up<V>(last_row + round_up<V>(std::size_t(s.w_out), V::kLanes) + s.kw - 1, V::kLanes);
}

// Cuts the batch into at least min_chunks chunks (where it has the rows) such that what a block of
// co_block x ci_block channels reads of a chunk fits kBlockBytes.
template <typename V>
Layout make_layout(const Conv2dShape& s, int co_block, int ci_block, int min_chunks) {
  Layout l;
  l.row = padded_row<V>(s);
  const auto block_floats = [&](int rows) {
    return std::size_t(co_block) * rows * s.w_out +
           std::size_t(ci_block) * segment_floats<V>(s, l, rows);
  };
  const std::size_t budget = kBlockBytes / sizeof(float);
  if (block_floats(s.h_out) <= budget && s.n >= min_chunks) {
    l.band_rows = s.h_out;
    l.bands = 1;
    l.images = int(std::clamp<std::size_t>(budget / block_floats(s.h_out), 1,
                                           std::size_t(s.n / min_chunks)));
    l.chunks = (s.n + l.images - 1) / l.images;
  } else {
    int rows = s.h_out;
    while (rows > 1 && block_floats(rows) > budget) --rows;
    const int bands = std::min(s.h_out, std::max((s.h_out + rows - 1) / rows, (min_chunks + s.n - 1) / s.n));
    l.band_rows = (s.h_out + bands - 1) / bands;  // even bands rather than a short last one
    l.bands = (s.h_out + l.band_rows - 1) / l.band_rows;
    l.images = 1;
    l.chunks = s.n * l.bands;
  }
  l.segment = segment_floats<V>(s, l, l.band_rows);
  l.plane = l.segment * std::size_t(l.images);
  return l;
}

template <typename V>
Chunk chunk_at(const Conv2dShape& s, const Layout& l, int c) {
  if (l.bands == 1) {
    const int image = c * l.images;
    return {image, std::min(l.images, s.n - image), 0, s.h_out};
  }
  const int row0 = c % l.bands * l.band_rows;
  return {c / l.bands, 1, row0, std::min(l.band_rows, s.h_out - row0)};
}

template <typename V>
int blocks_of(int channels, int block) {
  return (channels + block - 1) / block;
}

// Halves the larger block until there are kMinTasks blocks, as long as the halves are equal
// (so that the tasks are too), output-channel blocks stay whole register tiles and input-channel
// blocks keep at least one full tile of taps.
template <typename V>
Plan make_plan(const Conv2dShape& s) {
  constexpr int kCo = Tile<V>::kCo;
  Plan p;
  if (s.c_out <= kMaxBlock && s.c_in <= kMaxPrivateCi) {
    p.co_block = s.c_out;
    p.ci_block = s.c_in;
    p.co_blocks = p.ci_blocks = 1;
    p.private_chunks = true;
    p.layout = make_layout<V>(s, p.co_block, p.ci_block, kMinTasks);
    return p;
  }
  p.co_block = s.c_out <= kCo
                   ? s.c_out
                   : int(round_up<V>(std::size_t(std::min(s.c_out, kMaxBlock)), kCo));
  p.ci_block = std::min(s.c_in, kMaxBlock);
  while (blocks_of<V>(s.c_out, p.co_block) * blocks_of<V>(s.c_in, p.ci_block) < kMinTasks) {
    const bool co_splits = p.co_block % (2 * kCo) == 0;
    const bool ci_splits = p.ci_block % 2 == 0 && p.ci_block / 2 * s.kh * s.kw >= Tile<V>::kTaps;
    if (co_splits && (p.co_block >= p.ci_block || !ci_splits)) {
      p.co_block /= 2;
    } else if (ci_splits) {
      p.ci_block /= 2;
    } else {
      break;
    }
  }
  p.co_blocks = blocks_of<V>(s.c_out, p.co_block);
  p.ci_blocks = blocks_of<V>(s.c_in, p.ci_block);
  p.layout = make_layout<V>(s, p.co_block, p.ci_block, 1);
  return p;
}

// A buffer per thread and slot, kept between calls, aligned for vector loads.
template <typename V, int kSlot>
float* scratch_buffer(std::size_t floats) {
  struct Buffer {
    float* data = nullptr;
    std::size_t size = 0;
    ~Buffer() { ::operator delete[](data, std::align_val_t(kAlignBytes)); }
  };
  thread_local Buffer buffer;
  if (buffer.size < floats) {
    ::operator delete[](buffer.data, std::align_val_t(kAlignBytes));
    buffer.data = static_cast<float*>(
        ::operator new[](floats * sizeof(float), std::align_val_t(kAlignBytes)));
    buffer.size = floats;
  }
  return buffer.data;
}

template <typename V>
void zero(float* p, std::size_t count) {
  std::memset(p, 0, count * sizeof(float));
}

// One image's padded input rows for output rows [row0, row0 + rows), zeros around them.
template <typename V>
void copy_x_band(const Conv2dShape& s, const Layout& l, const float* x_plane, int row0, int rows,
                 float* dst) {
  const int first = std::min(s.pad_left, l.row);  // columns [first, last) hold x
  const int last = std::clamp(s.pad_left + s.w_in, first, l.row);
  const int padded_rows = rows + s.kh - 1;
  for (int r = 0; r < padded_rows; ++r, dst += l.row) {
    const int ih = row0 + r - s.pad_top;
    if (ih < 0 || ih >= s.h_in) {
      zero<V>(dst, std::size_t(l.row));
      continue;
    }
    zero<V>(dst, std::size_t(first));
    if (last > first)
      std::memcpy(dst + first, x_plane + std::size_t(ih) * s.w_in + (first - s.pad_left),
                  std::size_t(last - first) * sizeof(float));
    zero<V>(dst + last, std::size_t(l.row - last));
  }
  zero<V>(dst, segment_floats<V>(s, l, rows) - std::size_t(padded_rows) * l.row);
}

// What a register tile walks in one chunk: `images` x `rows` output rows of `width` pixels, in dy
// (rows dy_row apart, channels dy_channel apart, images dy_image apart) and in the x scratch
// (padded rows x_row apart, images x_image apart).
struct Walk {
  int images, rows, width;
  std::size_t dy_image, dy_row, dy_channel;
  std::size_t x_image, x_row;
};

template <typename V>
using TapPointers = std::array<const float*, Tile<V>::kTaps>;

// GCC 12 reports the undefined upper half inside _mm512_extractf64x4_pd, which V::hsum uses, as
// uninitialised once inlined at -O3 (a false positive, GCC bug 105593).
#pragma GCC diagnostic push
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

// The micro-kernel: dw[i][j] += sum over the chunk's pixels of dy channel i * x tap j, for CO
// output channels (dy from `dy`) and T taps (x from x[j]), dw rows dw_row floats apart. Each
// accumulator is summed across its lanes once, at the end of the chunk.
template <typename V, int CO, int T>
void tile(const Walk& w, const float* dy, const TapPointers<V>& x, float* dw, std::size_t dw_row) {
  using Reg = typename V::Reg;
  // Every loop over the tile is unrolled so that the accumulators become registers.
  Reg acc[CO][T];
#pragma GCC unroll 8
  for (int i = 0; i < CO; ++i)
#pragma GCC unroll 8
    for (int j = 0; j < T; ++j) acc[i][j] = V::zero();
  // One vector of pixels: the dy loads are masked in the last vector of a row only.
  const auto step = [&](const float* dy_at, std::size_t x_at, auto load_dy) {
    Reg d[CO];
#pragma GCC unroll 8
    for (int i = 0; i < CO; ++i) d[i] = load_dy(dy_at + i * w.dy_channel);
#pragma GCC unroll 8
    for (int j = 0; j < T; ++j) {
      const Reg xj = V::load(x[j] + x_at);
#pragma GCC unroll 8
      for (int i = 0; i < CO; ++i) acc[i][j] = V::fma(d[i], xj, acc[i][j]);
    }
  };
  const int full = w.width - w.width % V::kLanes;
  const auto tail = V::first(w.width - full);
  for (int n = 0; n < w.images; ++n)
    for (int r = 0; r < w.rows; ++r) {
      const float* dy_row = dy + n * w.dy_image + r * w.dy_row;
      const std::size_t x_row = n * w.x_image + r * w.x_row;
      for (int c = 0; c < full; c += V::kLanes)
        step(dy_row + c, x_row + c, [](const float* p) { return V::load(p); });
      if (full < w.width)
        step(dy_row + full, x_row + full, [&](const float* p) { return V::load(p, tail); });
    }
#pragma GCC unroll 8
  for (int i = 0; i < CO; ++i)
#pragma GCC unroll 8
    for (int j = 0; j < T; ++j) dw[i * dw_row + j] += V::hsum(acc[i][j]);
}

// The sum of one dy channel over the chunk, for dbias.
template <typename V>
float channel_sum(const Walk& w, const float* dy) {
  typename V::Reg acc = V::zero();
  for (int n = 0; n < w.images; ++n)
    for (int r = 0; r < w.rows; ++r) {
      const float* dy_row = dy + n * w.dy_image + r * w.dy_row;
      for (int c = 0; c < w.width; c += V::kLanes)
        acc = V::add(acc, V::load(dy_row + c, V::first(w.width - c)));
    }
  return V::hsum(acc);
}

#pragma GCC diagnostic pop

template <typename V>
using TileFn = void (*)(const Walk&, const float*, const TapPointers<V>&, float*, std::size_t);

// tile<V, co, taps> for every edge size: entry (co - 1) * kTaps + (taps - 1).
template <typename V, std::size_t... I>
constexpr std::array<TileFn<V>, sizeof...(I)> tile_table(std::index_sequence<I...>) {
  constexpr int kTaps = Tile<V>::kTaps;
  return {&tile<V, int(I) / kTaps + 1, int(I) % kTaps + 1>...};
}

template <typename V>
void run_tile(int co, int taps, const Walk& w, const float* dy, const TapPointers<V>& x, float* dw,
              std::size_t dw_row) {
  constexpr int kTaps = Tile<V>::kTaps;
  static constexpr auto kTable =
      tile_table<V>(std::make_index_sequence<std::size_t(Tile<V>::kCo * kTaps)>());
  kTable[std::size_t((co - 1) * kTaps + (taps - 1))](w, dy, x, dw, dw_row);
}

// Adds one chunk's contribution to the dw block `block` (and to dbias of its output channels
// when it holds the first input channels): all its register tiles, in a fixed order.
template <typename V>
void accumulate_block(const Conv2dShape& s, const Plan& plan, int block, const Chunk& ch,
                      const float* dy, const float* xs, float* dw, float* dbias) {
  constexpr int kCo = Tile<V>::kCo, kTaps = Tile<V>::kTaps;
  const Layout& l = plan.layout;
  const int co0 = block / plan.ci_blocks * plan.co_block;
  const int ci0 = block % plan.ci_blocks * plan.ci_block;
  const int co_n = std::min(plan.co_block, s.c_out - co0);
  const int ci_n = std::min(plan.ci_block, s.c_in - ci0);
  const int taps_per_ci = s.kh * s.kw;
  const int taps = ci_n * taps_per_ci;
  const std::size_t dw_row = std::size_t(s.c_in) * taps_per_ci;
  const std::size_t out_plane = std::size_t(s.h_out) * s.w_out;
  const Walk walk{ch.images, ch.rows, s.w_out, std::size_t(s.c_out) * out_plane,
                  std::size_t(s.w_out), out_plane, l.segment, std::size_t(l.row)};
  const float* dy_block = dy + (std::size_t(ch.image) * s.c_out + co0) * out_plane +
                          std::size_t(ch.row0) * s.w_out;
  const float* x_block = xs + std::size_t(ci0) * l.plane;
  float* dw_block = dw + co0 * dw_row + std::size_t(ci0) * taps_per_ci;

  for (int co = 0; co < co_n; co += kCo) {
    for (int k = 0; k < taps; k += kTaps) {
      const int tile_taps = std::min(kTaps, taps - k);
      TapPointers<V> x_taps{};
      for (int j = 0; j < tile_taps; ++j) {
        const int ci = (k + j) / taps_per_ci, tap = (k + j) % taps_per_ci;
        x_taps[std::size_t(j)] =
            x_block + ci * l.plane + std::size_t(tap / s.kw) * l.row + tap % s.kw;
      }
      run_tile<V>(std::min(kCo, co_n - co), tile_taps, walk, dy_block + co * out_plane, x_taps,
                  dw_block + co * dw_row + k, dw_row);
    }
  }
  if (dbias && ci0 == 0)
    for (int co = 0; co < co_n; ++co)
      dbias[co0 + co] += channel_sum<V>(walk, dy_block + co * out_plane);
}

// Private chunks (see the top): each task copies its chunk of x into its own scratch and adds the
// whole of dw (and dbias) for that chunk into the chunk's partial; then dw is the sum of the
// partials in chunk order.
template <typename V>
void backward_filter_private(const Conv2dShape& s, const Plan& plan, const float* x, const float* dy,
                             float* dw, float* dbias) {
  const Layout& l = plan.layout;
  const std::size_t in_plane = std::size_t(s.h_in) * s.w_in;
  const std::size_t dw_size = s.w_size(), stride = dw_size + std::size_t(s.c_out);
  float* partials = scratch_buffer<V, 1>(stride * std::size_t(l.chunks));
#pragma omp parallel
  {
    float* xs = scratch_buffer<V, 0>(std::size_t(s.c_in) * l.plane);
#pragma omp for schedule(dynamic, 1)
    for (int c = 0; c < l.chunks; ++c) {
      const Chunk ch = chunk_at<V>(s, l, c);
      for (int i = 0; i < ch.images; ++i)
        for (int ci = 0; ci < s.c_in; ++ci)
          copy_x_band<V>(s, l, x + (std::size_t(ch.image + i) * s.c_in + ci) * in_plane, ch.row0, ch.rows,
                         xs + ci * l.plane + i * l.segment);
      float* part = partials + std::size_t(c) * stride;
      zero<V>(part, stride);
      accumulate_block<V>(s, plan, 0, ch, dy, xs, part, dbias ? part + dw_size : nullptr);
    }
    const std::size_t outputs = dbias ? stride : dw_size;
#pragma omp for schedule(static)
    for (std::size_t e = 0; e < outputs; ++e) {
      float sum = 0.0f;
      for (int c = 0; c < l.chunks; ++c) sum += partials[std::size_t(c) * stride + e];
      (e < dw_size ? dw[e] : dbias[e - dw_size]) = sum;
    }
  }
}

}  // namespace filter

// dw (and dbias unless null) of a stride-1 conv2d, summed over the batch; outputs overwritten.
template <typename V>
void backward_filter(const Conv2dShape& s, const float* x, const float* dy, float* dw,
                     float* dbias) {
  filter::zero<V>(dw, s.w_size());
  if (dbias) filter::zero<V>(dbias, std::size_t(s.c_out));
  if (s.n <= 0 || s.h_out <= 0 || s.w_out <= 0) return;  // a sum over no pixels
  const filter::Plan plan = filter::make_plan<V>(s);
  if (plan.private_chunks) return filter::backward_filter_private<V>(s, plan, x, dy, dw, dbias);
  const filter::Layout& l = plan.layout;
  const std::size_t chunk_floats = std::size_t(s.c_in) * l.plane;
  float* const scratch = filter::scratch_buffer<V, 0>(2 * chunk_floats);
  const std::size_t in_plane = std::size_t(s.h_in) * s.w_in;
  const int blocks = plan.co_blocks * plan.ci_blocks;
  const auto copy = [&](int c, int k) {
    const filter::Chunk ch = filter::chunk_at<V>(s, l, c);
    const int ci = k % s.c_in, i = k / s.c_in;
    filter::copy_x_band<V>(s, l, x + (std::size_t(ch.image + i) * s.c_in + ci) * in_plane, ch.row0, ch.rows,
                           scratch + std::size_t(c % 2) * chunk_floats + ci * l.plane + i * l.segment);
  };
  const auto copies = [&](int c) { return c < l.chunks ? s.c_in * filter::chunk_at<V>(s, l, c).images : 0; };
#pragma omp parallel
  {
#pragma omp for schedule(static)
    for (int k = 0; k < copies(0); ++k) copy(0, k);
    for (int c = 0; c < l.chunks; ++c) {
      const filter::Chunk ch = filter::chunk_at<V>(s, l, c);
      const float* xs = scratch + std::size_t(c % 2) * chunk_floats;
#pragma omp for schedule(dynamic, 1)
      for (int t = 0; t < blocks + copies(c + 1); ++t) {
        if (t < blocks) filter::accumulate_block<V>(s, plan, t, ch, dy, xs, dw, dbias);
        else copy(c + 1, t - blocks);
      }
    }
  }
}

}  // namespace unet::cpu::direct
