// Engine-level gradient checks: each op's backward, reached through the autograd graph, against
// central finite differences of the op's forward (float32, so h = 1e-2 and a 2% tolerance; the
// kernels themselves are checked in double in tests/kernels). What this adds is the wiring: the
// right gradient reaches the right input, accumulates, and skips inputs that need none.
#include <catch2/catch.hpp>

#include <functional>

#include "engine/autograd.h"
#include "engine/ops.h"
#include "tests/support/gradcheck.h"

using namespace unet;

namespace {

Tensor random_tensor(const Shape& shape, uint32_t seed, bool requires_grad = true, double lo = -1, double hi = 1) {
  Tensor t = Tensor::from_vector(shape, test::random_vector<float>(std::size_t(numel(shape)), seed, lo, hi));
  t.set_requires_grad(requires_grad);
  return t;
}

// Checks d(sum(f(inputs) * r))/d(input) for every input against finite differences.
void check_gradients(const std::function<Tensor(const std::vector<Tensor>&)>& f, std::vector<Tensor> inputs,
                     double rtol = 2e-2, double atol = 2e-3) {
  const Tensor probe = f(inputs);
  const Tensor r = random_tensor(probe.shape(), 99, false);
  auto scalar = [&]() {
    NoGradGuard no_grad;
    return double(ops::sum(ops::mul(f(inputs), r)).item());
  };
  for (auto& t : inputs) t.set_grad(Tensor());
  ops::sum(ops::mul(f(inputs), r)).backward();
  for (std::size_t k = 0; k < inputs.size(); ++k) {
    if (!inputs[k].requires_grad()) continue;
    INFO("input " << k << " of shape " << to_string(inputs[k].shape()));
    REQUIRE(inputs[k].grad().defined());
    std::vector<float> values = inputs[k].to_vector();
    std::vector<double> numeric(values.size());
    const float h = 1e-2f;
    for (std::size_t i = 0; i < values.size(); ++i) {
      const float saved = values[i];
      values[i] = saved + h;
      inputs[k].copy_from(Tensor::from_vector(inputs[k].shape(), values));
      const double up = scalar();
      values[i] = saved - h;
      inputs[k].copy_from(Tensor::from_vector(inputs[k].shape(), values));
      const double down = scalar();
      values[i] = saved;
      inputs[k].copy_from(Tensor::from_vector(inputs[k].shape(), values));
      numeric[i] = (up - down) / (2.0 * h);
    }
    test::require_close(inputs[k].grad().to_vector(), numeric, atol, rtol, "gradient");
  }
}

}  // namespace

TEST_CASE("conv2d op: gradients reach x, weight and bias", "[autograd]") {
  check_gradients([](const auto& in) { return ops::conv2d(in[0], in[1], in[2], 2, ops::Padding::Same); },
                  {random_tensor({2, 3, 7, 6}, 1), random_tensor({4, 3, 3, 3}, 2), random_tensor({4}, 3)});
}

TEST_CASE("conv_transpose2d op: gradients reach x, weight and bias", "[autograd]") {
  check_gradients([](const auto& in) { return ops::conv_transpose2d(in[0], in[1], in[2], 2, ops::Padding::Same); },
                  {random_tensor({2, 3, 5, 4}, 4), random_tensor({3, 2, 3, 3}, 5), random_tensor({2}, 6)});
}

TEST_CASE("batch_norm op: training and inference, with and without fused ReLU", "[autograd]") {
  for (bool training : {true, false}) {
    for (bool relu : {false, true}) {
      INFO("training " << training << " relu " << relu);
      const Tensor running_mean = Tensor::zeros({3}), running_var = Tensor::full({3}, 1.0f);
      // Momentum 0 keeps the running statistics fixed across the finite-difference evaluations.
      check_gradients(
          [&](const auto& in) {
            return ops::batch_norm(in[0], in[1], in[2], running_mean, running_var, {training, 0.0f, 1e-3f, relu});
          },
          {random_tensor({2, 3, 5, 3}, 7), random_tensor({3}, 8, true, 0.5, 1.5), random_tensor({3}, 9)}, 3e-2, 5e-3);
    }
  }
}

TEST_CASE("pooling, activations, concat, elementwise ops and reductions", "[autograd]") {
  // Values spaced apart so that no finite-difference step crosses a max-pool tie or a ReLU kink.
  std::vector<float> spaced(2 * 3 * 5 * 7);
  for (std::size_t i = 0; i < spaced.size(); ++i) spaced[i] = float((i * 37) % spaced.size()) * 0.1f - 5.05f;
  Tensor x = Tensor::from_vector({2, 3, 5, 7}, spaced);
  x.set_requires_grad(true);
  check_gradients([](const auto& in) { return ops::max_pool2x2(in[0]); }, {x});
  check_gradients([](const auto& in) { return ops::relu(in[0]); }, {x});
  check_gradients([](const auto& in) { return ops::sigmoid(in[0]); }, {random_tensor({3, 4}, 10, true, -4, 4)});
  check_gradients([](const auto& in) { return ops::concat_channels(in[0], in[1]); },
                  {random_tensor({2, 2, 3, 3}, 11), random_tensor({2, 3, 3, 3}, 12)});
  check_gradients([](const auto& in) { return ops::mul(ops::add(in[0], in[1]), in[1]); },
                  {random_tensor({4, 5}, 13), random_tensor({4, 5}, 14)});
  check_gradients([](const auto& in) { return ops::mean(ops::scale(in[0], 3.0f)); }, {random_tensor({6, 7}, 15)});
  check_gradients([](const auto& in) { return ops::dropout(in[0], 0.3f, 5, 0); }, {random_tensor({4, 9}, 16)});
}

TEST_CASE("loss ops: gradient reaches the input, never the target", "[autograd]") {
  const Tensor target = Tensor::from_vector({1, 1, 2, 3}, {0, 1, 1, 0, 0, 1});
  for (LossKind kind : {LossKind::MSE, LossKind::BCE, LossKind::Dice, LossKind::BCEDice, LossKind::NegLogIoU}) {
    INFO(to_string(kind));
    const bool logits = kind == LossKind::BCE || kind == LossKind::BCEDice;
    check_gradients([&](const auto& in) { return ops::loss(kind, in[0], target); },
                    {random_tensor({1, 1, 2, 3}, 17, true, logits ? -3 : 0.05, logits ? 3 : 0.95)});
  }
}

TEST_CASE("autograd accumulates a tensor used twice and across backward calls", "[autograd]") {
  Tensor x = Tensor::from_vector({3}, {1, 2, 3});
  x.set_requires_grad(true);
  ops::sum(ops::mul(x, x)).backward();  // d/dx sum(x^2) = 2x
  test::require_close(x.grad().to_vector(), std::vector<float>{2, 4, 6}, 0, 1e-6, "first backward");
  ops::sum(x).backward();  // accumulates 1 per element
  test::require_close(x.grad().to_vector(), std::vector<float>{3, 5, 7}, 0, 1e-6, "accumulated");
}

TEST_CASE("no-grad scope records nothing, backward needs a scalar or a gradient", "[autograd]") {
  Tensor x = Tensor::from_vector({2}, {1, 2});
  x.set_requires_grad(true);
  {
    NoGradGuard no_grad;
    const Tensor y = ops::scale(x, 2.0f);
    CHECK_FALSE(y.requires_grad());
    CHECK(y.grad_fn() == nullptr);
  }
  const Tensor y = ops::scale(x, 2.0f);
  CHECK(y.requires_grad());
  CHECK_THROWS_WITH(y.backward(), Catch::Contains("shape [2]") && Catch::Contains("explicit gradient"));
  y.backward(Tensor::from_vector({2}, {1, 10}));
  test::require_close(x.grad().to_vector(), std::vector<float>{2, 20}, 0, 1e-6, "explicit gradient");
  const Tensor constant = Tensor::from_vector({1}, {1});
  CHECK_THROWS_WITH(constant.backward(), Catch::Contains("does not require grad"));
}

TEST_CASE("shape errors name the op, the argument and the shapes", "[ops]") {
  const Tensor x = Tensor::zeros({1, 3, 8, 8});
  CHECK_THROWS_WITH(ops::conv2d(x, Tensor::zeros({16, 4, 3, 3}), Tensor(), 1),
                    Catch::Contains("conv2d") && Catch::Contains("[16, 4, 3, 3]") && Catch::Contains("[1, 3, 8, 8]"));
  CHECK_THROWS_WITH(ops::conv2d(x, Tensor::zeros({16, 3, 3, 3}), Tensor::zeros({8}), 1),
                    Catch::Contains("conv2d: bias must have shape [16], got [8]"));
  CHECK_THROWS_WITH(ops::conv2d(Tensor::zeros({3, 8, 8}), Tensor::zeros({16, 3, 3, 3}), Tensor(), 1),
                    Catch::Contains("'x' must have 4 dimensions, got shape [3, 8, 8]"));
  CHECK_THROWS_WITH(ops::concat_channels(x, Tensor::zeros({1, 3, 8, 9})),
                    Catch::Contains("concat_channels") && Catch::Contains("[1, 3, 8, 9]"));
  CHECK_THROWS_WITH(ops::add(x, Tensor::zeros({1, 3, 8, 7})), Catch::Contains("add: 'a' has shape [1, 3, 8, 8]"));
  CHECK_THROWS_WITH(ops::loss(LossKind::Dice, x, Tensor::zeros({1, 1, 8, 8})), Catch::Contains("dice_loss"));
  CHECK_THROWS_WITH(ops::batch_norm(x, Tensor::zeros({4}), Tensor::zeros({3}), Tensor::zeros({3}), Tensor::zeros({3}), {}),
                    Catch::Contains("batch_norm: 'gamma' must have shape [3]"));
  CHECK_THROWS_WITH(ops::dropout(x, 1.0f, 0, 0), Catch::Contains("dropout: p must be in [0, 1)"));
  CHECK_THROWS_WITH(ops::max_pool2x2(Tensor::zeros({1, 1, 1, 4})), Catch::Contains("max_pool2x2"));
}
