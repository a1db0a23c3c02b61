// `unet train`: the reference workflow: load a dataset (the synthetic phantom by default), split
// it 80/20 by patient, train with Adam, reduce-on-plateau and early stopping, and leave a run
// folder with checkpoints, a CSV log, a curves image and a JSON summary (train/trainer.h).
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <optional>

#include <omp.h>

#include "train/dataset.h"
#include "train/split.h"
#include "train/trainer.h"
#include "tools/commands.h"
#include "tools/model_flags.h"

namespace unet::cli {
namespace {

// Values that would train uphill, never decay or never stop are refused before anything runs.
void check_training_flags(const Args& args, const UNetConfig& config) {
  const auto require = [](bool ok, const std::string& rule) {
    if (!ok) throw UsageError("unet train: " + rule);
  };
  const auto finite = [&](const char* flag) { return std::isfinite(args.get_float(flag)); };
  require(finite("lr") && args.get_float("lr") > 0, "--lr must be a positive number, got " + args.get("lr"));
  require(finite("weight-decay") && args.get_float("weight-decay") >= 0,
          "--weight-decay must be >= 0, got " + args.get("weight-decay"));
  require(finite("lr-factor") && args.get_float("lr-factor") > 0 && args.get_float("lr-factor") < 1,
          "--lr-factor must be in (0, 1), got " + args.get("lr-factor"));
  require(finite("min-lr") && args.get_float("min-lr") >= 0, "--min-lr must be >= 0, got " + args.get("min-lr"));
  require(finite("min-delta") && args.get_float("min-delta") >= 0,
          "--min-delta must be >= 0, got " + args.get("min-delta"));
  require(finite("val-fraction") && args.get_float("val-fraction") >= 0 && args.get_float("val-fraction") < 1,
          "--val-fraction must be in [0, 1), got " + args.get("val-fraction"));
  require(args.get_int("lr-patience") >= 1 && args.get_int("stop-patience") >= 1,
          "--lr-patience and --stop-patience must be at least 1");
  const int size = args.get_int("size"), multiple = 1 << config.depth;
  require(size >= multiple && size <= kMaxImageSize && size % multiple == 0,
          "--size must be a multiple of 2^depth = " + std::to_string(multiple) + " from " + std::to_string(multiple) +
              " to " + std::to_string(kMaxImageSize) + ", got " + args.get("size"));
}

// Everything after the data is loaded: split, model, training, in the run folder.
int train_into(const Args& args, const UNetConfig& config, const TrainOptions& o, const std::vector<Sample>& samples) {
  // A resumed run keeps the split it was trained on; changed flags are refused later, by name.
  const std::string run_split = o.run_dir + "/split.txt";
  const bool keep_split = o.resume && args.get("split").empty() && std::filesystem::exists(run_split);
  // The data's own train/ and validation/ folders (BraTS) win over a drawn split, unless asked.
  const std::optional<Split> folders =
      keep_split || !args.get("split").empty() || args.has("draw-split") ? std::nullopt : folder_split(samples);
  if (folders)
    std::printf("split: the data's own train/ and validation/ folders (--draw-split draws one by --val-fraction)\n");
  const Split split = keep_split                   ? read_split(run_split, samples)
                      : folders                    ? *folders
                      : args.get("split").empty() ? split_by_patient(samples, args.get_float("val-fraction"), o.seed)
                                                   : read_split(args.get("split"), samples);
  if (!keep_split) write_split(run_split, split);
  const std::vector<int> train = sample_indices(samples, split.train), val = sample_indices(samples, split.val);
  if (train.empty()) throw std::runtime_error("no training slices: every patient went to validation");

  UNet model(config, o.seed);
  model.to(o.device);
  std::printf("unet train: %zu slices of %zu patients from %s (%s), %dx%d, %d channels\n", samples.size(),
              split.train.size() + split.val.size(), args.get("data").c_str(), detect_format(args.get("data")).c_str(),
              args.get_int("size"), args.get_int("size"), config.in_channels);
  std::printf("split: %zu train slices (%zu patients), %zu val slices (%zu patients) -> %s/split.txt\n", train.size(),
              split.train.size(), val.size(), split.val.size(), o.run_dir.c_str());
  std::printf("model: %lld parameters; loss %s, batch %d, lr %g, on %s (%d CPU threads)\n",
              static_cast<long long>(model.parameter_count() + model.buffer_count()), to_string(o.loss).c_str(),
              o.batch_size, double(o.adam.lr), to_string(o.device).c_str(), omp_get_max_threads());
  const TrainResult r = train_model(model, samples, train, val, o);
  std::printf("run folder %s: curves.png, log.csv, best.ckpt (epoch %d), last.ckpt, summary.json\n", o.run_dir.c_str(),
              r.best_epoch);
  return 0;
}

}  // namespace

int run_train(int argc, char** argv) {
  Args args("train",
            "Trains a U-Net. Data: 'phantom' (built-in synthetic MRI, the default), 'phantom:N' (N patients),\n"
            "or a folder in the Kaggle LGG (TIFF), BraTS (NIfTI), NumPy-pairs or image-folder layout.\n"
            "The run folder receives split.txt, log.csv, curves.png, best.ckpt, last.ckpt and summary.json.");
  add_model_flags(args);
  args.option("data", "source", "phantom", "dataset: phantom, phantom:N or a folder")
      .option("out", "dir", "runs/unet", "run folder")
      .option("size", "pixels", "240", "input height and width (images are resized)")
      .option("epochs", "n", "100", "maximum epochs")
      .option("batch", "n", "8", "batch size")
      .option("lr", "rate", "0.002", "Adam learning rate")
      .option("weight-decay", "w", "0", "decoupled weight decay (AdamW)")
      .option("loss", "name", "bce_dice", "mse, bce, dice, bce_dice or neg_log_iou")
      .option("monitor", "value", "val_loss", "val_loss or val_dice: drives LR decay, early stop, best")
      .option("lr-factor", "f", "0.5", "LR multiplier on a plateau")
      .option("lr-patience", "n", "10", "epochs without improvement before the LR drops")
      .option("min-lr", "rate", "1e-6", "lower bound of the LR")
      .option("stop-patience", "n", "15", "epochs without improvement before stopping")
      .option("min-delta", "d", "0.0001", "smallest change that counts as an improvement")
      .option("val-fraction", "f", "0.2", "fraction of patients held out for validation")
      .option("split", "file", "", "reuse this split file instead of drawing one")
      .flag("draw-split", "draw the split by --val-fraction even when the data has train/ and validation/ folders")
      .option("seed", "n", "1", "seed for the split, weights, augmentation and dropout")
      .flag("no-augment", "train without augmentation")
      .flag("no-restore-best", "keep the last epoch's weights instead of the best")
      .flag("resume", "continue the run in --out from its last.ckpt (the same data and settings)")
      .flag("apply-changes", "with --resume: continue with settings that differ from the run's (new --lr replaces the schedule's)");
  add_device_flags(args);
  add_input_limit_flag(args);
  if (!args.parse(argc, argv)) return 0;

  UNetConfig config = model_config_from(args);
  TrainOptions o;
  o.run_dir = args.get("out");
  o.epochs = args.get_int("epochs");
  o.batch_size = args.get_int("batch");
  o.loss = parse_loss(args.get("loss"), "train");
  o.adam.lr = args.get_float("lr");
  o.adam.weight_decay = args.get_float("weight-decay");
  if (args.get("monitor") != "val_loss" && args.get("monitor") != "val_dice") {
    throw UsageError("unet train: --monitor must be val_loss or val_dice");
  }
  o.monitor_dice = args.get("monitor") == "val_dice";
  const Mode mode = o.monitor_dice ? Mode::Max : Mode::Min;
  o.plateau = {mode, args.get_float("lr-factor"), args.get_int("lr-patience"), args.get_float("min-lr"),
               args.get_float("min-delta"), 0};
  o.early = {mode, args.get_int("stop-patience"), args.get_float("min-delta")};
  o.restore_best = !args.has("no-restore-best");
  o.augment = !args.has("no-augment");
  o.seed = uint64_t(args.get_int64("seed"));
  o.resume = args.has("resume");
  o.apply_changes = args.has("apply-changes");
  o.input_size = args.get_int("size");
  for (const char* flag : {"data", "size", "batch", "lr", "weight-decay", "loss", "monitor", "lr-factor", "lr-patience",
                           "min-lr", "stop-patience", "min-delta", "val-fraction", "split", "seed"})
    o.settings[flag] = args.get(flag);
  o.settings["augment"] = args.has("no-augment") ? "no" : "yes";
  o.settings["draw-split"] = args.has("draw-split") ? "yes" : "no";
  if (o.epochs < 1 || o.batch_size < 1) throw UsageError("unet train: --epochs and --batch must be at least 1");
  check_training_flags(args, config);
  o.device = device_from(args, "train");
  apply_input_limit_flag(args, "train");

  DatasetOptions data;
  data.size = args.get_int("size");
  // Without --in-channels the model takes the channels the data has (2 for a BraTS set of two
  // modalities, 3 for LGG's RGB slices), which no user should have to look up.
  data.channels = args.has("in-channels") ? config.in_channels : 0;
  data.seed = o.seed;
  const std::vector<Sample> samples = load_dataset(args.get("data"), data);
  if (!args.has("in-channels") && !samples.empty() && samples.front().channels != config.in_channels) {
    config.in_channels = samples.front().channels;
    std::printf("unet train: %d input channels, as the data has (--in-channels sets them)\n", config.in_channels);
  }
  // A run that fails before its first checkpoint leaves no folder behind, if it made the folder.
  const bool fresh = !std::filesystem::exists(o.run_dir);
  std::filesystem::create_directories(o.run_dir);
  try {
    return train_into(args, config, o, samples);
  } catch (...) {
    if (fresh && !std::filesystem::exists(o.run_dir + "/last.ckpt")) std::filesystem::remove_all(o.run_dir);
    throw;
  }
}

}  // namespace unet::cli
