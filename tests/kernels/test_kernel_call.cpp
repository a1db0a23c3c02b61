// The work each kernel call is credited with (kernels/kernel_call.h), worked out by hand.
#include <catch2/catch.hpp>

#include "kernels/kernel_call.h"

using namespace unet::kernels;

TEST_CASE("cost of a 'same' 3x3 convolution: 2 FLOPs per multiply-add plus the bias, operands once", "[cost]") {
  KernelCall c;
  c.kernel = Kernel::conv2d_forward;
  c.conv = conv2d_shape(1, 2, 5, 5, 3, 3, 1, Padding::Same);
  c.has_bias = true;
  // 1 image x 3 outputs x 25 pixels x 2 inputs x 9 taps = 1350 multiply-adds; 75 bias adds.
  CHECK(cost(c).flops == 2 * 1350 + 75);
  // x 50, w 54, y 75, bias 3 floats.
  CHECK(cost(c).bytes == 4 * (50 + 54 + 75 + 3));
  CHECK(describe(c) == "1x2x5x5 -> 1x3x5x5 k3 s1 +bias");

  c.kernel = Kernel::conv2d_backward_data;  // reads dy and w, writes dx: no bias
  CHECK(cost(c).flops == 2 * 1350);
  CHECK(cost(c).bytes == 4 * (75 + 54 + 50));
}

TEST_CASE("cost of a stride-2 transposed convolution: every input pixel scatters its kernel", "[cost]") {
  KernelCall c;
  c.kernel = Kernel::conv_transpose2d_forward;
  c.conv_t = conv_transpose2d_shape(2, 4, 3, 3, 2, 3, 2, Padding::Same);
  c.has_bias = false;
  // 2 images x 4 inputs x 9 pixels x 2 outputs x 9 taps = 1296 multiply-adds.
  CHECK(cost(c).flops == 2 * 1296);
  // x 72, w 72, y 2x2x6x6 = 144 floats.
  CHECK(cost(c).bytes == 4 * (72 + 72 + 144));
  CHECK(describe(c) == "2x4x3x3 -> 2x2x6x6 k3 s2");
}

TEST_CASE("cost of memory-bound kernels: bytes per element as stated", "[cost]") {
  KernelCall bn;
  bn.kernel = Kernel::batchnorm_forward_train;
  bn.bn = {2, 3, 10};
  bn.relu = true;
  CHECK(cost(bn).flops == 60 * 6);              // statistics 3, normalise 2, ReLU 1
  CHECK(cost(bn).bytes == 4 * (2 * 60 + 8 * 3));  // x in, y out; 8 per-channel values

  KernelCall pool;
  pool.kernel = Kernel::maxpool2x2_forward;
  pool.pool = {1, 2, 4, 4};
  CHECK(cost(pool).flops == 3 * 8);
  CHECK(cost(pool).bytes == 4 * (32 + 8) + 8);  // plus one argmax byte per output

  KernelCall adam;
  adam.kernel = Kernel::adam_update;
  adam.tensors = {10, 20};
  CHECK(cost(adam).flops == 14 * 30);
  CHECK(cost(adam).bytes == 28 * 30);  // p, g, m, v read; p, m, v written
  CHECK(describe(adam) == "2 tensors, 30 elements");

  KernelCall loss;
  loss.kernel = Kernel::loss_backward;
  loss.loss = LossKind::Dice;
  loss.count = 100;
  CHECK(cost(loss).bytes == 4 * 3 * 100);
  CHECK(describe(loss) == "dice 100");
}

TEST_CASE("every kernel has its own name", "[cost]") {
  for (int i = 0; i < kKernelCount; ++i) {
    for (int j = 0; j < i; ++j) CHECK(std::string(name(Kernel(i))) != name(Kernel(j)));
    CHECK(std::string(name(Kernel(i))) != "unknown");
  }
}
