// Emulation layer: warp shuffles, votes, __syncwarp, warp faults and atomics.
#include <algorithm>
#include <catch2/catch.hpp>
#include <climits>
#include <numeric>
#include <vector>

#include "tests/emu/emu_support.h"
#include "tests/emu/test_kernels.h"
#include "tests/support/cuda_test.h"

namespace unet::emu_test {
namespace {

using Catch::Matchers::Contains;
using test::DeviceBuffer;

// CUDA's documented semantics, written independently of the emulator's PTX-style arithmetic.
struct ShuffleCase {
  unsigned delta;
  int lane_mask;
  int src_lane;
  int width;
};

std::vector<int> expected_shuffles(const std::vector<int>& in, const ShuffleCase& c) {
  const int threads = static_cast<int>(in.size());
  std::vector<int> out(threads * 7);
  for (int i = 0; i < threads; ++i) {
    const int base = i / 32 * 32, lane = i % 32;
    const int seg = lane / c.width * c.width, pos = lane - seg;
    const int own = in[i];
    const int delta = static_cast<int>(c.delta);
    const int down = pos + delta < c.width ? in[i + delta] : own;
    const int up = pos >= delta ? in[i - delta] : own;
    const int x = lane ^ c.lane_mask;
    const int xr = x < seg + c.width ? in[base + x] : own;  // earlier groups are readable
    const int idx = in[base + seg + ((c.src_lane % c.width) + c.width) % c.width];
    int* o = &out[i * 7];
    o[0] = down, o[1] = up, o[2] = xr, o[3] = idx, o[4] = down, o[5] = xr, o[6] = idx;
  }
  return out;
}

TEST_CASE("emu: shuffles down/up/xor/idx with widths 1 to 32", "[emu]") {
  const ShuffleCase cases[] = {{1, 1, 0, 32},  {3, 5, 7, 8}, {16, 16, 33, 32}, {2, 12, -1, 8},
                               {5, 3, -1, 16}, {0, 0, 0, 1}, {1, 1, 1, 2}};
  const int threads = 64;
  std::vector<int> in(threads);
  for (int i = 0; i < threads; ++i) in[i] = i * 3 + 1;
  DeviceBuffer<int> din(in), dout(threads * 7);
  for (const ShuffleCase& c : cases) {
    INFO("delta " << c.delta << " lane_mask " << c.lane_mask << " src_lane " << c.src_lane
                  << " width " << c.width);
    shuffles(threads, din.get(), dout.get(), c.delta, c.lane_mask, c.src_lane, c.width);
    CHECK(dout.download() == expected_shuffles(in, c));
  }
}

TEST_CASE("emu: ballot, any and all, a partial last warp votes with its existing lanes", "[emu]") {
  const int threads = 80;  // warps of 32, 32 and 16 lanes
  std::vector<int> pred(threads);
  for (int i = 0; i < 32; ++i) pred[i] = i % 3 == 0 ? 7 : 0;  // mixed, non-0/1 truth values
  for (int i = 32; i < 64; ++i) pred[i] = 0;
  for (int i = 64; i < 80; ++i) pred[i] = 1;
  DeviceBuffer<int> dpred(pred), any(threads), all(threads);
  DeviceBuffer<unsigned> ballot(threads);
  votes(threads, dpred.get(), ballot.get(), any.get(), all.get());
  const auto b = ballot.download();
  const auto an = any.download();
  const auto al = all.download();
  unsigned mixed = 0;
  for (int i = 0; i < 32; i += 3) mixed |= 1u << i;
  for (int i = 0; i < threads; ++i) {
    INFO("thread " << i);
    if (i < 32) {
      CHECK(b[i] == mixed);
      CHECK(an[i] == 1);
      CHECK(al[i] == 0);
    } else if (i < 64) {
      CHECK(b[i] == 0u);
      CHECK(an[i] == 0);
      CHECK(al[i] == 0);
    } else {
      CHECK(b[i] == 0x0000ffffu);
      CHECK(an[i] == 1);
      CHECK(al[i] == 1);
    }
  }
}

TEST_CASE("emu: half-warps with disjoint masks shuffle and __syncwarp independently", "[emu]") {
  const int threads = 64;
  std::vector<int> in(threads);
  std::iota(in.begin(), in.end(), 0);
  DeviceBuffer<int> din(in), dout(threads);
  for (emu::ThreadOrder order :
       {emu::ThreadOrder::Forward, emu::ThreadOrder::Reverse, emu::ThreadOrder::Random}) {
    OrderScope scope(order, 4);
    half_warp_sums(threads, din.get(), dout.get());
    const auto out = dout.download();
    for (int i = 0; i < threads; ++i) {
      const int first = i / 16 * 16;
      REQUIRE(out[i] == 16 * first + 120);  // first + (first + 1) + ... + (first + 15)
    }
  }
}

TEST_CASE("emu: warp sum by __shfl_down_sync", "[emu]") {
  std::vector<float> x(64);
  for (int i = 0; i < 64; ++i) x[i] = static_cast<float>(i % 5);
  DeviceBuffer<float> dx(x), out(2);
  warp_sums(64, dx.get(), out.get());
  const auto s = out.download();
  CHECK(s[0] == std::accumulate(x.begin(), x.begin() + 32, 0.0f));
  CHECK(s[1] == std::accumulate(x.begin() + 32, x.end(), 0.0f));
}

TEST_CASE("emu: warp faults are reported", "[emu]") {
  SECTION("a shuffle reading a lane past the end of a partial warp") {
    DeviceBuffer<float> dx(std::vector<float>(48, 1.0f)), out(2);
    const auto e = launch_error([&] { warp_sums(48, dx.get(), out.get()); });
    CHECK_THAT(e.what(), Contains("warp_sums_kernel") && Contains("__shfl_down_sync") &&
                             Contains("test_kernels.cu:") && Contains("does not exist") &&
                             Contains("16 lanes"));
  }
  SECTION("a lane outside its own mask") {
    DeviceBuffer<int> out(32);
    const auto e = launch_error([&] { shuffle_outside_mask(out.get()); });
    CHECK_THAT(e.what(),
               Contains("__shfl_sync") && Contains("mask 0x00000001") && Contains("leaves out"));
  }
  SECTION("a lane that returned before a full-mask shuffle") {
    DeviceBuffer<int> out(32);
    for (emu::ThreadOrder order :
         {emu::ThreadOrder::Forward, emu::ThreadOrder::Reverse, emu::ThreadOrder::Random}) {
      OrderScope scope(order, 9);
      const auto e = launch_error([&] { shuffle_after_return(out.get()); });
      CHECK_THAT(e.what(),
                 Contains("__shfl_down_sync") && Contains("lane 3") && Contains("returned"));
    }
  }
}

TEST_CASE("emu: atomics return the old value and are never torn", "[emu]") {
  const int blocks = 4, threads = 96, n = blocks * threads;
  std::vector<int> counters = {0, 0, INT_MIN, INT_MAX, 0, -1, -7, 0};
  DeviceBuffer<int> tickets(n), dcounters(counters), exchanged(n);
  DeviceBuffer<unsigned long long> ull(std::vector<unsigned long long>{10});
  DeviceBuffer<float> f(std::vector<float>{1.0f});
  DeviceBuffer<double> d(std::vector<double>{2.0});
  atomics(blocks, threads, tickets.get(), dcounters.get(), exchanged.get(), ull.get(), f.get(),
          d.get());
  const auto c = dcounters.download();
  auto t = tickets.download();
  std::sort(t.begin(), t.end());
  std::vector<int> all(n);
  std::iota(all.begin(), all.end(), 0);
  CHECK(t == all);
  CHECK(c[0] == n);
  CHECK(static_cast<unsigned>(c[1]) == 2u * n);
  CHECK(c[2] == n - 1);
  CHECK(c[3] == -(n - 1));
  CHECK(static_cast<unsigned>(c[4]) == static_cast<unsigned>(n - 1));
  CHECK(static_cast<unsigned>(c[5]) == 5u);
  const auto ex = exchanged.download();
  CHECK(std::accumulate(ex.begin(), ex.end(), 0LL) + c[6] == -7LL + 1LL * n * (n - 1) / 2);
  CHECK(c[7] == n);
  CHECK(ull.download()[0] == 10ull + 3ull * n);
  CHECK(f.download()[0] == 1.0f + 0.5f * n);
  CHECK(d.download()[0] == 2.0 + 0.25 * n);
}

}  // namespace
}  // namespace unet::emu_test
