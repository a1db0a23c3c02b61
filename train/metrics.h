// Segmentation metrics on binary masks, per image and pooled over a patient or a whole set.
//
// Conventions for empty masks (stated because they decide what a score means):
//   - Dice = F1 = 2TP / (2TP + FP + FN) and IoU = TP / (TP + FP + FN): 1 when both masks are
//     empty (nothing to find, nothing claimed), 0 when exactly one is empty.
//   - precision = TP / (TP + FP): 1 when nothing was predicted (no false claim was made).
//   - recall (sensitivity) = TP / (TP + FN): 1 when the truth is empty (nothing was missed).
//   - specificity = TN / (TN + FP): 1 when every pixel is tumour.
//   - pixel accuracy = (TP + TN) / pixels. It is reported, but on MRI slices, where most pixels
//     are background, it is close to 1 for any model that predicts nothing: the reference work's
//     "100% accuracy" came from this. Read Dice per patient instead.
//   - HD95: the 95th percentile of the symmetric distances between the two masks' boundary
//     pixels, in pixels times `spacing`. 0 when both are empty; NaN (undefined) when exactly one
//     is empty, and such images are left out of HD95 averages and counted instead.
// A patient's scores come from the confusion counts summed over all its slices (a volume-level
// Dice), not from averaging per-slice scores, which would weight empty slices heavily.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace unet {

struct Confusion {
  int64_t tp = 0, fp = 0, fn = 0, tn = 0;
  Confusion& operator+=(const Confusion& o);
};

struct Scores {
  double dice = 0, iou = 0, precision = 0, recall = 0, specificity = 0, f1 = 0, accuracy = 0;
  double hd95 = 0;  // NaN when undefined (see above)
};

// truth and prediction are H*W values; a pixel is positive when its value is >= threshold.
Confusion confusion(const float* truth, const float* prediction, int height, int width,
                    float threshold = 0.5f);
Scores scores(const Confusion& c);
// Scores of one image, HD95 included.
Scores image_scores(const float* truth, const float* prediction, int height, int width,
                    float threshold = 0.5f, double spacing = 1.0);
double hd95(const float* truth, const float* prediction, int height, int width,
            float threshold = 0.5f, double spacing = 1.0);

}  // namespace unet
