#include "train/schedule.h"

#include <algorithm>
#include <cmath>

namespace unet {

bool improves(double value, double best, Mode mode, double min_delta) {
  if (std::isnan(value)) return false;
  if (std::isnan(best)) return true;
  return mode == Mode::Min ? value < best - min_delta : value > best + min_delta;
}

double ReduceOnPlateau::step(double value, double lr) {
  if (state_.cooldown_left > 0) --state_.cooldown_left;
  if (improves(value, state_.best, options_.mode, options_.min_delta)) {
    state_.best = value;
    state_.wait = 0;
    return lr;
  }
  if (state_.cooldown_left > 0) return lr;
  if (++state_.wait < options_.patience) return lr;
  state_.wait = 0;
  state_.cooldown_left = options_.cooldown;
  return std::max(lr * options_.factor, options_.min_lr);
}

std::string to_string(LrSchedule schedule) { return schedule == LrSchedule::Poly ? "poly" : "plateau"; }

double poly_lr(double lr0, int epoch, int epochs) { return lr0 * std::pow(1.0 - double(epoch) / epochs, 0.9); }

EarlyStopping::Decision EarlyStopping::step(double value) {
  if (improves(value, state_.best, options_.mode, options_.min_delta)) {
    state_.best = value;
    state_.wait = 0;
    return {true, false};
  }
  return {false, ++state_.wait >= options_.patience};
}

}  // namespace unet
