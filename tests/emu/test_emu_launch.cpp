// Emulation layer: launches (tiled SGEMM, coordinates, configuration and pointer checks, dynamic
// shared memory) and a timing of the two workloads the design targets.
#include <catch2/catch.hpp>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <vector>

#include "tests/emu/emu_support.h"
#include "tests/emu/test_kernels.h"
#include "tests/support/cuda_test.h"

namespace unet::emu_test {
namespace {

using Catch::Matchers::Contains;
using test::DeviceBuffer;

std::vector<float> pattern(int n, int salt) {
  std::vector<float> v(n);
  for (int i = 0; i < n; ++i) v[i] = static_cast<float>((i * 37 + salt) % 17) / 8.0f - 1.0f;
  return v;
}

std::vector<float> naive_gemm(int m, int n, int k, const std::vector<float>& a,
                              const std::vector<float>& b) {
  std::vector<float> c(static_cast<std::size_t>(m) * n);
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < n; ++j) {
      double acc = 0.0;
      for (int p = 0; p < k; ++p) acc += static_cast<double>(a[i * k + p]) * b[p * n + j];
      c[i * n + j] = static_cast<float>(acc);
    }
  return c;
}

TEST_CASE("emu: tiled SGEMM matches a naive loop on sizes that are not multiples of the tile",
          "[emu]") {
  const int sizes[][3] = {{37, 53, 29}, {16, 16, 16}, {1, 70, 33}, {65, 1, 17}};
  for (const auto& s : sizes) {
    const int m = s[0], n = s[1], k = s[2];
    INFO("m " << m << " n " << n << " k " << k);
    const auto a = pattern(m * k, 1), b = pattern(k * n, 2);
    DeviceBuffer<float> da(a), db(b), dc(static_cast<std::size_t>(m) * n);
    sgemm_tiled(m, n, k, da.get(), db.get(), dc.get());
    const auto c = dc.download();
    const auto ref = naive_gemm(m, n, k, a, b);
    for (std::size_t i = 0; i < c.size(); ++i) REQUIRE(c[i] == Approx(ref[i]).margin(1e-4));
  }
}

TEST_CASE("emu: batch-norm style channel statistics", "[emu]") {
  const int batch = 2, channels = 3, spatial = 100;
  const auto x = pattern(batch * channels * spatial, 3);
  DeviceBuffer<float> dx(x), sum(channels), sumsq(channels);
  channel_stats(batch, channels, spatial, dx.get(), sum.get(), sumsq.get());
  const auto s = sum.download(), q = sumsq.download();
  for (int c = 0; c < channels; ++c) {
    double es = 0.0, eq = 0.0;
    for (int nb = 0; nb < batch; ++nb)
      for (int i = 0; i < spatial; ++i) {
        const double v = x[(nb * channels + c) * spatial + i];
        es += v;
        eq += v * v;
      }
    CHECK(s[c] == Approx(es).margin(1e-4));
    CHECK(q[c] == Approx(eq).margin(1e-4));
  }
}

TEST_CASE("emu: 3-D grids and blocks see CUDA's coordinates", "[emu]") {
  const dim3 grid(3, 2, 2), block(4, 2, 3);
  const unsigned threads = 4 * 2 * 3, blocks = 3 * 2 * 2;
  cudaStream_t stream = nullptr;
  REQUIRE(cudaStreamCreate(&stream) == cudaSuccess);
  DeviceBuffer<unsigned> out(blocks * threads * 12);
  coordinates(grid, block, out.get(), stream);
  REQUIRE(cudaStreamSynchronize(stream) == cudaSuccess);
  const auto o = out.download();
  for (unsigned bz = 0; bz < 2; ++bz)
    for (unsigned by = 0; by < 2; ++by)
      for (unsigned bx = 0; bx < 3; ++bx)
        for (unsigned tz = 0; tz < 3; ++tz)
          for (unsigned ty = 0; ty < 2; ++ty)
            for (unsigned tx = 0; tx < 4; ++tx) {
              const unsigned b = bx + 3 * (by + 2 * bz), t = tx + 4 * (ty + 2 * tz);
              const unsigned* v = &o[(b * threads + t) * 12];
              const std::vector<unsigned> got(v, v + 12);
              REQUIRE(got == std::vector<unsigned>{bx, by, bz, tx, ty, tz, 4, 2, 3, 3, 2, 2});
            }
  REQUIRE(cudaStreamDestroy(stream) == cudaSuccess);
  // A destroyed stream cannot take launches.
  const auto e = launch_error([&] { coordinates(grid, block, out.get(), stream); });
  CHECK(e.code() == cudaErrorInvalidResourceHandle);
}

TEST_CASE("emu: host pointers passed to a kernel are reported", "[emu]") {
  std::vector<float> host(64, 1.0f);
  DeviceBuffer<float> partial(1);
  SECTION("a host array") {
    const auto e = launch_error([&] { block_sum(host.data(), 64, partial.get(), 1, 64); });
    CHECK(e.code() == cudaErrorInvalidDevicePointer);
    CHECK_THAT(e.what(), Contains("block_sum_kernel") && Contains("test_kernels.cu:") &&
                             Contains("argument 1 of 3") && Contains("host pointer"));
  }
  SECTION("freed device memory") {
    float* freed = nullptr;
    REQUIRE(cudaMalloc(&freed, 64 * sizeof(float)) == cudaSuccess);
    REQUIRE(cudaFree(freed) == cudaSuccess);
    const auto e = launch_error([&] { block_sum(partial.get(), 1, freed, 1, 64); });
    CHECK_THAT(e.what(), Contains("argument 3 of 3"));
  }
  SECTION("null is fine when the kernel does not touch it") {
    CHECK_NOTHROW(block_sum(nullptr, 0, partial.get(), 1, 64));
    CHECK(partial.download()[0] == 0.0f);
  }
}

TEST_CASE("emu: launch configurations are validated", "[emu]") {
  DeviceBuffer<unsigned> out(12 * 1024);
  const auto bad = [&](dim3 grid, dim3 block) {
    const auto e = launch_error([&] { coordinates(grid, block, out.get()); });
    CHECK(e.code() == cudaErrorInvalidConfiguration);
    CHECK_THAT(e.what(), Contains("coordinates_kernel") && Contains("invalid configuration"));
  };
  bad(dim3(1), dim3(1025));
  bad(dim3(1), dim3(32, 32, 2));
  bad(dim3(1), dim3(1, 1, 65));
  bad(dim3(0), dim3(32));
  bad(dim3(1, 65536), dim3(32));
  bad(dim3(1), dim3(0));
  CHECK_NOTHROW(coordinates(dim3(1), dim3(32, 32), out.get()));
}

TEST_CASE("emu: dynamic shared memory is NaN-filled before every block", "[emu]") {
  const int blocks = 3, threads = 64;
  DeviceBuffer<float> before(blocks * threads), after(blocks * threads);
  dynamic_shared(blocks, threads, threads * sizeof(float), before.get(), after.get());
  const auto b = before.download(), a = after.download();
  for (int i = 0; i < blocks * threads; ++i) {
    REQUIRE(std::isnan(b[i]));
    REQUIRE(a[i] == static_cast<float>(threads - 1 - i % threads));
  }
}

TEST_CASE("emu: more than 48 KiB of dynamic shared memory needs cudaFuncSetAttribute", "[emu]") {
  const int threads = 64;
  const std::size_t bytes = 64 * 1024;
  DeviceBuffer<float> before(threads), after(threads);
  const auto e =
      launch_error([&] { dynamic_shared(1, threads, bytes, before.get(), after.get()); });
  CHECK(e.code() == cudaErrorInvalidConfiguration);
  CHECK_THAT(e.what(), Contains("cudaFuncAttributeMaxDynamicSharedMemorySize"));
  CHECK(allow_dynamic_shared(400 * 1024) == cudaErrorInvalidValue);
  CHECK(cudaGetLastError() == cudaErrorInvalidValue);
  REQUIRE(allow_dynamic_shared(static_cast<int>(bytes)) == cudaSuccess);
  CHECK_NOTHROW(dynamic_shared(1, threads, bytes, before.get(), after.get()));
  CHECK(std::isnan(before.download()[0]));
}

// Not run by default: `emu_tests "[.speed]"` prints the times of the design's two workloads.
TEST_CASE("emu: speed of a 128^3 tiled SGEMM and 4x16x64x64 channel statistics", "[.speed]") {
  const auto time_ms = [](auto&& f) {
    f();  // warm-up: creates the fibers
    const auto start = std::chrono::steady_clock::now();
    const int reps = 10;
    for (int r = 0; r < reps; ++r) f();
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
               .count() /
           reps;
  };
  const int s = 128;
  DeviceBuffer<float> a(pattern(s * s, 1)), b(pattern(s * s, 2)), c(s * s);
  std::uint64_t resumes = emu::fiber_resume_count();
  const double gemm = time_ms([&] { sgemm_tiled(s, s, s, a.get(), b.get(), c.get()); });
  const double gemm_resumes = static_cast<double>(emu::fiber_resume_count() - resumes) / 11;
  DeviceBuffer<float> x(pattern(4 * 16 * 64 * 64, 3)), sum(16), sumsq(16);
  resumes = emu::fiber_resume_count();
  const double stats =
      time_ms([&] { channel_stats(4, 16, 64 * 64, x.get(), sum.get(), sumsq.get()); });
  const double stats_resumes = static_cast<double>(emu::fiber_resume_count() - resumes) / 11;
  std::printf(
      "emu speed: sgemm 128^3 %.2f ms (%.0f resumes), channel stats 4x16x64x64 %.2f ms (%.0f "
      "resumes)\n",
      gemm, gemm_resumes, stats, stats_resumes);
  CHECK(gemm < 1000.0);
}

}  // namespace
}  // namespace unet::emu_test
