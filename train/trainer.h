// The training loop of `unet train`: Adam, reduce-on-plateau (or poly decay), early stopping with
// the best weights restored, validation each epoch, checkpoints (best and last), logs people can
// read and plot, and exact resume.
//
// A run folder holds:
//   split.txt      the patient split (train / val) the run used
//   log.csv        one row per epoch: epoch, loss, val_loss, val_dice, val_iou, lr, seconds
//   curves.png     loss, Dice and learning-rate curves, redrawn after every epoch
//   best.ckpt      the model of the best epoch (by the monitored value)
//   last.ckpt      model + Adam moments + schedule state + epoch + dropout stream: resume point
//   summary.json   the run's settings, its best epoch and the final figures
// Resume: everything random is a pure function of (seed, epoch, index) or saved in last.ckpt,
// so a run stopped after epoch k and resumed continues bit for bit as if it had never stopped
// (on the CPU; tested).
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "engine/backend.h"
#include "models/unet.h"
#include "train/adam.h"
#include "train/augment.h"
#include "train/sample.h"
#include "train/schedule.h"

namespace unet {

struct TrainOptions {
  std::string run_dir;
  int epochs = 100;
  int batch_size = 8;
  LossKind loss = LossKind::BCEDice;
  AdamOptions adam;
  LrSchedule lr_schedule = LrSchedule::Plateau;
  ReduceOnPlateau::Options plateau;  // factor 0.5, patience 10 (the reference's); unused by Poly
  EarlyStopping::Options early;      // patience 15
  bool monitor_dice = false;         // monitor val Dice (max) instead of val loss (min)
  bool restore_best = true;
  bool augment = true;
  AugmentOptions augmentation;
  double foreground_fraction = 0;  // foreground oversampling of the training batches (train/loader.h)
  uint64_t seed = 1;
  Device device = Device::CPU;
  float threshold = 0.5f;
  bool resume = false;     // continue from run_dir/last.ckpt
  // The run's settings as the user gave them (flag -> value), kept in last.ckpt: a resume with
  // other values is refused, listing them, unless apply_changes (then the new learning rate
  // replaces the schedule's, and the rest apply as they are read).
  std::map<std::string, std::string> settings;
  bool apply_changes = false;
  int input_size = 0;  // recorded in the checkpoints ("data.size") for eval and predict; 0: unknown
  int stop_after = 0;      // stop (as if interrupted) after this many epochs in this call; 0: never
  // Up to this many steps of the run whose loss or gradients are not finite are skipped (no
  // update; the BatchNorm running statistics their forward pass changed are put back) instead of
  // stopping the run; 0: the first one stops it. Non-finite weights after an update always stop.
  int skip_nonfinite_steps = 0;
  bool progress = true;    // progress bar on stdout
};

struct EpochRecord {
  int epoch = 0;
  double loss = 0, val_loss = 0, val_dice = 0, val_iou = 0, lr = 0, seconds = 0;
};

struct TrainResult {
  std::vector<EpochRecord> history;
  int best_epoch = 0;
  bool stopped_early = false;
};

// Trains `model` (already on options.device) on samples[train] and validates on samples[val].
TrainResult train_model(UNet& model, const std::vector<Sample>& samples, const std::vector<int>& train,
                        const std::vector<int>& val, const TrainOptions& options);

}  // namespace unet
