// The direct stride-1 convolutions (kernels/cpu/conv_direct.h), forward and backward-data, for
// both instruction sets, against the double-precision direct loops of tests/support; plus bitwise
// thread-count independence. Shapes cover row tails (widths around the vector lengths 8 and 16),
// tiles whose vectors span several rows, remainder channel blocks, asymmetric and 'valid' padding.
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
using unet::test::naive_backward;
using unet::test::naive_forward;
using unet::test::random_vector;
using unet::test::require_close;
using unet::test::require_near;
using unet::test::to_float;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

struct Kernels {
  Isa isa;
  void (*forward)(const Conv2dShape&, const float*, const float*, const float*, float*);
  void (*backward_data)(const Conv2dShape&, const float*, const float*, float*);
};

const Kernels kAvx2{Isa::Avx2, unet::cpu::direct::conv2d_forward_avx2,
                    unet::cpu::direct::conv2d_backward_data_avx2};
const Kernels kAvx512{Isa::Avx512, unet::cpu::direct::conv2d_forward_avx512,
                      unet::cpu::direct::conv2d_backward_data_avx512};

std::vector<Kernels> available_kernels() { return unet::test::runnable({kAvx2, kAvx512}); }


// Forward with and without bias, and backward-data, for every available instruction set; the
// double-precision references are computed once.
void check_both(const Conv2dShape& s, uint32_t seed) {
  INFO(describe(s));
  const auto x = random_vector(s.x_size(), seed);
  const auto w = random_vector(s.w_size(), seed + 1);
  const auto b = random_vector(std::size_t(s.c_out), seed + 2);
  const auto dy = random_vector(s.y_size(), seed + 3);
  const auto y_bias = naive_forward(s, x, w, b);
  auto y_plain = y_bias;  // the same sums without the bias (spares a second reference pass)
  for (std::size_t e = 0; e < y_plain.size(); ++e) {
    y_plain[e] -= b[e / (std::size_t(s.h_out) * s.w_out) % s.c_out];
  }
  const auto dx_ref = naive_backward(s, x, w, dy).dx;
  const auto xf = to_float(x), wf = to_float(w), bf = to_float(b), dyf = to_float(dy);
  for (const Kernels& k : available_kernels()) {
    INFO(unet::cpu::to_string(k.isa));
    std::vector<float> y(s.y_size(), kNaN);  // NaN exposes any element left unwritten
    k.forward(s, xf.data(), wf.data(), bf.data(), y.data());
    require_near(y, y_bias, "y with bias");
    y.assign(s.y_size(), kNaN);
    k.forward(s, xf.data(), wf.data(), nullptr, y.data());
    require_near(y, y_plain, "y without bias");
    std::vector<float> dx(s.x_size(), kNaN);
    k.backward_data(s, dyf.data(), wf.data(), dx.data());
    require_near(dx, dx_ref, "dx");
  }
}

}  // namespace

TEST_CASE("direct conv: small odd shapes", "[conv_direct]") {
  check_both(conv2d_shape(2, 3, 7, 5, 5, 3, 1, Padding::Same), 1);
  check_both(conv2d_shape(1, 4, 6, 9, 3, 1, 1, Padding::Same), 2);   // 1x1
  check_both(conv2d_shape(2, 3, 8, 11, 6, 3, 1, Padding::Valid), 3);  // no padding, 6 x 9 out
  // Even kernel, 'same': Keras pads 0 before and 1 after.
  check_both(conv2d_shape(1, 2, 6, 7, 3, 2, 1, Padding::Same), 4);
  check_both(conv2d_shape(1, 3, 9, 8, 4, 5, 1, Padding::Same), 5);  // generic kernel size
  check_both(conv2d_shape(1, 2, 5, 6, 2, 5, 1, Padding::Valid), 6);
}

TEST_CASE("direct conv: widths around the vector lengths", "[conv_direct]") {
  uint32_t seed = 100;
  for (int width : {1, 2, 7, 8, 9, 15, 16, 17, 31, 33})
    for (int c_out : {1, 5, 9, 17}) {
      check_both(conv2d_shape(1, 3, 4, width, c_out, 3, 1, Padding::Same), seed);
      seed += 10;
    }
}

TEST_CASE("direct conv: explicit asymmetric shapes", "[conv_direct]") {
  // Output rows below the input, unused input columns, kh != kw, more padding than kernel.
  check_both(Conv2dShape{2, 3, 9, 8, 4, 3, 2, 1, 3, 0, 11, 5}, 200);
  // 1x1 whose output is not the input's size: cropped, then grown.
  check_both(Conv2dShape{2, 3, 5, 6, 2, 1, 1, 1, 0, 0, 4, 3}, 210);
  check_both(Conv2dShape{1, 2, 3, 3, 2, 1, 1, 1, 0, 0, 5, 4}, 220);
}

TEST_CASE("direct conv: reference-model shapes at batch 1", "[conv_direct]") {
  check_both(conv2d_shape(1, 16, 240, 240, 16, 3, 1, Padding::Same), 300);
  check_both(conv2d_shape(1, 256, 15, 15, 256, 3, 1, Padding::Same), 310);
  check_both(conv2d_shape(1, 64, 30, 30, 128, 3, 1, Padding::Same), 320);
  check_both(conv2d_shape(1, 16, 240, 240, 1, 1, 1, Padding::Same), 330);  // the head
}

TEST_CASE("direct conv: results are bitwise identical for 1 and 2 threads", "[conv_direct]") {
  const auto s = conv2d_shape(3, 16, 30, 30, 24, 3, 1, Padding::Same);
  const auto x = random_vector<float>(s.x_size(), 400);
  const auto w = random_vector<float>(s.w_size(), 401);
  const auto b = random_vector<float>(std::size_t(s.c_out), 402);
  const auto dy = random_vector<float>(s.y_size(), 403);
  const auto same_bits = [](const std::vector<float>& a, const std::vector<float>& c) {
    return a.size() == c.size() && std::memcmp(a.data(), c.data(), a.size() * sizeof(float)) == 0;
  };
  const int saved = omp_get_max_threads();
  for (const Kernels& k : available_kernels()) {
    INFO(unet::cpu::to_string(k.isa));
    std::vector<float> y[2], dx[2];
    for (int threads : {1, 2}) {
      omp_set_num_threads(threads);
      auto& yt = y[threads - 1];
      auto& dxt = dx[threads - 1];
      yt.assign(s.y_size(), kNaN);
      dxt.assign(s.x_size(), kNaN);
      k.forward(s, x.data(), w.data(), b.data(), yt.data());
      k.backward_data(s, dy.data(), w.data(), dxt.data());
    }
    CHECK(same_bits(y[0], y[1]));
    CHECK(same_bits(dx[0], dx[1]));
  }
  omp_set_num_threads(saved);
}
