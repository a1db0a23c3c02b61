// The CUDA multi-tensor Adam launcher (kernels/cuda/adam.cu) against the CPU twin
// (kernels/cpu/adam.cpp) applied tensor by tensor: one launch must update every tensor of the
// table (sizes from 1 to a few tens of thousands, an empty one among them), early and late in
// training, with and without decoupled weight decay; and tensors just past the capped grid, whose
// threads loop over several elements.
//
// Tolerance: |cuda - cpu| <= 1e-7 max|cpu| + 1e-6 |cpu| per array (param, m, v). The arithmetic
// is the same float expression, but nvcc contracts a * b + c into FMAs where the host compiler may
// not, so results differ by an ulp or so; the absolute part covers m where beta1 m and
// (1 - beta1) g nearly cancel.
#include <algorithm>
#include <cmath>
#include <memory>
#include <stdexcept>
#include <utility>
#include <vector>

#include "kernels/cpu/adam.h"
#include "tests/support/cuda_test.h"
#include "tests/support/gradcheck.h"

namespace {

namespace cu = unet::UNET_CUDA_NS;
using unet::kernels::AdamParams;
using unet::kernels::AdamTensor;
using unet::test::DeviceBuffer;
using unet::test::random_vector;
using unet::test::require_close;
using Vec = std::vector<float>;

void require_close_scaled(const Vec& a, const Vec& b, const char* what) {
  double scale = 0;
  for (const float v : b) scale = std::max(scale, double(std::abs(v)));
  require_close(a, b, 1e-7 * scale, 1e-6, what);
}

// Threads along a tensor in the largest grid: kMaxChunks x kAdamThreads in kernels/cuda/adam.cu.
constexpr std::size_t kChunkThreads = 256 * 256;

void check(const AdamParams& a,
           const std::vector<std::size_t>& sizes = {1, 16, 0, 1000, 3 * 3 * 16 * 32, 20000, 7}) {
  INFO("step " << a.step << " weight_decay " << a.weight_decay);
  struct Host {
    Vec param, grad, m, v;
  };
  std::vector<Host> host;
  uint32_t seed = uint32_t(a.step) * 100;
  for (const std::size_t n : sizes) {
    host.push_back({random_vector<float>(n, seed, -1.0, 1.0),
                    random_vector<float>(n, seed + 1, -0.1, 0.1),
                    random_vector<float>(n, seed + 2, -0.05, 0.05),
                    random_vector<float>(n, seed + 3, 0.0, 1e-3)});
    seed += 10;
  }

  std::vector<std::unique_ptr<DeviceBuffer<float>>> buffers;
  std::vector<AdamTensor> table;
  for (const Host& h : host) {
    auto param = std::make_unique<DeviceBuffer<float>>(h.param);
    auto grad = std::make_unique<DeviceBuffer<float>>(h.grad);
    auto m = std::make_unique<DeviceBuffer<float>>(h.m);
    auto v = std::make_unique<DeviceBuffer<float>>(h.v);
    table.push_back({param->get(), grad->get(), m->get(), v->get(), h.param.size()});
    for (auto* b : {&param, &grad, &m, &v}) buffers.push_back(std::move(*b));
  }
  DeviceBuffer<AdamTensor> d_table(table);
  cu::adam_update(a, table.data(), d_table.get(), int(table.size()), nullptr);

  for (std::size_t k = 0; k < host.size(); ++k) {
    INFO("tensor " << k << " of " << sizes[k] << " elements");
    Host ref = host[k];
    unet::cpu::adam_update(sizes[k], a, ref.param.data(), ref.grad.data(), ref.m.data(),
                           ref.v.data());
    require_close_scaled(buffers[4 * k]->download(), ref.param, "param");
    require_close_scaled(buffers[4 * k + 2]->download(), ref.m, "m");
    require_close_scaled(buffers[4 * k + 3]->download(), ref.v, "v");
    REQUIRE(buffers[4 * k + 1]->download() == host[k].grad);  // read only
  }
}

}  // namespace

TEST_CASE("cuda adam: one launch updates every tensor like the CPU", "[cuda][adam]") {
  UNET_REQUIRE_GPU();
  AdamParams a;
  a.step = 1;
  check(a);
  a.step = 1000;
  check(a);
  a.weight_decay = 1e-2f;
  a.step = 3;
  check(a);
}

TEST_CASE("cuda adam: tensors past the grid cap take several elements per thread",
          "[cuda][adam]") {
  UNET_REQUIRE_GPU();
  AdamParams a;
  a.step = 2;
  a.weight_decay = 1e-2f;
  // Odd sizes just past one and two grid strides, and a small tensor whose blocks mostly idle.
  check(a, {kChunkThreads + 301, 5, 2 * kChunkThreads + 77});
}

TEST_CASE("cuda adam: the step count starts at 1, an empty table is a no-op", "[cuda][adam]") {
  UNET_REQUIRE_GPU();
  AdamParams a;
  a.step = 0;
  REQUIRE_THROWS_AS(cu::adam_update(a, nullptr, nullptr, 0, nullptr), std::invalid_argument);
  a.step = 1;
  cu::adam_update(a, nullptr, nullptr, 0, nullptr);
}
