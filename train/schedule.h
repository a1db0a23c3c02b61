// Reduce-on-plateau learning-rate decay and early stopping, with Keras' semantics (the reference
// work used ReduceLROnPlateau(factor 0.5, patience 10) and EarlyStopping(patience 15)):
//   improvement: value < best - min_delta (mode Min) or value > best + min_delta (mode Max);
//   a NaN value never improves.
//   ReduceOnPlateau: after `patience` epochs without improvement, lr = max(lr * factor, min_lr),
//   then a cooldown during which epochs without improvement are not counted (Keras counts the
//   cooldown down at the start of each epoch, so `cooldown` c skips the next c - 1 epochs).
//   EarlyStopping: stop after `patience` epochs without improvement; the caller restores the
//   best epoch's weights when restore_best is set.
// Both keep their whole state in plain fields so that a resumed run continues exactly.
// Poly decay (nnU-Net's schedule, poly_lr): lr_e = lr0 * (1 - e / epochs)^0.9 for epochs counted
// e = 0 .. epochs - 1: a function of the epoch alone, so it has no state to keep.
#pragma once

#include <limits>
#include <map>
#include <string>

namespace unet {

enum class Mode { Min, Max };

struct PlateauState {
  double best = std::numeric_limits<double>::quiet_NaN();  // NaN until the first value
  int wait = 0;
  int cooldown_left = 0;
};

class ReduceOnPlateau {
 public:
  struct Options {
    Mode mode = Mode::Min;
    double factor = 0.5;
    int patience = 10;
    double min_lr = 1e-6;
    double min_delta = 1e-4;
    int cooldown = 0;
  };
  explicit ReduceOnPlateau(Options options) : options_(options) {}

  // The learning rate to use from the next epoch on, given this epoch's monitored value.
  double step(double value, double lr);
  PlateauState& state() { return state_; }

 private:
  Options options_;
  PlateauState state_;
};

class EarlyStopping {
 public:
  struct Options {
    Mode mode = Mode::Min;
    int patience = 15;
    double min_delta = 0.0;
  };
  explicit EarlyStopping(Options options) : options_(options) {}

  struct Decision {
    bool improved = false;  // this epoch is the best so far: keep its weights
    bool stop = false;
  };
  Decision step(double value);
  PlateauState& state() { return state_; }

 private:
  Options options_;
  PlateauState state_;
};

// Which of the two decides the learning rate of each epoch (early stopping works with either).
enum class LrSchedule { Plateau, Poly };
std::string to_string(LrSchedule schedule);

// The learning rate of epoch `epoch` (counted from 0) of `epochs` under poly decay.
double poly_lr(double lr0, int epoch, int epochs);

// True when `value` beats `best` by more than min_delta in the given direction (any number
// beats the NaN of "no value yet"; a NaN value beats nothing).
bool improves(double value, double best, Mode mode, double min_delta);

}  // namespace unet
