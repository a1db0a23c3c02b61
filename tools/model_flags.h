// Flags shared by the subcommands that build a U-Net (model shape, loss) and train it (device).
#pragma once

#include <omp.h>

#include <string>

#include "engine/backend.h"
#include "engine/options.h"
#include "kernels/cpu/variants.h"
#include "models/unet.h"
#include "tools/args.h"
#include "train/io/files.h"

namespace unet::cli {

inline void add_model_flags(Args& args) {
  const UNetConfig d;
  args.option("in-channels", "n", std::to_string(d.in_channels), "input channels")
      .option("out-channels", "n", std::to_string(d.out_channels), "output channels")
      .option("base-filters", "n", std::to_string(d.base_filters), "filters of the first level (doubled per level)")
      .option("depth", "n", std::to_string(d.depth), "number of poolings")
      .option("dropout", "p", "0.05", "dropout rate (half after the first pooling)")
      .option("upsampling", "mode", "transposed3x3", "transposed3x3 (3x3 stride 2 'same') or transposed2x2")
      .flag("no-batch-norm", "conv blocks without batch normalisation");
}

// Flag values are checked here so that errors name the flag (exit code 2), then the config's own
// rules apply.
inline UNetConfig model_config_from(const Args& args) {
  UNetConfig c;
  c.in_channels = args.get_int("in-channels");
  c.out_channels = args.get_int("out-channels");
  c.base_filters = args.get_int("base-filters");
  c.depth = args.get_int("depth");
  c.dropout = args.get_float("dropout");
  c.batch_norm = !args.has("no-batch-norm");
  const std::string up = args.get("upsampling");
  if (up != "transposed3x3" && up != "transposed2x2") {
    throw UsageError("--upsampling must be transposed3x3 or transposed2x2, got '" + up + "'");
  }
  c.upsampling = up == "transposed3x3" ? Upsampling::Transposed3x3 : Upsampling::Transposed2x2;
  try {
    c.validate();
  } catch (const std::invalid_argument& e) {
    throw UsageError(e.what());
  }
  return c;
}

// --kernels: which CPU kernel variants run (`unet kernels` lists them).
inline void add_kernels_flag(Args& args) {
  args.option("kernels", "list", "default",
              "force CPU kernel variants: 'primitive=variant' or a variant name for every primitive that has it, "
              "comma-separated (e.g. im2col_gemm, conv2d_forward=direct_avx2); also UNET_KERNELS");
}

inline void apply_kernels_flag(const Args& args, const std::string& command) {
  if (args.get("kernels") == "default") return;  // UNET_KERNELS, if set, stays in force
  try {
    cpu::force_variants(args.get("kernels"));
  } catch (const std::invalid_argument& e) {
    throw UsageError("unet " + command + ": --kernels: " + e.what());
  }
}

// --max-input-mb: the decoded size above which a reader refuses a file (train/io/files.h).
inline void add_input_limit_flag(Args& args) {
  args.option("max-input-mb", "n", std::to_string(io::max_input_bytes() >> 20),
              "largest image or volume a reader decodes, in MiB of float values (a guard against "
              "corrupt or hostile headers)");
}

inline void apply_input_limit_flag(const Args& args, const std::string& command) {
  const int mb = args.get_int("max-input-mb");
  if (mb < 1) throw UsageError("unet " + command + ": --max-input-mb must be >= 1");
  io::set_max_input_bytes(std::size_t(mb) << 20);
}

// --threads, --device, --conv and --kernels, for the commands that train.
inline void add_device_flags(Args& args) {
  args.option("threads", "n", "0", "CPU threads (0: all cores)")
      .option("device", "name", "auto", "auto (CUDA when a GPU is usable, else CPU), cpu or cuda")
      .option("conv", "impl", "auto",
              "CUDA convolutions: auto (per pass and shape, whichever was measured faster), cudnn or handwritten");
  add_kernels_flag(args);
}

// Applies --threads, --conv and --kernels, then resolves --device (which throws its reason when unusable).
inline Device device_from(const Args& args, const std::string& command) {
  if (args.get_int("threads") < 0) throw UsageError("unet " + command + ": --threads must be >= 0");
  if (args.get_int("threads") > 0) omp_set_num_threads(args.get_int("threads"));
  const std::string conv = args.get("conv");
  if (conv != "auto" && conv != "cudnn" && conv != "handwritten") {
    throw UsageError("unet " + command + ": --conv must be auto, cudnn or handwritten, got '" + conv + "'");
  }
  engine_options().conv = conv == "auto" ? ConvImpl::Auto : conv == "cudnn" ? ConvImpl::Cudnn : ConvImpl::Handwritten;
  apply_kernels_flag(args, command);
  return resolve_device(args.get("device"));
}

inline LossKind parse_loss(const std::string& name, const std::string& command) {
  for (LossKind k : {LossKind::MSE, LossKind::BCE, LossKind::Dice, LossKind::BCEDice, LossKind::NegLogIoU}) {
    if (to_string(k) == name) return k;
  }
  throw UsageError("unet " + command + ": --loss must be one of mse, bce, dice, bce_dice, neg_log_iou; got '" + name + "'");
}

}  // namespace unet::cli
