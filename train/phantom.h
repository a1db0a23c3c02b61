// A synthetic brain-MRI phantom: the built-in default dataset, so that training works without
// downloading anything. Plain standard C++, no dependency on the rest of the engine.
//
// Each call draws one 2D axial slice of one synthetic patient. The slice is deterministic in
// (seed, patient, index): all random numbers come from a small SplitMix64 generator whose
// streams are keyed by hashing those three values (never <random>, whose distributions differ
// between standard libraries).
//
// Anatomy model (outside in; all outlines are smooth steps about one pixel wide, which mimics
// the partial-volume blur of a real scanner at tissue boundaries):
//   scalp         fat-like ring just inside the head outline
//   skull         dark bone ring (no MR signal)
//   CSF rim       thin subarachnoid space between skull and brain, plus the midline fissure
//   grey matter   cortical ribbon whose inner edge is wavy (gyri) and deep-grey nuclei
//   white matter  the brain interior
//   ventricles    two lateral CSF-filled ventricles, only in the middle slices
// The head is an ellipse with a slightly irregular outline (a few low random harmonics). A
// patient's slices form a volume of `slices_per_patient` axial positions: the head cross-section
// shrinks towards the top and bottom, outlines and textures drift smoothly with the position, so
// that adjacent indices look like adjacent slices.
//
// Tumour model: a lobulated blob (an ellipse whose radius carries random harmonics) placed inside
// the brain, with a necrotic core, an enhancing rim around it (bright in post-contrast T1 only)
// and a wider, irregular halo of oedema (bright in FLAIR, faint elsewhere; oedema is NOT part of
// the mask). The tumour occupies a contiguous run of round(tumour_probability * slices) slices of
// each patient, largest in the middle of the run, so that about that fraction of all slices carry
// a tumour (0: none, 1: every slice). Its size (small to large), shape, position, rim thickness,
// oedema extent and all of its contrasts are drawn per patient, so no single channel separates it
// with one threshold.
//
// Contrast table (relative intensities before the per-patient jitter; white matter is the unit of
// T1). Channel c uses column c % 4, so a fifth channel is another T1-like one with its own jitter.
//                    0: T1   1: FLAIR   2: T1 post-contrast   3: T2
//   background       0.00    0.00       0.00                  0.00
//   scalp (fat)      1.10    0.75       1.10                  0.80   fat is bright in T1
//   skull (bone)     0.08    0.06       0.08                  0.06   bone gives no signal
//   CSF              0.22    0.10       0.25                  1.40   FLAIR nulls free water
//   grey matter      0.72    0.85       0.72                  0.85
//   white matter     1.00    0.70       1.00                  0.62
//   oedema           0.70    1.20       0.70                  1.15   water: dark T1, bright FLAIR
//   necrotic core    0.40    0.90       0.42                  1.25
//   enhancing rim    0.75    1.05       1.35                  0.95   enhances with gadolinium
// Per patient, healthy tissues get +-5%; the tumour rows are redrawn from wide ranges, e.g. core
// T1 0.25-0.65 and FLAIR 0.55-1.35, oedema FLAIR 0.95-1.35, rim post-contrast 1.05-1.35 (always
// above the core there). See draw_contrast() in phantom.cpp.
// On top of the tissue levels come a smooth multiplicative bias field per channel, a faint tissue
// texture, heterogeneity inside the tumour, a per-channel gain, and Rician noise: the magnitude of
// (signal + complex Gaussian), whose sigma is `noise` times that channel's white-matter intensity.
#pragma once

#include <cstdint>
#include <vector>

namespace unet {

// Tissue classes, as stored per pixel in PhantomSlice::tissue (the dominant one there).
enum class PhantomTissue : uint8_t {
  background,
  scalp,
  skull,
  csf,
  grey_matter,
  white_matter,
  oedema,
  necrotic_core,
  enhancing_rim,
};
inline constexpr int kPhantomTissues = 9;

struct PhantomOptions {
  int size = 240;                   // height = width
  int channels = 3;                 // contrasts: 0: T1-like pre-contrast, 1: FLAIR-like,
                                    // 2: T1 post-contrast-like, 3: T2-like (then repeating)
  double tumour_probability = 0.8;  // slices without tumour exist in real data (empty masks)
  double noise = 0.03;              // Rician-like noise level relative to white-matter intensity
  double bias_field = 0.2;          // strength of a smooth multiplicative intensity inhomogeneity
  int slices_per_patient = 32;      // axial positions per patient; `index` is taken modulo this
};

struct PhantomSlice {
  int size = 0, channels = 0;
  std::vector<float> image;  // channels x size x size (CHW), roughly in [0, 1.5]
  std::vector<float> mask;   // size x size, 0 or 1: whole tumour (core + enhancing rim; NOT oedema)
  uint64_t patient = 0;      // which synthetic patient the slice came from
  std::vector<uint8_t> tissue;  // size x size, dominant PhantomTissue per pixel (ground truth)
};

// Slice `index` of synthetic patient `patient` (deterministic in (seed, patient, index)).
// Throws std::invalid_argument for size < 16, channels < 1, slices_per_patient < 1, or
// probabilities / strengths outside their ranges.
PhantomSlice make_phantom_slice(const PhantomOptions& options, uint64_t seed, uint64_t patient,
                                int index);

// A fixed batch for profiling and benchmarks: the middle slice (index 16) of patients 0..count-1,
// images concatenated as count x channels x size x size and masks as count x size x size.
struct PhantomBatch {
  std::vector<float> image, mask;
};
PhantomBatch make_phantom_batch(const PhantomOptions& options, uint64_t seed, int count);

}  // namespace unet
