// The CUDA backend against the CPU backend, through the engine: a short training run of a small
// U-Net on both must agree. Built twice: over the emulation layer (UNET_TEST_CUDA_EMULATION: the
// CUDA backend's code and every handwritten kernel run on the CPU) and, with nvcc, over the real
// runtime, where it runs when a GPU is present and says it was skipped when not.
//
// A second case trains a U-Net for two steps, switches it to eval mode and compares its forward
// outputs (inference batch norm with the fused ReLU) on both backends.
//
// Tolerances: each step's loss within 1e-4 relative, and every parameter gradient of the first
// step within 1e-3 * (largest |gradient| of that tensor) elementwise; the eval outputs within
// 1e-4 * (largest |output|) + 1e-4 relative (the same weights and statistics on both sides;
// ~4e-7 observed over the emulator). Both backends compute in float32 but sum in different orders
// (the CPU kernels accumulate in double), and five Adam steps amplify the differences only
// slightly at lr 2e-3.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>

#include "engine/autograd.h"
#include "engine/ops.h"
#include "engine/options.h"
#include "models/unet.h"
#include "tests/support/gradcheck.h"
#include "train/adam.h"

using namespace unet;

namespace {

bool cuda_ready() {
#if defined(UNET_TEST_CUDA_EMULATION)
  set_cuda_emulation(true);
#endif
  try {
    backend(Device::CUDA);
    return true;
  } catch (const std::runtime_error& e) {
    WARN("skipped: " << e.what());
    return false;
  }
}

// Selects the CUDA convolutions for one test case; the default (Auto) again after it.
struct ConvImplScope {
  explicit ConvImplScope(ConvImpl impl) { engine_options().conv = impl; }
  ~ConvImplScope() { engine_options().conv = ConvImpl::Auto; }
  ConvImplScope(const ConvImplScope&) = delete;
  ConvImplScope& operator=(const ConvImplScope&) = delete;
};

struct Run {
  std::vector<float> losses;
  std::vector<std::vector<float>> first_gradients;
};

Run train(Device device, int steps) {
  UNetConfig c;
  c.base_filters = 4;
  c.depth = 2;
  c.dropout = 0.1f;
  UNet model(c, 21);
  model.to(device);
  Adam adam(model.named_parameters(), {});
  const auto image_values = test::random_vector<float>(2 * 3 * 16 * 16, 5, 0, 1);
  std::vector<float> mask_values(2 * 16 * 16);
  for (std::size_t i = 0; i < mask_values.size(); ++i) mask_values[i] = image_values[i] > 0.6f ? 1.0f : 0.0f;
  const Tensor image = Tensor::from_vector({2, 3, 16, 16}, image_values).to(device);
  const Tensor mask = Tensor::from_vector({2, 1, 16, 16}, mask_values).to(device);
  Run run;
  for (int step = 0; step < steps; ++step) {
    const Tensor loss = ops::loss(LossKind::BCEDice, model.forward(image), mask);
    adam.zero_grad();
    loss.backward();
    if (step == 0) {
      // Conv biases before a training-mode BatchNorm get no gradient (models/unet.cpp): empty.
      for (const auto& [name, p] : model.named_parameters())
        run.first_gradients.push_back(p.grad().defined() ? p.grad().to_vector() : std::vector<float>{});
    }
    adam.step();
    run.losses.push_back(loss.item());
  }
  return run;
}

}  // namespace

TEST_CASE("a 5-step U-Net training run on the CUDA backend tracks the CPU backend", "[cuda][backend]") {
  if (!cuda_ready()) return;
  const ConvImplScope conv(ConvImpl::Handwritten);  // handwritten conv2d and transposed conv both in the path
  const Run cpu = train(Device::CPU, 5);
  const Run gpu = train(Device::CUDA, 5);
  test::require_close(gpu.losses, cpu.losses, 0, 1e-4, "losses");
  REQUIRE(gpu.first_gradients.size() == cpu.first_gradients.size());
  for (std::size_t t = 0; t < cpu.first_gradients.size(); ++t) {
    INFO("parameter tensor " << t);
    float largest = 0;
    for (float g : cpu.first_gradients[t]) largest = std::max(largest, std::abs(g));
    test::require_close(gpu.first_gradients[t], cpu.first_gradients[t], 1e-3 * largest + 1e-7, 0, "gradient");
  }
}

TEST_CASE("tensors round-trip through the CUDA backend and its allocator reports use", "[cuda][backend]") {
  if (!cuda_ready()) return;
  const std::vector<float> values{1, -2, 3.5f, 0, 7};
  auto& alloc = backend(Device::CUDA).allocator();
  const std::size_t before = alloc.stats().current_bytes;
  {
    const Tensor t = Tensor::from_vector({5}, values, Device::CUDA);
    CHECK(t.device() == Device::CUDA);
    CHECK(t.to_vector() == values);
    CHECK(alloc.stats().current_bytes > before);
    CHECK(ops::sum(t).item() == Approx(9.5f));
  }
  CHECK(alloc.stats().current_bytes == before);
}

TEST_CASE("conv2d on the CUDA backend's cuDNN path (on a real GPU) matches the CPU", "[cuda][backend][cudnn]") {
  if (!cuda_ready()) return;
  const ConvImplScope conv(ConvImpl::Cudnn);
  auto run = [](Device device) {
    Tensor x = Tensor::from_vector({2, 8, 30, 30}, test::random_vector<float>(2 * 8 * 30 * 30, 1)).to(device);
    Tensor w = Tensor::from_vector({16, 8, 3, 3}, test::random_vector<float>(16 * 8 * 9, 2, -0.2, 0.2)).to(device);
    Tensor b = Tensor::from_vector({16}, test::random_vector<float>(16, 3)).to(device);
    for (Tensor* t : {&x, &w, &b}) *t = t->detach().set_requires_grad(true);
    const Tensor y = ops::conv2d(x, w, b, 1, ops::Padding::Same);
    ops::sum(ops::mul(y, y)).backward();
    return std::vector<std::vector<float>>{y.to_vector(), x.grad().to_vector(), w.grad().to_vector(), b.grad().to_vector()};
  };
  const auto cpu = run(Device::CPU), gpu = run(Device::CUDA);
  const char* names[] = {"y", "dx", "dw", "dbias"};
  for (std::size_t i = 0; i < cpu.size(); ++i) test::require_close(gpu[i], cpu[i], 1e-3, 1e-4, names[i]);
}

TEST_CASE("conv_transpose2d on the CUDA backend's cuDNN path (on a real GPU) matches the CPU", "[cuda][backend][cudnn]") {
  if (!cuda_ready()) return;
  const ConvImplScope conv(ConvImpl::Cudnn);
  // 'same' (0 before, 1 after: cuDNN computes a larger image and crops it) and 'valid' (exact).
  for (const ops::Padding padding : {ops::Padding::Same, ops::Padding::Valid}) {
    auto run = [padding](Device device) {
      Tensor x = Tensor::from_vector({2, 8, 15, 13}, test::random_vector<float>(2 * 8 * 15 * 13, 1)).to(device);
      Tensor w = Tensor::from_vector({8, 4, 3, 3}, test::random_vector<float>(8 * 4 * 9, 2, -0.2, 0.2)).to(device);
      Tensor b = Tensor::from_vector({4}, test::random_vector<float>(4, 3)).to(device);
      for (Tensor* t : {&x, &w, &b}) *t = t->detach().set_requires_grad(true);
      const Tensor y = ops::conv_transpose2d(x, w, b, 2, padding);
      // A weight per output element, so that dy is not y itself and every position of dy matters.
      const Tensor weights = Tensor::from_vector(y.shape(), test::random_vector<float>(static_cast<std::size_t>(y.numel()), 4)).to(device);
      ops::sum(ops::mul(ops::mul(y, y), weights)).backward();
      return std::vector<std::vector<float>>{y.to_vector(), x.grad().to_vector(), w.grad().to_vector(), b.grad().to_vector()};
    };
    INFO((padding == ops::Padding::Same ? "same" : "valid"));
    const auto cpu = run(Device::CPU), gpu = run(Device::CUDA);
    const char* names[] = {"y", "dx", "dw", "dbias"};
    for (std::size_t i = 0; i < cpu.size(); ++i) test::require_close(gpu[i], cpu[i], 1e-3, 1e-4, names[i]);
  }
}

TEST_CASE("a trained U-Net in eval mode gives the same output on the CUDA backend as on the CPU", "[cuda][backend]") {
  if (!cuda_ready()) return;
  const ConvImplScope conv(ConvImpl::Handwritten);  // handwritten conv2d and transposed conv both in the path
  // Two training steps on the CPU move the running statistics off their initial 0 and 1; the
  // model is then evaluated on the CPU and, moved as it is, on the CUDA backend, so that both
  // evaluate the same weights and statistics (two independent runs would differ by Adam's first
  // steps, which are +-lr wherever a gradient is near zero).
  UNetConfig c;
  c.base_filters = 4;
  c.depth = 2;
  c.dropout = 0.1f;
  UNet model(c, 33);
  {
    Adam adam(model.named_parameters(), {});
    const auto image_values = test::random_vector<float>(2 * 3 * 16 * 16, 7, 0, 1);
    std::vector<float> mask_values(2 * 16 * 16);
    for (std::size_t i = 0; i < mask_values.size(); ++i) mask_values[i] = image_values[i] > 0.6f ? 1.0f : 0.0f;
    const Tensor image = Tensor::from_vector({2, 3, 16, 16}, image_values);
    const Tensor mask = Tensor::from_vector({2, 1, 16, 16}, mask_values);
    for (int step = 0; step < 2; ++step) {
      const Tensor loss = ops::loss(LossKind::BCEDice, model.forward(image), mask);
      adam.zero_grad();
      loss.backward();
      adam.step();
    }
  }
  const auto buffers = model.named_buffers();
  REQUIRE(!buffers.empty());
  bool moved = false;
  for (const auto& [name, b] : buffers)
    for (float v : b.to_vector()) moved = moved || (v != 0.0f && v != 1.0f);
  REQUIRE(moved);

  // A fresh batch centred on zero; eval mode: batch norm from the running statistics with the
  // fused ReLU (which cuts the values below the running mean), dropout off.
  model.eval();
  const auto input = test::random_vector<float>(3 * 3 * 16 * 16, 8, -1, 1);
  const auto evaluate = [&](Device device) {
    model.to(device);
    NoGradGuard no_grad;
    return model.forward(Tensor::from_vector({3, 3, 16, 16}, input).to(device)).to_vector();
  };
  const std::vector<float> cpu = evaluate(Device::CPU);
  const std::vector<float> gpu = evaluate(Device::CUDA);
  const std::vector<float> cpu_again = evaluate(Device::CPU);  // eval mode changed no state
  REQUIRE(cpu_again == cpu);
  float largest = 0;
  for (float v : cpu) largest = std::max(largest, std::abs(v));
  REQUIRE(largest > 0);
  test::require_close(gpu, cpu, 1e-4 * largest, 1e-4, "eval output");
}
