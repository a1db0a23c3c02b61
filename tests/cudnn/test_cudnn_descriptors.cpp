// cuDNN's descriptor and shape logic needs no GPU, so CI checks it: for every convolution of the
// reference model, cuDNN's output shape equals ours, and shapes cuDNN cannot express are routed
// to the handwritten kernels.
#include <catch2/catch.hpp>

#include "engine/backends/cudnn_conv.h"

using namespace unet;
using kernels::Padding;

TEST_CASE("cuDNN descriptors reproduce our convolution shapes", "[cudnn]") {
  // The reference U-Net's 3x3 'same' convolutions at every level, plus the 1x1 head.
  const int levels[][3] = {{3, 16, 240}, {16, 16, 240}, {16, 32, 120}, {32, 64, 60}, {64, 128, 30},
                           {128, 256, 15}, {256, 128, 30}, {32, 16, 240}};
  for (const auto& [c_in, c_out, size] : levels) {
    const auto s = kernels::conv2d_shape(6, c_in, size, size, c_out, 3, 1, Padding::Same);
    INFO("c_in " << c_in << " c_out " << c_out << " size " << size);
    REQUIRE(cuda::CudnnConv::supports(s));
    const cuda::CudnnConvDescriptors d(s);
    CHECK(d.output_dims() == std::array<int, 4>{6, c_out, size, size});
  }
  const auto head = kernels::conv2d_shape(6, 16, 240, 240, 1, 1, 1, Padding::Same);
  CHECK(cuda::CudnnConv::supports(head));
  CHECK(cuda::CudnnConvDescriptors(head).output_dims() == std::array<int, 4>{6, 1, 240, 240});
}

TEST_CASE("asymmetric 'same' padding is left to the handwritten kernels", "[cudnn]") {
  // Stride 2 'same' on an even input pads 0 before and 1 after: cuDNN pads symmetrically.
  const auto s = kernels::conv2d_shape(2, 8, 240, 240, 8, 3, 2, Padding::Same);
  CHECK(s.pad_top == 0);
  CHECK_FALSE(cuda::CudnnConv::supports(s));
  CHECK(cuda::CudnnConv::supports(kernels::conv2d_shape(2, 8, 31, 31, 8, 3, 2, Padding::Valid)));
}
