#include "train/metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace unet {
namespace {

double ratio(int64_t num, int64_t den, double if_empty) { return den == 0 ? if_empty : double(num) / double(den); }

// Boundary pixels: positive pixels with at least one 4-neighbour that is negative or outside.
std::vector<std::pair<int, int>> boundary(const float* m, int h, int w, float threshold) {
  auto on = [&](int y, int x) { return y >= 0 && y < h && x >= 0 && x < w && m[y * w + x] >= threshold; };
  std::vector<std::pair<int, int>> points;
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      if (on(y, x) && !(on(y - 1, x) && on(y + 1, x) && on(y, x - 1) && on(y, x + 1))) points.emplace_back(y, x);
    }
  }
  return points;
}

// Distance from each point of `from` to the nearest point of `to` (brute force: boundaries of
// one slice hold hundreds of points, so O(n m) stays in the milliseconds).
void nearest_distances(const std::vector<std::pair<int, int>>& from, const std::vector<std::pair<int, int>>& to,
                       std::vector<double>& out) {
  for (const auto& [y, x] : from) {
    int64_t best = std::numeric_limits<int64_t>::max();
    for (const auto& [v, u] : to) best = std::min<int64_t>(best, int64_t(y - v) * (y - v) + int64_t(x - u) * (x - u));
    out.push_back(std::sqrt(double(best)));
  }
}

}  // namespace

Confusion& Confusion::operator+=(const Confusion& o) {
  tp += o.tp;
  fp += o.fp;
  fn += o.fn;
  tn += o.tn;
  return *this;
}

Confusion confusion(const float* truth, const float* prediction, int height, int width, float threshold) {
  Confusion c;
  const int64_t n = int64_t(height) * width;
  for (int64_t i = 0; i < n; ++i) {
    const bool t = truth[i] >= 0.5f, p = prediction[i] >= threshold;
    c.tp += t && p;
    c.fp += !t && p;
    c.fn += t && !p;
    c.tn += !t && !p;
  }
  return c;
}

Scores scores(const Confusion& c) {
  Scores s;
  s.dice = ratio(2 * c.tp, 2 * c.tp + c.fp + c.fn, 1.0);
  s.iou = ratio(c.tp, c.tp + c.fp + c.fn, 1.0);
  s.precision = ratio(c.tp, c.tp + c.fp, 1.0);
  s.recall = ratio(c.tp, c.tp + c.fn, 1.0);
  s.specificity = ratio(c.tn, c.tn + c.fp, 1.0);
  s.f1 = s.dice;
  s.accuracy = ratio(c.tp + c.tn, c.tp + c.tn + c.fp + c.fn, 1.0);
  s.hd95 = std::numeric_limits<double>::quiet_NaN();
  return s;
}

double hd95(const float* truth, const float* prediction, int height, int width, float threshold, double spacing) {
  const auto a = boundary(truth, height, width, 0.5f);
  const auto b = boundary(prediction, height, width, threshold);
  if (a.empty() && b.empty()) return 0.0;
  if (a.empty() || b.empty()) return std::numeric_limits<double>::quiet_NaN();
  std::vector<double> d;
  nearest_distances(a, b, d);
  nearest_distances(b, a, d);
  // The 95th percentile by the nearest-rank method: the smallest value with 95% at or below it.
  const std::size_t rank = std::size_t(std::ceil(0.95 * double(d.size())));
  std::nth_element(d.begin(), d.begin() + std::ptrdiff_t(rank - 1), d.end());
  return d[rank - 1] * spacing;
}

Scores image_scores(const float* truth, const float* prediction, int height, int width, float threshold, double spacing) {
  Scores s = scores(confusion(truth, prediction, height, width, threshold));
  s.hd95 = hd95(truth, prediction, height, width, threshold, spacing);
  return s;
}

}  // namespace unet
