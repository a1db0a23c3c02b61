// Metrics on hand-made masks, including the empty-mask conventions.
#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "train/metrics.h"

using namespace unet;

namespace {

// A w x h mask with the given rectangle set to 1.
std::vector<float> rect(int w, int h, int x0, int y0, int x1, int y1) {
  std::vector<float> m(std::size_t(w * h), 0.0f);
  for (int y = y0; y < y1; ++y)
    for (int x = x0; x < x1; ++x) m[std::size_t(y * w + x)] = 1.0f;
  return m;
}

}  // namespace

TEST_CASE("overlapping squares give the hand-computed scores", "[metrics]") {
  // Truth: 4x4 square (16 px); prediction: the same square shifted right by 2 (8 px overlap).
  const auto truth = rect(10, 10, 2, 2, 6, 6), pred = rect(10, 10, 4, 2, 8, 6);
  const Confusion c = confusion(truth.data(), pred.data(), 10, 10);
  CHECK(c.tp == 8);
  CHECK(c.fp == 8);
  CHECK(c.fn == 8);
  CHECK(c.tn == 76);
  const Scores s = scores(c);
  CHECK(s.dice == Approx(0.5));
  CHECK(s.f1 == Approx(0.5));
  CHECK(s.iou == Approx(8.0 / 24.0));
  CHECK(s.precision == Approx(0.5));
  CHECK(s.recall == Approx(0.5));
  CHECK(s.specificity == Approx(76.0 / 84.0));
  CHECK(s.accuracy == Approx(0.84));
  // Boundary distances: each square's left/right edge columns are 2 px from the other's.
  CHECK(hd95(truth.data(), pred.data(), 10, 10) == Approx(2.0));
  CHECK(hd95(truth.data(), pred.data(), 10, 10, 0.5f, 0.5) == Approx(1.0));  // spacing in mm
}

TEST_CASE("the threshold applies to the prediction", "[metrics]") {
  const std::vector<float> truth{1, 1, 0, 0}, prob{0.9f, 0.4f, 0.6f, 0.1f};
  CHECK(confusion(truth.data(), prob.data(), 2, 2, 0.5f).tp == 1);
  CHECK(confusion(truth.data(), prob.data(), 2, 2, 0.3f).tp == 2);
  CHECK(confusion(truth.data(), prob.data(), 2, 2, 0.3f).fp == 1);
}

TEST_CASE("empty masks follow the stated conventions", "[metrics]") {
  const auto empty = rect(8, 8, 0, 0, 0, 0), blob = rect(8, 8, 2, 2, 4, 4);
  const Scores both = image_scores(empty.data(), empty.data(), 8, 8);
  CHECK(both.dice == 1.0);
  CHECK(both.iou == 1.0);
  CHECK(both.precision == 1.0);
  CHECK(both.recall == 1.0);
  CHECK(both.hd95 == 0.0);
  const Scores missed = image_scores(blob.data(), empty.data(), 8, 8);  // empty prediction
  CHECK(missed.dice == 0.0);
  CHECK(missed.recall == 0.0);
  CHECK(missed.precision == 1.0);
  CHECK(std::isnan(missed.hd95));
  const Scores false_alarm = image_scores(empty.data(), blob.data(), 8, 8);  // empty truth
  CHECK(false_alarm.dice == 0.0);
  CHECK(false_alarm.recall == 1.0);
  CHECK(false_alarm.precision == 0.0);
  CHECK(false_alarm.specificity == Approx(60.0 / 64.0));
  // Pixel accuracy stays high for a useless model: why it is not our headline metric.
  CHECK(missed.accuracy == Approx(60.0 / 64.0));
}

TEST_CASE("patient scores pool the confusion counts of its slices", "[metrics]") {
  const auto empty = rect(8, 8, 0, 0, 0, 0), blob = rect(8, 8, 2, 2, 4, 4), half = rect(8, 8, 2, 2, 3, 4);
  Confusion patient;
  patient += confusion(empty.data(), empty.data(), 8, 8);  // a perfect empty slice...
  patient += confusion(blob.data(), half.data(), 8, 8);    // ...does not inflate the tumour slice
  CHECK(scores(patient).dice == Approx(2.0 * 2 / (2.0 * 2 + 0 + 2)));
}
