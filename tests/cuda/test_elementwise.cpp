// The CUDA elementwise launchers (kernels/cuda/elementwise.cu) against their CPU twins
// (kernels/cpu/elementwise.cpp, float), on a 2 x 240 x 240 array, an array just past the capped
// grid (so that the grid-stride loop takes a second element in some threads), an odd size and a
// single element, with NaN, infinities, signed zeros and subnormals mixed into the inputs.
//
// fill, add, mul, scale, scale_by, accumulate, relu forward/backward and sigmoid backward are one
// IEEE operation (or a fixed sequence) per element: they must equal the CPU bit for bit (a NaN
// matches any NaN: a GPU canonicalises NaN payloads). sigmoid forward calls expf, whose device and
// host versions may differ by an ulp or two: within 1e-6 relative (1e-30 absolute for results
// that underflow into subnormals, where an ulp is a large fraction of the value). Outputs are
// poisoned before each launch with a finite value no operation here produces rather than NaN,
// because NaN is a legitimate expected result here and a skipped element would pass unnoticed.
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "kernels/cpu/elementwise.h"
#include "tests/support/cuda_test.h"
#include "tests/support/gradcheck.h"

namespace {

namespace cu = unet::UNET_CUDA_NS;
using unet::test::DeviceBuffer;
using unet::test::random_vector;
using Vec = std::vector<float>;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kPoison = -12345.678f;  // distinct from every expected value
// Threads in the largest grid a launch gets: kMaxBlocks x kThreads in kernels/cuda/elementwise.cu.
constexpr std::size_t kGridThreads = 2048 * 256;

bool same_value(float a, float b) {
  return (std::isnan(a) && std::isnan(b)) || std::memcmp(&a, &b, sizeof(float)) == 0;
}

void require_same_values(const Vec& a, const Vec& b, const char* what) {
  REQUIRE(a.size() == b.size());
  for (std::size_t i = 0; i < a.size(); ++i)
    if (!same_value(a[i], b[i]))
      FAIL(what << ": element " << i << " of " << a.size() << " is " << a[i] << ", expected "
                << b[i]);
}

// Uniform values in [-3, 3] with special values at fixed strides.
Vec special_input(std::size_t n, uint32_t seed) {
  Vec v = random_vector<float>(n, seed, -3.0, 3.0);
  const float specials[] = {kNaN, kInf, -kInf, 0.0f, -0.0f, 1e-40f, -1e-40f, 1e30f, -1e30f, 100.0f,
                            -100.0f};
  constexpr std::size_t kSpecials = sizeof(specials) / sizeof(specials[0]);
  for (std::size_t i = seed % 7; i < n; i += 97) v[i] = specials[(i / 97) % kSpecials];
  return v;
}

// The poison is a finite number no operation here produces, so a NaN (or any other) expected
// value can never be matched by an element the kernel skipped.

void check_size(std::size_t n) {
  INFO("count " << n);
  const Vec a = special_input(n, 1), b = special_input(n, 2), y0 = special_input(n, 3);
  // relu's output as the backward mask input: zeros, positives, NaNs.
  Vec relu_y(n), sig_y(n);
  unet::cpu::relu_forward<float>(n, a.data(), relu_y.data());
  unet::cpu::sigmoid_forward<float>(n, a.data(), sig_y.data());
  const float factor = -0.37f;

  DeviceBuffer<float> d_a(a), d_b(b), d_y(n), d_relu_y(relu_y), d_sig_y(sig_y);
  DeviceBuffer<float> d_factor(Vec{factor});
  Vec ref(n);
  const auto run = [&](auto launch) {
    poison(d_y, kPoison);
    launch();
    return d_y.download();
  };

  unet::cpu::fill<float>(n, 2.5f, ref.data());
  require_same_values(run([&] { cu::fill(n, 2.5f, d_y.get(), nullptr); }), ref, "fill");
  unet::cpu::add<float>(n, a.data(), b.data(), ref.data());
  require_same_values(run([&] { cu::add(n, d_a.get(), d_b.get(), d_y.get(), nullptr); }), ref,
                      "add");
  unet::cpu::mul<float>(n, a.data(), b.data(), ref.data());
  require_same_values(run([&] { cu::mul(n, d_a.get(), d_b.get(), d_y.get(), nullptr); }), ref,
                      "mul");
  unet::cpu::scale<float>(n, a.data(), factor, ref.data());
  require_same_values(run([&] { cu::scale(n, d_a.get(), factor, d_y.get(), nullptr); }), ref,
                      "scale");
  require_same_values(
      run([&] { cu::scale_by(n, d_a.get(), d_factor.get(), d_y.get(), nullptr); }), ref,
      "scale_by");
  ref = y0;
  unet::cpu::accumulate<float>(n, a.data(), ref.data());
  require_same_values(run([&] {
                        d_y.upload(y0);
                        cu::accumulate(n, d_a.get(), d_y.get(), nullptr);
                      }),
                      ref, "accumulate");
  require_same_values(run([&] { cu::relu_forward(n, d_a.get(), d_y.get(), nullptr); }), relu_y,
                      "relu_forward");
  unet::cpu::relu_backward<float>(n, b.data(), relu_y.data(), ref.data());
  require_same_values(
      run([&] { cu::relu_backward(n, d_b.get(), d_relu_y.get(), d_y.get(), nullptr); }), ref,
      "relu_backward");
  unet::cpu::sigmoid_backward<float>(n, b.data(), sig_y.data(), ref.data());
  require_same_values(
      run([&] { cu::sigmoid_backward(n, d_b.get(), d_sig_y.get(), d_y.get(), nullptr); }), ref,
      "sigmoid_backward");

  const Vec sig = run([&] { cu::sigmoid_forward(n, d_a.get(), d_y.get(), nullptr); });
  for (std::size_t i = 0; i < n; ++i) {
    INFO("sigmoid_forward element " << i << " x " << a[i] << ": " << sig[i] << " vs " << sig_y[i]);
    if (std::isnan(sig_y[i])) {
      REQUIRE(std::isnan(sig[i]));
    } else {
      REQUIRE(std::abs(double(sig[i]) - double(sig_y[i])) <=
              1e-30 + 1e-6 * std::abs(double(sig_y[i])));
    }
  }
}

}  // namespace

TEST_CASE("cuda elementwise: every op against the CPU on a 2 x 240 x 240 array",
          "[cuda][elementwise]") {
  UNET_REQUIRE_GPU();
  check_size(2 * 240 * 240);
}

TEST_CASE("cuda elementwise: past the grid cap each thread loops to a second element",
          "[cuda][elementwise]") {
  UNET_REQUIRE_GPU();
  check_size(kGridThreads + 301);  // odd; the last 301 elements come from the second iteration
}

TEST_CASE("cuda elementwise: odd sizes, a single element and nothing", "[cuda][elementwise]") {
  UNET_REQUIRE_GPU();
  check_size(15 * 15 * 3);
  check_size(7 * 5);
  check_size(1);
  DeviceBuffer<float> d(1);
  d.upload(Vec{kPoison});
  cu::fill(0, 1.0f, d.get(), nullptr);
  cu::add(0, d.get(), d.get(), d.get(), nullptr);
  cu::sigmoid_forward(0, d.get(), d.get(), nullptr);
  REQUIRE(d.download()[0] == kPoison);
}
