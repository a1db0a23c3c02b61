// Batch normalisation: a hand-worked case, a naive per-channel reference on odd shapes, running
// statistics, finite-difference gradients in both modes with and without the fused ReLU,
// fused == unfused bit for bit, and thread-count independence.
#include <omp.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <numeric>
#include <random>
#include <stdexcept>
#include <vector>

#include "kernels/cpu/batchnorm.h"
#include "kernels/cpu/elementwise.h"
#include "tests/support/gradcheck.h"

namespace {

namespace cpu = unet::cpu;
using unet::kernels::BatchNormShape;
using unet::test::dot;
using unet::test::numeric_gradient;
using unet::test::random_vector;
using unet::test::require_close;

template <typename T>
using Vec = std::vector<T>;

template <typename T>
struct Bn {
  BatchNormShape s;
  Vec<T> x, gamma, beta, running_mean, running_var;
  T eps = T(1e-3), momentum = T(0.1);
};

template <typename T>
Bn<T> random_bn(BatchNormShape s, uint32_t seed) {
  // x centred near 3: the variance must not be computed as E[x^2] - E[x]^2.
  return {s,
          random_vector<T>(s.size(), seed, 2.0, 4.0),
          random_vector<T>(s.c, seed + 1, 0.5, 1.5),
          random_vector<T>(s.c, seed + 2, -0.5, 0.5),
          random_vector<T>(s.c, seed + 3, -1.0, 1.0),
          random_vector<T>(s.c, seed + 4, 0.5, 2.0)};
}

template <typename T>
struct TrainOut {
  Vec<T> y, save_mean, save_invstd, running_mean, running_var;
};

template <typename T>
TrainOut<T> forward_train(const Bn<T>& b, bool relu) {
  TrainOut<T> o{Vec<T>(b.s.size()), Vec<T>(b.s.c), Vec<T>(b.s.c), b.running_mean, b.running_var};
  cpu::batchnorm_forward_train(b.s, b.x.data(), b.gamma.data(), b.beta.data(), b.eps, b.momentum,
                               o.running_mean.data(), o.running_var.data(), o.y.data(),
                               o.save_mean.data(), o.save_invstd.data(), relu);
  return o;
}

template <typename T>
Vec<T> forward_infer(const Bn<T>& b, bool relu) {
  Vec<T> y(b.s.size());
  cpu::batchnorm_forward_infer(b.s, b.x.data(), b.gamma.data(), b.beta.data(),
                               b.running_mean.data(), b.running_var.data(), b.eps, y.data(), relu);
  return y;
}

template <typename T>
struct Grads {
  Vec<T> dx, dgamma, dbeta;
};

template <typename T>
Grads<T> backward_train(const Bn<T>& b, const TrainOut<T>& f, const Vec<T>& dy, bool relu) {
  Grads<T> g{Vec<T>(b.s.size()), Vec<T>(b.s.c), Vec<T>(b.s.c)};
  cpu::batchnorm_backward_train(b.s, dy.data(), b.x.data(), f.y.data(), b.gamma.data(),
                                f.save_mean.data(), f.save_invstd.data(), g.dx.data(),
                                g.dgamma.data(), g.dbeta.data(), relu);
  return g;
}

template <typename T>
Grads<T> backward_infer(const Bn<T>& b, const Vec<T>& y, const Vec<T>& dy, bool relu) {
  Grads<T> g{Vec<T>(b.s.size()), Vec<T>(b.s.c), Vec<T>(b.s.c)};
  cpu::batchnorm_backward_infer(b.s, dy.data(), b.x.data(), y.data(), b.gamma.data(),
                                b.running_mean.data(), b.running_var.data(), b.eps, g.dx.data(),
                                g.dgamma.data(), g.dbeta.data(), relu);
  return g;
}

std::size_t index(const BatchNormShape& s, int n, int c, int j) {
  return (std::size_t(n) * s.c + c) * s.hw + j;
}

// Per-channel mean and biased variance by direct loops over (n, j).
struct Stats {
  Vec<double> mean, var;
};

Stats naive_stats(const BatchNormShape& s, const Vec<double>& x) {
  Stats st{Vec<double>(s.c), Vec<double>(s.c)};
  const double m = double(s.n) * s.hw;
  for (int c = 0; c < s.c; ++c) {
    for (int n = 0; n < s.n; ++n)
      for (int j = 0; j < s.hw; ++j) st.mean[c] += x[index(s, n, c, j)] / m;
    for (int n = 0; n < s.n; ++n)
      for (int j = 0; j < s.hw; ++j)
        st.var[c] += std::pow(x[index(s, n, c, j)] - st.mean[c], 2) / m;
  }
  return st;
}

Vec<double> naive_normalise(const Bn<double>& b, const Vec<double>& mean, const Vec<double>& var) {
  const BatchNormShape& s = b.s;
  Vec<double> y(s.size());
  for (int n = 0; n < s.n; ++n)
    for (int c = 0; c < s.c; ++c)
      for (int j = 0; j < s.hw; ++j) {
        const std::size_t i = index(s, n, c, j);
        y[i] = b.gamma[c] * (b.x[i] - mean[c]) / std::sqrt(var[c] + b.eps) + b.beta[c];
      }
  return y;
}

// A case whose pre-ReLU outputs stay far from zero, so that finite differences never cross the
// kink: each channel's x is a shuffled evenly spaced grid with an odd count, centred on the
// normalising mean, and beta puts zero halfway between two neighbouring outputs.
Bn<double> kink_free_bn(bool train) {
  const BatchNormShape s{3, 5, 7 * 9};
  const double spacing = 0.05;
  const int m = s.n * s.hw;
  Bn<double> b = random_bn<double>(s, 40);
  std::mt19937 rng(41);
  Vec<int> order(m);
  for (int c = 0; c < s.c; ++c) {
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), rng);
    const double centre = 2.0 + 0.3 * c;
    for (int k = 0; k < m; ++k)
      b.x[index(s, k / s.hw, c, k % s.hw)] = centre + spacing * (order[k] - (m - 1) / 2);
    b.running_mean[c] = centre;
  }
  const Stats st = naive_stats(s, b.x);
  for (int c = 0; c < s.c; ++c) {
    const double var = train ? st.var[c] : b.running_var[c];
    const double step = b.gamma[c] * spacing / std::sqrt(var + b.eps);  // between outputs
    b.beta[c] = step * (0.5 + (c % 3) - 1);
  }
  return b;
}

// Backward against central differences of L = sum(y * r) for x, gamma and beta.
void check_gradients(bool train, bool relu) {
  Bn<double> b = kink_free_bn(train);
  const auto r = random_vector(b.s.size(), 42);
  const auto y_of = [&](bool with_relu) {
    return train ? forward_train(b, with_relu).y : forward_infer(b, with_relu);
  };
  const auto pre_relu = y_of(false);
  REQUIRE(
      std::all_of(pre_relu.begin(), pre_relu.end(), [](double v) { return std::abs(v) > 1e-3; }));

  const Grads<double> g = train ? backward_train(b, forward_train(b, relu), r, relu)
                                : backward_infer(b, forward_infer(b, relu), r, relu);
  const auto loss = [&] { return dot(y_of(relu), r); };
  require_close(g.dx, numeric_gradient(loss, b.x), 1e-6, 1e-5, "dx");
  require_close(g.dgamma, numeric_gradient(loss, b.gamma), 1e-6, 1e-5, "dgamma");
  require_close(g.dbeta, numeric_gradient(loss, b.beta), 1e-6, 1e-5, "dbeta");
}

template <typename T>
bool bitwise_equal(const Vec<T>& a, const Vec<T>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

template <typename T>
bool same_grads(const Grads<T>& a, const Grads<T>& b) {
  return bitwise_equal(a.dx, b.dx) && bitwise_equal(a.dgamma, b.dgamma) &&
         bitwise_equal(a.dbeta, b.dbeta);
}

Vec<float> relu_of(const Vec<float>& x) {
  Vec<float> y(x.size());
  cpu::relu_forward(x.size(), x.data(), y.data());
  return y;
}

Vec<float> relu_grad(const Vec<float>& dy, const Vec<float>& y) {
  Vec<float> dx(dy.size());
  cpu::relu_backward(dy.size(), dy.data(), y.data(), dx.data());
  return dx;
}

template <typename T>
struct Run {
  TrainOut<T> train;
  Vec<T> infer;
  Grads<T> train_grads, infer_grads;
};

template <typename T>
Run<T> run_all(const Bn<T>& b, const Vec<T>& dy) {
  Run<T> r{forward_train(b, true), forward_infer(b, true), {}, {}};
  r.train_grads = backward_train(b, r.train, dy, true);
  r.infer_grads = backward_infer(b, r.infer, dy, true);
  return r;
}

template <typename T>
void check_thread_independence(uint32_t seed) {
  const Bn<T> b = random_bn<T>({2, 8, 33 * 31}, seed);
  const auto dy = random_vector<T>(b.s.size(), seed + 10);
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  const Run<T> one = run_all(b, dy);
  omp_set_num_threads(2);
  const Run<T> two = run_all(b, dy);
  omp_set_num_threads(saved);
  CHECK(bitwise_equal(one.train.y, two.train.y));
  CHECK(bitwise_equal(one.train.save_mean, two.train.save_mean));
  CHECK(bitwise_equal(one.train.save_invstd, two.train.save_invstd));
  CHECK(bitwise_equal(one.train.running_var, two.train.running_var));
  CHECK(bitwise_equal(one.infer, two.infer));
  CHECK(same_grads(one.train_grads, two.train_grads));
  CHECK(same_grads(one.infer_grads, two.infer_grads));
}

}  // namespace

TEST_CASE("batchnorm: hand-worked training forward", "[batchnorm]") {
  // Channel 0 holds 1, 2 (image 0) and 3, 4 (image 1): mean 2.5, biased var 1.25, unbiased 5/3.
  // Channel 1 is constant: var 0, so the output is beta.
  Bn<double> b{{2, 2, 2}, {1, 2, 10, 10, 3, 4, 10, 10}, {2, 3}, {0.5, -1}, {0, 1}, {1, 2}};
  const TrainOut<double> o = forward_train(b, false);
  // gamma (x - 2.5) / sqrt(1.25 + 1e-3) + beta; channel 1 gives beta = -1.
  const Vec<double> expected = {-2.1822089039291006, -0.3940696346430336, -1, -1,
                                1.3940696346430337,  3.1822089039291006,  -1, -1};
  require_close(o.y, expected, 1e-12, 1e-12, "y");
  require_close(o.save_mean, Vec<double>{2.5, 10}, 1e-12, 1e-12, "save_mean");
  require_close(o.save_invstd, Vec<double>{0.8940696346430336, 31.622776601683796}, 1e-12, 1e-12,
                "save_invstd");
  // running = 0.9 old + 0.1 batch, with the unbiased variance 5/3 and 0.
  require_close(o.running_mean, Vec<double>{0.25, 1.9}, 1e-12, 1e-12, "running_mean");
  require_close(o.running_var, Vec<double>{1.0666666666666667, 1.8}, 1e-12, 1e-12, "running_var");
}

TEST_CASE("batchnorm: forward matches a naive reference on odd shapes", "[batchnorm]") {
  const Bn<double> b = random_bn<double>({3, 5, 7 * 9}, 10);
  const Stats st = naive_stats(b.s, b.x);
  for (const bool relu : {false, true}) {
    auto train = naive_normalise(b, st.mean, st.var);
    auto infer = naive_normalise(b, b.running_mean, b.running_var);
    if (relu)
      for (auto* y : {&train, &infer})
        for (auto& v : *y) v = std::max(v, 0.0);
    require_close(forward_train(b, relu).y, train, 1e-12, 1e-12, "train y");
    require_close(forward_infer(b, relu), infer, 1e-12, 1e-12, "infer y");
  }

  // The float kernel agrees with the double reference to float precision.
  Bn<float> bf{b.s, {}, {}, {}, {}, {}};
  bf.x.assign(b.x.begin(), b.x.end());
  bf.gamma.assign(b.gamma.begin(), b.gamma.end());
  bf.beta.assign(b.beta.begin(), b.beta.end());
  bf.running_mean.assign(b.running_mean.begin(), b.running_mean.end());
  bf.running_var.assign(b.running_var.begin(), b.running_var.end());
  require_close(forward_train(bf, false).y, naive_normalise(b, st.mean, st.var), 1e-5, 1e-5,
                "float train y");
}

TEST_CASE("batchnorm: running statistics after one training step", "[batchnorm]") {
  const Bn<double> b = random_bn<double>({3, 5, 7 * 9}, 20);
  const Stats st = naive_stats(b.s, b.x);
  const double m = double(b.s.per_channel()), mom = b.momentum;
  Vec<double> mean(b.s.c), var(b.s.c);
  for (int c = 0; c < b.s.c; ++c) {
    mean[c] = (1 - mom) * b.running_mean[c] + mom * st.mean[c];
    var[c] = (1 - mom) * b.running_var[c] + mom * st.var[c] * m / (m - 1);
  }
  const TrainOut<double> o = forward_train(b, false);
  require_close(o.running_mean, mean, 1e-12, 1e-12, "running_mean");
  require_close(o.running_var, var, 1e-12, 1e-12, "running_var");
  require_close(o.save_mean, st.mean, 1e-12, 1e-12, "save_mean");
}

TEST_CASE("batchnorm: training needs two values per channel", "[batchnorm]") {
  Bn<double> b = random_bn<double>({1, 2, 1}, 30);
  CHECK_THROWS_AS(forward_train(b, false), std::invalid_argument);
}

TEST_CASE("batchnorm: training backward matches finite differences", "[batchnorm][gradient]") {
  SECTION("without relu") { check_gradients(true, false); }
  SECTION("with relu") { check_gradients(true, true); }
}

TEST_CASE("batchnorm: inference backward matches finite differences", "[batchnorm][gradient]") {
  SECTION("without relu") { check_gradients(false, false); }
  SECTION("with relu") { check_gradients(false, true); }
}

TEST_CASE("batchnorm: fused relu equals bn then relu, bit for bit", "[batchnorm]") {
  const Bn<float> b = random_bn<float>({2, 6, 11 * 13}, 50);
  const auto dy = random_vector<float>(b.s.size(), 51);

  const TrainOut<float> plain = forward_train(b, false), fused = forward_train(b, true);
  const Vec<float> relu_y = relu_of(plain.y);
  CHECK(bitwise_equal(fused.y, relu_y));
  CHECK(std::count(relu_y.begin(), relu_y.end(), 0.0f) > 100);  // the mask matters
  const Grads<float> gf = backward_train(b, fused, dy, true);
  const Grads<float> gp = backward_train(b, plain, relu_grad(dy, relu_y), false);
  CHECK(same_grads(gf, gp));

  const Vec<float> plain_i = forward_infer(b, false), fused_i = forward_infer(b, true);
  const Vec<float> relu_i = relu_of(plain_i);
  CHECK(bitwise_equal(fused_i, relu_i));
  const Grads<float> hf = backward_infer(b, fused_i, dy, true);
  const Grads<float> hp = backward_infer(b, plain_i, relu_grad(dy, relu_i), false);
  CHECK(same_grads(hf, hp));
}

TEST_CASE("batchnorm: bitwise identical with 1 and 2 threads", "[batchnorm][determinism]") {
  check_thread_independence<float>(60);
  check_thread_independence<double>(70);
}

TEST_CASE("batchnorm: batch 1 with channels cut into several runs", "[batchnorm][determinism]") {
  // 9000 values a plane make three runs per channel: the statistics are merged from run
  // partials, and must match the naive reference and not depend on the thread count.
  const Bn<double> b = random_bn<double>({1, 3, 9000}, 80);
  const Stats st = naive_stats(b.s, b.x);
  const TrainOut<double> o = forward_train(b, false);
  require_close(o.save_mean, st.mean, 1e-12, 1e-12, "save_mean");
  require_close(o.y, naive_normalise(b, st.mean, st.var), 1e-10, 1e-10, "y");

  const Bn<float> f = random_bn<float>({1, 3, 9000 + 5}, 81);
  const auto dy = random_vector<float>(f.s.size(), 82);
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  const Run<float> one = run_all(f, dy);
  omp_set_num_threads(2);
  const Run<float> two = run_all(f, dy);
  omp_set_num_threads(saved);
  CHECK(bitwise_equal(one.train.y, two.train.y));
  CHECK(bitwise_equal(one.train.save_invstd, two.train.save_invstd));
  CHECK(same_grads(one.train_grads, two.train_grads));
  CHECK(same_grads(one.infer_grads, two.infer_grads));
}
