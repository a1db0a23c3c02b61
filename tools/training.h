// What `unet train` and `unet cv` share: the flags that shape a training run, their checks, the
// data they load and one run into a run folder on a given split (train/trainer.h does the work).
#pragma once

#include <string>
#include <vector>

#include "models/unet.h"
#include "tools/args.h"
#include "train/dataset.h"
#include "train/split.h"
#include "train/trainer.h"

namespace unet::cli {

// Model, optimiser, schedule, loss, input size, seed, validation fraction, augmentation and
// device flags, with their defaults (the reference work's).
void add_training_flags(Args& args);

struct TrainingSetup {
  UNetConfig config;
  TrainOptions options;  // run_dir, resume, apply_changes and settings["split"] are the caller's
  DatasetOptions data;
};

// --recipe NAME: sets that recipe's defaults for the flags not given (after Args::parse, before
// training_setup) and says which values it uses; an unknown name is a UsageError.
void apply_recipe(Args& args, const std::string& command);

// Reads and checks the flags of add_training_flags: a UsageError names the flag and the rule.
TrainingSetup training_setup(const Args& args, const std::string& command);

// The dataset of --data. Without --in-channels the model takes the channels the data has (2 for
// a BraTS set of two modalities, 3 for LGG's RGB slices), which no user should have to look up.
std::vector<Sample> load_training_data(const Args& args, TrainingSetup& setup, const std::string& command);

// Trains a new model on `split` into setup.options.run_dir (which must exist; its split.txt is
// written here unless the run is resumed with it) and prints what it does.
TrainResult train_on_split(const Args& args, const TrainingSetup& setup, const std::vector<Sample>& samples,
                           const Split& split, const std::string& command);

}  // namespace unet::cli
