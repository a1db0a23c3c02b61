// What every CPU batch-norm variant shares: the cut of each channel into runs, which fixes the
// order of every per-channel sum by the shape alone (so results do not depend on the thread
// count), the merge of per-run moments, and 1 / sqrt(var + eps).
//
// Internal linkage: the AVX-512 variant's file includes this too, and a function emitted out of
// line there could otherwise be linked into the AVX2 path (scripts/check_isa_symbols.sh).
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>

#include "kernels/shapes.h"

namespace unet::cpu::bn_runs {
namespace {

using kernels::BatchNormShape;

// A run re-read right after its first sweep is still in the core's L1 or L2 cache.
constexpr int kChunk = 4096;

// The runs of a shape: each plane is cut into `pieces` runs of near-equal length; run k of a
// channel (0 <= k < per_channel) is piece k % pieces of plane k / pieces.
struct Runs {
  int pieces = 0, per_channel = 0;

  explicit Runs(const BatchNormShape& s) : pieces((s.hw + kChunk - 1) / kChunk), per_channel(s.n * pieces) {}

  struct Run {
    std::size_t begin;  // flat index of the first value
    int size;
  };
  Run run(const BatchNormShape& s, int c, int k) const {
    const int n = k / pieces, piece = k % pieces;
    const auto cut = [&](int j) { return int(int64_t(s.hw) * j / pieces); };
    return {(std::size_t(n) * s.c + c) * s.hw + std::size_t(cut(piece)), cut(piece + 1) - cut(piece)};
  }
};

// Count, mean and sum of squared deviations from the mean (m2) of a set of values.
struct Moments {
  double count = 0, mean = 0, m2 = 0;
};

// The moments of the union of two disjoint sets (Chan, Golub & LeVeque), as stable as the
// two-pass formula on the whole set.
inline Moments merge(const Moments& a, const Moments& b) {
  const double count = a.count + b.count, delta = b.mean - a.mean;
  return {count, a.mean + delta * (b.count / count), a.m2 + b.m2 + delta * delta * (a.count * b.count / count)};
}

inline double inverse_std(double var, double eps) { return 1.0 / std::sqrt(var + eps); }

}  // namespace
}  // namespace unet::cpu::bn_runs
