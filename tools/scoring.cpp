// Scores of predicted masks (see scoring.h).
#include "tools/scoring.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>

#include "tools/inference.h"

namespace unet::cli {

const char* const kConventions =
    "Dice = F1 = 2TP/(2TP+FP+FN) and IoU = TP/(TP+FP+FN) are 1 when truth and prediction are "
    "both empty and 0 when exactly one is; precision is 1 when nothing is predicted; recall is 1 "
    "when the truth is empty; specificity is 1 when every pixel is tumour. HD95 (pixels) is 0 "
    "when both masks are empty and undefined (null, left out of means and counted) when exactly "
    "one is. Pixel accuracy is near 1 for any model that predicts nothing on mostly-background "
    "slices: read Dice per patient instead.";
const char* const kPatientNote =
    "Per patient: scores from the confusion counts summed over the patient's slices (volume "
    "level); HD95 is the mean of the patient's slice HD95s that are defined on slices with tumour "
    "in the truth or the prediction (a patient with nothing predicted has an undefined HD95, not "
    "0). Overall: mean and median over patients, and scores pooled over all pixels (HD95: mean "
    "over those same images).";

namespace {

const char* const kScoreColumns = "tp,fp,fn,tn,dice,iou,precision,recall,specificity,f1,accuracy,hd95";

std::string score_fields(const Row& r) {
  std::string out;
  for (int64_t v : {r.c.tp, r.c.fp, r.c.fn, r.c.tn}) out += std::to_string(v) + ",";
  for (double v : {r.s.dice, r.s.iou, r.s.precision, r.s.recall, r.s.specificity, r.s.f1, r.s.accuracy, r.s.hd95})
    out += csv_number(v) + ",";
  out.pop_back();
  return out;
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

// Whether an image's HD95 enters averages: defined, and with tumour in the truth or the
// prediction. A slice empty in both has HD95 0 by convention; averaged in, such slices would
// make a patient with nothing predicted read as a perfect 0.
bool hd95_counts(const Row& r) { return std::isfinite(r.s.hd95) && r.c.tp + r.c.fn + r.c.fp > 0; }

}  // namespace

std::string scores_json(const Scores& s, const char* hd95_name) {
  const std::pair<const char*, double> fields[] = {
      {"dice", s.dice}, {"iou", s.iou}, {"precision", s.precision}, {"recall", s.recall},
      {"specificity", s.specificity}, {"f1", s.f1}, {"accuracy", s.accuracy}, {hd95_name, s.hd95}};
  std::string out = "{";
  for (const auto& [name, value] : fields) out += (out.size() > 1 ? ", " : "") + json_string(name) + ": " + json_number(value);
  return out + "}";
}

double median(std::vector<double> v) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  const std::size_t m = v.size() / 2;
  return v.size() % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

double mean(const std::vector<double>& v) {
  double sum = 0;
  for (double x : v) sum += x;
  return v.empty() ? NAN : sum / double(v.size());
}

std::vector<Row> per_patient(const std::vector<Row>& images) {
  std::vector<Row> patients;
  std::map<std::string, std::size_t> index;
  std::vector<double> hd95_sum;
  for (const Row& r : images) {
    auto [it, added] = index.emplace(r.patient, patients.size());
    if (added) {
      patients.push_back({r.patient, r.patient, 0, {}, {}, 0});
      hd95_sum.push_back(0);
    }
    Row& p = patients[it->second];
    ++p.slices;
    p.c += r.c;
    if (hd95_counts(r)) {
      ++p.hd95_defined;
      hd95_sum[it->second] += r.s.hd95;
    }
  }
  for (std::size_t i = 0; i < patients.size(); ++i) {
    patients[i].s = scores(patients[i].c);
    patients[i].s.hd95 = patients[i].hd95_defined ? hd95_sum[i] / patients[i].hd95_defined : NAN;
  }
  return patients;
}

Overall overall(const std::vector<Row>& images, const std::vector<Row>& patients) {
  Overall o{};
  Confusion total;
  std::vector<double> hd95s, dice, iou;
  for (const Row& r : images) {
    total += r.c;
    if (hd95_counts(r)) hd95s.push_back(r.s.hd95);
    o.images_hd95_undefined += !std::isfinite(r.s.hd95);
    o.images_with_tumour += r.c.tp + r.c.fn > 0;
  }
  for (const Row& p : patients) {
    dice.push_back(p.s.dice);
    iou.push_back(p.s.iou);
    o.patients_hd95_undefined += !std::isfinite(p.s.hd95);
  }
  o.pooled = scores(total);
  o.pooled.hd95 = mean(hd95s);
  o.dice_mean = mean(dice);
  o.dice_median = median(dice);
  o.iou_mean = mean(iou);
  o.iou_median = median(iou);
  return o;
}

std::string table_csv(const char* first_columns, const std::vector<Row>& rows, bool patients) {
  std::string out = std::string(first_columns) + "," + kScoreColumns + (patients ? ",hd95_slices\n" : "\n");
  for (const Row& r : rows) {
    out += csv_field(r.name) + "," + (patients ? std::to_string(r.slices) : csv_field(r.patient)) + ",";
    out += std::to_string(r.c.tp + r.c.fn) + "," + std::to_string(r.c.tp + r.c.fp) + "," + score_fields(r);
    out += patients ? "," + std::to_string(r.hd95_defined) + "\n" : "\n";
  }
  return out;
}

void print_report(const std::vector<Row>& images, const std::vector<Row>& patients, const Overall& o) {
  std::printf("%-32s %6s %10s %8s %8s %8s\n", "patient", "slices", "tumour px", "Dice", "IoU", "HD95");
  for (const Row& p : patients)
    std::printf("%-32s %6d %10lld %8.4f %8.4f %8s\n", p.name.c_str(), p.slices, static_cast<long long>(p.c.tp + p.c.fn),
                p.s.dice, p.s.iou, csv_number(p.s.hd95).c_str());
  std::printf("\n%zu patients, %zu images (%d with tumour, %d with undefined HD95)\n", patients.size(), images.size(),
              o.images_with_tumour, o.images_hd95_undefined);
  std::printf("per patient: Dice mean %.4f median %.4f, IoU mean %.4f median %.4f\n", o.dice_mean, o.dice_median,
              o.iou_mean, o.iou_median);
  std::printf("pooled over all pixels: Dice %.4f IoU %.4f precision %.4f recall %.4f specificity %.4f accuracy %.4f, "
              "HD95 %s px (mean over images)\n",
              o.pooled.dice, o.pooled.iou, o.pooled.precision, o.pooled.recall, o.pooled.specificity, o.pooled.accuracy,
              csv_number(o.pooled.hd95).c_str());
}

Scored score_predictions(const std::vector<const Sample*>& samples, const std::vector<std::vector<float>>& probabilities,
                         float threshold, bool at_native, const PostProcess& postprocess) {
  Scored out;
  // Masks at the size they are scored at: the truth's own (the probabilities resampled back to it
  // before thresholding), or the model's input size.
  out.masks.resize(samples.size());
  out.sizes.resize(samples.size());
  for (std::size_t i = 0; i < samples.size(); ++i) {
    const Sample& s = *samples[i];
    const bool native = at_native && !s.native_mask.empty();
    out.sizes[i] = native ? std::pair(s.native_height, s.native_width) : std::pair(s.height, s.width);
    out.masks[i] = binary_mask(
        native ? resize_map(probabilities[i], s.height, s.width, out.sizes[i].first, out.sizes[i].second) : probabilities[i],
        threshold);
  }
  postprocess_patients(postprocess, samples, out.sizes, out.masks);
  out.images.resize(samples.size());
#pragma omp parallel for schedule(dynamic)
  for (std::ptrdiff_t k = 0; k < std::ptrdiff_t(samples.size()); ++k) {  // HD95 is the costly part
    const auto i = std::size_t(k);
    const Sample& s = *samples[i];
    const float* truth = at_native ? s.truth_at_native_size().data() : s.mask.data();
    const auto [height, width] = out.sizes[i];
    Row& r = out.images[i];
    r = {s.id, s.patient, 1, confusion(truth, out.masks[i].data(), height, width), {}, 0};
    r.s = image_scores(truth, out.masks[i].data(), height, width);
    r.hd95_defined = std::isfinite(r.s.hd95);
  }
  out.patients = per_patient(out.images);
  out.overall = overall(out.images, out.patients);
  return out;
}

}  // namespace unet::cli
