// Helpers for the tests of kernels compiled once per instruction set (kernels/cpu/simd.h): which
// of them this CPU runs, and the float-vs-double comparison their tests share.
#pragma once

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <vector>

#include "kernels/cpu/isa.h"
#include "tests/support/gradcheck.h"

namespace unet::test {

// The entries of `all` (each with a member `cpu::Isa isa`) that this CPU runs (UNET_ISA=avx2
// caps them); says once which it skips.
template <typename Entry>
std::vector<Entry> runnable(std::initializer_list<Entry> all) {
  static bool warned = false;
  std::vector<Entry> found;
  for (const Entry& e : all) {
    if (cpu::isa_available(e.isa)) {
      found.push_back(e);
    } else if (!warned) {
      WARN("skipping " << cpu::to_string(e.isa) << ": not available here (CPU or UNET_ISA)");
    }
  }
  warned = true;
  return found;
}

inline std::vector<float> to_float(const std::vector<double>& v) { return {v.begin(), v.end()}; }

inline double max_abs(const std::vector<double>& v) {
  double m = 0.0;
  for (double e : v) m = std::max(m, std::abs(e));
  return m;
}

// Float sums of many products against the double reference: an error bound relative to the
// largest expected element (or to `floor`, where that is larger).
inline void require_near(const std::vector<float>& got, const std::vector<double>& expected, const char* what,
                         double floor = 0.0) {
  require_close(got, expected, 1e-4 * std::max(max_abs(expected), floor), 0.0, what);
}

}  // namespace unet::test
