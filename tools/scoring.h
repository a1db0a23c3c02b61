// Scoring predicted masks against the truth, shared by `unet eval` and `unet cv`: per image, per
// patient (confusion counts pooled over the patient's slices) and overall, with the conventions
// for empty masks and undefined HD95 written out for the reports.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "train/metrics.h"
#include "train/postprocess.h"
#include "train/sample.h"

namespace unet::cli {

// How empty masks and HD95 are scored, and how per-patient figures are aggregated (summary.json).
extern const char* const kConventions;
extern const char* const kPatientNote;

struct Row {
  std::string name, patient;  // image id or patient id; patient of an image
  int slices = 1;
  Confusion c;
  Scores s;
  int hd95_defined = 0;  // images with a defined HD95 (1 or 0 for an image)
};

struct Overall {
  Scores pooled;
  double dice_mean, dice_median, iou_mean, iou_median;
  int images_hd95_undefined = 0, patients_hd95_undefined = 0, images_with_tumour = 0;
};

// Per-image rows and what follows from them, with the masks that were scored and their sizes.
struct Scored {
  std::vector<Row> images, patients;
  Overall overall;
  std::vector<std::vector<float>> masks;
  std::vector<std::pair<int, int>> sizes;
};

// Thresholds the probabilities (one map per sample, at the samples' size), resampled first to
// each truth's stored size when `at_native` (samples loaded with keep_native_masks), applies the
// post-processing patient by patient, and scores every image against its truth.
Scored score_predictions(const std::vector<const Sample*>& samples, const std::vector<std::vector<float>>& probabilities,
                         float threshold, bool at_native, const PostProcess& postprocess);

// Per-patient rows, in the order patients first appear, from the per-image rows.
std::vector<Row> per_patient(const std::vector<Row>& images);
Overall overall(const std::vector<Row>& images, const std::vector<Row>& patients);

// CSV of rows after `first_columns`; `patients` adds the slice count and hd95_slices columns.
std::string table_csv(const char* first_columns, const std::vector<Row>& rows, bool patients);
// {"dice": ..., "hd95": ...} on one line; `hd95_name` says how the HD95 was aggregated.
std::string scores_json(const Scores& s, const char* hd95_name);
// The per-patient table and the overall figures on stdout.
void print_report(const std::vector<Row>& images, const std::vector<Row>& patients, const Overall& o);

double median(std::vector<double> v);
double mean(const std::vector<double>& v);

}  // namespace unet::cli
