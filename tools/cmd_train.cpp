// `unet train`: the reference workflow: load a dataset (the synthetic phantom by default), split
// it 80/20 by patient, train with Adam, reduce-on-plateau and early stopping, and leave a run
// folder with checkpoints, a CSV log, a curves image and a JSON summary (train/trainer.h).
#include <cstdio>
#include <filesystem>
#include <optional>

#include "tools/commands.h"
#include "tools/training.h"

namespace unet::cli {

int run_train(int argc, char** argv) {
  Args args("train",
            "Trains a U-Net. Data: 'phantom' (built-in synthetic MRI, the default), 'phantom:N' (N patients),\n"
            "or a folder in the Kaggle LGG (TIFF), BraTS (NIfTI), NumPy-pairs or image-folder layout.\n"
            "The run folder receives split.txt, log.csv, curves.png, best.ckpt, last.ckpt and summary.json.");
  add_training_flags(args);
  args.option("out", "dir", "runs/unet", "run folder")
      .option("split", "file", "", "reuse this split file instead of drawing one")
      .flag("draw-split", "draw the split by --val-fraction even when the data has train/ and validation/ folders")
      .flag("resume", "continue the run in --out from its last.ckpt (the same data and settings)")
      .flag("apply-changes", "with --resume: continue with settings that differ from the run's (new --lr replaces the schedule's)");
  if (!args.parse(argc, argv)) return 0;
  apply_recipe(args, "train");

  TrainingSetup setup = training_setup(args, "train");
  TrainOptions& o = setup.options;
  o.run_dir = args.get("out");
  o.resume = args.has("resume");
  o.apply_changes = args.has("apply-changes");
  o.settings["split"] = args.get("split");
  o.settings["draw-split"] = args.has("draw-split") ? "yes" : "no";
  const std::vector<Sample> samples = load_training_data(args, setup, "train");
  // A run that fails before its first checkpoint leaves no folder behind, if it made the folder.
  const bool fresh = !std::filesystem::exists(o.run_dir);
  std::filesystem::create_directories(o.run_dir);
  try {
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
    train_on_split(args, setup, samples, split, "train");
    return 0;
  } catch (...) {
    if (fresh && !std::filesystem::exists(o.run_dir + "/last.ckpt")) std::filesystem::remove_all(o.run_dir);
    throw;
  }
}

}  // namespace unet::cli
