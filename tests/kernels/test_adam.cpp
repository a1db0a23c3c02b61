// Adam: two steps against a hand-computed sequence, decoupled weight decay, a naive reference on
// a large array, and the step-count precondition.
#include <catch2/catch.hpp>
#include <cmath>
#include <stdexcept>
#include <vector>

#include "kernels/cpu/adam.h"
#include "tests/support/gradcheck.h"

namespace {

namespace cpu = unet::cpu;
using unet::test::random_vector;
using unet::test::require_close;

}  // namespace

TEST_CASE("adam: two steps against a hand-computed sequence", "[adam]") {
  cpu::AdamParams a;
  a.lr = 0.1f;
  float p = 1.0f, m = 0.0f, v = 0.0f;

  // Step 1, g = 0.5: m = 0.05, v = 0.00025, m_hat = 0.5, v_hat = 0.25,
  // p = 1 - 0.1 * 0.5 / (0.5 + 1e-7).
  float g = 0.5f;
  a.step = 1;
  cpu::adam_update(1, a, &p, &g, &m, &v);
  CHECK(m == Approx(0.05).epsilon(1e-6));
  // 1 - 0.999f is 0.000999987 in float: v carries that 1.3e-5 relative offset.
  CHECK(v == Approx(0.00025).epsilon(2e-5));
  CHECK(p == Approx(0.90000002).epsilon(1e-7));

  // Step 2, g = -0.25: m = 0.02, v = 0.00031225, m_hat = 0.02 / 0.19,
  // v_hat = 0.00031225 / 0.001999, p = 0.90000002 - 0.1 m_hat / (sqrt(v_hat) + 1e-7).
  g = -0.25f;
  a.step = 2;
  cpu::adam_update(1, a, &p, &g, &m, &v);
  CHECK(m == Approx(0.02).epsilon(1e-6));
  CHECK(v == Approx(0.00031225).epsilon(2e-5));
  CHECK(p == Approx(0.873366322772819).epsilon(1e-6));
}

TEST_CASE("adam: weight decay is decoupled from the moments", "[adam]") {
  cpu::AdamParams a;
  a.lr = 0.5f;
  a.weight_decay = 0.1f;
  a.step = 3;

  // With no gradient only the decay acts: p *= 1 - lr * weight_decay.
  float p = 2.0f, g = 0.0f, m = 0.0f, v = 0.0f;
  cpu::adam_update(1, a, &p, &g, &m, &v);
  CHECK(p == Approx(1.9).epsilon(1e-7));

  // With a gradient the decay adds -lr * wd * p to the plain update and leaves m and v alone.
  float p_plain = 2.0f, p_decay = 2.0f, m_plain = 0.1f, m_decay = 0.1f, v_plain = 0.01f,
        v_decay = 0.01f;
  g = 0.3f;
  cpu::AdamParams plain = a;
  plain.weight_decay = 0.0f;
  cpu::adam_update(1, plain, &p_plain, &g, &m_plain, &v_plain);
  cpu::adam_update(1, a, &p_decay, &g, &m_decay, &v_decay);
  CHECK(m_decay == m_plain);
  CHECK(v_decay == v_plain);
  CHECK(p_decay - p_plain == Approx(-0.5 * 0.1 * 2.0).epsilon(1e-5));
}

TEST_CASE("adam: matches a naive double reference on a large array", "[adam]") {
  const std::size_t n = 100003;
  cpu::AdamParams a;
  a.weight_decay = 0.01f;
  a.step = 7;
  auto p = random_vector<float>(n, 1), m = random_vector<float>(n, 3, -0.1, 0.1),
       v = random_vector<float>(n, 4, 0.0, 0.01);
  const auto g = random_vector<float>(n, 2);
  std::vector<double> want(n);
  const double b1 = a.beta1, b2 = a.beta2, lr = a.lr;
  for (std::size_t i = 0; i < n; ++i) {
    const double mi = b1 * m[i] + (1 - b1) * g[i], vi = b2 * v[i] + (1 - b2) * g[i] * g[i];
    const double m_hat = mi / (1 - std::pow(b1, 7)), v_hat = vi / (1 - std::pow(b2, 7));
    want[i] =
        p[i] - lr * m_hat / (std::sqrt(v_hat) + double(a.eps)) - lr * double(a.weight_decay) * p[i];
  }
  cpu::adam_update(n, a, p.data(), g.data(), m.data(), v.data());
  require_close(p, want, 1e-6, 1e-5, "param");
}

TEST_CASE("adam: the step count starts at 1", "[adam]") {
  cpu::AdamParams a;
  a.step = 0;
  float p = 1, g = 1, m = 0, v = 0;
  CHECK_THROWS_AS(cpu::adam_update(1, a, &p, &g, &m, &v), std::invalid_argument);
}
