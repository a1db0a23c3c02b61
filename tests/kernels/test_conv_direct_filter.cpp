// The direct stride-1 backward-filter (kernels/cpu/conv_direct_filter.h), for both instruction
// sets, against a double-precision sum over the products of the convolution's definition; plus
// bitwise thread-count independence. Shapes cover row tails (widths around the vector lengths 8
// and 16), remainder register tiles in output channels and taps, several channel blocks, images
// cut into bands and chunks of several images, asymmetric and 'valid' padding.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "kernels/cpu/conv_direct.h"
#include "kernels/cpu/isa.h"
#include "tests/support/conv_reference.h"
#include "tests/support/isa_kernels.h"
#include "tests/support/gradcheck.h"

namespace {

using unet::cpu::Isa;
using unet::cpu::direct::Conv2dShape;
using unet::kernels::Padding;
using unet::kernels::conv2d_shape;
using unet::test::describe;
using unet::test::for_each_product;
using unet::test::random_vector;
using unet::test::require_close;
using unet::test::require_near;
using unet::test::to_float;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

using BackwardFilter = void (*)(const Conv2dShape&, const float*, const float*, float*, float*);

struct Kernel {
  Isa isa;
  BackwardFilter backward_filter;
};

std::vector<Kernel> available_kernels() {
  return unet::test::runnable({Kernel{Isa::Avx2, unet::cpu::direct::conv2d_backward_filter_avx2},
                               Kernel{Isa::Avx512, unet::cpu::direct::conv2d_backward_filter_avx512}});
}

struct FilterGrads {
  std::vector<double> dw, dbias;
};

// dw only (naive_backward would also compute dx, doubling the time on the large shapes).
FilterGrads reference(const Conv2dShape& s, const std::vector<double>& x,
                      const std::vector<double>& dy) {
  FilterGrads g{std::vector<double>(s.w_size(), 0.0),
                std::vector<double>(std::size_t(s.c_out), 0.0)};
  for_each_product(s, [&](std::size_t xi, std::size_t wi, std::size_t yi) {
    g.dw[wi] += dy[yi] * x[xi];
  });
  const std::size_t out_plane = std::size_t(s.h_out) * s.w_out;
  for (std::size_t e = 0; e < dy.size(); ++e) g.dbias[e / out_plane % s.c_out] += dy[e];
  return g;
}

// dw and dbias for every available instruction set, and dw alone (dbias null) bit for bit the
// same; outputs start as NaN so that an element left unwritten fails.
void check(const Conv2dShape& s, uint32_t seed) {
  INFO(describe(s));
  const auto x = random_vector(s.x_size(), seed);
  const auto dy = random_vector(s.y_size(), seed + 1);
  const FilterGrads expected = reference(s, x, dy);
  const auto xf = to_float(x), dyf = to_float(dy);
  for (const Kernel& k : available_kernels()) {
    INFO(unet::cpu::to_string(k.isa));
    std::vector<float> dw(s.w_size(), kNaN), dbias(std::size_t(s.c_out), kNaN);
    k.backward_filter(s, xf.data(), dyf.data(), dw.data(), dbias.data());
    require_near(dw, expected.dw, "dw");
    require_near(dbias, expected.dbias, "dbias");
    std::vector<float> dw_alone(s.w_size(), kNaN);
    k.backward_filter(s, xf.data(), dyf.data(), dw_alone.data(), nullptr);
    CHECK(std::memcmp(dw_alone.data(), dw.data(), dw.size() * sizeof(float)) == 0);
  }
}

}  // namespace

TEST_CASE("direct backward-filter: small odd shapes", "[conv_direct_filter]") {
  check(conv2d_shape(2, 3, 7, 5, 5, 3, 1, Padding::Same), 1);
  check(conv2d_shape(2, 4, 6, 9, 3, 1, 1, Padding::Same), 2);    // 1x1
  check(conv2d_shape(2, 3, 8, 11, 6, 3, 1, Padding::Valid), 3);  // no padding, 6 x 9 out
  // Even kernel, 'same': Keras pads 0 before and 1 after.
  check(conv2d_shape(2, 3, 6, 7, 5, 2, 1, Padding::Same), 4);
  check(conv2d_shape(1, 3, 9, 8, 4, 5, 1, Padding::Same), 5);  // generic kernel size
  check(conv2d_shape(2, 2, 5, 6, 2, 5, 1, Padding::Valid), 6);
}

TEST_CASE("direct backward-filter: widths around the vector lengths", "[conv_direct_filter]") {
  uint32_t seed = 100;
  for (int width : {1, 2, 7, 8, 9, 15, 16, 17, 31, 33})
    for (int c_out : {1, 5, 9}) {
      check(conv2d_shape(2, 3, 4, width, c_out, 3, 1, Padding::Same), seed);
      seed += 10;
    }
}

TEST_CASE("direct backward-filter: explicit asymmetric shapes", "[conv_direct_filter]") {
  // Output rows below the input, unused input columns, kh != kw, more padding than kernel.
  check(Conv2dShape{2, 3, 9, 8, 4, 3, 2, 1, 3, 0, 11, 5}, 200);
  // 1x1 whose output is not the input's size: cropped, then grown past the input.
  check(Conv2dShape{2, 3, 5, 6, 2, 1, 1, 1, 0, 0, 4, 3}, 210);
  check(Conv2dShape{1, 2, 3, 3, 2, 1, 1, 1, 0, 0, 5, 4}, 220);
  // Left padding wider than the kernel reaches: padded rows hold columns that no tap reads.
  check(Conv2dShape{1, 2, 4, 3, 3, 1, 1, 1, 1, 3, 6, 8}, 230);
}

TEST_CASE("direct backward-filter: channel blocks with remainders", "[conv_direct_filter]") {
  // More channels than one block, in both directions, and counts that leave partial tiles.
  check(conv2d_shape(2, 37, 6, 7, 41, 3, 1, Padding::Same), 300);
  check(conv2d_shape(3, 70, 5, 5, 9, 1, 1, Padding::Same), 310);
  // Small images: chunks of several images (one chunk; then several, the last one partial).
  check(conv2d_shape(7, 20, 9, 10, 12, 3, 1, Padding::Same), 320);
  check(conv2d_shape(5, 32, 40, 40, 32, 3, 1, Padding::Same), 330);
}

TEST_CASE("direct backward-filter: reference-model shapes at batch 1", "[conv_direct_filter]") {
  check(conv2d_shape(1, 16, 240, 240, 16, 3, 1, Padding::Same), 400);  // images cut into bands
  check(conv2d_shape(1, 256, 15, 15, 256, 3, 1, Padding::Same), 410);   // many channel blocks
  check(conv2d_shape(1, 16, 240, 240, 1, 1, 1, Padding::Same), 420);    // the 1x1 head
}

TEST_CASE("direct backward-filter: bitwise identical for any thread count",
          "[conv_direct_filter]") {
  const auto same_bits = [](const std::vector<float>& a, const std::vector<float>& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
  };
  const int saved = omp_get_max_threads();
  for (const Kernel& k : available_kernels()) {
    INFO(unet::cpu::to_string(k.isa));
    // Private chunks: bands of one large image; shared blocks: bands over six chunks (the two
    // scratch copies alternate), and several small images per chunk.
    for (const Conv2dShape& s : {conv2d_shape(2, 16, 240, 240, 16, 3, 1, Padding::Same),
                                 conv2d_shape(3, 32, 100, 100, 16, 3, 1, Padding::Same),
                                 conv2d_shape(5, 64, 15, 15, 96, 3, 1, Padding::Same)}) {
      INFO(describe(s));
      const auto x = random_vector<float>(s.x_size(), 500);
      const auto dy = random_vector<float>(s.y_size(), 501);
      const auto run = [&](int threads) {
        omp_set_num_threads(threads);
        std::vector<float> out(s.w_size() + std::size_t(s.c_out), kNaN);  // dw, then dbias
        k.backward_filter(s, x.data(), dy.data(), out.data(), out.data() + s.w_size());
        return out;
      };
      const std::vector<float> one = run(1), two = run(2), three = run(3);
      CHECK(same_bits(one, two));
      CHECK(same_bits(one, three));
    }
  }
  omp_set_num_threads(saved);
}
