// `unet profile`: where a training step's time goes. Runs warm-up steps, then N profiled steps of
// the model on a batch of phantom slices, and prints one row per kernel (calls, time, share of
// the step, achieved GFLOP/s and GB/s) and the forward / backward / Adam split; writes every call
// as a Chrome trace (engine/profiler.h).
#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include <omp.h>

#include "engine/profiler.h"
#include "train/adam.h"
#include "train/io/files.h"
#include "train/phantom.h"
#include "train/step.h"
#include "tools/commands.h"
#include "tools/model_flags.h"

namespace unet::cli {
namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

void print_table(const std::vector<ProfileRow>& rows, double step_ms, int steps) {
  const double wall = step_ms * steps;
  std::printf("\n%-34s %7s %11s %7s %9s %9s %8s\n", "kernel", "calls", "total ms", "share", "ms/step", "GFLOP/s", "GB/s");
  std::printf("%s\n", std::string(91, '-').c_str());
  double kernels_ms = 0;
  for (const ProfileRow& r : rows) {
    const double seconds = r.total_ms / 1000;
    std::printf("%-34s %7ld %11.2f %6.1f%% %9.2f %9.2f %8.2f\n", r.kernel.c_str(), r.calls, r.total_ms,
                100 * r.total_ms / wall, r.total_ms / steps, seconds > 0 ? r.flops / seconds / 1e9 : 0.0,
                seconds > 0 ? r.bytes / seconds / 1e9 : 0.0);
    kernels_ms += r.total_ms;
  }
  std::printf("%s\n", std::string(91, '-').c_str());
  std::printf("%-34s %7s %11.2f %6.1f%% %9.2f\n", "all kernels", "", kernels_ms, 100 * kernels_ms / wall, kernels_ms / steps);
  std::printf("%-34s %7s %11.2f %6.1f%% %9.2f\n", "outside kernels (autograd, allocator)", "", wall - kernels_ms,
              100 * (wall - kernels_ms) / wall, (wall - kernels_ms) / steps);
  std::printf("%-34s %7s %11.2f %6.1f%% %9.2f\n", "training steps (wall)", "", wall, 100.0, step_ms);
}

}  // namespace

int run_profile(int argc, char** argv) {
  Args args("profile",
            "Profiles training steps of a U-Net (the reference model by default) on a batch of phantom\n"
            "slices: one row per kernel with calls, time, share of the step, GFLOP/s and GB/s, and a\n"
            "Chrome trace of every call (open it in https://ui.perfetto.dev or chrome://tracing).\n"
            "On CUDA every kernel is timed between two synchronisations.");
  add_model_flags(args);
  args.option("size", "pixels", "240", "input height and width")
      .option("batch", "n", "6", "batch size")
      .option("steps", "n", "5", "profiled training steps")
      .option("warmup", "n", "1", "untimed steps first (fill the allocator's cache, pick algorithms)")
      .option("loss", "name", "mse", "mse, bce, dice, bce_dice or neg_log_iou")
      .option("lr", "rate", "0.002", "Adam learning rate")
      .option("trace", "file", "profile_trace.json", "Chrome trace output ('' for none)")
      .option("seed", "n", "1", "seed for the weights, the phantom batch and dropout");
  add_device_flags(args);
  if (!args.parse(argc, argv)) return 0;

  const UNetConfig config = model_config_from(args);
  const int size = args.get_int("size"), batch = args.get_int("batch");
  const int steps = args.get_int("steps"), warmup = args.get_int("warmup");
  if (size < 16 || size % (1 << config.depth) != 0) {
    throw UsageError("unet profile: --size must be at least 16 and a multiple of 2^depth = " + std::to_string(1 << config.depth));
  }
  if (batch < 1 || steps < 1 || warmup < 0) throw UsageError("unet profile: --batch and --steps must be >= 1, --warmup >= 0");
  const LossKind loss_kind = parse_loss(args.get("loss"), "profile");
  const Device device = device_from(args, "profile");
  const uint64_t seed = uint64_t(args.get_int64("seed"));

  UNet model(config, seed);
  model.to(device);
  model.train();
  AdamOptions ao;
  ao.lr = args.get_float("lr");
  Adam adam(model.named_parameters(), ao);
  PhantomOptions po;
  po.size = size;
  po.channels = config.in_channels;
  const PhantomBatch data = make_phantom_batch(po, seed, batch);  // a tumour in most slices

  auto step = [&] {
    const Tensor x = Tensor::from_vector({batch, config.in_channels, size, size}, data.image, device);
    const Tensor y = Tensor::from_vector({batch, 1, size, size}, data.mask, device);
    const double loss = train_step(model, adam, loss_kind, x, y).item();
    if (!std::isfinite(loss)) throw std::runtime_error("training diverged: the loss is " + std::to_string(loss));
  };

  std::printf("unet profile: %lld parameters, batch %d of %dx%dx%d, loss %s, on %s (%d CPU threads)\n",
              static_cast<long long>(model.parameter_count() + model.buffer_count()), batch, config.in_channels, size,
              size, to_string(loss_kind).c_str(), to_string(device).c_str(), omp_get_max_threads());
  for (int i = 0; i < warmup; ++i) step();

  Profiler profiler(device);
  std::vector<double> step_ms;
  for (int i = 0; i < steps; ++i) {
    const auto start = Clock::now();
    {
      ProfileRange range("train_step");
      step();
    }
    step_ms.push_back(ms_since(start));
    std::printf("step %d/%d: %.1f ms\n", i + 1, steps, step_ms.back());
    std::fflush(stdout);
  }
  double mean = 0;
  for (double t : step_ms) mean += t / steps;
  print_table(profiler.summary(), mean, steps);

  std::map<std::string, double> phases;
  for (const ProfileEvent& e : profiler.events()) {
    if (e.is_range && e.name != "train_step") phases[e.name] += e.duration_us / 1000 / steps;
  }
  std::printf("\nper step: %.1f ms (%.2f images/s); forward %.1f ms, backward %.1f ms, adam %.1f ms\n", mean,
              1000.0 * batch / mean, phases["forward"], phases["backward"], phases["adam"]);

  const std::string trace = args.get("trace");
  if (!trace.empty()) {
    const std::string json = profiler.chrome_trace();
    io::write_file_atomic(trace, std::vector<uint8_t>(json.begin(), json.end()));
    std::printf("trace: %s (%zu events; open in https://ui.perfetto.dev or chrome://tracing)\n", trace.c_str(),
                profiler.events().size());
  }
  return 0;
}

}  // namespace unet::cli
