// The Auto rule of the CUDA backend (engine/backends/conv_choice.h) on the reference model's
// layers: each pass goes where the H200 timings of docs/BENCHMARKS.md put it.
#include <catch2/catch.hpp>

#include "engine/backends/conv_choice.h"

using namespace unet;
using kernels::Padding;

namespace {

kernels::Conv2dShape layer(int c_in, int c_out, int size, int k = 3) {
  return kernels::conv2d_shape(6, c_in, size, size, c_out, k, 1, Padding::Same);
}

}  // namespace

TEST_CASE("Auto sends the wide layers to cuDNN and the narrow ones to our kernels", "[backend][conv_choice]") {
  // Forward: ours up to 64 input channels (0.62-0.94x cuDNN's time), cuDNN from 128.
  CHECK_FALSE(cudnn_is_faster(layer(3, 16, 240), ConvPass::Forward));
  CHECK_FALSE(cudnn_is_faster(layer(64, 128, 30), ConvPass::Forward));
  CHECK_FALSE(cudnn_is_faster(layer(16, 1, 240, 1), ConvPass::Forward));
  CHECK(cudnn_is_faster(layer(128, 256, 15), ConvPass::Forward));
  CHECK(cudnn_is_faster(layer(256, 128, 30), ConvPass::Forward));
  // Backward-data: ours while dx has at most 16 channels.
  CHECK_FALSE(cudnn_is_faster(layer(16, 16, 240), ConvPass::BackwardData));
  CHECK_FALSE(cudnn_is_faster(layer(16, 1, 240, 1), ConvPass::BackwardData));
  CHECK(cudnn_is_faster(layer(32, 16, 240), ConvPass::BackwardData));
  CHECK(cudnn_is_faster(layer(256, 256, 15), ConvPass::BackwardData));
  // Backward-filter: ours up to c_in x c_out = 1024 (the 1x1 head: 0.1 ms against 1.9 ms).
  CHECK_FALSE(cudnn_is_faster(layer(16, 1, 240, 1), ConvPass::BackwardFilter));
  CHECK_FALSE(cudnn_is_faster(layer(32, 16, 240), ConvPass::BackwardFilter));
  CHECK_FALSE(cudnn_is_faster(layer(32, 32, 120), ConvPass::BackwardFilter));
  CHECK(cudnn_is_faster(layer(64, 32, 120), ConvPass::BackwardFilter));
  CHECK(cudnn_is_faster(layer(128, 64, 60), ConvPass::BackwardFilter));
}
