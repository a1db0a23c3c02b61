// Direct loops written from the definitions of conv2d and conv_transpose2d (kernels/shapes.h), in
// double: the references the CPU kernel tests compare against, and the shape descriptions that
// the CPU and CUDA convolution tests print on failure.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "kernels/shapes.h"

namespace unet::test {

using kernels::Conv2dShape;
using kernels::ConvTranspose2dShape;

template <typename Shape>
std::string describe(const Shape& s) {
  return "n" + std::to_string(s.n) + " c_in" + std::to_string(s.c_in) + " " + std::to_string(s.h_in) + "x" +
         std::to_string(s.w_in) + " c_out" + std::to_string(s.c_out) + " k" + std::to_string(s.kh) + "x" +
         std::to_string(s.kw) + " s" + std::to_string(s.stride) + " pad" + std::to_string(s.pad_top) + "," +
         std::to_string(s.pad_left) + " out" + std::to_string(s.h_out) + "x" + std::to_string(s.w_out);
}

// Visits every (input element, weight element, output element) triple the convolution multiplies.
template <typename F>
void for_each_product(const Conv2dShape& s, F f) {
  for (int n = 0; n < s.n; ++n)
    for (int co = 0; co < s.c_out; ++co)
      for (int oh = 0; oh < s.h_out; ++oh)
        for (int ow = 0; ow < s.w_out; ++ow)
          for (int ci = 0; ci < s.c_in; ++ci)
            for (int i = 0; i < s.kh; ++i)
              for (int j = 0; j < s.kw; ++j) {
                const int ih = oh * s.stride - s.pad_top + i;
                const int iw = ow * s.stride - s.pad_left + j;
                if (ih < 0 || ih >= s.h_in || iw < 0 || iw >= s.w_in) continue;
                f(((std::size_t(n) * s.c_in + ci) * s.h_in + ih) * s.w_in + iw,
                  ((std::size_t(co) * s.c_in + ci) * s.kh + i) * s.kw + j,
                  ((std::size_t(n) * s.c_out + co) * s.h_out + oh) * s.w_out + ow);
              }
}

// The transposed convolution as the scatter of its definition (not via conv2d, which the kernels
// reuse):
//   y[n, co, i*stride - pad_top + a, j*stride - pad_left + b] += x[n, ci, i, j] * w[ci, co, a, b]
// skipping targets outside the output.
template <typename F>
void for_each_product(const ConvTranspose2dShape& s, F f) {
  for (int n = 0; n < s.n; ++n)
    for (int ci = 0; ci < s.c_in; ++ci)
      for (int i = 0; i < s.h_in; ++i)
        for (int j = 0; j < s.w_in; ++j)
          for (int co = 0; co < s.c_out; ++co)
            for (int a = 0; a < s.kh; ++a)
              for (int b = 0; b < s.kw; ++b) {
                const int oh = i * s.stride - s.pad_top + a;
                const int ow = j * s.stride - s.pad_left + b;
                if (oh < 0 || oh >= s.h_out || ow < 0 || ow >= s.w_out) continue;
                f(((std::size_t(n) * s.c_in + ci) * s.h_in + i) * s.w_in + j,
                  ((std::size_t(ci) * s.c_out + co) * s.kh + a) * s.kw + b,
                  ((std::size_t(n) * s.c_out + co) * s.h_out + oh) * s.w_out + ow);
              }
}

// y = conv(x, w) + b (b may be empty).
template <typename Shape>
std::vector<double> naive_forward(const Shape& s, const std::vector<double>& x, const std::vector<double>& w,
                                  const std::vector<double>& b) {
  std::vector<double> y(s.y_size(), 0.0);
  if (!b.empty()) {
    for (std::size_t e = 0; e < y.size(); ++e) y[e] = b[e / (std::size_t(s.h_out) * s.w_out) % s.c_out];
  }
  for_each_product(s, [&](std::size_t xi, std::size_t wi, std::size_t yi) { y[yi] += x[xi] * w[wi]; });
  return y;
}

struct ConvGrads {
  std::vector<double> dx, dw;
};

// dx and dw given dy: every product's two partial derivatives.
template <typename Shape>
ConvGrads naive_backward(const Shape& s, const std::vector<double>& x, const std::vector<double>& w,
                         const std::vector<double>& dy) {
  ConvGrads g{std::vector<double>(s.x_size(), 0.0), std::vector<double>(s.w_size(), 0.0)};
  for_each_product(s, [&](std::size_t xi, std::size_t wi, std::size_t yi) {
    g.dx[xi] += dy[yi] * w[wi];
    g.dw[wi] += dy[yi] * x[xi];
  });
  return g;
}

}  // namespace unet::test
