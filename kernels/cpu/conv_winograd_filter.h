// Winograd F(2x2, 3x3) weight gradient (backward-filter) of a 3x3 stride-1 conv2d, NCHW.
//
// The maths. The forward pass (conv_winograd_kernels.h) computes each 2x2 block of outputs as
//   Y = A^T [U . V] A,   U = G g G^T (the kernel),  V = B^T d B (the 4x4 input tile d),
// which is linear in U, so the gradient of U is dU = (A dY A^T) . V, and that of the kernel is
// dg = G^T dU G. Summed over every tile of every image, with Z = A dY A^T (a 2x2 block of dy
// spread to 4x4):
//   M[p][co][ci] = sum over tiles t of Z[p][co][t] V[p][ci][t],   p = 0..15 (the 16 points),
//   dw[co][ci]   = G^T M[.][co][ci] G                             (once per call).
// So the work is 16 independent matrix products whose reduction runs over the tiles, 16
// multiply-adds per (co, ci, 2x2 outputs) where the direct weight gradient spends 36. The
// transforms cost per channel, not per channel pair: they are additions only, and G's halvings
// are applied once per call. Tiles that hang over the right or bottom edge of dy (odd sizes) read
// dy as zero there, so they add nothing; input tiles read the input's zero padding.
//
// Layout. V is stored as [p][tile][ci] (input channels contiguous, padded with zeros to whole
// vectors) and Z as [p][co][tile]. The multiply vectorises along input channels and broadcasts Z:
// a register tile of kRows output channels x kVectors vectors of input channels keeps one vector
// accumulator per (co, vector of ci) and walks the tiles, one vector load per vector and one
// broadcast per output channel per tile (AVX-512 8 x 3 = 24 accumulators + 3 loads + 1
// broadcast of 32 registers; AVX2 4 x 3 = 12 + 3 + 1 of 16). Vectorising along tiles instead,
// as the direct kernel does along pixels, would need a horizontal sum per (p, co, ci) each time
// a chunk ends; here a chunk ends with one vector add per accumulator into M.
//   To get channels contiguous, each task copies the input rows its tiles read into a small
// channel-last buffer (zero-padded; blocks of kLanes channels x kLanes columns transposed in
// registers, as a scalar copy cost more than the multiply at 16 channels), and transforms whole
// vectors of channels at once. Z comes straight from NCHW dy, vectorised along a row of tiles
// (even and odd columns split in registers), as the forward's input transform.
//
// Blocking. The batch is walked in chunks of tiles (a band of tile rows of one image, or several
// whole small images) whose V and Z, 16 points x (ci + co) floats a tile, fit kChunkBytes, so
// that they stay in the two cores' caches between the transforms that write them and the
// multiplies that read them. Per chunk, all threads first transform (tasks: a few tile rows of
// one image, all ci; or one dy channel of one image), then multiply (tasks: one point and one
// block of kVectors vectors of ci, all co), each task adding its products into its own part of M.
//
// dbias (when asked for) is the per-channel sum of dy: each image's plane summed in vectors and
// across lanes, images added in order.
//
// Determinism: every element of M belongs to one multiply task per chunk, which sums the chunk's
// tiles in order and adds the result to M; chunks follow one another in a fixed order. The
// chunks, the tasks and the order of every sum follow from the shape alone, never from the
// thread count, so the results are bitwise identical for any number of threads.
//
// Every function is a template on V (see conv_direct_filter.h): the AVX2 and AVX-512 objects
// must share no out-of-line code.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <memory>

#include "kernels/cpu/conv_winograd_kernels.h"
#include "kernels/cpu/simd.h"
#include "kernels/shapes.h"

namespace unet::cpu::winograd {

namespace filter {

// GCC 12 reports the undefined vectors that AVX-512 intrinsics start from (in the shuffles of
// Transpose, and in _mm512_extractf64x4_pd inside V::hsum) as uninitialised once inlined at -O3:
// a false positive, GCC bug 105593.
#pragma GCC diagnostic push
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

// The multiply's register tile (see the header comment).
template <typename V>
struct Tile {
  static constexpr int kRows = V::kRegisters == 32 ? 8 : 4;
  static constexpr int kVectors = 3;
};

// V and Z of one chunk: within the L2 caches of the two cores (1 MB each on Zen 4).
constexpr std::size_t kChunkBytes = std::size_t(2) << 20;
// Tile rows an input-transform task: its input rows overlap the next task's by 2 rows, copied
// twice, so a few tile rows keep that small while leaving tasks for both cores.
constexpr int kTaskTileRows = 4;

struct Plan {
  int tiles_h = 0, tiles_w = 0;  // 2x2 tiles a plane; the last row / column may hang over
  int ci_pad = 0;                // input channels rounded up to whole vectors
  int co_pad = 0;                // output channels rounded up to whole register tiles
  int images = 0;                // images a chunk: 1 when images are cut into bands
  int band_rows = 0, bands = 0;  // tile rows a chunk (the last band may have fewer), bands an image
  int chunks = 0;
  int chunk_tiles = 0;           // the most tiles a chunk holds: Z's row stride
  // Floats from one point to the next in V, Z and M: padded by a cache line, since at a power
  // of two apart the 16 points' stores fall in the same cache sets (see conv_winograd_kernels.h).
  std::size_t v_point = 0, z_point = 0, m_point = 0;
  int xt_cols = 0;               // positions a channel-last input row: the tiles' 2 tiles_w + 2 columns
  int dy_row = 0;                // floats a zero-padded dy row: whole vectors of tile pairs
  int ci_blocks = 0;             // blocks of kVectors vectors of input channels
};

// One chunk: `images` consecutive images from `image`, tile rows [row0, row0 + rows) of each.
struct Chunk {
  int image, images, row0, rows;
};

template <typename V>
int round_up(int v, int m) {
  return ceil_div<V>(v, m) * m;
}

template <typename V>
Plan make_plan(const Conv2dShape& s) {
  Plan p;
  p.tiles_h = ceil_div<V>(s.h_out, 2);
  p.tiles_w = ceil_div<V>(s.w_out, 2);
  p.ci_pad = round_up<V>(s.c_in, V::kLanes);
  p.co_pad = round_up<V>(s.c_out, Tile<V>::kRows);
  const std::size_t tile_bytes = std::size_t(kPoints) * (p.ci_pad + p.co_pad) * sizeof(float);
  const int fitting = int(std::max<std::size_t>(1, kChunkBytes / tile_bytes));
  const int image_tiles = p.tiles_h * p.tiles_w;
  if (image_tiles <= fitting) {
    p.images = std::min(s.n, fitting / image_tiles);
    p.bands = 1;
    p.band_rows = p.tiles_h;
    p.chunks = ceil_div<V>(s.n, p.images);
  } else {
    p.images = 1;
    p.bands = ceil_div<V>(p.tiles_h, std::clamp(fitting / p.tiles_w, 1, p.tiles_h));
    p.band_rows = ceil_div<V>(p.tiles_h, p.bands);  // even bands rather than a short last one
    p.chunks = s.n * p.bands;
  }
  p.chunk_tiles = p.images * p.band_rows * p.tiles_w;
  p.v_point = std::size_t(p.chunk_tiles) * p.ci_pad + kLineFloats;
  p.z_point = std::size_t(p.co_pad) * p.chunk_tiles + kLineFloats;
  p.m_point = std::size_t(p.co_pad) * p.ci_pad + kLineFloats;
  p.xt_cols = 2 * p.tiles_w + 2;
  p.dy_row = 2 * round_up<V>(p.tiles_w, V::kLanes);
  p.ci_blocks = ceil_div<V>(p.ci_pad / V::kLanes, Tile<V>::kVectors);
  return p;
}

template <typename V>
Chunk chunk_at(const Conv2dShape& s, const Plan& p, int c) {
  if (p.bands == 1) {
    const int image = c * p.images;
    return {image, std::min(p.images, s.n - image), 0, p.tiles_h};
  }
  const int row0 = c % p.bands * p.band_rows;
  return {c / p.bands, 1, row0, std::min(p.band_rows, p.tiles_h - row0)};
}

// An in-register transpose of kLanes x kLanes floats: r[i][j] becomes r[j][i].
template <typename V>
struct Transpose;

#if defined(__AVX2__) && defined(__FMA__)
template <>
struct Transpose<simd::Avx2> {
  static void apply(__m256 r[8]) {
    __m256 t[8], u[8];
    for (int k = 0; k < 4; ++k) {  // pairs of rows interleaved: 2 rows x 2 columns per 64 bits
      t[2 * k] = _mm256_unpacklo_ps(r[2 * k], r[2 * k + 1]);
      t[2 * k + 1] = _mm256_unpackhi_ps(r[2 * k], r[2 * k + 1]);
    }
    for (int m = 0; m < 2; ++m) {  // u[4m + c], 128-bit half h: column 4h + c of rows 4m .. 4m + 3
      const auto pd = [](__m256 a) { return _mm256_castps_pd(a); };
      u[4 * m + 0] = _mm256_castpd_ps(_mm256_unpacklo_pd(pd(t[4 * m]), pd(t[4 * m + 2])));
      u[4 * m + 1] = _mm256_castpd_ps(_mm256_unpackhi_pd(pd(t[4 * m]), pd(t[4 * m + 2])));
      u[4 * m + 2] = _mm256_castpd_ps(_mm256_unpacklo_pd(pd(t[4 * m + 1]), pd(t[4 * m + 3])));
      u[4 * m + 3] = _mm256_castpd_ps(_mm256_unpackhi_pd(pd(t[4 * m + 1]), pd(t[4 * m + 3])));
    }
    for (int c = 0; c < 4; ++c) {
      r[c] = _mm256_permute2f128_ps(u[c], u[4 + c], 0x20);
      r[4 + c] = _mm256_permute2f128_ps(u[c], u[4 + c], 0x31);
    }
  }
};
#endif

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
template <>
struct Transpose<simd::Avx512> {
  static void apply(__m512 r[16]) {
    __m512 t[16], u[16];
    for (int k = 0; k < 8; ++k) {
      t[2 * k] = _mm512_unpacklo_ps(r[2 * k], r[2 * k + 1]);
      t[2 * k + 1] = _mm512_unpackhi_ps(r[2 * k], r[2 * k + 1]);
    }
    for (int m = 0; m < 4; ++m) {  // u[4m + c], 128-bit lane l: column 4l + c of rows 4m .. 4m + 3
      const auto pd = [](__m512 a) { return _mm512_castps_pd(a); };
      u[4 * m + 0] = _mm512_castpd_ps(_mm512_unpacklo_pd(pd(t[4 * m]), pd(t[4 * m + 2])));
      u[4 * m + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(pd(t[4 * m]), pd(t[4 * m + 2])));
      u[4 * m + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(pd(t[4 * m + 1]), pd(t[4 * m + 3])));
      u[4 * m + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(pd(t[4 * m + 1]), pd(t[4 * m + 3])));
    }
    for (int c = 0; c < 4; ++c) {  // gather lane l of u[c], u[4 + c], u[8 + c], u[12 + c]
      const __m512 even = _mm512_shuffle_f32x4(u[c], u[4 + c], 0x88), odd = _mm512_shuffle_f32x4(u[c], u[4 + c], 0xDD);
      const __m512 even2 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0x88);
      const __m512 odd2 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0xDD);
      r[c] = _mm512_shuffle_f32x4(even, even2, 0x88);
      r[8 + c] = _mm512_shuffle_f32x4(even, even2, 0xDD);
      r[4 + c] = _mm512_shuffle_f32x4(odd, odd2, 0x88);
      r[12 + c] = _mm512_shuffle_f32x4(odd, odd2, 0xDD);
    }
  }
};
#endif

// The input rows that tile rows [row0, row0 + rows) read, channel-last: position (r, col) holds
// the ci_pad channels of input row 2 row0 - pad_top + r, column col - pad_left; zeros outside x.
// Blocks of kLanes channels x kLanes columns are transposed in registers.
template <typename V>
void copy_channel_last(const Conv2dShape& s, const Plan& p, const float* x_image, int row0, int rows, float* xt) {
  using Reg = typename V::Reg;
  const int in_rows = 2 * rows + 2;
  const std::size_t row_floats = std::size_t(p.xt_cols) * p.ci_pad;
  const int iw_begin = std::max(0, -s.pad_left), iw_end = std::min(s.w_in, p.xt_cols - s.pad_left);
  // Positions [col_begin, col_end) of a row hold x; the others are padding.
  const int col_begin = iw_begin + s.pad_left, col_end = std::max(col_begin, iw_end + s.pad_left);
  for (int r = 0; r < in_rows; ++r) {
    float* dst = xt + r * row_floats;
    const int ih = 2 * row0 - s.pad_top + r;
    if (ih < 0 || ih >= s.h_in) {
      std::memset(dst, 0, row_floats * sizeof(float));
      continue;
    }
    std::memset(dst, 0, std::size_t(col_begin) * p.ci_pad * sizeof(float));
    std::memset(dst + std::size_t(col_end) * p.ci_pad, 0, std::size_t(p.xt_cols - col_end) * p.ci_pad * sizeof(float));
    for (int ci0 = 0; ci0 < p.ci_pad; ci0 += V::kLanes) {
      const float* src = x_image + (std::size_t(ci0) * s.h_in + ih) * s.w_in;
      const std::size_t src_channel = std::size_t(s.h_in) * s.w_in;
      for (int iw = iw_begin; iw < iw_end; iw += V::kLanes) {
        const int n = std::min(V::kLanes, iw_end - iw);
        Reg block[V::kLanes];
        for (int k = 0; k < V::kLanes; ++k)  // the channels past c_in are zeros
          block[k] = ci0 + k < s.c_in ? load_n<V>(src + k * src_channel + iw, n) : V::zero();
        Transpose<V>::apply(block);
        float* at = dst + std::size_t(s.pad_left + iw) * p.ci_pad + ci0;
        for (int j = 0; j < n; ++j) V::store(at + std::size_t(j) * p.ci_pad, block[j]);
      }
    }
  }
}

// d B for one input row of a tile: its 4 positions `step` floats apart, a vector of channels each.
template <typename V>
void transform_row(const float* d, std::size_t step, typename V::Reg h[4]) {
  const typename V::Reg d0 = V::load(d), d1 = V::load(d + step), d2 = V::load(d + 2 * step),
                        d3 = V::load(d + 3 * step);
  h[0] = V::sub(d0, d2);
  h[1] = V::add(d1, d2);
  h[2] = V::sub(d2, d1);
  h[3] = V::sub(d1, d3);
}

// V = B^T d B for tile rows [row0, row0 + rows) of one image, all channels, into v (the chunk's
// V at the first of those tiles). Down a column of tiles, the last two input rows of a tile are
// the first two of the next, so each row's d B is kept in registers for the tile below.
template <typename V>
void transform_input(const Conv2dShape& s, const Plan& p, const float* x_image, int row0, int rows, float* xt,
                     float* v) {
  using Reg = typename V::Reg;
  copy_channel_last<V>(s, p, x_image, row0, rows, xt);
  const std::size_t step = std::size_t(p.ci_pad), row_floats = std::size_t(p.xt_cols) * p.ci_pad;
  for (int tj = 0; tj < p.tiles_w; ++tj)
    for (int cv = 0; cv < p.ci_pad; cv += V::kLanes) {
      const float* column = xt + std::size_t(2 * tj) * step + cv;
      Reg h[4][4];
      transform_row<V>(column, step, h[0]);
      transform_row<V>(column + row_floats, step, h[1]);
      for (int tr = 0; tr < rows; ++tr) {
        transform_row<V>(column + (2 * tr + 2) * row_floats, step, h[2]);
        transform_row<V>(column + (2 * tr + 3) * row_floats, step, h[3]);
        float* out = v + std::size_t(tr * p.tiles_w + tj) * step + cv;
        for (int j = 0; j < 4; ++j) {  // B^T (d B), point (i, j) at 4 i + j
          V::store(out + (0 + j) * p.v_point, V::sub(h[0][j], h[2][j]));
          V::store(out + (4 + j) * p.v_point, V::add(h[1][j], h[2][j]));
          V::store(out + (8 + j) * p.v_point, V::sub(h[2][j], h[1][j]));
          V::store(out + (12 + j) * p.v_point, V::sub(h[1][j], h[3][j]));
        }
        for (int j = 0; j < 4; ++j) {
          h[0][j] = h[2][j];
          h[1][j] = h[3][j];
        }
      }
    }
}

// Z = A dY A^T for one dy channel of one image, tile rows [row0, row0 + rows), into z (that
// channel's row of the chunk's Z at the first of those tiles). The two dy rows of a tile row are
// copied into `rows2` with zeros past w_out (and the second one all zeros past h_out), so that
// tiles hanging over the edge see zeros.
template <typename V>
void transform_dy(const Conv2dShape& s, const Plan& p, const float* dy_plane, int row0, int rows, float* rows2,
                  float* z) {
  using Reg = typename V::Reg;
  float* second = rows2 + p.dy_row;
  for (int tr = 0; tr < rows; ++tr) {
    const int oh = 2 * (row0 + tr);
    std::memcpy(rows2, dy_plane + std::size_t(oh) * s.w_out, s.w_out * sizeof(float));
    std::memset(rows2 + s.w_out, 0, (p.dy_row - s.w_out) * sizeof(float));
    if (oh + 1 < s.h_out) {
      std::memcpy(second, dy_plane + std::size_t(oh + 1) * s.w_out, s.w_out * sizeof(float));
      std::memset(second + s.w_out, 0, (p.dy_row - s.w_out) * sizeof(float));
    } else {
      std::memset(second, 0, p.dy_row * sizeof(float));
    }
    for (int tj = 0; tj < p.tiles_w; tj += V::kLanes) {
      const int n = std::min(V::kLanes, p.tiles_w - tj);
      Reg a0, a1, b0, b1;  // the tile's rows 0 and 1, columns 0 and 1, one tile a lane
      EvenOdd<V>::split(rows2 + 2 * tj, a0, a1);
      EvenOdd<V>::split(second + 2 * tj, b0, b1);
      const Reg zero = V::zero();
      // A dY: rows dY0, dY0 + dY1, dY0 - dY1, -dY1; then each row (u, w) times A^T.
      const Reg q[4][2] = {{a0, a1}, {V::add(a0, b0), V::add(a1, b1)}, {V::sub(a0, b0), V::sub(a1, b1)},
                           {V::sub(zero, b0), V::sub(zero, b1)}};
      float* out = z + tr * p.tiles_w + tj;
      for (int i = 0; i < 4; ++i) {
        store_n<V>(out + (4 * i + 0) * p.z_point, q[i][0], n);
        store_n<V>(out + (4 * i + 1) * p.z_point, V::add(q[i][0], q[i][1]), n);
        store_n<V>(out + (4 * i + 2) * p.z_point, V::sub(q[i][0], q[i][1]), n);
        store_n<V>(out + (4 * i + 3) * p.z_point, V::sub(zero, q[i][1]), n);
      }
    }
  }
}

// m[r][c] += sum over `tiles` tiles t of z[r][t] v[t][c], for kRows output channels (z rows
// z_row apart) and C vectors of input channels (v rows v_row apart, m rows m_row apart), tiles
// in order. The loops over the register tile are unrolled so that the accumulators stay in
// registers.
template <typename V, int C>
void multiply(int tiles, const float* v, std::size_t v_row, const float* z, std::size_t z_row, float* m,
              std::size_t m_row) {
  using Reg = typename V::Reg;
  constexpr int R = Tile<V>::kRows;
  Reg acc[R][C];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int c = 0; c < C; ++c) acc[r][c] = V::zero();
  for (int t = 0; t < tiles; ++t, v += v_row) {
    Reg vv[C];
#pragma GCC unroll 4
    for (int c = 0; c < C; ++c) vv[c] = V::load(v + c * V::kLanes);
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const Reg zr = V::broadcast(z + r * z_row + t);
#pragma GCC unroll 4
      for (int c = 0; c < C; ++c) acc[r][c] = V::fma(vv[c], zr, acc[r][c]);
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int c = 0; c < C; ++c) {
      float* at = m + r * m_row + c * V::kLanes;
      V::store(at, V::add(V::load(at), acc[r][c]));
    }
}

// One multiply task: point `point`, input-channel block `block`, every output channel, over the
// chunk's `tiles` tiles.
template <typename V>
void multiply_task(const Plan& p, int point, int block, int tiles, const float* v, const float* z, float* m) {
  constexpr int R = Tile<V>::kRows, kVectors = Tile<V>::kVectors;
  const int vector0 = block * kVectors;
  const int vectors = std::min(kVectors, p.ci_pad / V::kLanes - vector0);
  const float* vp = v + point * p.v_point + vector0 * V::kLanes;
  const float* zp = z + point * p.z_point;
  float* mp = m + point * p.m_point + vector0 * V::kLanes;
  static_assert(kVectors == 3, "multiply_task dispatches 1, 2 or 3 vectors");
  for (int co = 0; co < p.co_pad; co += R) {
    const float* zc = zp + std::size_t(co) * p.chunk_tiles;
    float* mc = mp + std::size_t(co) * p.ci_pad;
    if (vectors == 1) {
      multiply<V, 1>(tiles, vp, p.ci_pad, zc, p.chunk_tiles, mc, p.ci_pad);
    } else if (vectors == 2) {
      multiply<V, 2>(tiles, vp, p.ci_pad, zc, p.chunk_tiles, mc, p.ci_pad);
    } else {
      multiply<V, 3>(tiles, vp, p.ci_pad, zc, p.chunk_tiles, mc, p.ci_pad);
    }
  }
}

// dw[co][ci] = G^T M[.][co][ci] G for one output channel, every input channel.
template <typename V>
void transform_weights_back(const Conv2dShape& s, const Plan& p, const float* m, int co, float* dw) {
  for (int ci = 0; ci < s.c_in; ++ci) {
    float mm[kPoints];
    for (int k = 0; k < kPoints; ++k) mm[k] = m[k * p.m_point + std::size_t(co) * p.ci_pad + ci];
    float t[3][4];  // G^T M
    for (int j = 0; j < 4; ++j) {
      t[0][j] = mm[j] + 0.5f * (mm[4 + j] + mm[8 + j]);
      t[1][j] = 0.5f * (mm[4 + j] - mm[8 + j]);
      t[2][j] = 0.5f * (mm[4 + j] + mm[8 + j]) + mm[12 + j];
    }
    float* out = dw + (std::size_t(co) * s.c_in + ci) * 9;
    for (int i = 0; i < 3; ++i) {  // (G^T M) G
      out[3 * i + 0] = t[i][0] + 0.5f * (t[i][1] + t[i][2]);
      out[3 * i + 1] = 0.5f * (t[i][1] - t[i][2]);
      out[3 * i + 2] = 0.5f * (t[i][1] + t[i][2]) + t[i][3];
    }
  }
}


// dbias[co]: each image's plane summed in vectors and across lanes, images added in order.
template <typename V>
float channel_sum(const Conv2dShape& s, const float* dy, int co) {
  const std::size_t plane = std::size_t(s.h_out) * s.w_out, full = plane - plane % V::kLanes;
  float total = 0;
  for (int n = 0; n < s.n; ++n) {
    const float* d = dy + (std::size_t(n) * s.c_out + co) * plane;
    typename V::Reg acc = V::zero();
    for (std::size_t i = 0; i < full; i += V::kLanes) acc = V::add(acc, V::load(d + i));
    if (full < plane) acc = V::add(acc, V::load(d + full, V::first(int(plane - full))));
    total += V::hsum(acc);
  }
  return total;
}

}  // namespace filter

// dw (and dbias unless null) of a 3x3 stride-1 conv2d, summed over the batch; outputs overwritten.
template <typename V>
void backward_filter(const Conv2dShape& s, const float* x, const float* dy, float* dw, float* dbias) {
  if (s.n <= 0 || s.h_out <= 0 || s.w_out <= 0 || s.c_in <= 0 || s.c_out <= 0) {  // a sum over no pixels
    std::fill_n(dw, s.w_size(), 0.0f);
    if (dbias) std::fill_n(dbias, std::max(s.c_out, 0), 0.0f);
    return;
  }
  const filter::Plan p = filter::make_plan<V>(s);
  const auto v = std::make_unique_for_overwrite<float[]>(kPoints * p.v_point);
  // Zeroed: Z's rows past c_out are never written and must add nothing; M is a sum.
  const auto z = std::make_unique<float[]>(kPoints * p.z_point);
  const auto m = std::make_unique<float[]>(kPoints * p.m_point);
  const std::size_t x_image = std::size_t(s.c_in) * s.h_in * s.w_in, dy_plane = std::size_t(s.h_out) * s.w_out;
  const int input_tasks_per_image = ceil_div<V>(p.band_rows, filter::kTaskTileRows);
  const int multiply_tasks = kPoints * p.ci_blocks;
#pragma omp parallel
  {
    const auto xt = std::make_unique_for_overwrite<float[]>(std::size_t(2 * filter::kTaskTileRows + 2) *
                                                            p.xt_cols * p.ci_pad);
    const auto rows2 = std::make_unique_for_overwrite<float[]>(2 * std::size_t(p.dy_row));
    for (int c = 0; c < p.chunks; ++c) {
      const filter::Chunk ch = filter::chunk_at<V>(s, p, c);
      const int input_tasks = ch.images * input_tasks_per_image;
      // The transforms: the input's tasks first, the larger ones.
#pragma omp for schedule(dynamic, 1)
      for (int k = 0; k < input_tasks + ch.images * s.c_out; ++k) {
        if (k < input_tasks) {
          const int i = k / input_tasks_per_image;
          const int r0 = k % input_tasks_per_image * filter::kTaskTileRows;
          if (r0 >= ch.rows) continue;  // the chunk's last band may be shorter
          filter::transform_input<V>(s, p, x + (ch.image + i) * x_image, ch.row0 + r0,
                                     std::min(filter::kTaskTileRows, ch.rows - r0), xt.get(),
                                     v.get() + std::size_t((i * ch.rows + r0) * p.tiles_w) * p.ci_pad);
        } else {
          const int i = (k - input_tasks) / s.c_out, co = (k - input_tasks) % s.c_out;
          filter::transform_dy<V>(s, p, dy + (std::size_t(ch.image + i) * s.c_out + co) * dy_plane, ch.row0,
                                  ch.rows, rows2.get(),
                                  z.get() + std::size_t(co) * p.chunk_tiles + std::size_t(i) * ch.rows * p.tiles_w);
        }
      }
      const int tiles = ch.images * ch.rows * p.tiles_w;
#pragma omp for schedule(dynamic, 1)
      for (int k = 0; k < multiply_tasks; ++k)
        filter::multiply_task<V>(p, k / p.ci_blocks, k % p.ci_blocks, tiles, v.get(), z.get(), m.get());
    }
#pragma omp for schedule(static)
    for (int co = 0; co < s.c_out; ++co) {
      filter::transform_weights_back<V>(s, p, m.get(), co, dw);
      if (dbias) dbias[co] = filter::channel_sum<V>(s, dy, co);
    }
  }
}

}  // namespace unet::cpu::winograd

#pragma GCC diagnostic pop
