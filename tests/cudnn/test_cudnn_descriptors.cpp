// cuDNN's descriptor and shape logic needs no GPU, so CI checks it: for every convolution of the
// reference model, cuDNN's output shape equals ours, and shapes cuDNN cannot express are routed
// to the handwritten kernels; likewise for the convolutions that transposed convolutions run as.
#include <catch2/catch.hpp>

#include "engine/backends/cudnn_conv.h"
#include "engine/backends/cudnn_conv_transpose.h"

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

TEST_CASE("transposed convolutions map onto cuDNN convolutions of the right shape", "[cudnn]") {
  // The reference U-Net's up-convolutions (3x3, stride 2, 'same': 0 padding before, 1 after).
  const int levels[][3] = {{256, 128, 15}, {128, 64, 30}, {64, 32, 60}, {32, 16, 120}};
  for (const auto& [c_in, c_out, size] : levels) {
    const auto t = kernels::conv_transpose2d_shape(6, c_in, size, size, c_out, 3, 2, Padding::Same);
    INFO("c_in " << c_in << " c_out " << c_out << " size " << size);
    REQUIRE(cuda::CudnnConvTranspose::supports(t));
    const auto c = cuda::conv_of_transpose(t);
    // One row and column more than y: the taps that fall off the 'same' output land there.
    CHECK(c.h_in == t.h_out + 1);
    CHECK(c.w_in == t.w_out + 1);
    CHECK(c.c_in == c_out);
    CHECK(c.c_out == c_in);
    CHECK(cuda::CudnnConvDescriptors(c).output_dims() == std::array<int, 4>{6, c_in, size, size});
  }
  // 'valid' pads nothing: the convolution's image is y itself.
  const auto valid = kernels::conv_transpose2d_shape(2, 8, 7, 9, 4, 3, 2, Padding::Valid);
  REQUIRE(cuda::CudnnConvTranspose::supports(valid));
  CHECK(cuda::conv_of_transpose(valid).h_in == valid.h_out);
  CHECK(cuda::conv_of_transpose(valid).w_in == valid.w_out);
  CHECK(cuda::CudnnConvDescriptors(cuda::conv_of_transpose(valid)).output_dims() == std::array<int, 4>{2, 8, 7, 9});
}

TEST_CASE("a transposed convolution padded more before than after is left to the handwritten kernels", "[cudnn]") {
  auto t = kernels::conv_transpose2d_shape(2, 8, 10, 10, 4, 3, 2, Padding::Valid);  // 21 x 21
  t.pad_top = t.pad_left = 1;  // 1 before, 0 after: 20 x 20 would need an image smaller than y
  t.h_out = t.w_out = 20;
  CHECK_FALSE(cuda::CudnnConvTranspose::supports(t));
}
