// The model as a whole: the reference architecture's figures, learning (overfitting one batch),
// and run-to-run determinism.
#include <catch2/catch.hpp>

#include <omp.h>

#include "engine/autograd.h"
#include "engine/ops.h"
#include "engine/trace.h"
#include "models/unet.h"
#include "tests/support/gradcheck.h"
#include "train/adam.h"

using namespace unet;

namespace {

// A fixed batch with a learnable structure: the mask is where channel 0 is bright.
std::pair<Tensor, Tensor> blob_batch(int n, int channels, int size, uint32_t seed) {
  std::vector<float> image = test::random_vector<float>(std::size_t(n) * channels * size * size, seed, 0, 0.3);
  std::vector<float> mask(std::size_t(n) * size * size, 0.0f);
  for (int b = 0; b < n; ++b) {
    const int cy = size / 3 + b * 3, cx = size / 2 - b * 2, r = size / 5 + b;
    for (int y = 0; y < size; ++y) {
      for (int x = 0; x < size; ++x) {
        if ((y - cy) * (y - cy) + (x - cx) * (x - cx) > r * r) continue;
        mask[std::size_t((b * size + y) * size + x)] = 1.0f;
        image[std::size_t(((b * channels) * size + y) * size + x)] += 0.5f;
      }
    }
  }
  return {Tensor::from_vector({n, channels, size, size}, image), Tensor::from_vector({n, 1, size, size}, mask)};
}

std::vector<float> train_losses(const UNetConfig& config, int steps, LossKind kind, uint64_t seed) {
  UNet model(config, seed);
  Adam adam(model.named_parameters(), {});
  const auto [image, mask] = blob_batch(2, config.in_channels, 32, 3);
  std::vector<float> losses;
  for (int step = 0; step < steps; ++step) {
    const Tensor logits = model.forward(image);
    const bool logit_loss = kind == LossKind::BCE || kind == LossKind::BCEDice;
    const Tensor loss = ops::loss(kind, logit_loss ? logits : ops::sigmoid(logits), mask);
    adam.zero_grad();
    loss.backward();
    adam.step();
    losses.push_back(loss.item());
  }
  return losses;
}

}  // namespace

TEST_CASE("the default model is the reference Keras model", "[unet]") {
  UNet model(UNetConfig{}, 0);
  CHECK(model.parameter_count() == 2161649);
  CHECK(model.buffer_count() == 2944);
  CHECK(model.parameter_count() + model.buffer_count() == 2164593);

  model.eval();
  NoGradGuard no_grad;
  OpRecording recording;
  const Tensor out = model.probabilities(Tensor::zeros({1, 3, 240, 240}));
  CHECK(out.shape() == Shape{1, 1, 240, 240});
  double flops = 0;
  int convs = 0, transposed = 0, pools = 0, dropouts = 0;
  for (const OpRecord& r : recording.records()) {
    flops += r.flops;
    convs += r.op == "conv2d";
    transposed += r.op == "conv_transpose2d";
    pools += r.op == "max_pool2x2";
    dropouts += r.op == "dropout";
  }
  CHECK(convs == 19);
  CHECK(transposed == 4);
  CHECK(pools == 4);
  CHECK(dropouts == 8);
  CHECK(flops / 1e9 == Approx(5.63).epsilon(0.01));
}

TEST_CASE("model options change the architecture as documented", "[unet]") {
  UNetConfig c;
  c.batch_norm = false;
  c.upsampling = Upsampling::Transposed2x2;
  c.base_filters = 8;
  c.depth = 3;
  UNet model(c, 0);
  CHECK(model.buffer_count() == 0);
  // Conv blocks 3->8->8, 8->16->16, 16->32->32, bottleneck 32->64->64; decoder ups 2x2 and blocks.
  const int64_t blocks = (3 * 8 * 9 + 8 + 8 * 8 * 9 + 8) + (8 * 16 * 9 + 16 + 16 * 16 * 9 + 16) +
                         (16 * 32 * 9 + 32 + 32 * 32 * 9 + 32) + (32 * 64 * 9 + 64 + 64 * 64 * 9 + 64) +
                         (64 * 32 * 9 + 32 + 32 * 32 * 9 + 32) + (32 * 16 * 9 + 16 + 16 * 16 * 9 + 16) +
                         (16 * 8 * 9 + 8 + 8 * 8 * 9 + 8);
  const int64_t ups = (64 * 32 * 4 + 32) + (32 * 16 * 4 + 16) + (16 * 8 * 4 + 8);
  CHECK(model.parameter_count() == blocks + ups + (8 + 1));
  CHECK(model.forward(Tensor::zeros({2, 3, 16, 24})).shape() == Shape{2, 1, 16, 24});
  CHECK_THROWS_WITH(model.forward(Tensor::zeros({1, 3, 20, 16})), Catch::Contains("multiples of 2^depth = 8"));
  CHECK_THROWS_WITH(model.forward(Tensor::zeros({1, 4, 16, 16})), Catch::Contains("[N, 3, H, W]"));
}

TEST_CASE("config round-trips through key=value pairs and rejects bad values", "[unet]") {
  UNetConfig c;
  c.depth = 3;
  c.dropout = 0.25f;
  c.upsampling = Upsampling::Transposed2x2;
  const UNetConfig back = UNetConfig::from_map(c.to_map());
  CHECK(back.to_map() == c.to_map());
  CHECK_THROWS_WITH(UNetConfig::from_map({{"depth", "x"}}), Catch::Contains("'depth' must be an integer"));
  CHECK_THROWS_WITH(UNetConfig::from_map({{"colour", "blue"}}), Catch::Contains("unknown key 'colour'"));
  CHECK_THROWS_WITH(UNetConfig::from_map({{"dropout", "1.5"}}), Catch::Contains("dropout must be in [0, 1)"));
}

TEST_CASE("a small U-Net overfits one fixed batch", "[unet][slow]") {
  UNetConfig c;
  c.base_filters = 8;
  c.depth = 2;
  c.dropout = 0.0f;
  const std::vector<float> losses = train_losses(c, 300, LossKind::BCE, 7);
  INFO("first loss " << losses.front() << ", last loss " << losses.back());
  CHECK(losses.back() < losses.front() / 10);
}

TEST_CASE("same seed and thread count give bitwise identical losses", "[unet][determinism]") {
  UNetConfig c;
  c.base_filters = 4;
  c.depth = 2;
  c.dropout = 0.1f;  // dropout in the path: its masks must be reproducible too
  const int threads = omp_get_max_threads();
  const auto a = train_losses(c, 6, LossKind::BCEDice, 11);
  const auto b = train_losses(c, 6, LossKind::BCEDice, 11);
  CHECK(a == b);
  const auto other_seed = train_losses(c, 6, LossKind::BCEDice, 12);
  CHECK(a != other_seed);
  omp_set_num_threads(1);
  const auto single = train_losses(c, 6, LossKind::BCEDice, 11);
  omp_set_num_threads(threads);
  // Our CPU kernels reduce in a fixed order, so even the thread count does not change the result.
  CHECK(single == a);
}

TEST_CASE("conv biases before a training-mode BatchNorm get no gradient, the others do", "[unet]") {
  for (bool batch_norm : {true, false}) {
    INFO("batch_norm " << batch_norm);
    UNetConfig c;
    c.base_filters = 2;
    c.depth = 1;
    c.batch_norm = batch_norm;
    UNet model(c, 3);
    model.train();
    const Tensor x = Tensor::from_vector({2, 3, 8, 8}, std::vector<float>(2 * 3 * 8 * 8, 0.5f));
    ops::sum(model.forward(x)).backward();
    for (const auto& [name, p] : model.named_parameters()) {
      INFO(name);
      const bool block_conv_bias = name.find(".conv") != std::string::npos && name.ends_with(".bias");
      CHECK(p.grad().defined() == !(batch_norm && block_conv_bias));
    }
  }
}
