// The flags, checks and run of a training shared by `unet train` and `unet cv` (see training.h).
#include "tools/training.h"

#include <omp.h>

#include <cmath>
#include <cstdio>
#include <utility>
#include <vector>

#include "tools/model_flags.h"

namespace unet::cli {
namespace {

// Values that would train uphill, never decay or never stop are refused before anything runs.
void check_training_flags(const Args& args, const UNetConfig& config, const std::string& command) {
  const auto require = [&command](bool ok, const std::string& rule) {
    if (!ok) throw UsageError("unet " + command + ": " + rule);
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
  const double foreground = args.get_double("foreground-fraction");
  require(foreground >= 0 && foreground <= 1, "--foreground-fraction must be in [0, 1], got " + args.get("foreground-fraction"));
  require(finite("val-fraction") && args.get_float("val-fraction") >= 0 && args.get_float("val-fraction") < 1,
          "--val-fraction must be in [0, 1), got " + args.get("val-fraction"));
  require(args.get_int("lr-patience") >= 1 && args.get_int("stop-patience") >= 1,
          "--lr-patience and --stop-patience must be at least 1");
  const int size = args.get_int("size"), multiple = 1 << config.depth;
  require(size >= multiple && size <= kMaxImageSize && size % multiple == 0,
          "--size must be a multiple of 2^depth = " + std::to_string(multiple) + " from " + std::to_string(multiple) +
              " to " + std::to_string(kMaxImageSize) + ", got " + args.get("size"));
}

LrSchedule parse_lr_schedule(const std::string& name, const std::string& command) {
  for (LrSchedule s : {LrSchedule::Plateau, LrSchedule::Poly})
    if (to_string(s) == name) return s;
  throw UsageError("unet " + command + ": --lr-schedule must be plateau or poly, got '" + name + "'");
}

// The documented recipes: defaults for the flags that a user does not set (docs/RESULTS.md has the
// cross-validation behind each).
struct Recipe {
  const char* name;
  std::vector<std::pair<const char*, const char*>> defaults;
};

const std::vector<Recipe>& recipes() {
  static const std::vector<Recipe> all = {
      {"lgg", {{"size", "128"}, {"epochs", "40"}, {"batch", "8"}, {"foreground-fraction", "0.5"}, {"lr-schedule", "poly"}}},
  };
  return all;
}

}  // namespace

void apply_recipe(Args& args, const std::string& command) {
  const std::string name = args.get("recipe");
  if (name == "none") return;
  for (const Recipe& r : recipes()) {
    if (name != r.name) continue;
    std::string said;
    for (const auto& [flag, value] : r.defaults) {
      args.set_fallback(flag, value);
      said += std::string(said.empty() ? "" : ", ") + "--" + flag + " " + args.get(flag);
    }
    std::printf("unet %s: recipe %s: %s\n", command.c_str(), r.name, said.c_str());
    return;
  }
  std::string known = "none";
  for (const Recipe& r : recipes()) known += std::string(", ") + r.name;
  throw UsageError("unet " + command + ": --recipe must be one of " + known + "; got '" + name + "'");
}

void add_training_flags(Args& args) {
  add_model_flags(args);
  args.option("recipe", "name", "none",
              "lgg: the cross-validated Kaggle LGG recipe (docs/RESULTS.md) as defaults; flags given "
              "explicitly still win");
  args.option("data", "source", "phantom", "dataset: phantom, phantom:N or a folder")
      .option("size", "pixels", "240", "input height and width (images are resized)")
      .option("epochs", "n", "100", "maximum epochs")
      .option("batch", "n", "8", "batch size")
      .option("lr", "rate", "0.002", "Adam learning rate")
      .option("weight-decay", "w", "0", "decoupled weight decay (AdamW)")
      .option("loss", "name", "bce_dice", "mse, bce, dice, bce_dice or neg_log_iou")
      .option("monitor", "value", "val_loss", "val_loss or val_dice: drives LR decay, early stop, best")
      .option("lr-schedule", "name", "plateau",
              "plateau (x --lr-factor after --lr-patience epochs without improvement) or poly (nnU-Net's: "
              "--lr x (1 - e / epochs)^0.9 in epoch e = 0, 1, ...; --resume then keeps --epochs)")
      .option("lr-factor", "f", "0.5", "LR multiplier on a plateau")
      .option("lr-patience", "n", "10", "epochs without improvement before the LR drops")
      .option("min-lr", "rate", "1e-6", "lower bound of the LR")
      .option("stop-patience", "n", "15", "epochs without improvement before stopping")
      .option("min-delta", "d", "0.0001", "smallest change that counts as an improvement")
      .option("val-fraction", "f", "0.2", "fraction of (training) patients held out for validation")
      .option("seed", "n", "1", "seed for the split, weights, augmentation and dropout")
      .option("foreground-fraction", "f", "0",
              "at least ceil(f x n) of each training batch of n have tumour, the rest drawn as shuffled "
              "(nnU-Net: 0.33); 0: plain shuffled epochs")
      .flag("no-augment", "train without augmentation")
      .flag("no-restore-best", "keep the last epoch's weights instead of the best")
      .option("skip-nonfinite-steps", "n", "0",
              "skip up to n steps of the run whose loss or gradients are not finite (no update, BatchNorm "
              "statistics put back) before stopping; 0: stop at the first");
  add_device_flags(args);
  add_input_limit_flag(args);
}

TrainingSetup training_setup(const Args& args, const std::string& command) {
  TrainingSetup t;
  t.config = model_config_from(args);
  TrainOptions& o = t.options;
  o.epochs = args.get_int("epochs");
  o.batch_size = args.get_int("batch");
  o.loss = parse_loss(args.get("loss"), command);
  o.adam.lr = args.get_float("lr");
  o.adam.weight_decay = args.get_float("weight-decay");
  if (args.get("monitor") != "val_loss" && args.get("monitor") != "val_dice")
    throw UsageError("unet " + command + ": --monitor must be val_loss or val_dice");
  o.monitor_dice = args.get("monitor") == "val_dice";
  const Mode mode = o.monitor_dice ? Mode::Max : Mode::Min;
  o.lr_schedule = parse_lr_schedule(args.get("lr-schedule"), command);
  o.plateau = {mode, args.get_float("lr-factor"), args.get_int("lr-patience"), args.get_float("min-lr"),
               args.get_float("min-delta"), 0};
  o.early = {mode, args.get_int("stop-patience"), args.get_float("min-delta")};
  o.restore_best = !args.has("no-restore-best");
  o.augment = !args.has("no-augment");
  o.foreground_fraction = args.get_double("foreground-fraction");
  o.seed = uint64_t(args.get_int64("seed"));
  o.input_size = args.get_int("size");
  o.skip_nonfinite_steps = args.get_int("skip-nonfinite-steps");
  if (o.skip_nonfinite_steps < 0) throw UsageError("unet " + command + ": --skip-nonfinite-steps must be >= 0");
  for (const char* flag : {"data", "size", "batch", "lr", "weight-decay", "loss", "monitor", "lr-factor", "lr-patience",
                           "min-lr", "stop-patience", "min-delta", "val-fraction", "seed", "lr-schedule",
                           "foreground-fraction"})
    o.settings[flag] = args.get(flag);
  o.settings["augment"] = args.has("no-augment") ? "no" : "yes";
  // Poly's rate at every epoch depends on --epochs, so a poly run resumed with another count would
  // not follow one schedule; plateau runs may be extended freely.
  if (o.lr_schedule == LrSchedule::Poly) o.settings["epochs"] = args.get("epochs");
  if (o.epochs < 1 || o.batch_size < 1) throw UsageError("unet " + command + ": --epochs and --batch must be at least 1");
  check_training_flags(args, t.config, command);
  o.device = device_from(args, command);
  apply_input_limit_flag(args, command);

  t.data.size = args.get_int("size");
  t.data.channels = args.has("in-channels") ? t.config.in_channels : 0;
  t.data.seed = o.seed;
  return t;
}

std::vector<Sample> load_training_data(const Args& args, TrainingSetup& setup, const std::string& command) {
  std::vector<Sample> samples = load_dataset(args.get("data"), setup.data);
  if (!args.has("in-channels") && !samples.empty() && samples.front().channels != setup.config.in_channels) {
    setup.config.in_channels = samples.front().channels;
    std::printf("unet %s: %d input channels, as the data has (--in-channels sets them)\n", command.c_str(),
                setup.config.in_channels);
  }
  return samples;
}

TrainResult train_on_split(const Args& args, const TrainingSetup& setup, const std::vector<Sample>& samples,
                           const Split& split, const std::string& command) {
  const TrainOptions& o = setup.options;
  const std::vector<int> train = sample_indices(samples, split.train), val = sample_indices(samples, split.val);
  if (train.empty()) throw std::runtime_error("no training slices: every patient went to validation");

  UNet model(setup.config, o.seed);
  model.to(o.device);
  std::printf("unet %s: %zu slices of %zu patients from %s (%s), %dx%d, %d channels\n", command.c_str(),
              train.size() + val.size(), split.train.size() + split.val.size(), args.get("data").c_str(),
              detect_format(args.get("data")).c_str(), args.get_int("size"), args.get_int("size"), setup.config.in_channels);
  std::printf("split: %zu train slices (%zu patients), %zu val slices (%zu patients) -> %s/split.txt\n", train.size(),
              split.train.size(), val.size(), split.val.size(), o.run_dir.c_str());
  std::printf("model: %lld parameters; loss %s, batch %d, lr %g, on %s (%d CPU threads)\n",
              static_cast<long long>(model.parameter_count() + model.buffer_count()), to_string(o.loss).c_str(),
              o.batch_size, double(o.adam.lr), to_string(o.device).c_str(), omp_get_max_threads());
  const TrainResult r = train_model(model, samples, train, val, o);
  std::printf("run folder %s: curves.png, log.csv, best.ckpt (epoch %d), last.ckpt, summary.json\n", o.run_dir.c_str(),
              r.best_epoch);
  return r;
}

}  // namespace unet::cli
