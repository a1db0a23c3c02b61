// Model flags shared by the subcommands that build a U-Net.
#pragma once

#include "models/unet.h"
#include "tools/args.h"

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

inline UNetConfig model_config_from(const Args& args) {
  return UNetConfig::from_map({{"in_channels", args.get("in-channels")},
                               {"out_channels", args.get("out-channels")},
                               {"base_filters", args.get("base-filters")},
                               {"depth", args.get("depth")},
                               {"dropout", args.get("dropout")},
                               {"batch_norm", args.has("no-batch-norm") ? "0" : "1"},
                               {"upsampling", args.get("upsampling")}});
}

}  // namespace unet::cli
