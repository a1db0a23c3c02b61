// The CUDA batch-norm launchers (kernels/cuda/batchnorm.cu) against their CPU twins
// (kernels/cpu/batchnorm.cpp, float): training and inference, forward and backward, with and
// without the fused ReLU, on the U-Net's plane sizes (240, 120, 60, 30, 15), odd planes (7x5,
// 15x15), a 1-pixel plane, and planes larger and smaller than the 512-thread block; inference
// with the fused ReLU also on inputs whose normalised values go negative (so that the ReLU cuts),
// and on planes past the inference forward's capped grid. Channels of 8192 values or more take
// the several-blocks-per-channel path (partials, then a merge): slices of unequal lengths that
// cross planes, more slices than a warp has lanes, and a bitwise comparison of every output
// across runs, thread orders and output arrays off a double's alignment.
//
// Tolerance: |cuda - cpu| <= 1e-5 + 1e-4 * |cpu| for every output (y, save_mean, save_invstd,
// running_mean, running_var, dx, dgamma, dbeta). Both sum in double, in different orders; the
// per-element arithmetic is float on the GPU and double on the CPU. Every output is filled with
// NaN before each launch, so an element the kernel fails to write fails the comparison, and
// every launch runs twice and must give bitwise equal results. Over the emulator each case runs
// under each ThreadOrder, so a missing barrier in the block reduction shows up as a wrong result.
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/cpu/batchnorm.h"
#include "tests/support/cuda_test.h"
#include "tests/support/gradcheck.h"

namespace {

namespace cu = unet::UNET_CUDA_NS;
using unet::kernels::BatchNormShape;
using unet::test::DeviceBuffer;
using unet::test::FirstRun;
using unet::test::repeat_runs;
using unet::test::require_bitwise_equal;
using unet::test::random_vector;
using unet::test::require_close;
using Vec = std::vector<float>;

constexpr double kAtol = 1e-5;
constexpr double kRtol = 1e-4;
constexpr float kEps = 1e-3f;
constexpr float kMomentum = 0.1f;

std::string describe(const BatchNormShape& s, bool relu) {
  return "n" + std::to_string(s.n) + " c" + std::to_string(s.c) + " hw" + std::to_string(s.hw) +
         (relu ? " relu" : "");
}

struct Inputs {
  Vec x, gamma, beta, running_mean, running_var, dy;
};

Inputs random_inputs(const BatchNormShape& s, uint32_t seed) {
  const auto c = std::size_t(s.c);
  // x centred near 3: a variance taken as E[x^2] - E[x]^2 in float would lose digits.
  return {random_vector<float>(s.size(), seed, 2.0, 4.0),
          random_vector<float>(c, seed + 1, 0.5, 1.5),
          random_vector<float>(c, seed + 2, -0.5, 0.5),
          random_vector<float>(c, seed + 3, -1.0, 1.0),
          random_vector<float>(c, seed + 4, 0.5, 2.0),
          random_vector<float>(s.size(), seed + 5, -1.0, 1.0)};
}

void check_shape(const BatchNormShape& s, bool relu, uint32_t seed) {
  INFO(describe(s, relu));
  const auto c = std::size_t(s.c);
  const Inputs in = random_inputs(s, seed);

  // CPU references. The backward passes take the CPU forward's y and saved statistics as inputs
  // on both sides, so that a ReLU mask bit flipped by rounding cannot make them disagree.
  Vec y_ref(s.size()), save_mean_ref(c), save_invstd_ref(c);
  Vec running_mean_ref = in.running_mean, running_var_ref = in.running_var;
  unet::cpu::batchnorm_forward_train<float>(s, in.x.data(), in.gamma.data(), in.beta.data(), kEps,
                                            kMomentum, running_mean_ref.data(),
                                            running_var_ref.data(), y_ref.data(),
                                            save_mean_ref.data(), save_invstd_ref.data(), relu);
  Vec y_infer_ref(s.size());
  unet::cpu::batchnorm_forward_infer<float>(s, in.x.data(), in.gamma.data(), in.beta.data(),
                                            in.running_mean.data(), in.running_var.data(), kEps,
                                            y_infer_ref.data(), relu);
  Vec dx_ref(s.size()), dgamma_ref(c), dbeta_ref(c);
  unet::cpu::batchnorm_backward_train<float>(s, in.dy.data(), in.x.data(), y_ref.data(),
                                             in.gamma.data(), save_mean_ref.data(),
                                             save_invstd_ref.data(), dx_ref.data(),
                                             dgamma_ref.data(), dbeta_ref.data(), relu);
  Vec dx_infer_ref(s.size()), dgamma_infer_ref(c), dbeta_infer_ref(c);
  unet::cpu::batchnorm_backward_infer<float>(
      s, in.dy.data(), in.x.data(), y_infer_ref.data(), in.gamma.data(), in.running_mean.data(),
      in.running_var.data(), kEps, dx_infer_ref.data(), dgamma_infer_ref.data(),
      dbeta_infer_ref.data(), relu);

  DeviceBuffer<float> d_x(in.x), d_gamma(in.gamma), d_beta(in.beta), d_dy(in.dy);
  DeviceBuffer<float> d_running_mean(c), d_running_var(c), d_y(s.size()), d_save_mean(c),
      d_save_invstd(c);
  DeviceBuffer<float> d_rm_in(in.running_mean), d_rv_in(in.running_var);
  DeviceBuffer<float> d_y_ref(y_ref), d_y_infer_ref(y_infer_ref), d_save_mean_ref(save_mean_ref),
      d_save_invstd_ref(save_invstd_ref);
  DeviceBuffer<float> d_dx(s.size()), d_dgamma(c), d_dbeta(c);
  // The y that backward reads for the ReLU mask; without the ReLU it must not be read at all.
  const float* y_train_in = relu ? d_y_ref.get() : nullptr;
  const float* y_infer_in = relu ? d_y_infer_ref.get() : nullptr;

  repeat_runs([&] {
    struct TrainOut {
      Vec y, save_mean, save_invstd, running_mean, running_var;
    };
    const auto forward_train = [&] {
      d_running_mean.upload(in.running_mean);
      d_running_var.upload(in.running_var);
      poison(d_y);
      poison(d_save_mean);
      poison(d_save_invstd);
      cu::batchnorm_forward_train(s, d_x.get(), d_gamma.get(), d_beta.get(), kEps, kMomentum,
                                  d_running_mean.get(), d_running_var.get(), d_y.get(),
                                  d_save_mean.get(), d_save_invstd.get(), relu, nullptr);
      return TrainOut{d_y.download(), d_save_mean.download(), d_save_invstd.download(),
                      d_running_mean.download(), d_running_var.download()};
    };
    const TrainOut f = forward_train();
    require_close(f.y, y_ref, kAtol, kRtol, "forward_train y");
    require_close(f.save_mean, save_mean_ref, kAtol, kRtol, "forward_train save_mean");
    require_close(f.save_invstd, save_invstd_ref, kAtol, kRtol, "forward_train save_invstd");
    require_close(f.running_mean, running_mean_ref, kAtol, kRtol, "forward_train running_mean");
    require_close(f.running_var, running_var_ref, kAtol, kRtol, "forward_train running_var");
    const TrainOut again = forward_train();
    require_bitwise_equal(again.y, f.y, "forward_train y");
    require_bitwise_equal(again.save_mean, f.save_mean, "forward_train save_mean");
    require_bitwise_equal(again.save_invstd, f.save_invstd, "forward_train save_invstd");
    require_bitwise_equal(again.running_mean, f.running_mean, "forward_train running_mean");
    require_bitwise_equal(again.running_var, f.running_var, "forward_train running_var");

    const auto forward_infer = [&] {
      poison(d_y);
      cu::batchnorm_forward_infer(s, d_x.get(), d_gamma.get(), d_beta.get(), d_rm_in.get(),
                                  d_rv_in.get(), kEps, d_y.get(), relu, nullptr);
      return d_y.download();
    };
    const Vec y_infer = forward_infer();
    require_close(y_infer, y_infer_ref, kAtol, kRtol, "forward_infer y");
    require_bitwise_equal(forward_infer(), y_infer, "forward_infer y");

    struct Grads {
      Vec dx, dgamma, dbeta;
    };
    const auto run_backward = [&](bool train) {
      poison(d_dx);
      poison(d_dgamma);
      poison(d_dbeta);
      if (train)
        cu::batchnorm_backward_train(s, d_dy.get(), d_x.get(), y_train_in, d_gamma.get(),
                                     d_save_mean_ref.get(), d_save_invstd_ref.get(), d_dx.get(),
                                     d_dgamma.get(), d_dbeta.get(), relu, nullptr);
      else
        cu::batchnorm_backward_infer(s, d_dy.get(), d_x.get(), y_infer_in, d_gamma.get(),
                                     d_rm_in.get(), d_rv_in.get(), kEps, d_dx.get(),
                                     d_dgamma.get(), d_dbeta.get(), relu, nullptr);
      return Grads{d_dx.download(), d_dgamma.download(), d_dbeta.download()};
    };
    const Grads g = run_backward(true);
    require_close(g.dx, dx_ref, kAtol, kRtol, "backward_train dx");
    require_close(g.dgamma, dgamma_ref, kAtol, kRtol, "backward_train dgamma");
    require_close(g.dbeta, dbeta_ref, kAtol, kRtol, "backward_train dbeta");
    const Grads g2 = run_backward(true);
    require_bitwise_equal(g2.dx, g.dx, "backward_train dx");
    require_bitwise_equal(g2.dgamma, g.dgamma, "backward_train dgamma");
    require_bitwise_equal(g2.dbeta, g.dbeta, "backward_train dbeta");

    const Grads gi = run_backward(false);
    require_close(gi.dx, dx_infer_ref, kAtol, kRtol, "backward_infer dx");
    require_close(gi.dgamma, dgamma_infer_ref, kAtol, kRtol, "backward_infer dgamma");
    require_close(gi.dbeta, dbeta_infer_ref, kAtol, kRtol, "backward_infer dbeta");
    const Grads gi2 = run_backward(false);
    require_bitwise_equal(gi2.dx, gi.dx, "backward_infer dx");
    require_bitwise_equal(gi2.dgamma, gi.dgamma, "backward_infer dgamma");
    require_bitwise_equal(gi2.dbeta, gi.dbeta, "backward_infer dbeta");
  });
}

// Inference with the fused ReLU on inputs that straddle the running mean (and some negative
// gammas), so that a good share of the normalised values is negative and the ReLU cuts them:
// in check_shape's inputs x - running_mean >= 1, so inference outputs never go negative.
void check_infer_relu(const BatchNormShape& s, uint32_t seed) {
  INFO(describe(s, true) << " inference, inputs around the running mean");
  const auto c = std::size_t(s.c);
  const Vec x = random_vector<float>(s.size(), seed, -3.0, 3.0);
  const Vec gamma = random_vector<float>(c, seed + 1, -1.5, 1.5);
  const Vec beta = random_vector<float>(c, seed + 2, -0.5, 0.5);
  const Vec running_mean = random_vector<float>(c, seed + 3, -1.0, 1.0);
  const Vec running_var = random_vector<float>(c, seed + 4, 0.5, 2.0);
  const Vec dy = random_vector<float>(s.size(), seed + 5, -1.0, 1.0);

  Vec y_ref(s.size()), dx_ref(s.size()), dgamma_ref(c), dbeta_ref(c);
  unet::cpu::batchnorm_forward_infer<float>(s, x.data(), gamma.data(), beta.data(),
                                            running_mean.data(), running_var.data(), kEps,
                                            y_ref.data(), true);
  unet::cpu::batchnorm_backward_infer<float>(s, dy.data(), x.data(), y_ref.data(), gamma.data(),
                                             running_mean.data(), running_var.data(), kEps,
                                             dx_ref.data(), dgamma_ref.data(), dbeta_ref.data(),
                                             true);
  // The case must exercise the cut: at least a quarter of the outputs zeroed, a quarter kept.
  std::size_t cut = 0;
  for (const float v : y_ref) cut += v == 0.0f;
  REQUIRE(cut >= s.size() / 4);
  REQUIRE(cut <= s.size() - s.size() / 4);

  DeviceBuffer<float> d_x(x), d_gamma(gamma), d_beta(beta), d_rm(running_mean),
      d_rv(running_var), d_dy(dy), d_y_ref(y_ref);
  DeviceBuffer<float> d_y(s.size()), d_dx(s.size()), d_dgamma(c), d_dbeta(c);
  repeat_runs([&] {
    const auto forward = [&] {
      poison(d_y);
      cu::batchnorm_forward_infer(s, d_x.get(), d_gamma.get(), d_beta.get(), d_rm.get(),
                                  d_rv.get(), kEps, d_y.get(), true, nullptr);
      return d_y.download();
    };
    const Vec y = forward();
    require_close(y, y_ref, kAtol, kRtol, "forward_infer y");
    for (std::size_t i = 0; i < y.size(); ++i)
      if (!(y[i] >= 0.0f)) FAIL("forward_infer y: element " << i << " is " << y[i] << " < 0");
    require_bitwise_equal(forward(), y, "forward_infer y");

    struct Grads {
      Vec dx, dgamma, dbeta;
    };
    const auto backward = [&] {
      poison(d_dx);
      poison(d_dgamma);
      poison(d_dbeta);
      cu::batchnorm_backward_infer(s, d_dy.get(), d_x.get(), d_y_ref.get(), d_gamma.get(),
                                   d_rm.get(), d_rv.get(), kEps, d_dx.get(), d_dgamma.get(),
                                   d_dbeta.get(), true, nullptr);
      return Grads{d_dx.download(), d_dgamma.download(), d_dbeta.download()};
    };
    const Grads g = backward();
    require_close(g.dx, dx_ref, kAtol, kRtol, "backward_infer dx");
    require_close(g.dgamma, dgamma_ref, kAtol, kRtol, "backward_infer dgamma");
    require_close(g.dbeta, dbeta_ref, kAtol, kRtol, "backward_infer dbeta");
    const Grads g2 = backward();
    require_bitwise_equal(g2.dx, g.dx, "backward_infer dx");
    require_bitwise_equal(g2.dgamma, g.dgamma, "backward_infer dgamma");
    require_bitwise_equal(g2.dbeta, g.dbeta, "backward_infer dbeta");
  });
}

// Every output of the training forward and of both backward passes, bit for bit equal to the
// first run's under every thread order (emulator) or run (GPU), and again when the output arrays
// (which hold the partials of the several-blocks path) start 4 bytes off a double's alignment.
void check_reproducible(const BatchNormShape& s, bool relu, uint32_t seed) {
  INFO(describe(s, relu) << " reproducibility");
  const auto c = std::size_t(s.c);
  const Inputs in = random_inputs(s, seed);
  DeviceBuffer<float> d_x(in.x), d_gamma(in.gamma), d_beta(in.beta), d_dy(in.dy);
  DeviceBuffer<float> d_rm_in(in.running_mean), d_rv_in(in.running_var);
  DeviceBuffer<float> d_running_mean(c), d_running_var(c), d_save_mean(c), d_save_invstd(c),
      d_dgamma(c), d_dbeta(c);
  // One float more than needed: the outputs go at offset 0 (aligned) or 1 (off by 4 bytes).
  DeviceBuffer<float> d_y(s.size() + 1), d_dx(s.size() + 1);

  const char* const names[] = {"forward_train y", "save_mean", "save_invstd", "running_mean",
                               "running_var", "backward_train dx", "backward_train dgamma",
                               "backward_train dbeta", "backward_infer dx",
                               "backward_infer dgamma", "backward_infer dbeta"};
  std::vector<FirstRun> first;
  for (const char* name : names) first.emplace_back(name);
  const auto outputs = [&](std::size_t offset) {
    const auto part = [&](const DeviceBuffer<float>& d) {
      const Vec all = d.download();
      return Vec(all.begin() + std::ptrdiff_t(offset),
                 all.begin() + std::ptrdiff_t(offset + s.size()));
    };
    float* y = d_y.get() + offset;
    float* dx = d_dx.get() + offset;
    std::vector<Vec> out;
    d_running_mean.upload(in.running_mean);
    d_running_var.upload(in.running_var);
    poison(d_y);
    cu::batchnorm_forward_train(s, d_x.get(), d_gamma.get(), d_beta.get(), kEps, kMomentum,
                                d_running_mean.get(), d_running_var.get(), y, d_save_mean.get(),
                                d_save_invstd.get(), relu, nullptr);
    for (const auto* d : {&d_save_mean, &d_save_invstd, &d_running_mean, &d_running_var})
      out.push_back(d->download());
    out.insert(out.begin(), part(d_y));
    for (const bool train : {true, false}) {
      poison(d_dx);
      poison(d_dgamma);
      poison(d_dbeta);
      if (train)
        cu::batchnorm_backward_train(s, d_dy.get(), d_x.get(), relu ? y : nullptr, d_gamma.get(),
                                     d_save_mean.get(), d_save_invstd.get(), dx, d_dgamma.get(),
                                     d_dbeta.get(), relu, nullptr);
      else
        cu::batchnorm_backward_infer(s, d_dy.get(), d_x.get(), relu ? y : nullptr, d_gamma.get(),
                                     d_rm_in.get(), d_rv_in.get(), kEps, dx, d_dgamma.get(),
                                     d_dbeta.get(), relu, nullptr);
      out.push_back(part(d_dx));
      out.push_back(d_dgamma.download());
      out.push_back(d_dbeta.download());
    }
    return out;
  };
  repeat_runs([&] {
    for (const std::size_t offset : {0, 1}) {
      INFO("outputs at offset " << offset);
      const std::vector<Vec> out = outputs(offset);
      for (std::size_t k = 0; k < out.size(); ++k) first[k].check(out[k]);
    }
  });
}

}  // namespace

TEST_CASE("cuda batchnorm: 240x240 and 120x120 planes", "[cuda][batchnorm]") {
  UNET_REQUIRE_GPU();
  check_shape({1, 2, 240 * 240}, true, 11);
  check_shape({2, 2, 120 * 120}, false, 12);
}

TEST_CASE("cuda batchnorm: 60x60, 30x30 and 15x15 planes", "[cuda][batchnorm]") {
  UNET_REQUIRE_GPU();
  check_shape({2, 3, 60 * 60}, true, 21);
  check_shape({1, 4, 30 * 30}, false, 22);   // a plane of 900: not a multiple of the block
  check_shape({2, 5, 15 * 15}, true, 23);    // planes smaller than the block
  check_shape({2, 3, 15 * 15}, false, 24);
}

TEST_CASE("cuda batchnorm: odd and tiny planes", "[cuda][batchnorm]") {
  UNET_REQUIRE_GPU();
  check_shape({2, 3, 7 * 5}, true, 31);
  check_shape({2, 3, 7 * 5}, false, 32);
  check_shape({2, 3, 1}, true, 33);     // 1x1 planes: two values per channel
  check_shape({7, 2, 97}, false, 34);   // 679 values: the block wraps across planes
}

TEST_CASE("cuda batchnorm: inference with the fused ReLU cuts negative outputs",
          "[cuda][batchnorm]") {
  UNET_REQUIRE_GPU();
  check_infer_relu({2, 3, 15 * 15}, 41);
  check_infer_relu({3, 4, 7 * 5}, 42);
  check_infer_relu({2, 2, 60 * 60}, 43);
}

TEST_CASE("cuda batchnorm: inference planes past the grid cap, with the fused ReLU",
          "[cuda][batchnorm]") {
  UNET_REQUIRE_GPU();
  // The inference forward grid-strides along a plane over at most 1024 x 256 = 262144 threads
  // (kernels/cuda/batchnorm.cu): a 513x513 plane (263169 values) takes a second iteration.
  check_infer_relu({1, 2, 513 * 513}, 51);
}

TEST_CASE("cuda batchnorm: training needs two values per channel", "[cuda][batchnorm]") {
  UNET_REQUIRE_GPU();
  const BatchNormShape s{1, 2, 1};
  DeviceBuffer<float> d(4);
  REQUIRE_THROWS_AS(cu::batchnorm_forward_train(s, d.get(), d.get(), d.get(), kEps, kMomentum,
                                                d.get(), d.get(), d.get(), d.get(), d.get(), false,
                                                nullptr),
                    std::invalid_argument);
}

// Several blocks per channel (kernels/cuda/batchnorm.cu): B = min(ceil(512 / C), N * HW / 4096),
// each block a slice of [N * HW * b / B, N * HW * (b + 1) / B).
TEST_CASE("cuda batchnorm: several blocks per channel, slices of unequal lengths",
          "[cuda][batchnorm]") {
  UNET_REQUIRE_GPU();
  check_shape({3, 2, 7001}, true, 61);    // B = 5: slices of 4200 and 4201 across planes
  check_shape({3, 3, 3001}, false, 62);   // B = 2: 4501 and 4502
  check_shape({41, 2, 225}, true, 63);    // B = 2 of 4612 and 4613: 15x15 planes, 21 a slice
  check_shape({1, 3, 16411}, false, 64);  // B = 4: one plane, cut inside it
  check_infer_relu({3, 2, 7001}, 65);     // inference backward over B = 5, the ReLU cutting
}

TEST_CASE("cuda batchnorm: more slices per channel than a warp has lanes",
          "[cuda][batchnorm]") {
  UNET_REQUIRE_GPU();
  // B = min(256, 150002 / 4096) = 36: the merge's lanes 0-3 fold two partials each.
  check_shape({2, 2, 75001}, true, 71);
}

TEST_CASE("cuda batchnorm: several blocks per channel are bitwise reproducible",
          "[cuda][batchnorm]") {
  UNET_REQUIRE_GPU();
  check_reproducible({3, 2, 7001}, true, 81);   // B = 5
  check_reproducible({2, 3, 6007}, false, 82);  // B = 2
}
