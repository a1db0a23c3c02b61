// The benchmarks' own machinery: the cases cover every kernel, and a replayed call on the CUDA
// backend (emulated here) is checked against the CPU replay, which must catch a wrong result.
#include <catch2/catch.hpp>

#include <set>

#include "bench/kernel_args.h"
#include "bench/kernel_cases.h"

using namespace unet;
using kernels::Kernel;

namespace {

UNetConfig tiny_config() {
  UNetConfig c;
  c.base_filters = 2;
  c.depth = 1;
  return c;
}

}  // namespace

TEST_CASE("the benchmark cases cover every kernel but the host copies", "[bench]") {
  std::set<Kernel> seen;
  for (const auto& c : bench::model_calls(tiny_config(), 1, 8)) seen.insert(c.kernel);
  for (int i = 0; i < kernels::kKernelCount; ++i) {
    const Kernel k = Kernel(i);
    INFO(kernels::name(k));
    CHECK(seen.count(k) == (k == Kernel::copy_from_host || k == Kernel::copy_to_host ? 0u : 1u));
  }
}

TEST_CASE("every replayed kernel gives the CPU's result on the emulated CUDA backend", "[bench]") {
  set_cuda_emulation(true);
  for (const auto& call : bench::model_calls(tiny_config(), 1, 8)) {
    INFO(kernels::name(call.kernel) << " " << kernels::describe(call));
    bench::KernelArgs gpu(call, backend(Device::CUDA), 7), cpu(call, backend(Device::CPU), 7);
    gpu.restore();
    gpu.run();
    gpu.run();  // a second run from restored state must not drift (in-place operands reset)
    gpu.restore();
    gpu.run();
    cpu.run();
    CHECK(gpu.compare_outputs(cpu, 2e-3) == "");
  }
}

TEST_CASE("the re-validation catches a result computed from other inputs", "[bench]") {
  kernels::KernelCall call;
  call.kernel = Kernel::add;
  call.count = 64;
  bench::KernelArgs a(call, backend(Device::CPU), 1), b(call, backend(Device::CPU), 2);
  a.run();
  b.run();
  CHECK_THAT(a.compare_outputs(b, 1e-3), Catch::StartsWith("y[0] = "));
}
