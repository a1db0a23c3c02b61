// `unet cv`: k-fold cross-validation by patient. Every fold's patients are held out once: a run is
// trained on the others (its own validation patients drawn from them for LR decay, early stopping
// and the best epoch), and only then predicts the held-out patients, so each patient is scored by
// a model that never saw it, against its truth at the stored size. On those held-out predictions
// it decides, once for the whole folder, whether test-time flips, another probability threshold
// than 0.5 and a connected-component filter raise the mean per-patient Dice, and records the
// choice for `eval` / `predict` with the folder as their --checkpoint (an ensemble of the fold
// models). Each choice is made on the same held-out predictions it is then scored on, so the
// chosen score is optimistic by what picking the best of a few candidates can gain from noise;
// the candidates are few and coarse for that reason, and every one tried is reported.
//
// Folder: folds.txt (the held-out patients of each fold), fold-1 .. fold-k (ordinary run
// folders), cv_per_patient.csv, cv_summary.json, cv_dice.png and inference.txt. Running the same
// command again continues: finished folds are kept, an interrupted one resumes from its
// last.ckpt, and the scoring is redone.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>

#include "tools/commands.h"
#include "tools/inference.h"
#include "tools/scoring.h"
#include "tools/training.h"
#include "train/io/files.h"
#include "train/plot.h"

namespace unet::cli {
namespace {

namespace fs = std::filesystem;

using Folds = std::vector<std::vector<std::string>>;

std::string folds_text(const Folds& folds) {
  std::string text = "# unet cv: the held-out patients of each fold\n";
  for (std::size_t f = 0; f < folds.size(); ++f) {
    text += "fold " + std::to_string(f + 1) + ":\n";
    for (const std::string& id : folds[f]) text += id + "\n";
  }
  return text;
}

// The folds of an earlier run in this folder must be the ones these flags and data give, or the
// finished folds would have been trained on other patients.
void check_or_write_folds(const std::string& path, const Folds& folds) {
  const std::string text = folds_text(folds);
  std::error_code ec;
  if (fs::exists(path, ec)) {
    const std::vector<uint8_t> bytes = io::read_file(path);
    if (std::string(bytes.begin(), bytes.end()) != text)
      throw io::FileError(path, "the folds of the earlier run in this folder differ from those of this data, --folds "
                                "and --seed; use another --out, or the earlier settings");
    return;
  }
  io::write_file_atomic(path, std::vector<uint8_t>(text.begin(), text.end()));
}

// The candidates of the post-processing choice: sizes in voxels at the truth's resolution.
const char* const kPostProcessCandidates[] = {"none", "largest", "min:20", "min:100", "min:500"};
// The candidates of the threshold choice (--threshold auto); 0.5 first, the others are kept only
// where they score higher.
const float kThresholdCandidates[] = {0.5f, 0.3f, 0.4f, 0.6f};

struct Candidate {
  std::string tta, postprocess;
  float threshold = 0.5f;
  double dice_mean = 0;
};

// Patient -> its fold, numbered from 1 as the folders are.
std::map<std::string, int> fold_numbers(const Folds& folds) {
  std::map<std::string, int> number;
  for (std::size_t f = 0; f < folds.size(); ++f)
    for (const std::string& id : folds[f]) number[id] = int(f) + 1;
  return number;
}

// Percentile of sorted values, linear between ranks (numpy's default).
double percentile(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return NAN;
  const double at = q * double(sorted.size() - 1);
  const std::size_t lo = std::size_t(at);
  const std::size_t hi = std::min(lo + 1, sorted.size() - 1);
  return sorted[lo] + (at - double(lo)) * (sorted[hi] - sorted[lo]);
}

// Per-patient Dice, patients sorted by it, one series of dots per fold.
void plot_dice(const std::string& path, const std::vector<Row>& patients, const Folds& folds) {
  const std::map<std::string, int> fold_of = fold_numbers(folds);
  std::vector<std::pair<double, std::string>> order;
  for (const Row& p : patients) order.emplace_back(p.s.dice, p.name);
  std::sort(order.begin(), order.end());
  CurvePanel panel{"Dice", {}, false};
  for (std::size_t f = 0; f < folds.size(); ++f) {
    Series s{"fold " + std::to_string(f + 1), {}, {}, kPlotColours[f % kPlotColours.size()]};
    for (std::size_t i = 0; i < order.size(); ++i) {
      // Points alone: a gap after every patient, so that neighbours of one fold are not joined
      // by a line.
      s.x.push_back(double(i + 1));
      s.y.push_back(fold_of.at(order[i].second) == int(f) + 1 ? order[i].first : NAN);
      s.x.push_back(NAN);
      s.y.push_back(NAN);
    }
    panel.series.push_back(std::move(s));
  }
  plot_curves(path, {panel}, "cross-validation: Dice per held-out patient", "patient (sorted by Dice)");
}

}  // namespace

int run_cv(int argc, char** argv) {
  Args args("cv",
            "k-fold cross-validation by patient: trains one run per fold on the other folds' patients, predicts\n"
            "the held-out fold with it and scores every patient at the truth's stored size. Chooses test-time\n"
            "flips, the probability threshold and connected-component post-processing on those scores (each kept\n"
            "only where it raises the mean per-patient Dice) and records them for `unet eval/predict --checkpoint <out>`, which then run the\n"
            "fold models as an ensemble. Writes folds.txt, fold-<k>/ run folders, cv_per_patient.csv,\n"
            "cv_summary.json, cv_dice.png and inference.txt; the same command again continues an interrupted run.");
  add_training_flags(args);
  args.option("out", "dir", "runs/cv", "cross-validation folder")
      .option("folds", "k", "5", "number of folds (balanced by tumour volume; patients per fold differ by at most one)")
      .option("threshold", "p", "auto",
              "probability >= p is tumour, or auto: chosen on the held-out predictions among 0.5, 0.3, 0.4 and 0.6 "
              "(0.5 unless another raises the mean per-patient Dice)")
      .option("eval-batch", "n", "8", "images per forward pass when predicting the held-out folds");
  if (!args.parse(argc, argv)) return 0;
  apply_recipe(args, "cv");

  const auto started = std::chrono::steady_clock::now();
  TrainingSetup setup = training_setup(args, "cv");
  const bool choose_threshold = args.get("threshold") == "auto";
  const float given_threshold = choose_threshold ? 0.5f : parse_threshold(args.get("threshold"), "cv");
  check_common_flags(args.get_int("eval-batch"), 0, "cv");
  setup.data.keep_native_masks = true;
  const std::vector<Sample> samples = load_training_data(args, setup, "cv");
  Folds folds;
  try {
    folds = cv_folds(samples, args.get_int("folds"), setup.options.seed);
  } catch (const std::invalid_argument& e) {
    throw UsageError(std::string("unet cv: --folds: ") + e.what());
  }
  const fs::path out = args.get("out");
  fs::create_directories(out);
  check_or_write_folds((out / "folds.txt").string(), folds);

  // 1. One run per fold.
  std::vector<std::string> checkpoints;
  for (std::size_t f = 0; f < folds.size(); ++f) {
    const fs::path run = out / ("fold-" + std::to_string(f + 1));
    checkpoints.push_back((run / "best.ckpt").string());
    std::error_code ec;
    if (fs::is_regular_file(run / "summary.json", ec) && fs::is_regular_file(run / "best.ckpt", ec)) {
      std::printf("fold %zu/%zu: trained already (%s)\n", f + 1, folds.size(), run.c_str());
      continue;
    }
    const std::set<std::string> held(folds[f].begin(), folds[f].end());
    std::set<std::string> rest;
    for (const Sample& s : samples)
      if (!held.count(s.patient)) rest.insert(s.patient);
    TrainingSetup fold = setup;
    TrainOptions& o = fold.options;
    o.run_dir = run.string();
    o.resume = fs::is_regular_file(run / "last.ckpt", ec);
    o.settings["split"] = "cv fold " + std::to_string(f + 1) + " of " + std::to_string(folds.size());
    o.settings["draw-split"] = "no";
    fs::create_directories(run);
    const std::string split_file = (run / "split.txt").string();
    const Split split = o.resume && fs::exists(split_file, ec)
                            ? read_split(split_file, samples)
                            : split_patients({rest.begin(), rest.end()}, args.get_float("val-fraction"), o.seed);
    if (!o.resume) write_split(split_file, split);
    std::printf("\nfold %zu/%zu: %zu held-out patients, %zu for training (%zu of them for validation)%s\n", f + 1,
                folds.size(), held.size(), rest.size(), split.val.size(), o.resume ? ", resumed" : "");
    train_on_split(args, fold, samples, split, "cv");
  }

  // 2. Every fold's model predicts its held-out patients, with and without flips.
  std::vector<const Sample*> held_out;
  std::vector<std::vector<float>> plain, flipped;
  for (std::size_t f = 0; f < folds.size(); ++f) {
    const std::set<std::string> held(folds[f].begin(), folds[f].end());
    std::vector<const Sample*> fold_samples;
    for (const Sample& s : samples)
      if (held.count(s.patient)) fold_samples.push_back(&s);
    std::printf("fold %zu/%zu: predicting %zu held-out slices\n", f + 1, folds.size(), fold_samples.size());
    Predictor without({checkpoints[f]}, setup.options.device, false, {});
    Predictor with({checkpoints[f]}, setup.options.device, true, {});
    for (auto& p : without.probabilities(fold_samples, args.get_int("eval-batch"))) plain.push_back(std::move(p));
    for (auto& p : with.probabilities(fold_samples, args.get_int("eval-batch"))) flipped.push_back(std::move(p));
    held_out.insert(held_out.end(), fold_samples.begin(), fold_samples.end());
  }

  // 3. The choices, each kept only where it raises the mean per-patient Dice; in turn flips (at the
  // given threshold), the threshold, then the post-processing.
  std::vector<Candidate> tried;
  auto try_candidate = [&](const std::string& tta, float threshold, const std::string& postprocess) {
    const Scored s = score_predictions(held_out, tta == "flips" ? flipped : plain, threshold, true,
                                       PostProcess::parse(postprocess));
    tried.push_back({tta, postprocess, threshold, s.overall.dice_mean});
    std::printf("  tta %-5s threshold %.2f post-processing %-8s: mean Dice %.4f\n", tta.c_str(), double(threshold),
                postprocess.c_str(), s.overall.dice_mean);
    return s.overall.dice_mean;
  };
  std::printf("\nchoosing on the held-out predictions (mean per-patient Dice at the truth's size):\n");
  const double with_flips = try_candidate("flips", given_threshold, "none");
  const double without = try_candidate("none", given_threshold, "none");
  const std::string tta = with_flips > without ? "flips" : "none";
  double best = std::max(with_flips, without);
  float threshold = given_threshold;
  for (const float candidate : kThresholdCandidates) {
    if (!choose_threshold || candidate == given_threshold) continue;
    const double dice = try_candidate(tta, candidate, "none");
    if (dice > best) best = dice, threshold = candidate;
  }
  std::string postprocess = "none";
  for (const char* candidate : kPostProcessCandidates) {
    if (std::string(candidate) == "none") continue;
    const double dice = try_candidate(tta, threshold, candidate);
    if (dice > best) best = dice, postprocess = candidate;
  }
  const Scored scored = score_predictions(held_out, tta == "flips" ? flipped : plain, threshold, true,
                                          PostProcess::parse(postprocess));

  // 4. Reports.
  std::printf("\nchosen: tta %s, threshold %.2f, post-processing %s\n\n", tta.c_str(), double(threshold),
              postprocess.c_str());
  print_report(scored.images, scored.patients, scored.overall);
  std::vector<double> dice;
  for (const Row& p : scored.patients) dice.push_back(p.s.dice);
  std::sort(dice.begin(), dice.end());
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();

  const std::map<std::string, int> fold_of = fold_numbers(folds);
  std::string csv = "patient,fold,slices,tumour_pixels,predicted_pixels,dice,iou,precision,recall,hd95\n";
  for (const Row& p : scored.patients)
    csv += p.name + "," + std::to_string(fold_of.at(p.name)) + "," + std::to_string(p.slices) + "," + std::to_string(p.c.tp + p.c.fn) +
           "," + std::to_string(p.c.tp + p.c.fp) + "," + csv_number(p.s.dice) + "," + csv_number(p.s.iou) + "," +
           csv_number(p.s.precision) + "," + csv_number(p.s.recall) + "," + csv_number(p.s.hd95) + "\n";
  std::ostringstream j;
  j << "{\n  \"data\": " << json_string(args.get("data")) << ",\n  \"folds\": " << folds.size()
    << ",\n  \"patients\": " << scored.patients.size() << ",\n  \"size\": " << args.get_int("size")
    << ",\n  \"scored_at\": \"native\",\n  \"threshold\": " << json_number(threshold) << ",\n  \"chosen\": {\"tta\": "
    << json_string(tta) << ", \"threshold\": " << json_number(threshold) << ", \"postprocess\": "
    << json_string(postprocess) << "},\n  \"per_patient_dice\": {\"mean\": "
    << json_number(scored.overall.dice_mean) << ", \"median\": " << json_number(scored.overall.dice_median)
    << ", \"q25\": " << json_number(percentile(dice, 0.25)) << ", \"q75\": " << json_number(percentile(dice, 0.75))
    << "},\n  \"per_fold_dice_mean\": [";
  for (std::size_t f = 0; f < folds.size(); ++f) {
    std::vector<double> fold_dice;
    for (const Row& p : scored.patients)
      if (fold_of.at(p.name) == int(f) + 1) fold_dice.push_back(p.s.dice);
    j << (f ? ", " : "") << json_number(mean(fold_dice));
  }
  j << "],\n  \"pooled\": " << scores_json(scored.overall.pooled, "hd95_mean_over_images") << ",\n  \"tried\": [\n";
  for (std::size_t i = 0; i < tried.size(); ++i)
    j << "    {\"tta\": " << json_string(tried[i].tta) << ", \"threshold\": " << json_number(tried[i].threshold)
      << ", \"postprocess\": " << json_string(tried[i].postprocess)
      << ", \"dice_mean\": " << json_number(tried[i].dice_mean) << "}" << (i + 1 < tried.size() ? ",\n" : "\n");
  j << "  ],\n  \"seconds_this_invocation\": " << json_number(seconds) << ",\n  \"conventions\": {\n    \"empty_masks\": "
    << json_string(kConventions) << ",\n    \"aggregation\": " << json_string(kPatientNote) << "\n  }\n}\n";
  write_text((out / "cv_per_patient.csv").string(), csv);
  write_text((out / "cv_summary.json").string(), j.str());
  plot_dice((out / "cv_dice.png").string(), scored.patients, folds);
  write_text((out / kInferenceChoicesFile).string(),
             "tta=" + tta + "\npostprocess=" + postprocess + "\nthreshold=" + json_number(threshold) + "\n");
  std::printf("per-patient Dice: mean %.4f, median %.4f, IQR %.4f-%.4f over %zu patients in %zu folds\n",
              scored.overall.dice_mean, scored.overall.dice_median, percentile(dice, 0.25), percentile(dice, 0.75),
              scored.patients.size(), folds.size());
  std::printf("written: %s/{folds.txt, cv_per_patient.csv, cv_summary.json, cv_dice.png, inference.txt}; "
              "`unet predict --checkpoint %s` runs the %zu fold models as an ensemble with these choices\n",
              out.c_str(), out.c_str(), folds.size());
  return 0;
}

}  // namespace unet::cli
