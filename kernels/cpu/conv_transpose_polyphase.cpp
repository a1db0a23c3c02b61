// Transposed convolution as stride x stride stride-1 convolutions (see the header for the idea).
//
// Vocabulary. A "phase" is one residue of the output rows (or columns) modulo the stride; a
// "class" is a pair (row phase, column phase), i.e. the output pixels y[., ., stride*p + r,
// stride*q + c] for fixed (r, c). Each class is a stride-1 conv2d of x whose outputs the direct
// kernels write densely, so the classes live in "class buffers" (NCHW, the class's p x q grid) and
// this file interleaves them into y (forward) or splits dy into them (backward).
//
// Scratch per call: the sub-kernels (the size of w), and the class buffers of one chunk of
// images (images_per_chunk: at most 8 MB, or one image where that is larger; about the size of
// those images' y or dy, since the classes partition the output). Backward-data adds one chunk of
// dx, backward-filter one more set of sub-kernel gradients. For the U-Net at batch 6: 2.8 MB of
// class buffers at 15x15 -> 30x30 (all 6 images), 7.4 MB at 120x120 -> 240x240 (2 images).
#include "kernels/cpu/conv_transpose_polyphase.h"

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <memory>
#include <vector>

#include "kernels/cpu/conv_direct.h"

namespace unet::cpu::polyphase {
namespace {

int floor_div(int a, int b) { return a >= 0 ? a / b : -((b - 1 - a) / b); }
int ceil_div(int a, int b) { return (a + b - 1) / b; }

// One phase along one axis (rows, or columns): the outputs o = stride * p + residue.
//
// Output o receives tap t from input i when o = i * stride - pad + t, so t = o + pad (mod stride):
// the phase receives the taps first_tap + stride * u, u = 0 .. taps - 1, and for o = stride*p +
// residue tap u comes from input i = p + shift - u, with shift = floor((residue + pad) / stride).
// Reversing the taps (v = taps - 1 - u) makes this a stride-1 correlation,
//   class[p] = sum over v of x[p - (taps - 1 - shift) + v] * tap(v),
// whose padding before x is taps - 1 - shift. The direct kernels want that padding >= 0; where it
// is negative (more transposed-conv padding than kernel), the class conv instead starts `lead`
// outputs earlier with padding 0 and its first `lead` outputs are dropped.
struct Phase {
  int residue = 0;
  int stride = 1;
  int first_tap = 0;
  int taps = 0;     // 0: no tap reaches this phase (kernel smaller than the stride): bias only
  int pad = 0;      // the class conv's padding before x
  int lead = 0;     // class conv outputs before p = 0
  int outputs = 0;  // p = 0 .. outputs - 1
  int size() const { return lead + outputs; }  // the class conv's output length
  // The kernel tap that the class conv's tap v is.
  int tap(int v) const { return first_tap + stride * (taps - 1 - v); }
};

Phase make_phase(int residue, int stride, int kernel, int pad, int out) {
  Phase ph;
  ph.residue = residue;
  ph.stride = stride;
  const int shift = floor_div(residue + pad, stride);
  ph.first_tap = residue + pad - shift * stride;
  ph.taps = ph.first_tap < kernel ? ceil_div(kernel - ph.first_tap, stride) : 0;
  if (ph.taps > 0) {
    const int conv_pad = ph.taps - 1 - shift;
    ph.pad = std::max(conv_pad, 0);
    ph.lead = std::max(-conv_pad, 0);
  }
  ph.outputs = residue < out ? ceil_div(out - residue, stride) : 0;
  return ph;
}

struct Class {
  Phase row, col;
  std::size_t plane = 0;    // floats of one channel of the class buffer: row.size() x col.size()
  std::size_t offset = 0;   // planes of the classes before this one (class buffers are consecutive)
  std::size_t weights = 0;  // floats of the sub-kernels before this one's
  // Whether a conv2d computes it: it receives taps and has outputs.
  bool runs() const { return row.taps > 0 && col.taps > 0 && row.outputs > 0 && col.outputs > 0; }
  // Its buffer within class buffers of `images` images of `channels` channels: [image][channel][plane].
  float* data(float* buffers, int images, int channels) const {
    return buffers + offset * images * channels;
  }
  const float* data(const float* buffers, int images, int channels) const {
    return buffers + offset * images * channels;
  }
};

// The classes in a fixed order, row phase major: the order of the backward-data sum.
struct Plan {
  int stride = 1;
  std::vector<Class> classes;  // classes[r * stride + c]
  std::size_t planes = 0;      // the sum of the class planes: floats per channel and image
};

Plan make_plan(const ConvTranspose2dShape& s) {
  Plan plan;
  plan.stride = s.stride;
  std::size_t weights = 0;
  for (int r = 0; r < s.stride; ++r)
    for (int c = 0; c < s.stride; ++c) {
      Class k;
      k.row = make_phase(r, s.stride, s.kh, s.pad_top, s.h_out);
      k.col = make_phase(c, s.stride, s.kw, s.pad_left, s.w_out);
      k.plane = std::size_t(k.row.size()) * k.col.size();
      k.offset = plan.planes;
      k.weights = weights;
      plan.planes += k.plane;
      weights += std::size_t(s.c_in) * s.c_out * k.row.taps * k.col.taps;
      plan.classes.push_back(k);
    }
  return plan;
}

// The class's conv2d over `images` images: x (c_in channels) -> class buffer (c_out channels).
Conv2dShape class_conv(const ConvTranspose2dShape& s, const Class& k, int images) {
  return {.n = images,
          .c_in = s.c_in,
          .h_in = s.h_in,
          .w_in = s.w_in,
          .c_out = s.c_out,
          .kh = k.row.taps,
          .kw = k.col.taps,
          .stride = 1,
          .pad_top = k.row.pad,
          .pad_left = k.col.pad,
          .h_out = k.row.size(),
          .w_out = k.col.size()};
}

// Calls f(w index, sub-kernel index) for every tap of every class: the sub-kernels, consecutive
// in class order, are in conv2d layout [c_out][c_in][v][v'] with w_k[co][ci][v][v'] =
// w[ci][co][row.tap(v)][col.tap(v')]. The classes partition the taps, so this is a permutation.
// Each (ci, co) kernel of w is visited once and dealt out to every class.
template <typename F>
void for_each_tap(const ConvTranspose2dShape& s, const Plan& plan, F f) {
  const std::size_t taps = std::size_t(s.kh) * s.kw;
#pragma omp parallel for schedule(static)
  for (int co = 0; co < s.c_out; ++co)
    for (int ci = 0; ci < s.c_in; ++ci) {
      const std::size_t kernel = (std::size_t(ci) * s.c_out + co) * taps;
      for (const Class& k : plan.classes) {
        std::size_t sub = k.weights + (std::size_t(co) * s.c_in + ci) * k.row.taps * k.col.taps;
        for (int v = 0; v < k.row.taps; ++v)
          for (int u = 0; u < k.col.taps; ++u) f(kernel + std::size_t(k.row.tap(v)) * s.kw + k.col.tap(u), sub++);
      }
    }
}

// Images per chunk: the direct kernels run on several images at once (one weight packing, more
// tasks to share out), as many as keep a chunk's class buffers within kChunkBytes, so that they
// are still in the L3 cache when the interleave (or the class convs) read them.
constexpr std::size_t kChunkBytes = std::size_t(8) << 20;

int images_per_chunk(const ConvTranspose2dShape& s, const Plan& plan) {
  const std::size_t image_bytes = std::max<std::size_t>(plan.planes * s.c_out * sizeof(float), 1);
  return int(std::clamp<std::size_t>(kChunkBytes / image_bytes, 1, std::size_t(std::max(s.n, 1))));
}

// Interleaves the column phases of one output row: row[stride * q + c] = phase[c][q].
void interleave_row(int stride, const float* const* phase, const int* count, float* row) {
  if (stride == 2) {  // the U-Net's case in one loop the compiler vectorises; count[0] - count[1] is 0 or 1
    const float* even = phase[0];
    const float* odd = phase[1];
    for (int q = 0; q < count[1]; ++q) {
      row[2 * q] = even[q];
      row[2 * q + 1] = odd[q];
    }
    if (count[0] > count[1]) row[2 * count[1]] = even[count[1]];
    return;
  }
  for (int c = 0; c < stride; ++c)
    for (int q = 0; q < count[c]; ++q) row[stride * q + c] = phase[c][q];
}

// The inverse: phase[c][q] = row[stride * q + c].
void split_row(int stride, const float* row, float* const* phase, const int* count) {
  if (stride == 2) {
    float* even = phase[0];
    float* odd = phase[1];
    for (int q = 0; q < count[1]; ++q) {
      even[q] = row[2 * q];
      odd[q] = row[2 * q + 1];
    }
    if (count[0] > count[1]) even[count[1]] = row[2 * count[1]];
    return;
  }
  for (int c = 0; c < stride; ++c)
    for (int q = 0; q < count[c]; ++q) phase[c][q] = row[stride * q + c];
}

// The sum of a row in an order fixed by its length: 16 interleaved partial sums that the compiler
// keeps in vector registers (a single running sum could not be vectorised without reordering).
double row_sum(const float* row, int count) {
  constexpr int kLanes = 16;
  float partial[kLanes] = {};
  int i = 0;
  for (; i + kLanes <= count; i += kLanes)
    for (int l = 0; l < kLanes; ++l) partial[l] += row[i + l];
  double sum = 0;
  for (float p : partial) sum += p;
  for (; i < count; ++i) sum += row[i];
  return sum;
}

// y (`images` images) from the class buffers of those images.
void interleave(const ConvTranspose2dShape& s, const Plan& plan, const float* buffers, int images, float* y) {
  const int stride = plan.stride;
  const int planes = images * s.c_out;
#pragma omp parallel for schedule(static)
  for (int channel = 0; channel < planes; ++channel) {  // image * c_out + output channel
    std::vector<const float*> phase(std::size_t(stride), nullptr);
    std::vector<int> count(std::size_t(stride), 0);
    for (int oh = 0; oh < s.h_out; ++oh) {
      const int r = oh % stride;
      for (int c = 0; c < stride; ++c) {
        const Class& k = plan.classes[std::size_t(r * stride + c)];
        phase[std::size_t(c)] = k.data(buffers, images, s.c_out) + channel * k.plane +
                                std::size_t(oh / stride + k.row.lead) * k.col.size() + k.col.lead;
        count[std::size_t(c)] = k.col.outputs;
      }
      interleave_row(stride, phase.data(), count.data(), y + (std::size_t(channel) * s.h_out + oh) * s.w_out);
    }
  }
}

// The class buffers of `images` images of dy (c_out channels), zeros in their lead rows and
// columns. With sums: sums[co] += the sum of dy's channel co (over images, rows, columns in order).
void split(const ConvTranspose2dShape& s, const Plan& plan, const float* dy, int images, float* buffers,
           double* sums) {
  const int stride = plan.stride;
  const std::size_t dy_plane = std::size_t(s.h_out) * s.w_out;
#pragma omp parallel for schedule(static)
  for (int co = 0; co < s.c_out; ++co) {
    std::vector<float*> phase(std::size_t(stride), nullptr);
    std::vector<int> count(std::size_t(stride), 0);
    double sum = 0;
    for (int b = 0; b < images; ++b) {
      const std::size_t channel = std::size_t(b) * s.c_out + co;
      for (const Class& k : plan.classes) {  // the lead rows and columns, which no dy element fills
        float* plane = k.data(buffers, images, s.c_out) + channel * k.plane;
        const std::size_t width = std::size_t(k.col.size());
        std::fill(plane, plane + k.row.lead * width, 0.0f);
        for (int q = k.row.lead; q < k.row.size() && k.col.lead > 0; ++q) {
          std::fill(plane + q * width, plane + q * width + k.col.lead, 0.0f);
        }
      }
      for (int oh = 0; oh < s.h_out; ++oh) {
        const int r = oh % stride;
        const float* row = dy + channel * dy_plane + std::size_t(oh) * s.w_out;
        for (int c = 0; c < stride; ++c) {
          const Class& k = plan.classes[std::size_t(r * stride + c)];
          phase[std::size_t(c)] = k.data(buffers, images, s.c_out) + channel * k.plane +
                                  std::size_t(oh / stride + k.row.lead) * k.col.size() + k.col.lead;
          count[std::size_t(c)] = k.col.outputs;
        }
        split_row(stride, row, phase.data(), count.data());
        if (sums) sum += row_sum(row, s.w_out);
      }
    }
    if (sums) sums[co] += sum;
  }
}

// The sub-kernels of w, in class order (for_each_tap).
std::unique_ptr<float[]> sub_kernels(const ConvTranspose2dShape& s, const Plan& plan, const float* w) {
  auto packed = std::make_unique_for_overwrite<float[]>(s.w_size());
  float* out = packed.get();
  for_each_tap(s, plan, [&](std::size_t wi, std::size_t ki) { out[ki] = w[wi]; });
  return packed;
}

}  // namespace

void conv_transpose2d_forward(const DirectConv& conv, const ConvTranspose2dShape& s, const float* x,
                              const float* w, const float* bias, float* y) {
  const Plan plan = make_plan(s);
  const auto weights = sub_kernels(s, plan, w);
  const std::size_t x_image = std::size_t(s.c_in) * s.h_in * s.w_in;
  const std::size_t y_image = std::size_t(s.c_out) * s.h_out * s.w_out;
  const int chunk = images_per_chunk(s, plan);
  const auto buffers = std::make_unique_for_overwrite<float[]>(plan.planes * s.c_out * chunk);
  for (int b = 0; b < s.n; b += chunk) {
    const int images = std::min(chunk, s.n - b);
    for (const Class& k : plan.classes) {
      float* out = k.data(buffers.get(), images, s.c_out);
      if (k.runs()) {
        conv.forward(class_conv(s, k, images), x + b * x_image, weights.get() + k.weights, bias, out);
        continue;
      }
      for (int channel = 0; channel < images * s.c_out; ++channel) {  // no tap reaches them: the bias alone
        std::fill(out + channel * k.plane, out + (channel + 1) * k.plane, bias ? bias[channel % s.c_out] : 0.0f);
      }
    }
    interleave(s, plan, buffers.get(), images, y + b * y_image);
  }
}

void conv_transpose2d_backward_data(const DirectConv& conv, const ConvTranspose2dShape& s, const float* dy,
                                    const float* w, float* dx) {
  const Plan plan = make_plan(s);
  const auto weights = sub_kernels(s, plan, w);
  const std::size_t x_image = std::size_t(s.c_in) * s.h_in * s.w_in;
  const std::size_t y_image = std::size_t(s.c_out) * s.h_out * s.w_out;
  const int chunk = images_per_chunk(s, plan);
  const auto buffers = std::make_unique_for_overwrite<float[]>(plan.planes * s.c_out * chunk);
  const auto term = std::make_unique_for_overwrite<float[]>(x_image * chunk);
  for (int b = 0; b < s.n; b += chunk) {
    const int images = std::min(chunk, s.n - b);
    const std::size_t size = x_image * images;
    float* dx_chunk = dx + b * x_image;
    split(s, plan, dy + b * y_image, images, buffers.get(), nullptr);
    // dx = the sum over the classes, in class order, of each class's backward-data.
    bool first = true;
    for (const Class& k : plan.classes) {
      if (!k.runs()) continue;
      const Conv2dShape shape = class_conv(s, k, images);
      const float* dy_class = k.data(buffers.get(), images, s.c_out);
      conv.backward_data(shape, dy_class, weights.get() + k.weights, first ? dx_chunk : term.get());
      if (!first) {
        const float* add = term.get();
#pragma omp parallel for simd schedule(static)
        for (std::size_t i = 0; i < size; ++i) dx_chunk[i] += add[i];
      }
      first = false;
    }
    if (first) std::fill(dx_chunk, dx_chunk + size, 0.0f);  // no class has outputs (an empty y)
  }
}

void conv_transpose2d_backward_filter(const DirectConv& conv, const ConvTranspose2dShape& s, const float* x,
                                      const float* dy, float* dw, float* dbias) {
  const Plan plan = make_plan(s);
  const std::size_t x_image = std::size_t(s.c_in) * s.h_in * s.w_in;
  const std::size_t y_image = std::size_t(s.c_out) * s.h_out * s.w_out;
  const int chunk = images_per_chunk(s, plan);
  const auto buffers = std::make_unique_for_overwrite<float[]>(plan.planes * s.c_out * chunk);
  // The sub-kernel gradients: of the first chunk in grads, of each later one in term, then added
  // to grads (chunks in image order).
  const auto grads = std::make_unique_for_overwrite<float[]>(s.w_size());
  const auto term = std::make_unique_for_overwrite<float[]>(chunk < s.n ? s.w_size() : 0);
  std::vector<double> sums(dbias ? std::size_t(s.c_out) : 0, 0.0);
  for (int b = 0; b < s.n; b += chunk) {
    const int images = std::min(chunk, s.n - b);
    split(s, plan, dy + b * y_image, images, buffers.get(), dbias ? sums.data() : nullptr);
    float* out = b == 0 ? grads.get() : term.get();
    for (const Class& k : plan.classes) {
      float* grad = out + k.weights;
      if (k.runs()) {
        conv.backward_filter(class_conv(s, k, images), x + b * x_image, k.data(buffers.get(), images, s.c_out),
                             grad, nullptr);
      } else {  // taps whose outputs are all cropped away get no gradient
        std::fill(grad, grad + std::size_t(s.c_in) * s.c_out * k.row.taps * k.col.taps, 0.0f);
      }
    }
    if (b > 0) {
      float* sum = grads.get();
      const float* add = term.get();
#pragma omp parallel for simd schedule(static)
      for (std::size_t i = 0; i < s.w_size(); ++i) sum[i] += add[i];
    }
  }
  if (s.n <= 0) std::fill(grads.get(), grads.get() + s.w_size(), 0.0f);  // no images, no gradient
  const float* g = grads.get();
  for_each_tap(s, plan, [&](std::size_t wi, std::size_t ki) { dw[wi] = g[ki]; });
  for (int co = 0; co < (dbias ? s.c_out : 0); ++co) dbias[co] = float(sums[std::size_t(co)]);
}

namespace {
constexpr DirectConv kAvx512{direct::conv2d_forward_avx512, direct::conv2d_backward_data_avx512,
                             direct::conv2d_backward_filter_avx512};
constexpr DirectConv kAvx2{direct::conv2d_forward_avx2, direct::conv2d_backward_data_avx2,
                           direct::conv2d_backward_filter_avx2};
}  // namespace

void conv_transpose2d_forward_avx512(const ConvTranspose2dShape& s, const float* x, const float* w,
                                     const float* bias, float* y) {
  conv_transpose2d_forward(kAvx512, s, x, w, bias, y);
}
void conv_transpose2d_backward_data_avx512(const ConvTranspose2dShape& s, const float* dy, const float* w,
                                           float* dx) {
  conv_transpose2d_backward_data(kAvx512, s, dy, w, dx);
}
void conv_transpose2d_backward_filter_avx512(const ConvTranspose2dShape& s, const float* x, const float* dy,
                                             float* dw, float* dbias) {
  conv_transpose2d_backward_filter(kAvx512, s, x, dy, dw, dbias);
}
void conv_transpose2d_forward_avx2(const ConvTranspose2dShape& s, const float* x, const float* w,
                                   const float* bias, float* y) {
  conv_transpose2d_forward(kAvx2, s, x, w, bias, y);
}
void conv_transpose2d_backward_data_avx2(const ConvTranspose2dShape& s, const float* dy, const float* w,
                                         float* dx) {
  conv_transpose2d_backward_data(kAvx2, s, dy, w, dx);
}
void conv_transpose2d_backward_filter_avx2(const ConvTranspose2dShape& s, const float* x, const float* dy,
                                           float* dw, float* dbias) {
  conv_transpose2d_backward_filter(kAvx2, s, x, dy, dw, dbias);
}

}  // namespace unet::cpu::polyphase
