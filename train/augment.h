// Data augmentation of one training sample: random geometric and intensity changes that keep the
// tumour a tumour, so the network sees more varied slices than the few patients provide.
//
// Each transform is applied with its own probability; its parameter is drawn uniformly from its
// [min, max] range. Defaults (moderate: plausible variations of an axial brain slice):
//   rotation           p 0.5   -15 .. 15 degrees     head position varies in the scanner
//   horizontal flip    p 0.5                         left/right hemispheres are mirror-like
//   vertical flip      p 0                           heads are never upside down in the data
//   scaling            p 0.3   0.9 .. 1.1            head size and field of view vary
//   translation        p 0.3   -0.05 .. 0.05         fraction of the size, x and y drawn apart
//   brightness         p 0.3   -0.1 .. 0.1           added (normalised units: foreground SDs)
//   contrast           p 0.3   0.9 .. 1.1            multiplied
//   gamma              p 0.3   0.8 .. 1.25           exponent on min-max normalised values
//   gaussian noise     p 0.2   sigma 0 .. 0.05       normalised units
// AugmentOptions::none() turns everything off (augment() is then the identity).
//
// Geometry: flips, scaling, rotation and translation (in that order, about the image centre) are
// composed into ONE affine map and the sample is resampled once: bilinear for the image, nearest
// for the mask, zero outside the source. Image and mask go through the same map, so they stay
// aligned; one resample instead of several avoids compounding interpolation blur. When no
// geometric transform is drawn nothing is resampled (exact identity); a flip alone moves pixels
// exactly.
//
// Intensity (image only, per channel, after the geometry): contrast, brightness, gamma, noise.
// They change foreground pixels only: the background is exactly 0 after preprocessing
// (dataset.h) and stays so, as in every real input. Gamma maps a channel's foreground to [0, 1]
// by its min and max, raises it to the power and maps it back, so the value range is kept. The
// decision whether to apply a transform is drawn once per sample; brightness, contrast and gamma
// values are drawn per channel (MR sequences vary independently).
//
// Determinism: everything is a function of (sample, options, seed): all parameters come from
// SplitMix64 streams keyed by the seed, every transform's draws are consumed whether it applies
// or not, so changing one transform's probability does not change the others' draws.
#pragma once

#include <cstdint>

#include "train/sample.h"

namespace unet {

struct RandomTransform {
  double probability = 0.0;
  double min = 0.0, max = 0.0;  // parameter range, drawn uniformly
};

struct AugmentOptions {
  RandomTransform rotation{0.5, -15.0, 15.0};     // degrees
  double horizontal_flip = 0.5;                   // probability (mirrors x)
  double vertical_flip = 0.0;                     // probability (mirrors y)
  RandomTransform scaling{0.3, 0.9, 1.1};         // factor (> 1 enlarges)
  RandomTransform translation{0.3, -0.05, 0.05};  // fraction of width / height
  RandomTransform brightness{0.3, -0.1, 0.1};     // added
  RandomTransform contrast{0.3, 0.9, 1.1};        // multiplied
  RandomTransform gamma{0.3, 0.8, 1.25};          // exponent
  RandomTransform noise{0.2, 0.0, 0.05};          // gaussian sigma

  static AugmentOptions none();  // every probability 0
};

// Augments `sample` in place. Throws std::invalid_argument for probabilities outside [0, 1],
// min > max, scaling or gamma ranges that are not positive, or a negative noise sigma.
void augment(Sample& sample, const AugmentOptions& options, uint64_t seed);

}  // namespace unet
