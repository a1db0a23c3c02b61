// The fused polyphase transposed convolutions (kernels/cpu/conv_transpose_fused.h), all three
// directions on both instruction sets, against the double-precision scatter loops of
// tests/support (written from the definition, not via conv2d); plus bitwise thread-count
// independence. They compute 3x3 stride-2 'same' only; the shapes cover the edges of their
// tiles: one pixel, widths just under, at and over a vector of 8 and 16 lanes and two of them,
// channel counts that leave partial register blocks (forward 4 / 3 output channels, backward-data
// 16 / 8 input channels, backward-filter blocks of 16 x 8), several chunks and bands.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "kernels/cpu/conv_transpose_fused.h"
#include "kernels/cpu/isa.h"
#include "tests/support/conv_reference.h"
#include "tests/support/isa_kernels.h"
#include "tests/support/gradcheck.h"

namespace {

using unet::cpu::Isa;
using unet::cpu::fused::ConvTranspose2dShape;
using unet::kernels::conv_transpose2d_shape;
using unet::kernels::Padding;
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
  void (*forward)(const ConvTranspose2dShape&, const float*, const float*, const float*, float*);
  void (*backward_data)(const ConvTranspose2dShape&, const float*, const float*, float*);
  void (*backward_filter)(const ConvTranspose2dShape&, const float*, const float*, float*, float*);
};

const Kernels kAvx2{Isa::Avx2, unet::cpu::fused::conv_transpose2d_forward_avx2,
                    unet::cpu::fused::conv_transpose2d_backward_data_avx2,
                    unet::cpu::fused::conv_transpose2d_backward_filter_avx2};
const Kernels kAvx512{Isa::Avx512, unet::cpu::fused::conv_transpose2d_forward_avx512,
                      unet::cpu::fused::conv_transpose2d_backward_data_avx512,
                      unet::cpu::fused::conv_transpose2d_backward_filter_avx512};

std::vector<Kernels> available_kernels() { return unet::test::runnable({kAvx2, kAvx512}); }


// dbias: the sum of dy over images and pixels, per output channel.
std::vector<double> bias_grad(const ConvTranspose2dShape& s, const std::vector<double>& dy) {
  std::vector<double> db(std::size_t(s.c_out), 0.0);
  const std::size_t plane = std::size_t(s.h_out) * s.w_out;
  for (std::size_t e = 0; e < dy.size(); ++e) db[e / plane % std::size_t(s.c_out)] += dy[e];
  return db;
}

// Every direction, with and without bias / dbias, for every available instruction set; outputs
// start as NaN, so an element left unwritten fails.
void check_all(const ConvTranspose2dShape& s, uint32_t seed) {
  INFO(describe(s));
  REQUIRE(unet::cpu::fused::supports(s));
  const auto x = random_vector(s.x_size(), seed);
  const auto w = random_vector(s.w_size(), seed + 1);
  const auto b = random_vector(std::size_t(s.c_out), seed + 2);
  const auto dy = random_vector(s.y_size(), seed + 3);
  const auto y_bias = naive_forward(s, x, w, b);
  const auto y_plain = naive_forward(s, x, w, {});
  const auto grads = naive_backward(s, x, w, dy);
  const auto db = bias_grad(s, dy);
  const auto xf = to_float(x), wf = to_float(w), bf = to_float(b), dyf = to_float(dy);
  for (const Kernels& k : available_kernels()) {
    INFO(unet::cpu::to_string(k.isa));
    std::vector<float> y(s.y_size(), kNaN);
    k.forward(s, xf.data(), wf.data(), bf.data(), y.data());
    require_near(y, y_bias, "y with bias", 1.0);
    y.assign(s.y_size(), kNaN);
    k.forward(s, xf.data(), wf.data(), nullptr, y.data());
    require_near(y, y_plain, "y without bias", 1.0);
    std::vector<float> dx(s.x_size(), kNaN);
    k.backward_data(s, dyf.data(), wf.data(), dx.data());
    require_near(dx, grads.dx, "dx", 1.0);
    std::vector<float> dw(s.w_size(), kNaN), dbias(std::size_t(s.c_out), kNaN);
    k.backward_filter(s, xf.data(), dyf.data(), dw.data(), dbias.data());
    require_near(dw, grads.dw, "dw", 1.0);
    require_near(dbias, db, "dbias", 1.0);
    dw.assign(s.w_size(), kNaN);
    k.backward_filter(s, xf.data(), dyf.data(), dw.data(), nullptr);
    require_near(dw, grads.dw, "dw without dbias", 1.0);
  }
}

}  // namespace

TEST_CASE("fused conv_transpose: 3x3 stride 2 'same', odd sizes and tile edges", "[conv_transpose_fused]") {
  check_all(conv_transpose2d_shape(2, 3, 5, 7, 4, 3, 2, Padding::Same), 1);
  check_all(conv_transpose2d_shape(1, 5, 4, 4, 3, 3, 2, Padding::Same), 2);
  check_all(conv_transpose2d_shape(1, 1, 1, 1, 1, 3, 2, Padding::Same), 3);  // one pixel
  check_all(conv_transpose2d_shape(2, 9, 15, 15, 17, 3, 2, Padding::Same), 4);
  uint32_t seed = 100;
  for (int w : {7, 8, 9, 16, 17, 31, 33})
    for (int c : {1, 5, 19}) {
      check_all(conv_transpose2d_shape(2, c, 3 + c % 4, w, 21 - c, 3, 2, Padding::Same), seed);
      seed += 10;
    }
  check_all(conv_transpose2d_shape(3, 20, 40, 37, 11, 3, 2, Padding::Same), 200);  // several chunks
  // Several bands of scratch rows: forward (64 input channels), backward-data (64 output channels).
  check_all(conv_transpose2d_shape(1, 64, 40, 60, 5, 3, 2, Padding::Same), 210);
  check_all(conv_transpose2d_shape(1, 5, 40, 60, 64, 3, 2, Padding::Same), 220);
}

TEST_CASE("fused conv_transpose: shapes other than 3x3 stride 2 'same' are not handled", "[conv_transpose_fused]") {
  CHECK_FALSE(unet::cpu::fused::supports(conv_transpose2d_shape(1, 2, 5, 5, 2, 3, 2, Padding::Valid)));
  CHECK_FALSE(unet::cpu::fused::supports(conv_transpose2d_shape(1, 2, 5, 5, 2, 2, 2, Padding::Same)));
  CHECK_FALSE(unet::cpu::fused::supports(conv_transpose2d_shape(1, 2, 5, 5, 2, 3, 1, Padding::Same)));
  CHECK_FALSE(unet::cpu::fused::supports(ConvTranspose2dShape{1, 2, 5, 5, 2, 3, 3, 2, 1, 1, 10, 10}));
}

TEST_CASE("fused conv_transpose: results are bitwise identical for 1 and 2 threads", "[conv_transpose_fused]") {
  const auto same_bits = [](const std::vector<float>& a, const std::vector<float>& c) {
    return a.size() == c.size() && std::memcmp(a.data(), c.data(), a.size() * sizeof(float)) == 0;
  };
  const int saved = omp_get_max_threads();
  // The weight gradient's two ways to share work: private chunks (few blocks of dw: the first two
  // shapes), and blocks of dw shared chunk after chunk (2 x 4 blocks: the third).
  for (const auto& s : {conv_transpose2d_shape(3, 16, 15, 15, 24, 3, 2, Padding::Same),
                        conv_transpose2d_shape(2, 5, 40, 37, 6, 3, 2, Padding::Same),
                        conv_transpose2d_shape(2, 24, 40, 37, 32, 3, 2, Padding::Same)}) {
    INFO(describe(s));
    const auto x = random_vector<float>(s.x_size(), 400);
    const auto w = random_vector<float>(s.w_size(), 401);
    const auto b = random_vector<float>(std::size_t(s.c_out), 402);
    const auto dy = random_vector<float>(s.y_size(), 403);
    for (const Kernels& k : available_kernels()) {
      INFO(unet::cpu::to_string(k.isa));
      std::vector<float> y[2], dx[2], dw[2], db[2];
      for (int t = 0; t < 2; ++t) {
        omp_set_num_threads(t + 1);
        y[t].resize(s.y_size());
        dx[t].resize(s.x_size());
        dw[t].resize(s.w_size());
        db[t].resize(std::size_t(s.c_out));
        k.forward(s, x.data(), w.data(), b.data(), y[t].data());
        k.backward_data(s, dy.data(), w.data(), dx[t].data());
        k.backward_filter(s, x.data(), dy.data(), dw[t].data(), db[t].data());
      }
      omp_set_num_threads(saved);
      CHECK(same_bits(y[0], y[1]));
      CHECK(same_bits(dx[0], dx[1]));
      CHECK(same_bits(dw[0], dw[1]));
      CHECK(same_bits(db[0], db[1]));
    }
  }
}
