// Reduce-on-plateau and early stopping on scripted loss sequences; poly decay against its formula.
#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "train/schedule.h"

using namespace unet;

TEST_CASE("reduce-on-plateau halves the rate after `patience` flat epochs", "[schedule]") {
  ReduceOnPlateau plateau({.mode = Mode::Min, .factor = 0.5, .patience = 3, .min_lr = 0.1, .min_delta = 0.01});
  // Improves for 3 epochs, then is flat (changes smaller than min_delta do not count).
  const std::vector<double> losses{1.0, 0.9, 0.8, 0.795, 0.8, 0.79, 0.85, 0.9, 0.9, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7};
  std::vector<double> lrs;
  double lr = 1.0;
  for (double loss : losses) lrs.push_back(lr = plateau.step(loss, lr));
  const std::vector<double> expected{1, 1, 1, 1, 1, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.25, 0.125, 0.125, 0.125, 0.1};
  CHECK(lrs == expected);  // and never below min_lr
}

TEST_CASE("reduce-on-plateau: max mode, cooldown, NaN never improves", "[schedule]") {
  ReduceOnPlateau plateau({.mode = Mode::Max, .factor = 0.5, .patience = 2, .min_lr = 0, .min_delta = 0, .cooldown = 2});
  double lr = 8;
  std::vector<double> lrs;
  for (double dice : std::vector<double>{0.5, 0.6, NAN, 0.6, 0.55, 0.6, 0.6, 0.6, 0.61}) lrs.push_back(lr = plateau.step(dice, lr));
  // Reduced after 2 non-improving epochs (NaN, 0.6). As in Keras, the cooldown counter drops at
  // the start of each epoch, so cooldown 2 leaves out only the first epoch after a reduction
  // (0.55); 0.6, 0.6 then reduce again, the next epoch is left out, and 0.61 improves.
  CHECK(lrs == std::vector<double>{8, 8, 8, 4, 4, 4, 2, 2, 2});
}

TEST_CASE("early stopping stops after `patience` epochs without improvement", "[schedule]") {
  EarlyStopping stopper({.mode = Mode::Min, .patience = 3, .min_delta = 0.0});
  const std::vector<double> losses{1.0, 0.8, 0.85, 0.81, 0.7, 0.75, 0.9, 0.71, 0.6};
  int stopped_at = -1, best_epoch = -1;
  for (int epoch = 0; epoch < int(losses.size()); ++epoch) {
    const auto d = stopper.step(losses[std::size_t(epoch)]);
    if (d.improved) best_epoch = epoch;
    if (d.stop) {
      stopped_at = epoch;
      break;
    }
  }
  CHECK(best_epoch == 4);
  CHECK(stopped_at == 7);
  CHECK(stopper.state().best == 0.7);
}

TEST_CASE("a schedule restored from its state continues identically", "[schedule][resume]") {
  const std::vector<double> losses{1, 0.9, 0.9, 0.9, 0.95, 0.9, 0.8, 0.8, 0.8, 0.8, 0.8};
  ReduceOnPlateau whole({.patience = 2});
  double lr_whole = 1;
  std::vector<double> a, b;
  for (double l : losses) a.push_back(lr_whole = whole.step(l, lr_whole));
  ReduceOnPlateau first({.patience = 2});
  double lr = 1;
  for (std::size_t i = 0; i < 5; ++i) b.push_back(lr = first.step(losses[i], lr));
  ReduceOnPlateau resumed({.patience = 2});
  resumed.state() = first.state();
  for (std::size_t i = 5; i < losses.size(); ++i) b.push_back(lr = resumed.step(losses[i], lr));
  CHECK(a == b);
}

TEST_CASE("poly decay: lr0 * (1 - e / epochs)^0.9 from epoch 0", "[schedule]") {
  CHECK(poly_lr(0.01, 0, 50) == 0.01);
  CHECK(poly_lr(1.0, 5, 10) == Approx(0.535886731268146));  // 0.5^0.9
  CHECK(poly_lr(1.0, 9, 10) == Approx(0.125892541179417));  // 0.1^0.9
  for (int e = 0; e < 20; ++e) {
    INFO("epoch " << e);
    CHECK(poly_lr(3e-4, e, 20) == Approx(3e-4 * std::pow(1.0 - e / 20.0, 0.9)));
    CHECK(poly_lr(3e-4, e + 1, 20) < poly_lr(3e-4, e, 20));
  }
}
