// Helpers shared by the CPU kernels for flat loops and deterministic reductions.
//
// A sum is taken in double over fixed-size blocks, each summed serially, and the block partials
// are then added serially in order: the blocks, not the threads, fix the order of additions, so
// the result does not depend on the thread count.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <vector>

namespace unet::cpu::detail {

// Reduction block: the unit of work whose partial sum is fixed whatever the thread count.
inline constexpr std::size_t kReduceBlock = 4096;
// Below this many elements a parallel region costs more than the loop itself.
inline constexpr std::size_t kParallelMin = std::size_t(1) << 15;

// Sums K per-element terms at once: term(i, acc) adds element i's contributions into acc.
template <std::size_t K, typename Term>
std::array<double, K> blocked_sums(std::size_t count, Term term) {
  const std::size_t blocks = (count + kReduceBlock - 1) / kReduceBlock;
  std::vector<std::array<double, K>> partial(blocks);
#pragma omp parallel for schedule(static) if (count >= kParallelMin)
  for (std::size_t b = 0; b < blocks; ++b) {
    std::array<double, K> acc{};
    const std::size_t end = std::min(count, (b + 1) * kReduceBlock);
    for (std::size_t i = b * kReduceBlock; i < end; ++i) term(i, acc);
    partial[b] = acc;
  }
  std::array<double, K> total{};
  for (const auto& p : partial)
    for (std::size_t k = 0; k < K; ++k) total[k] += p[k];
  return total;
}

template <typename F>
void for_each_index(std::size_t count, F f) {
#pragma omp parallel for simd schedule(static) if (count >= kParallelMin)
  for (std::size_t i = 0; i < count; ++i) f(i);
}

}  // namespace unet::cpu::detail
