// Test helpers: seeded random arrays, closeness checks that report the worst element, and
// central finite differences in double precision.
#pragma once

#include <catch2/catch.hpp>

#include <cmath>
#include <cstddef>
#include <functional>
#include <random>
#include <sstream>
#include <vector>

namespace unet::test {

template <typename T = double>
std::vector<T> random_vector(std::size_t n, uint32_t seed, double lo = -1.0, double hi = 1.0) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> dist(lo, hi);
  std::vector<T> v(n);
  for (auto& e : v) e = T(dist(rng));
  return v;
}

// |a - b| <= atol + rtol * |b| for every element; on failure names the worst element.
template <typename A, typename B>
void require_close(const std::vector<A>& a, const std::vector<B>& b, double atol, double rtol,
                   const char* what = "") {
  REQUIRE(a.size() == b.size());
  std::size_t worst = 0;
  double worst_excess = -1.0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const double diff = std::abs(double(a[i]) - double(b[i]));
    const double excess = diff - (atol + rtol * std::abs(double(b[i])));
    if (!(excess <= 0.0) && (excess > worst_excess || std::isnan(excess))) {
      worst_excess = std::isnan(excess) ? INFINITY : excess;
      worst = i;
    }
  }
  if (worst_excess > 0.0) {
    std::ostringstream msg;
    msg << what << ": element " << worst << " of " << a.size() << " is " << double(a[worst])
        << ", expected " << double(b[worst]) << " (atol " << atol << ", rtol " << rtol << ")";
    FAIL(msg.str());
  }
  SUCCEED();
}

// Gradient of f at x by central differences: (f(x + h e_i) - f(x - h e_i)) / 2h for each i.
inline std::vector<double> numeric_gradient(const std::function<double()>& f, std::vector<double>& x,
                                            double h = 1e-6) {
  std::vector<double> g(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) {
    const double saved = x[i];
    x[i] = saved + h;
    const double up = f();
    x[i] = saved - h;
    const double down = f();
    x[i] = saved;
    g[i] = (up - down) / (2 * h);
  }
  return g;
}

// <a, b> in double: the scalar loss sum(y * r) whose gradient with respect to y is r.
template <typename T>
double dot(const std::vector<T>& a, const std::vector<T>& b) {
  double s = 0;
  for (std::size_t i = 0; i < a.size(); ++i) s += double(a[i]) * double(b[i]);
  return s;
}

}  // namespace unet::test
