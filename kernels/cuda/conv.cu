// conv2d on the GPU: forward (bias fused), backward-data and backward-filter (dbias optional),
// the CUDA twins of kernels/cpu/conv.cpp, for the index conventions of Conv2dShape (shapes.h).
//
// All three passes are one matrix product each, computed as an implicit GEMM: the im2col matrix
// is never stored; each thread block gathers the slab of it that it needs straight from x (or
// dy) into shared memory, with zeros for taps outside the input.
//   forward          Y[c_out, P]    = W[c_out, K] * col(x)[K, P]          + bias
//   backward-data    dX[c_in, Pin]  = W^T[c_in, K'] * taps(dy)[K', Pin]
//   backward-filter  dW[c_out, K]   = dY[c_out, P] * col(x)^T[P, K]
// with P = n*h_out*w_out output pixels, Pin = n*h_in*w_in input pixels, K = c_in*kh*kw taps and
// K' = c_out*kh*kw. Backward-data is the gather form of the transposed convolution: input pixel
// (ih, iw) receives tap (co, r, c) from output pixel
// ((ih + pad_top - r) / stride, (iw + pad_left - c) / stride) when both divisions are exact and
// land inside dy; every other tap reads zero. So every dx element is computed, and written, by
// exactly one thread.
//
// Decomposition. One kernel skeleton (conv2d_implicit_gemm_kernel) serves all three: 256 threads per
// block compute a BM x BN tile of the output matrix, each thread a 4x4 register micro-tile of
// adjacent rows and columns. The reduction dimension is walked in slabs of BK: each slab of A and
// B is staged in shared memory (one barrier), then consumed (a second barrier before the next
// slab overwrites it), while the next slab's global loads are already in flight in registers.
// Shared rows are padded so that each thread's 4 operands of a row are one aligned 128-bit load
// (2 shared loads per 16 FMAs; a warp reads adjacent or identical words, no bank conflicts).
// Loads into the tiles are arranged so that a warp reads whole 32-byte sectors of global memory:
// along output pixels for col(x) in forward and dy in backward-data (32 consecutive pixels), and
// 8 consecutive reduction indices of 4 rows for W and for both operands of backward-filter.
//
// Backward-filter reduces over all P pixels (57,600 per image at 240x240) into a small dW, so it
// has few output tiles. To keep more SMs busy it uses smaller tiles (down to 16x16) and splits
// each BK slab among G thread groups inside the block (sliced K); the groups' partial tiles are
// added in shared memory at the end in group order. Each group also sums every slab into a fresh
// partial before adding it to its running total, which keeps float round-off of the long
// reduction close to that of a blocked GEMM. Where that still leaves fewer than ~512 blocks (a
// 16-channel layer has 9 dW tiles, the 1x1 head one), the pixels are split into grid z-slices
// (split K): each slice writes its partial dW to a workspace, and split_sum_kernel adds the
// partials of each element in slice order. Before this split, one H200 ran the 16 -> 16 layer at
// 240x240, batch 6, in 4.5 ms (9 blocks on 132 SMs); with it, in 0.21 ms (cuDNN: 0.43 ms).
//
// Determinism. No atomics anywhere. Every output element is produced by one thread (or, with
// sliced or split K, by a fixed set of threads combined in a fixed order), with a summation order
// that depends on the shape and the tile configuration only; the tile configuration and the
// split depend on the shape only. dbias is a per-channel block reduction in a fixed tree order.
// So results are bitwise reproducible from run to run. (They are not bitwise equal to the CPU
// kernels, which sum in another order.)
#include <algorithm>
#include <climits>
#include <cstddef>
#include <stdexcept>
#include <string>

#include "kernels/cuda/kernels.h"

namespace unet::UNET_CUDA_NS {
namespace {

constexpr int kThreads = 256;  // every kernel in this file runs 256-thread blocks

void check_launch(const char* file, int line) {
  const cudaError_t status = cudaGetLastError();
  if (status != cudaSuccess) {
    throw std::runtime_error(std::string(file) + ":" + std::to_string(line) +
                             ": CUDA kernel launch failed: " + cudaGetErrorString(status));
  }
}

// A BM x BN output tile, BK-deep slabs, TM x TN per thread; G = thread groups splitting each slab.
template <int BM_, int BN_, int BK_, int TM_, int TN_>
struct Tile {
  static constexpr int BM = BM_, BN = BN_, BK = BK_, TM = TM_, TN = TN_;
  static constexpr int TX = BN / TN;                // threads along N in a group
  static constexpr int TY = BM / TM;                // threads along M in a group
  static constexpr int kGroup = TX * TY;            // threads per group
  static constexpr int G = kThreads / kGroup;       // groups (1: no sliced K)
  static constexpr int KG = BK / G;                 // slab rows per group
  // Shared rows are padded by four words: loaders that walk the reduction index across a warp
  // then store into (mostly) different banks instead of all into one, and every thread's TM / TN
  // run of a row stays 16-byte aligned, so it is read with one 128-bit shared load.
  static constexpr int A_LD = BM + 4, B_LD = BN + 4;
  static_assert(A_LD % 16 == 4 && B_LD % 16 == 4);
  static_assert(TM == 4 && TN == 4, "micro-tile runs are read as 128-bit words");
  static_assert(BM % TM == 0 && BN % TN == 0 && kThreads % kGroup == 0 && BK % G == 0);
};

// Shared by the loaders: thread `tid` owns one slab row k_of(tid) for the whole slab and rows
// row_of(tid) + i * kStep of a tile side with `Rows` entries ("k-fast"). A warp covers 8
// consecutive reduction indices of 4 rows: one full 32-byte sector per row from global memory,
// and, as row strides are 4 (mod 16) words, 32 different banks when storing into shared memory.
template <int Rows, int BK>
struct KFast {
  static_assert(BK == 8 || BK == 16 || BK == 32 || BK == 64);
  static_assert((Rows * BK) % kThreads == 0);
  static constexpr int kPer = Rows * BK / kThreads;
  static constexpr int kStep = kThreads / BK;
  static constexpr int kChunks = BK / 8;  // 8-wide runs of k side by side in a block
  __device__ static int k_of(int tid) { return tid % 8 + 8 * (tid / 32 % kChunks); }
  __device__ static int row_of(int tid) { return tid / 8 % 4 + 4 * (tid / 32 / kChunks); }
};
// Thread `tid` owns column `tid % Cols` and slab rows `tid / Cols + i * step` ("column-fast": a
// warp reads 32 consecutive output-matrix columns, i.e. consecutive pixels).
template <int Cols, int BK>
struct ColFast {
  static_assert(kThreads % Cols == 0 && (Cols * BK) % kThreads == 0);
  static constexpr int kPer = Cols * BK / kThreads;
  static constexpr int kStep = kThreads / Cols;
};

__device__ __forceinline__ bool inside(int i, int n) {
  return static_cast<unsigned>(i) < static_cast<unsigned>(n);  // also rejects i < 0
}

// The convolution's sizes, copied into each problem (kernels take them by value).
struct Geometry {
  int n, c_in, h_in, w_in, c_out, kh, kw, stride, pad_top, pad_left, h_out, w_out;
  int khw, hw_in, hw_out;
};

Geometry geometry(const Conv2dShape& s) {
  return {s.n,      s.c_in,     s.h_in,  s.w_in,  s.c_out,         s.kh,
          s.kw,     s.stride,   s.pad_top, s.pad_left, s.h_out,    s.w_out,
          s.kh * s.kw, s.h_in * s.w_in, s.h_out * s.w_out};
}

// Loaders walk their reduction indices in fixed steps; these cursors keep the decoded form and
// step it without an integer division (tens of instructions on the GPU) on every element.
//
// Tap k = (outer, r, c) of a kh x kw kernel (outer: ci in forward, co in backward-data), stepped
// by at most 4 (so the loop below runs at most 4 times).
struct TapCursor {
  int outer = 0, r = 0, c = 0;  // set before use; zero keeps the compiler from doubting it
  __device__ void set(int k, const Geometry& g) {
    outer = k / g.khw;
    const int rc = k - outer * g.khw;
    r = rc / g.kw;
    c = rc - r * g.kw;
  }
  __device__ void advance(int by, const Geometry& g) {
    c += by;
    while (c >= g.kw) {
      c -= g.kw;
      if (++r == g.kh) {
        r = 0;
        ++outer;
      }
    }
  }
};

// Pixel (img, oy, ox) of n images of h x w; divides only when a step wraps a row.
struct PixelCursor {
  int img = 0, oy = 0, ox = 0;  // likewise
  __device__ void set(int pixel, int h, int w) {
    img = pixel / (h * w);
    const int rest = pixel - img * h * w;
    oy = rest / w;
    ox = rest - oy * w;
  }
  __device__ void advance(int by, int h, int w) {
    ox += by;
    if (ox >= w) {
      oy += ox / w;
      ox %= w;
      if (oy >= h) {
        img += oy / h;
        oy %= h;
      }
    }
  }
};

// ---------------------------------------------------------------------------------------------
// Forward: A = W [c_out, K] (row-major, as stored), B = col(x) [K, P], C = y.
// The reduction range of this block's grid z-slice: [first_k, end_k).
template <class P>
__device__ int first_k(const P& p) {
  return static_cast<int>(blockIdx.z) * p.k_chunk;
}
template <class P>
__device__ int end_k(const P& p) {
  const int k0 = first_k(p);
  return p.K - k0 < p.k_chunk ? p.K : k0 + p.k_chunk;
}

struct ForwardProblem {
  Geometry g;
  int M, N, K;
  const float* __restrict__ x;
  const float* __restrict__ w;
  const float* __restrict__ bias;
  float* __restrict__ y;
  int k_chunk = INT_MAX;  // slabs per grid z-slice: all of K

  template <class T>
  struct ALoader {
    using Map = KFast<T::BM, T::BK>;
    int k_local, row0;
    float v[Map::kPer];
    __device__ ALoader(const ForwardProblem&, int m0, int tid)
        : k_local(Map::k_of(tid)), row0(m0 + Map::row_of(tid)) {}
    __device__ void load(const ForwardProblem& p, int k0) {
      const int k = k0 + k_local;
#pragma unroll
      for (int i = 0; i < Map::kPer; ++i) {
        const int m = row0 + i * Map::kStep;
        v[i] = m < p.M && k < p.K ? p.w[static_cast<long long>(m) * p.K + k] : 0.0f;
      }
    }
    __device__ void store(float* As, int m0) const {
#pragma unroll
      for (int i = 0; i < Map::kPer; ++i) As[k_local * T::A_LD + row0 - m0 + i * Map::kStep] = v[i];
    }
  };

  // Each thread keeps one output pixel for the whole reduction, so the pixel's decoding (image,
  // row, column, and where its receptive field starts) is done once. Its taps are k_first,
  // k_first + kStep, ... across all slabs (kPer * kStep = BK), so one cursor walks them; load()
  // must be called for consecutive slabs.
  template <class T>
  struct BLoader {
    using Map = ColFast<T::BN, T::BK>;
    int col, k_first, ih0, iw0;
    bool valid;
    long long x_img;  // offset of the pixel's image in x
    TapCursor tap;    // (ci, r, c) of the next tap to load
    float v[Map::kPer];
    __device__ BLoader(const ForwardProblem& p, int n0, int tid)
        : col(tid % T::BN), k_first(tid / T::BN) {
      const int pixel = n0 + col;
      valid = pixel < p.N;
      const int img = valid ? pixel / p.g.hw_out : 0;
      const int rest = valid ? pixel - img * p.g.hw_out : 0;
      const int oh = rest / p.g.w_out, ow = rest - oh * p.g.w_out;
      ih0 = oh * p.g.stride - p.g.pad_top;
      iw0 = ow * p.g.stride - p.g.pad_left;
      x_img = static_cast<long long>(img) * p.g.c_in * p.g.hw_in;
      if (p.K > 0) tap.set(k_first, p.g);  // K == 0: kh*kw may be 0, and nothing is loaded
    }
    __device__ void load(const ForwardProblem& p, int k0) {
#pragma unroll
      for (int i = 0; i < Map::kPer; ++i) {
        const int k = k0 + k_first + i * Map::kStep;
        const int ih = ih0 + tap.r, iw = iw0 + tap.c;
        const long long row =
            x_img + (static_cast<long long>(tap.outer) * p.g.h_in + ih) * p.g.w_in;
        const bool hit = valid && k < p.K && inside(ih, p.g.h_in) && inside(iw, p.g.w_in);
        v[i] = hit ? p.x[row + iw] : 0.0f;
        tap.advance(Map::kStep, p.g);
      }
    }
    __device__ void store(float* Bs, int) const {
#pragma unroll
      for (int i = 0; i < Map::kPer; ++i) Bs[(k_first + i * Map::kStep) * T::B_LD + col] = v[i];
    }
  };

  __device__ void store(int m, int pixel, float value) const {
    const int img = pixel / g.hw_out, rest = pixel - img * g.hw_out;
    const float b = bias ? bias[m] : 0.0f;
    y[(static_cast<long long>(img) * g.c_out + m) * g.hw_out + rest] = value + b;
  }
};

// ---------------------------------------------------------------------------------------------
// Backward-data: A[ci, (co, r, c)] = w[co, ci, r, c], B[(co, r, c), input pixel] = the dy element
// whose forward tap (r, c) read that input pixel, or zero; C = dx.
struct DataProblem {
  Geometry g;
  int M, N, K;
  const float* __restrict__ dy;
  const float* __restrict__ w;
  float* __restrict__ dx;
  int k_chunk = INT_MAX;
  const float* __restrict__ bias = nullptr;  // per dx channel: a transposed convolution's forward

  template <class T>
  struct ALoader {
    using Map = KFast<T::BM, T::BK>;
    int k_local, row0;
    float v[Map::kPer];
    __device__ ALoader(const DataProblem&, int m0, int tid)
        : k_local(Map::k_of(tid)), row0(m0 + Map::row_of(tid)) {}
    __device__ void load(const DataProblem& p, int k0) {
      const int k = k0 + k_local;
      const int co = k / p.g.khw, rc = k - co * p.g.khw;
      const long long base = static_cast<long long>(co) * p.g.c_in * p.g.khw + rc;
#pragma unroll
      for (int i = 0; i < Map::kPer; ++i) {
        const int ci = row0 + i * Map::kStep;
        v[i] = ci < p.M && k < p.K ? p.w[base + static_cast<long long>(ci) * p.g.khw] : 0.0f;
      }
    }
    __device__ void store(float* As, int m0) const {
#pragma unroll
      for (int i = 0; i < Map::kPer; ++i) As[k_local * T::A_LD + row0 - m0 + i * Map::kStep] = v[i];
    }
  };

  template <class T>
  struct BLoader {
    using Map = ColFast<T::BN, T::BK>;
    int col, k_first, th0, tw0;  // th0 = ih + pad_top: output row * stride + tap row
    bool valid;
    long long dy_img;
    TapCursor tap;  // (co, r, c) of the next tap to load, as in the forward B loader
    float v[Map::kPer];
    __device__ BLoader(const DataProblem& p, int n0, int tid)
        : col(tid % T::BN), k_first(tid / T::BN) {
      const int pixel = n0 + col;
      valid = pixel < p.N;
      const int img = valid ? pixel / p.g.hw_in : 0;
      const int rest = valid ? pixel - img * p.g.hw_in : 0;
      const int ih = rest / p.g.w_in, iw = rest - ih * p.g.w_in;
      th0 = ih + p.g.pad_top;
      tw0 = iw + p.g.pad_left;
      dy_img = static_cast<long long>(img) * p.g.c_out * p.g.hw_out;
      if (p.K > 0) tap.set(k_first, p.g);
    }
    __device__ void load(const DataProblem& p, int k0) {
#pragma unroll
      for (int i = 0; i < Map::kPer; ++i) {
        const int k = k0 + k_first + i * Map::kStep;
        const int th = th0 - tap.r, tw = tw0 - tap.c;
        float value = 0.0f;
        // th >= 0 first: C++ division truncates toward zero, so a negative th could pass the
        // exactness test with a wrong quotient. Stride 1 (the common case) needs no division.
        if (valid && k < p.K && th >= 0 && tw >= 0) {
          const int oh = p.g.stride == 1 ? th : th / p.g.stride;
          const int ow = p.g.stride == 1 ? tw : tw / p.g.stride;
          if (oh * p.g.stride == th && ow * p.g.stride == tw && oh < p.g.h_out && ow < p.g.w_out) {
            const long long row = static_cast<long long>(tap.outer) * p.g.h_out + oh;
            value = p.dy[dy_img + row * p.g.w_out + ow];
          }
        }
        v[i] = value;
        tap.advance(Map::kStep, p.g);
      }
    }
    __device__ void store(float* Bs, int) const {
#pragma unroll
      for (int i = 0; i < Map::kPer; ++i) Bs[(k_first + i * Map::kStep) * T::B_LD + col] = v[i];
    }
  };

  __device__ void store(int m, int pixel, float value) const {
    const int img = pixel / g.hw_in, rest = pixel - img * g.hw_in;
    const float b = bias ? bias[m] : 0.0f;
    dx[(static_cast<long long>(img) * g.c_in + m) * g.hw_in + rest] = value + b;
  }
};

// ---------------------------------------------------------------------------------------------
// Backward-filter: A = dY [c_out, P], B = col(x)^T [P, K], C = dW [c_out, K]. The reduction runs
// over output pixels, so both loaders are k-fast: one thread decodes one pixel per slab and
// reads it for several rows (channels) or columns (taps), whose decoding is fixed per thread.
struct FilterProblem {
  Geometry g;
  int M, N, K;
  const float* __restrict__ x;
  const float* __restrict__ dy;
  float* __restrict__ dw;
  // Split pixels: grid z-slice z sums pixels [z * k_chunk, (z + 1) * k_chunk) into its own
  // partial dW, partials + z * M * N, and split_sum adds them (gridDim.z == 1: straight to dw).
  int k_chunk = INT_MAX;
  float* __restrict__ partials = nullptr;

  template <class T>
  struct ALoader {
    using Map = KFast<T::BM, T::BK>;
    int k_local, row0;
    PixelCursor px;  // the pixel of the next slab: k_local, then + BK per slab
    float v[Map::kPer];
    __device__ ALoader(const FilterProblem& p, int m0, int tid)
        : k_local(Map::k_of(tid)), row0(m0 + Map::row_of(tid)) {
      if (p.K > 0) px.set(first_k(p) + k_local, p.g.h_out, p.g.w_out);  // K == 0: the plane may be empty
    }
    __device__ void load(const FilterProblem& p, int k0) {
      const bool valid = k0 + k_local < p.K;
      const long long base = static_cast<long long>(px.img) * p.g.c_out * p.g.hw_out +
                             px.oy * p.g.w_out + px.ox;
      px.advance(T::BK, p.g.h_out, p.g.w_out);
#pragma unroll
      for (int i = 0; i < Map::kPer; ++i) {
        const int co = row0 + i * Map::kStep;
        v[i] = valid && co < p.M ? p.dy[base + static_cast<long long>(co) * p.g.hw_out] : 0.0f;
      }
    }
    __device__ void store(float* As, int m0) const {
#pragma unroll
      for (int i = 0; i < Map::kPer; ++i) As[k_local * T::A_LD + row0 - m0 + i * Map::kStep] = v[i];
    }
  };

  template <class T>
  struct BLoader {
    using Map = KFast<T::BN, T::BK>;
    int k_local, col0;
    int r[Map::kPer], c[Map::kPer];  // tap offsets of this thread's columns; r < 0: no column
    long long x_ci[Map::kPer];       // offset of each column's input channel within an image
    PixelCursor px;                  // as in the A loader
    float v[Map::kPer];
    __device__ BLoader(const FilterProblem& p, int n0, int tid)
        : k_local(Map::k_of(tid)), col0(n0 + Map::row_of(tid)) {
      if (p.K > 0) px.set(first_k(p) + k_local, p.g.h_out, p.g.w_out);
#pragma unroll
      for (int i = 0; i < Map::kPer; ++i) {
        const int tap = col0 + i * Map::kStep;
        const int ci = tap / p.g.khw, rc = tap - ci * p.g.khw;
        r[i] = tap < p.N ? rc / p.g.kw : -1;
        c[i] = rc - (rc / p.g.kw) * p.g.kw;
        x_ci[i] = static_cast<long long>(ci) * p.g.hw_in;
      }
    }
    __device__ void load(const FilterProblem& p, int k0) {
      const bool valid = k0 + k_local < p.K;
      const int ih0 = px.oy * p.g.stride - p.g.pad_top, iw0 = px.ox * p.g.stride - p.g.pad_left;
      const long long x_img = static_cast<long long>(px.img) * p.g.c_in * p.g.hw_in;
      px.advance(T::BK, p.g.h_out, p.g.w_out);
#pragma unroll
      for (int i = 0; i < Map::kPer; ++i) {
        const int ih = ih0 + r[i], iw = iw0 + c[i];
        v[i] = valid && r[i] >= 0 && inside(ih, p.g.h_in) && inside(iw, p.g.w_in)
                   ? p.x[x_img + x_ci[i] + static_cast<long long>(ih) * p.g.w_in + iw]
                   : 0.0f;
      }
    }
    __device__ void store(float* Bs, int n0) const {
#pragma unroll
      for (int i = 0; i < Map::kPer; ++i) Bs[k_local * T::B_LD + col0 - n0 + i * Map::kStep] = v[i];
    }
  };

  __device__ void store(int m, int tap, float value) const {
    float* out = gridDim.z > 1 ? partials + static_cast<long long>(blockIdx.z) * M * N : dw;
    out[static_cast<long long>(m) * N + tap] = value;
  }
};

// ---------------------------------------------------------------------------------------------
// The GEMM skeleton: C[M, N] = A[M, K] * B[K, N] for one BM x BN tile per block. `kTwoLevel`
// sums each slab into a fresh partial before adding it to the total (for long reductions).
template <class P, class T, bool kTwoLevel>
__global__ void conv2d_implicit_gemm_kernel(const P p) {
  alignas(16) __shared__ float As[T::BK * T::A_LD];  // As[k][m]: A transposed, a row per k
  alignas(16) __shared__ float Bs[T::BK * T::B_LD];  // Bs[k][n]
  // Partial tiles of groups 1..G-1, added to group 0's in group order.
  __shared__ float Red[T::G > 1 ? (T::G - 1) * T::BM * T::BN : 1];

  const int tid = static_cast<int>(threadIdx.x);
  const int group = tid / T::kGroup, lane = tid - group * T::kGroup;
  const int tx = lane % T::TX, ty = lane / T::TX;
  const int m0 = static_cast<int>(blockIdx.y) * T::BM, n0 = static_cast<int>(blockIdx.x) * T::BN;

  typename P::template ALoader<T> a(p, m0, tid);
  typename P::template BLoader<T> b(p, n0, tid);

  float acc[T::TM][T::TN];
#pragma unroll
  for (int i = 0; i < T::TM; ++i)
#pragma unroll
    for (int j = 0; j < T::TN; ++j) acc[i][j] = 0.0f;

  const int k_begin = first_k(p), k_end = end_k(p);
  if (k_begin < k_end) {
    a.load(p, k_begin);
    b.load(p, k_begin);
  }
  // The trip count is uniform across the block: every thread reaches both barriers.
  for (int k0 = k_begin; k0 < k_end; k0 += T::BK) {
    a.store(As, m0);
    b.store(Bs, n0);
    __syncthreads();  // the slab is complete before anyone reads it
    if (k0 + T::BK < k_end) {  // next slab's global loads overlap this slab's arithmetic
      a.load(p, k0 + T::BK);
      b.load(p, k0 + T::BK);
    }
    float part[T::TM][T::TN];
#pragma unroll
    for (int i = 0; i < T::TM; ++i)
#pragma unroll
      for (int j = 0; j < T::TN; ++j) part[i][j] = kTwoLevel ? 0.0f : acc[i][j];
#pragma unroll
    for (int kk = 0; kk < T::KG; ++kk) {
      const int k = group * T::KG + kk;
      float av[T::TM], bv[T::TN];
#pragma unroll
      for (int i = 0; i < T::TM; ++i) av[i] = As[k * T::A_LD + ty * T::TM + i];
#pragma unroll
      for (int j = 0; j < T::TN; ++j) bv[j] = Bs[k * T::B_LD + tx * T::TN + j];
#pragma unroll
      for (int i = 0; i < T::TM; ++i)
#pragma unroll
        for (int j = 0; j < T::TN; ++j) part[i][j] += av[i] * bv[j];  // nvcc contracts to FMA
    }
#pragma unroll
    for (int i = 0; i < T::TM; ++i)
#pragma unroll
      for (int j = 0; j < T::TN; ++j) acc[i][j] = kTwoLevel ? acc[i][j] + part[i][j] : part[i][j];
    __syncthreads();  // everyone is done with the slab before the next one overwrites it
  }

  if constexpr (T::G > 1) {
    if (group > 0) {
      float* mine = Red + (group - 1) * T::BM * T::BN + ty * T::TM * T::BN + tx * T::TN;
#pragma unroll
      for (int i = 0; i < T::TM; ++i)
#pragma unroll
        for (int j = 0; j < T::TN; ++j) mine[i * T::BN + j] = acc[i][j];
    }
    __syncthreads();
    if (group > 0) return;
    for (int other = 0; other < T::G - 1; ++other) {  // fixed order: groups 1, 2, ..., G-1
      const float* theirs = Red + other * T::BM * T::BN + ty * T::TM * T::BN + tx * T::TN;
#pragma unroll
      for (int i = 0; i < T::TM; ++i)
#pragma unroll
        for (int j = 0; j < T::TN; ++j) acc[i][j] += theirs[i * T::BN + j];
    }
  }
#pragma unroll
  for (int i = 0; i < T::TM; ++i) {
    const int m = m0 + ty * T::TM + i;
    if (m >= p.M) continue;
#pragma unroll
    for (int j = 0; j < T::TN; ++j) {
      const int col = n0 + tx * T::TN + j;
      if (col < p.N) p.store(m, col, acc[i][j]);
    }
  }
}

template <class T, bool kTwoLevel, class P>
void launch_gemm(const P& p, cudaStream_t stream, int splits = 1) {
  const long long blocks_n = (static_cast<long long>(p.N) + T::BN - 1) / T::BN;
  const long long blocks_m = (static_cast<long long>(p.M) + T::BM - 1) / T::BM;
  if (blocks_n > INT_MAX || blocks_m > 65535) {
    throw std::runtime_error(std::string(__FILE__) + ":" + std::to_string(__LINE__) +
                             ": conv2d: shape too large for the grid");
  }
  const dim3 grid(static_cast<unsigned>(blocks_n), static_cast<unsigned>(blocks_m), static_cast<unsigned>(splits));
  auto* kernel = &conv2d_implicit_gemm_kernel<P, T, kTwoLevel>;
  UNET_LAUNCH(kernel, grid, dim3(kThreads), 0, stream)(p);
  check_launch(__FILE__, __LINE__);
}

// Forward and backward-data: M is a channel count (often 16 or 32 in the U-Net, 1 for the last
// layer), N is a pixel count in the tens of thousands. Narrow tiles for few channels waste less
// of each block on rows past M.
template <class P>
void launch_pixel_gemm(const P& p, cudaStream_t stream) {
  if (p.M > 32) {
    launch_gemm<Tile<64, 64, 16, 4, 4>, false>(p, stream);
  } else if (p.M > 16) {
    launch_gemm<Tile<32, 128, 16, 4, 4>, false>(p, stream);
  } else {
    launch_gemm<Tile<16, 256, 16, 4, 4>, false>(p, stream);
  }
}

// The pixel count fits an int (it indexes the GEMM's columns); a larger batch must be split.
int checked_pixels(long long pixels) {
  if (pixels > INT_MAX) {
    throw std::runtime_error(std::string(__FILE__) + ":" + std::to_string(__LINE__) +
                             ": conv2d: more than INT_MAX pixels in one call");
  }
  return static_cast<int>(pixels);
}

// dbias[ch] = sum over images and pixels of dy[img, ch, :]: one block per channel, each thread
// summing a fixed strided subset in order, then a fixed-shape tree in shared memory.
__global__ void channel_sum_kernel(const float* __restrict__ dy, int n, int channels, int plane,
                                   float* __restrict__ out) {
  __shared__ float partial[kThreads];
  const int tid = static_cast<int>(threadIdx.x);
  const int ch = static_cast<int>(blockIdx.x);
  float total = 0.0f;
  for (int img = 0; img < n; ++img) {
    const float* src = dy + (static_cast<long long>(img) * channels + ch) * plane;
    float sum = 0.0f;  // per image first: shorter chains of round-off
    for (int i = tid; i < plane; i += kThreads) sum += src[i];
    total += sum;
  }
  partial[tid] = total;
  __syncthreads();
  for (int width = kThreads / 2; width > 0; width /= 2) {
    if (tid < width) partial[tid] += partial[tid + width];
    __syncthreads();
  }
  if (tid == 0) out[ch] = partial[0];
}

// Backward-filter's plan: the tile (the largest that still gives a few blocks per SM, else
// smaller tiles with sliced K), then a split of the pixels into z-slices until there are about
// kTargetBlocks blocks: the 16- and 32-channel layers have only 9 to 36 dW tiles, and a 1x1 head
// one, against 132 SMs. Each slice is a whole number of slabs and at least kMinSlice pixels long,
// so the partials stay small next to x and dy. Depends on the shape only (determinism).
struct FilterPlan {
  int bm, bn, bk;    // the tile: Tile<64, 64, 16>, Tile<32, 32, 32> or Tile<16, 16, 64>
  int splits, chunk;  // z-slices and pixels per slice
};

FilterPlan filter_plan(const Conv2dShape& s) {
  const long long M = s.c_out, N = static_cast<long long>(s.c_in) * s.kh * s.kw;
  const long long pixels = static_cast<long long>(s.n) * s.h_out * s.w_out;
  const auto tiles = [&](long long bm, long long bn) { return (M + bm - 1) / bm * ((N + bn - 1) / bn); };
  constexpr long long kEnoughBlocks = 256, kTargetBlocks = 512, kMinSlice = 1024;
  FilterPlan f{16, 16, 64, 1, 0};
  if (tiles(64, 64) >= kEnoughBlocks) {
    f = {64, 64, 16, 1, 0};
  } else if (tiles(32, 32) >= kEnoughBlocks) {
    f = {32, 32, 32, 1, 0};
  }
  const long long t = tiles(f.bm, f.bn);
  long long splits = std::max(1LL, std::min((kTargetBlocks + t - 1) / t, pixels / kMinSlice));
  long long chunk = (pixels + splits - 1) / splits;
  chunk = (chunk + f.bk - 1) / f.bk * f.bk;
  splits = chunk > 0 ? (pixels + chunk - 1) / chunk : 1;
  f.splits = static_cast<int>(splits);
  f.chunk = static_cast<int>(std::max(chunk, 1LL));
  return f;
}

// dw[i] = the splits' partials of element i added in split order: one thread per element.
__global__ void split_sum_kernel(const float* __restrict__ partials, int splits, int size,
                                 float* __restrict__ dw) {
  for (int i = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x); i < size;
       i += static_cast<int>(gridDim.x * blockDim.x)) {
    float total = 0.0f;
    for (int z = 0; z < splits; ++z) total += partials[static_cast<long long>(z) * size + i];
    dw[i] = total;
  }
}

}  // namespace

std::size_t conv2d_backward_filter_workspace(const Conv2dShape& s) {
  if (s.w_size() == 0) return 0;
  const FilterPlan f = filter_plan(s);
  return f.splits > 1 ? std::size_t(f.splits) * s.w_size() * sizeof(float) : 0;
}

void conv2d_forward(const Conv2dShape& s, const float* x, const float* w, const float* bias,
                    float* y, cudaStream_t stream) {
  if (s.y_size() == 0) return;
  ForwardProblem p{geometry(s), s.c_out,
                   checked_pixels(static_cast<long long>(s.n) * s.h_out * s.w_out),
                   s.c_in * s.kh * s.kw, x, w, bias, y};
  launch_pixel_gemm(p, stream);
}

void conv2d_backward_data(const Conv2dShape& s, const float* dy, const float* w, float* dx,
                          cudaStream_t stream) {
  conv2d_backward_data_plus_bias(s, dy, w, nullptr, dx, stream);
}

void conv2d_backward_data_plus_bias(const Conv2dShape& s, const float* dy, const float* w,
                                    const float* bias, float* dx, cudaStream_t stream) {
  if (s.x_size() == 0) return;
  DataProblem p{geometry(s), s.c_in,
                checked_pixels(static_cast<long long>(s.n) * s.h_in * s.w_in),
                s.c_out * s.kh * s.kw, dy, w, dx};
  p.bias = bias;
  launch_pixel_gemm(p, stream);
}

void conv2d_backward_filter(const Conv2dShape& s, const float* x, const float* dy, float* dw,
                            float* dbias, float* workspace, cudaStream_t stream) {
  const int pixels = checked_pixels(static_cast<long long>(s.n) * s.h_out * s.w_out);
  if (s.w_size() > 0) {
    const FilterPlan f = filter_plan(s);
    if (f.splits > 1 && workspace == nullptr) {
      throw std::runtime_error(std::string(__FILE__) + ":" + std::to_string(__LINE__) +
                               ": conv2d_backward_filter: this shape needs a workspace of " +
                               std::to_string(conv2d_backward_filter_workspace(s)) + " bytes");
    }
    FilterProblem p{geometry(s), s.c_out, s.c_in * s.kh * s.kw, pixels, x, dy, dw};
    p.k_chunk = f.chunk;
    p.partials = f.splits > 1 ? workspace : nullptr;
    if (f.bm == 64) {
      launch_gemm<Tile<64, 64, 16, 4, 4>, true>(p, stream, f.splits);
    } else if (f.bm == 32) {
      launch_gemm<Tile<32, 32, 32, 4, 4>, true>(p, stream, f.splits);
    } else {
      launch_gemm<Tile<16, 16, 64, 4, 4>, true>(p, stream, f.splits);
    }
    if (f.splits > 1) {
      const int size = static_cast<int>(s.w_size());
      const unsigned blocks = static_cast<unsigned>(std::min((size + kThreads - 1) / kThreads, 1024));
      UNET_LAUNCH(split_sum_kernel, dim3(blocks), dim3(kThreads), 0, stream)(workspace, f.splits, size, dw);
      check_launch(__FILE__, __LINE__);
    }
  }
  if (dbias) channel_sum(dy, s.n, s.c_out, s.h_out * s.w_out, dbias, stream);
}

void channel_sum(const float* dy, int n, int channels, int plane, float* out, cudaStream_t stream) {
  if (channels <= 0) return;
  UNET_LAUNCH(channel_sum_kernel, dim3(static_cast<unsigned>(channels)), dim3(kThreads), 0, stream)(dy, n, channels,
                                                                                                  plane, out);
  check_launch(__FILE__, __LINE__);
}

}  // namespace unet::UNET_CUDA_NS
