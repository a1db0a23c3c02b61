// End-to-end figures of the reference model: training-step time and images/s (forward, loss,
// backward, Adam: train/step.h), inference images/s (eval mode, no autograd, probabilities copied
// back to the host), at batch 1, 6 and 16, with the peak device memory the engine's allocator had
// in use (weights, gradients, Adam moments and activations; not the cache it keeps for reuse).
//
//   build/bench/bench_e2e [--threads=N] [--size=240] [--batches=1,6,16] [--tiny] [Google Benchmark flags]
//
// Our own lines go to stderr, so that stdout holds only Google Benchmark's report (pure JSON with
// --benchmark_format=json). Names: <device>/train_step/batch:<n> and <device>/inference/batch:<n>; time per step or pass;
// counters images_per_s and peak_MB. bench/peers/pytorch_unet.py reads this binary's JSON.
#include <benchmark/benchmark.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <numeric>
#include <string>
#include <vector>

#include "bench/machine.h"
#include "engine/autograd.h"
#include "train/phantom.h"
#include "train/step.h"
#if defined(UNET_HAVE_CUDA)
#include "bench/gpu.h"
#endif

namespace unet::bench {
namespace {

struct Setup {
  UNetConfig config;
  int size = 240;
};

std::pair<Tensor, Tensor> phantom_batch(const Setup& setup, int batch, Device device) {
  PhantomOptions po;
  po.size = setup.size;
  po.channels = setup.config.in_channels;
  const PhantomBatch data = make_phantom_batch(po, 1, batch);
  return {Tensor::from_vector({batch, setup.config.in_channels, setup.size, setup.size}, data.image, device),
          Tensor::from_vector({batch, 1, setup.size, setup.size}, data.mask, device)};
}

// Times `work` per iteration (it must wait for its results), after one untimed warm-up run that
// fills the allocator's cache; reports images/s, the median step (the statistic the PyTorch peer
// script takes of its own steps: one step slowed by a neighbour moves a mean of three, not a
// median) and the peak bytes in use during the timed runs.
template <typename Work>
void measure(benchmark::State& state, Device device, int batch, Work work) {
  work();
  CachingAllocator& allocator = backend(device).allocator();
  allocator.reset_peak();
  std::vector<double> seconds;
  for (auto _ : state) {
    const auto start = std::chrono::steady_clock::now();
    work();
    seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    state.SetIterationTime(seconds.back());
  }
  const double total = std::accumulate(seconds.begin(), seconds.end(), 0.0);
  state.counters["images_per_s"] = double(batch) * double(seconds.size()) / total;
  state.counters["peak_MB"] = double(allocator.stats().peak_bytes) / 1e6;
  std::sort(seconds.begin(), seconds.end());
  const std::size_t mid = seconds.size() / 2;
  const double median = seconds.size() % 2 ? seconds[mid] : (seconds[mid - 1] + seconds[mid]) / 2;
  state.counters["median_ms"] = median * 1e3;
}

void train_steps(benchmark::State& state, const Setup& setup, Device device, int batch) {
  UNet model(setup.config, 1);
  model.to(device);
  model.train();
  Adam adam(model.named_parameters(), AdamOptions{});
  const auto [image, mask] = phantom_batch(setup, batch, device);
  measure(state, device, batch, [&] { train_step(model, adam, LossKind::MSE, image, mask).item(); });
}

void inference(benchmark::State& state, const Setup& setup, Device device, int batch) {
  UNet model(setup.config, 1);
  model.to(device);
  model.eval();
  NoGradGuard no_grad;
  const auto [image, mask] = phantom_batch(setup, batch, device);
  measure(state, device, batch, [&] { model.probabilities(image).to_vector(); });
}

void register_device(const std::string& prefix, Device device, const Setup& setup, const Flags& flags) {
  for (int batch : flags.batches) {
    auto* t = benchmark::RegisterBenchmark((prefix + "/train_step/batch:" + std::to_string(batch)).c_str(),
                                          [=](benchmark::State& s) { train_steps(s, setup, device, batch); });
    auto* i = benchmark::RegisterBenchmark((prefix + "/inference/batch:" + std::to_string(batch)).c_str(),
                                          [=](benchmark::State& s) { inference(s, setup, device, batch); });
    for (auto* b : {t, i}) {
      b->UseManualTime()->Unit(benchmark::kMillisecond);
      // A CPU training step at batch 16 takes seconds: a fixed count keeps the run short and the
      // figure a median-free mean of equal steps.
      if (flags.tiny) {
        b->Iterations(1);
      } else if (device == Device::CPU) {
        b->Iterations(3);
      }
    }
  }
}

}  // namespace
}  // namespace unet::bench

int main(int argc, char** argv) {
  using namespace unet;
  using namespace unet::bench;
  return benchmark_main("bench_e2e", argc, argv, [](Flags& flags) {
    Setup setup;
    setup.size = flags.size;
    if (flags.tiny) {
      setup.config.base_filters = 4;
      setup.config.depth = 2;
      setup.size = 16;
      flags.batches = {1, 2};
    }
    std::fprintf(stderr, "U-Net %d base filters, depth %d, %dx%dx%d input; CPU %s, %d threads\n", setup.config.base_filters,
                 setup.config.depth, setup.config.in_channels, setup.size, setup.size, cpu_model().c_str(),
                 omp_get_max_threads());
    benchmark::AddCustomContext("input", std::to_string(setup.config.in_channels) + "x" + std::to_string(setup.size) +
                                             "x" + std::to_string(setup.size));
    register_device("cpu", Device::CPU, setup, flags);
#if defined(UNET_HAVE_CUDA)
    std::string why;
    if (gpu::available(&why)) {
      benchmark::AddCustomContext("gpu", gpu::device_name());
      register_device("cuda", Device::CUDA, setup, flags);
    } else {
      std::fprintf(stderr, "CUDA end-to-end benchmarks skipped: %s\n", why.c_str());
    }
#else
    std::fprintf(stderr, "CUDA end-to-end benchmarks skipped: this build has no CUDA backend (configured without nvcc)\n");
#endif
  });
}
