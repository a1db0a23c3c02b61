// Google Benchmark figures for every kernel (every CPU variant of it), forward and backward, on the shapes the reference
// model really runs (batch 6 or --batch=N, 240x240, each distinct shape once: bench/kernel_cases.h) and on one
// small shape per kernel. CPU kernels always; CUDA kernels (handwritten, and cuDNN for
// convolutions) when a GPU is present.
//
// Counters: GFLOP/s and GB/s from kernels::cost() (the FLOPs and compulsory bytes of each call,
// docs/KERNELS.md), and the percentage of the peak FLOP/s and bandwidth this run probed on this
// machine. Times are wall-clock per call (manual time: operand resets between calls are not
// counted); CUDA times come from events around the kernel after an L2 flush, and each CUDA result
// is checked against the CPU kernel's after the timing loop.
//
// Our own lines (the probed peaks, skipped CUDA) go to stderr: stdout is Google Benchmark's report.
//   build/bench/bench_kernels [--threads=N] [--tiny] [Google Benchmark flags]
//   e.g. --benchmark_filter='cpu/conv2d' --benchmark_out=kernels.json --benchmark_out_format=json
#include <benchmark/benchmark.h>
#include <omp.h>

#include <chrono>
#include <cstdio>
#include <string>

#include "bench/kernel_args.h"
#include "bench/kernel_cases.h"
#include "bench/machine.h"
#include "engine/options.h"
#include "kernels/cpu/variants.h"
#if defined(UNET_HAVE_CUDA)
#include "bench/gpu.h"
#endif

namespace unet::bench {
namespace {

using kernels::Kernel;
using kernels::KernelCall;

void set_counters(benchmark::State& state, const KernelCall& call, double seconds, const Peak& peak) {
  const kernels::Cost c = kernels::cost(call);
  const double calls = double(state.iterations());
  const double gflops = c.flops * calls / seconds / 1e9, gbps = c.bytes * calls / seconds / 1e9;
  state.counters["GFLOP/s"] = gflops;
  state.counters["GB/s"] = gbps;
  state.counters["%peak_flops"] = 100 * gflops / peak.gflops;
  state.counters["%peak_bw"] = 100 * gbps / peak.gbps;
  state.counters["bytes"] = c.bytes;
}

// Times one CPU variant: it is forced for the benchmark's duration.
void run_cpu(benchmark::State& state, const KernelCall& call, const cpu::Variant& variant, const Peak& peak) {
  cpu::force_variant(call.kernel, &variant);
  KernelArgs args(call, backend(Device::CPU), 1);
  args.run();  // first touch of the outputs, outside the timing
  double total = 0;
  for (auto _ : state) {
    args.restore();
    const auto start = std::chrono::steady_clock::now();
    args.run();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    state.SetIterationTime(s);
    total += s;
  }
  cpu::force_variant(call.kernel, nullptr);
  set_counters(state, call, total, peak);
}

// e.g. "cpu/conv2d_forward:direct_avx2/ref:6x3x240x240->6x16x240x240_k3_s1_+bias" (no spaces: easy
// to filter); `implementation` is the CPU variant, or "" on a GPU.
std::string case_name(const std::string& device, const KernelCase& c, const std::string& implementation = "") {
  std::string shape;
  for (char ch : kernels::describe(c.call)) {
    if (ch != ' ') shape += ch;
    else if (shape.back() != '>') shape += '_';
  }
  for (std::size_t at = shape.find("_->"); at != std::string::npos; at = shape.find("_->")) shape.erase(at, 1);
  return device + "/" + kernels::name(c.call.kernel) + (implementation.empty() ? "" : ":" + implementation) + "/" +
         c.set + ":" + shape;
}

#if defined(UNET_HAVE_CUDA)
bool has_cudnn_twin(Kernel k) {
  return k == Kernel::conv2d_forward || k == Kernel::conv2d_backward_data || k == Kernel::conv2d_backward_filter ||
         k == Kernel::conv_transpose2d_forward || k == Kernel::conv_transpose2d_backward_data ||
         k == Kernel::conv_transpose2d_backward_filter;
}

void run_cuda(benchmark::State& state, const KernelCall& call, bool cudnn, const Peak& peak) {
  engine_options().conv = cudnn ? ConvImpl::Cudnn : ConvImpl::Handwritten;
  Backend& gpu_backend = backend(Device::CUDA);
  KernelArgs args(call, gpu_backend, 1);
  args.run();  // cuDNN picks its algorithm on the first call of a shape
  gpu::EventTimer timer;
  double total = 0;
  for (auto _ : state) {
    args.restore();
    gpu::flush_l2();
    timer.start();
    args.run();
    const double s = timer.stop_seconds();
    state.SetIterationTime(s);
    total += s;
  }
  KernelArgs reference(call, backend(Device::CPU), 1);
  reference.run();
  const std::string error = args.compare_outputs(reference, 2e-3);
  if (!error.empty()) {
    state.SkipWithError(("re-validation against the CPU kernel failed: " + error).c_str());
    return;
  }
  set_counters(state, call, total, peak);
}

void register_cuda(const std::vector<KernelCase>& cases, bool tiny) {
  std::string why;
  if (!gpu::available(&why)) {
    std::fprintf(stderr, "CUDA kernel benchmarks skipped: %s\n", why.c_str());
    return;
  }
  static const Peak peak = gpu::probe_peak();
  benchmark::AddCustomContext("gpu", gpu::device_name());
  benchmark::AddCustomContext("gpu_peak_fp32_gflops", std::to_string(peak.gflops));
  benchmark::AddCustomContext("gpu_peak_bandwidth_gbps", std::to_string(peak.gbps));
  std::fprintf(stderr, "GPU %s: probed peak %.0f GFLOP/s FP32, %.0f GB/s\n", gpu::device_name().c_str(), peak.gflops, peak.gbps);
  for (const KernelCase& c : cases) {
    for (bool cudnn : {false, true}) {
      if (cudnn && !has_cudnn_twin(c.call.kernel)) continue;
      auto* b = benchmark::RegisterBenchmark(case_name(cudnn ? "cudnn" : "cuda", c).c_str(),
                                             [call = c.call, cudnn](benchmark::State& s) { run_cuda(s, call, cudnn, peak); });
      b->UseManualTime()->Unit(benchmark::kMicrosecond);
      if (tiny) b->Iterations(1);
    }
  }
}
#else
void register_cuda(const std::vector<KernelCase>&, bool) {
  std::fprintf(stderr, "CUDA kernel benchmarks skipped: this build has no CUDA backend (configured without nvcc)\n");
}
#endif

}  // namespace
}  // namespace unet::bench

int main(int argc, char** argv) {
  using namespace unet;
  using namespace unet::bench;
  return benchmark_main("bench_kernels", argc, argv, [](Flags& flags) {
    // The reference model on its real shapes; --tiny: a small model on tiny ones (CI).
    UNetConfig config;
    int batch = flags.batch, size = 240, small = 32;
    if (flags.tiny) {
      config.base_filters = 4;
      config.depth = 2;
      batch = 1;
      size = 16;
      small = 8;
    }
    const std::vector<KernelCase> cases = kernel_cases(config, batch, size, small);

    static const Peak cpu_peak = probe_cpu_peak();
    std::fprintf(stderr, "CPU %s, %d threads: probed peak %.1f GFLOP/s FP32, %.1f GB/s\n", cpu_model().c_str(),
                 omp_get_max_threads(), cpu_peak.gflops, cpu_peak.gbps);
    benchmark::AddCustomContext("cpu_peak_fp32_gflops", std::to_string(cpu_peak.gflops));
    benchmark::AddCustomContext("cpu_peak_bandwidth_gbps", std::to_string(cpu_peak.gbps));
    // Every CPU variant that runs here and handles the shape, side by side.
    for (const KernelCase& c : cases) {
      for (const cpu::Variant* v : cpu::variants_of(c.call.kernel)) {
        if (!v->runs_here() || !v->handles_call(c.call)) continue;
        auto* b = benchmark::RegisterBenchmark(case_name("cpu", c, v->name).c_str(), [call = c.call, v](benchmark::State& s) {
          run_cpu(s, call, *v, cpu_peak);
        });
        b->UseManualTime()->Unit(benchmark::kMicrosecond);
        if (flags.tiny) b->Iterations(1);
      }
    }
    register_cuda(cases, flags.tiny);
  });
}
