// Emulation layer: block barriers, thread orders, and what happens when a kernel faults.
#include <catch2/catch.hpp>
#include <thread>
#include <vector>

#include "tests/emu/emu_support.h"
#include "tests/emu/test_kernels.h"
#include "tests/support/cuda_test.h"

namespace unet::emu_test {
namespace {

using Catch::Matchers::Contains;
using emu::ThreadOrder;
using test::DeviceBuffer;

// Integer-valued data (exact float sums in any order) that differs from block to block.
std::vector<float> ramp(int n, int salt) {
  std::vector<float> x(n);
  for (int i = 0; i < n; ++i) x[i] = static_cast<float>((i * 7 + salt) % 13 + 1);
  return x;
}

std::vector<float> expected_partials(const std::vector<float>& x, int blocks, int threads) {
  std::vector<float> partial(blocks, 0.0f);
  for (int i = 0; i < static_cast<int>(x.size()); ++i) partial[(i / threads) % blocks] += x[i];
  return partial;
}

struct OrderCase {
  ThreadOrder order;
  std::uint64_t seed;
};
const OrderCase kOrders[] = {{ThreadOrder::Forward, 0},
                             {ThreadOrder::Reverse, 0},
                             {ThreadOrder::Random, 1},
                             {ThreadOrder::Random, 2},
                             {ThreadOrder::Random, 3}};

TEST_CASE("emu: block sum with shared memory and __syncthreads is right under every order",
          "[emu]") {
  const int blocks = 4, threads = 256, n = 4 * blocks * threads + 77;
  int salt = 0;
  for (const OrderCase& c : kOrders) {
    OrderScope scope(c.order, c.seed);
    INFO("order " << order_name(c.order) << " seed " << c.seed);
    const std::vector<float> x = ramp(n, ++salt);
    DeviceBuffer<float> dx(x), partial(blocks);
    block_sum(dx.get(), n, partial.get(), blocks, threads);
    CHECK(partial.download() == expected_partials(x, blocks, threads));
  }
}

TEST_CASE("emu: a missing __syncthreads gives a wrong block sum under some order", "[emu]") {
  const int blocks = 4, threads = 256, n = 4 * blocks * threads;
  int wrong_orders = 0;
  int salt = 100;
  for (const OrderCase& c : kOrders) {
    OrderScope scope(c.order, c.seed);
    const std::vector<float> x = ramp(n, ++salt);
    DeviceBuffer<float> dx(x), partial(blocks);
    block_sum_missing_sync(dx.get(), n, partial.get(), blocks, threads);
    const bool wrong = partial.download() != expected_partials(x, blocks, threads);
    // Forward order runs thread 0 up to the first barrier before thread 128 has stored its value.
    if (c.order == ThreadOrder::Forward) CHECK(wrong);
    wrong_orders += wrong;
  }
  CHECK(wrong_orders > 0);
}

TEST_CASE("emu: 1024-thread blocks and thousands of blocks", "[emu]") {
  SECTION("block sum with 1024 threads") {
    const int blocks = 3, threads = 1024, n = 2 * blocks * threads + 5;
    const std::vector<float> x = ramp(n, 5);
    DeviceBuffer<float> dx(x), partial(blocks);
    block_sum(dx.get(), n, partial.get(), blocks, threads);
    CHECK(partial.download() == expected_partials(x, blocks, threads));
  }
  SECTION("5000 blocks") {
    const int n = 5000 * 64 - 3;
    std::vector<float> x(n);
    for (int i = 0; i < n; ++i) x[i] = static_cast<float>(i % 1000);
    DeviceBuffer<float> dx(x), dy(n);
    scale(n, dx.get(), 2.0f, dy.get());
    const std::vector<float> y = dy.download();
    for (int i = 0; i < n; ++i) REQUIRE(y[i] == 2.0f * x[i]);
  }
}

TEST_CASE("emu: threads at different __syncthreads are a divergent barrier", "[emu]") {
  DeviceBuffer<int> out(128);
  const auto e = launch_error([&] { divergent_barrier(out.get()); });
  CHECK(e.code() == cudaErrorLaunchFailure);
  CHECK_THAT(e.what(), Contains("divergent_barrier_kernel") &&
                           Contains("divergent __syncthreads()") &&
                           Contains(site(kDivergentBarrierEvenLine)) &&
                           Contains(site(kDivergentBarrierOddLine)) && Contains("in block (") &&
                           Contains("thread ("));
}

TEST_CASE("emu: a thread that returns while others wait at __syncthreads is reported", "[emu]") {
  DeviceBuffer<int> out(64);
  for (const OrderCase& c : kOrders) {
    OrderScope scope(c.order, c.seed);
    const auto e = launch_error([&] { return_before_barrier(out.get()); });
    CHECK_THAT(e.what(), Contains("return_before_barrier_kernel") &&
                             Contains(site(kReturnBarrierLine)) && Contains("never completes") &&
                             Contains("63 of 64 threads wait") &&
                             Contains("1 has returned (first: thread (0,0,0))"));
  }
}

TEST_CASE("emu: an exception thrown by kernel code ends the launch, suspended threads unwind",
          "[emu]") {
  OrderScope scope(ThreadOrder::Forward);
  const int blocks = 3, threads = 64;
  DeviceBuffer<int> out(blocks * threads);
  const int guards_before = destroyed_guards();
  const auto e = launch_error([&] { throwing(blocks, threads, 1, 5, out.get()); });
  CHECK_THAT(e.what(), Contains("throwing_kernel") && Contains("in block (1,0,0)") &&
                           Contains("thread (5,0,0)") && Contains("std::runtime_error") &&
                           Contains("thrown on purpose"));
  // Block 0 completed; all 64 threads of block 1 (suspended at a barrier or throwing) unwound;
  // block 2 never ran.
  CHECK(destroyed_guards() - guards_before == 2 * threads);
}

TEST_CASE("emu: a launch after a failed launch works", "[emu]") {
  DeviceBuffer<int> out(128);
  CHECK_THROWS_AS(divergent_barrier(out.get()), emu::EmulationError);
  CHECK_THROWS_AS(throwing(2, 32, 0, 31, out.get()), emu::EmulationError);
  const int blocks = 2, threads = 128, n = 1000;
  const std::vector<float> x = ramp(n, 9);
  DeviceBuffer<float> dx(x), partial(blocks);
  block_sum(dx.get(), n, partial.get(), blocks, threads);
  CHECK(partial.download() == expected_partials(x, blocks, threads));
  CHECK(cudaGetLastError() == cudaSuccess);
}

TEST_CASE("emu: launching from inside a kernel is an error", "[emu]") {
  DeviceBuffer<int> out(1);
  const auto e = launch_error([&] { nested_launch(out.get()); });
  CHECK_THAT(e.what(), Contains("nested_launch_kernel") && Contains("scale_kernel") &&
                           Contains("dynamic parallelism"));
}

TEST_CASE("emu: launches from several host threads are serialised", "[emu]") {
  // Static __shared__ arrays are process-wide: two blocks must never run at the same time.
  const int blocks = 2, threads = 256, n = 3000;
  std::vector<std::vector<float>> inputs = {ramp(n, 21), ramp(n, 22)};
  std::vector<std::vector<float>> results(2);
  std::vector<std::thread> workers;
  for (int w = 0; w < 2; ++w)
    workers.emplace_back([&, w] {
      DeviceBuffer<float> dx(inputs[w]), partial(blocks);
      for (int rep = 0; rep < 20; ++rep) block_sum(dx.get(), n, partial.get(), blocks, threads);
      results[w] = partial.download();
    });
  for (auto& t : workers) t.join();
  for (int w = 0; w < 2; ++w) CHECK(results[w] == expected_partials(inputs[w], blocks, threads));
}

TEST_CASE("emu: thread order can be set and read", "[emu]") {
  const ThreadOrder before = emu::thread_order();
  {
    OrderScope scope(ThreadOrder::Reverse);
    CHECK(emu::thread_order() == ThreadOrder::Reverse);
  }
  CHECK(emu::thread_order() == before);
}

}  // namespace
}  // namespace unet::emu_test
