// The kernel lab's test table, in the style of ggml's test-backend-ops: every CPU variant of every
// primitive (kernels/cpu/variants.h) runs on a table of calls (every distinct call of a training
// step and an inference pass of the reference model at batch 1, 240x240; a small model's; odd
// convolution shapes) and must match its primitive's reference variant. The reference variants
// themselves are checked against double-precision loops and central finite differences in
// tests/kernels. Every variant must also give the same bits with 1 and 2 threads.
#include <catch2/catch.hpp>
#include <omp.h>

#include <string>
#include <vector>

#include "bench/kernel_args.h"
#include "bench/kernel_cases.h"
#include "kernels/cpu/variants.h"

using namespace unet;
using kernels::Kernel;
using kernels::KernelCall;
using kernels::Padding;

namespace {

// Shapes the model never makes: widths that leave partial vectors of 8 and 16 lanes, one pixel
// wide, 1x1 and 2x2 kernels, 'valid' and asymmetric 'same' padding, one channel, batch 3.
std::vector<KernelCall> odd_convolutions() {
  std::vector<kernels::Conv2dShape> shapes = {
      kernels::conv2d_shape(3, 3, 7, 5, 5, 3, 1, Padding::Same),
      kernels::conv2d_shape(1, 5, 9, 17, 7, 3, 1, Padding::Same),
      kernels::conv2d_shape(2, 4, 6, 33, 9, 3, 1, Padding::Valid),
      kernels::conv2d_shape(1, 2, 5, 1, 3, 3, 1, Padding::Same),
      kernels::conv2d_shape(2, 6, 8, 31, 1, 1, 1, Padding::Same),
      kernels::conv2d_shape(1, 3, 10, 15, 4, 2, 1, Padding::Same),
      kernels::conv2d_shape(1, 17, 12, 12, 19, 3, 1, Padding::Same),
      kernels::conv2d_shape(2, 3, 9, 9, 4, 3, 2, Padding::Same),  // stride 2: direct variants decline
  };
  std::vector<KernelCall> calls;
  for (const auto& s : shapes) {
    for (Kernel k : {Kernel::conv2d_forward, Kernel::conv2d_backward_data, Kernel::conv2d_backward_filter}) {
      calls.push_back(kernels::make_call(k, s, true));
      calls.push_back(kernels::make_call(k, s, false));
    }
  }
  return calls;
}

std::vector<KernelCall> table() {
  std::vector<KernelCall> calls = bench::model_calls(UNetConfig{}, 1, 240);
  UNetConfig small;
  small.base_filters = 3;
  small.depth = 2;
  for (const KernelCall& c : bench::model_calls(small, 2, 20)) calls.push_back(c);
  for (const KernelCall& c : odd_convolutions()) calls.push_back(c);
  return calls;
}

const cpu::Variant& reference_of(Kernel kernel) {
  for (const cpu::Variant* v : cpu::variants_of(kernel)) {
    if (v->reference) return *v;
  }
  FAIL("no reference variant for " << kernels::name(kernel));
  throw;
}

// Runs `variant` on `call` with `threads` threads; operands from seed 11.
struct Run {
  Run(const KernelCall& call, const cpu::Variant& variant, int threads) : args(call, backend(Device::CPU), 11) {
    const int before = omp_get_max_threads();
    omp_set_num_threads(threads);
    cpu::force_variant(call.kernel, &variant);
    args.run();
    cpu::force_variant(call.kernel, nullptr);
    omp_set_num_threads(before);
  }
  bench::KernelArgs args;
};

}  // namespace

TEST_CASE("every CPU variant matches its reference on the model's shapes, odd shapes and batch 1", "[variants]") {
  int compared = 0;
  for (const KernelCall& call : table()) {
    const cpu::Variant& reference = reference_of(call.kernel);
    for (const cpu::Variant* v : cpu::variants_of(call.kernel)) {
      if (v == &reference || !v->handles_call(call)) continue;
      if (!v->runs_here()) {
        WARN("skipped: " << kernels::name(call.kernel) << ":" << v->name << " needs " << cpu::to_string(v->isa));
        continue;
      }
      INFO(kernels::name(call.kernel) << ":" << v->name << " on " << kernels::describe(call));
      Run got(call, *v, 2), want(call, reference, 2);
      CHECK(got.args.compare_outputs(want.args, 2e-5) == "");
      ++compared;
    }
  }
  CHECK(compared > 0);
}

TEST_CASE("every CPU variant gives the same bits with 1 and 2 threads", "[variants]") {
  UNetConfig small;
  small.base_filters = 4;
  small.depth = 2;
  std::vector<KernelCall> calls = bench::model_calls(small, 2, 36);
  for (const KernelCall& c : odd_convolutions()) calls.push_back(c);
  for (const KernelCall& call : calls) {
    for (const cpu::Variant* v : cpu::variants_of(call.kernel)) {
      if (!v->runs_here() || !v->handles_call(call)) continue;
      INFO(kernels::name(call.kernel) << ":" << v->name << " on " << kernels::describe(call));
      Run one(call, *v, 1), two(call, *v, 2);
      CHECK(two.args.compare_outputs(one.args, 0.0) == "");
    }
  }
}

TEST_CASE("forcing variants by name: known names apply, unknown ones are refused with the reason", "[variants]") {
  const KernelCall call = kernels::make_call(Kernel::conv2d_forward, kernels::conv2d_shape(1, 2, 4, 4, 2, 3, 1, Padding::Same), true);
  cpu::force_variants("im2col_gemm");
  CHECK(std::string(cpu::choose(call).name) == "im2col_gemm");
  cpu::force_variants("conv2d_forward=direct_avx2");
  CHECK(std::string(cpu::choose(call).name) == "direct_avx2");
  CHECK_THROWS_WITH(cpu::force_variants("conv2d_forward=nope"), Catch::Contains("no CPU variant named 'nope'"));
  CHECK_THROWS_WITH(cpu::force_variants("conv9d=im2col_gemm"), Catch::Contains("unknown primitive 'conv9d'"));
  CHECK(std::string(cpu::choose(call).name) == "direct_avx2");  // a refused list changes nothing
  cpu::force_variants("default");
  CHECK(cpu::choose(call).runs_here());
  CHECK_FALSE(cpu::choose(call).reference);  // a direct variant wins the rule on a stride-1 shape
  const KernelCall strided = kernels::make_call(Kernel::conv2d_forward, kernels::conv2d_shape(1, 2, 4, 4, 2, 3, 2, Padding::Same), true);
  CHECK(cpu::choose(strided).reference);
}
