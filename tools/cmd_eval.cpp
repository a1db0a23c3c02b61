// `unet eval`: scores a checkpoint on a labelled dataset per image, per patient and overall,
// writes the scores as CSV and JSON with overlays of the slices with the most tumour, and prints
// a table of per-patient Dice. Nothing is written before every score is known, and a failed write
// removes what the run created (OutputFolder).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <sstream>

#include "tools/args.h"
#include "tools/commands.h"
#include "tools/inference.h"
#include "tools/model_flags.h"
#include "train/metrics.h"
#include "train/plot.h"
#include "train/split.h"

namespace unet::cli {
namespace {

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

struct Row {
  std::string name, patient;  // image id or patient id; patient of an image
  int slices = 1;
  Confusion c;
  Scores s;
  int hd95_defined = 0;  // images with a defined HD95 (1 or 0 for an image)
};

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

// {"dice": ..., "hd95": ...} on one line; `hd95_name` says how the HD95 was aggregated.
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

// The samples to score: all of them, or a subset of a split file's patients.
std::vector<const Sample*> selected(const std::vector<Sample>& samples, const Args& args) {
  const std::string split = args.get("split"), subset = args.get("subset");
  std::vector<const Sample*> out;
  if (split.empty() || subset == "all") {
    for (const Sample& s : samples) out.push_back(&s);
    return out;
  }
  const Split parts = read_split(split, samples);
  for (int i : sample_indices(samples, subset == "val" ? parts.val : parts.train)) out.push_back(&samples[std::size_t(i)]);
  if (out.empty()) throw std::runtime_error(split + ": its " + subset + " subset has no slices in " + args.get("data"));
  return out;
}

// Whether an image's HD95 enters averages: defined, and with tumour in the truth or the
// prediction. A slice empty in both has HD95 0 by convention; averaged in, such slices would
// make a patient with nothing predicted read as a perfect 0.
bool hd95_counts(const Row& r) { return std::isfinite(r.s.hd95) && r.c.tp + r.c.fn + r.c.fp > 0; }

// Per-patient rows, in the order patients first appear, from the per-image rows.
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

struct Overall {
  Scores pooled;
  double dice_mean, dice_median, iou_mean, iou_median;
  int images_hd95_undefined = 0, patients_hd95_undefined = 0, images_with_tumour = 0;
};

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

std::string summary_json(const Args& args, const std::vector<Row>& images, const std::vector<Row>& patients,
                         const Overall& o, const std::string& device) {
  std::ostringstream j;
  j << "{\n  \"checkpoint\": " << json_string(args.get("checkpoint")) << ",\n  \"data\": " << json_string(args.get("data"))
    << ",\n  \"split\": " << (args.get("split").empty() ? "null" : json_string(args.get("split")))
    << ",\n  \"subset\": " << json_string(args.get("split").empty() ? "all" : args.get("subset"))
    << ",\n  \"tta\": " << json_string(args.get("tta")) << ",\n  \"postprocess\": " << json_string(args.get("postprocess"))
    << ",\n  \"score_at\": " << json_string(args.get("score-at"))
    << ",\n  \"threshold\": " << json_number(args.get_float("threshold")) << ",\n  \"size\": " << args.get_int("size")
    << ",\n  \"device\": " << json_string(device) << ",\n  \"counts\": {\n    \"images\": " << images.size()
    << ",\n    \"patients\": " << patients.size() << ",\n    \"images_with_tumour\": " << o.images_with_tumour
    << ",\n    \"images_hd95_undefined\": " << o.images_hd95_undefined
    << ",\n    \"patients_hd95_undefined\": " << o.patients_hd95_undefined << "\n  },\n  \"per_patient\": {\n"
    << "    \"dice_mean\": " << json_number(o.dice_mean) << ",\n    \"dice_median\": " << json_number(o.dice_median)
    << ",\n    \"iou_mean\": " << json_number(o.iou_mean) << ",\n    \"iou_median\": " << json_number(o.iou_median)
    << "\n  },\n  \"pooled\": " << scores_json(o.pooled, "hd95_mean_over_images") << ",\n  \"patients\": {\n";
  for (std::size_t i = 0; i < patients.size(); ++i)
    j << "    " << json_string(patients[i].name) << ": " << scores_json(patients[i].s, "hd95_mean_over_slices")
      << (i + 1 < patients.size() ? ",\n" : "\n");
  j << "  },\n  \"conventions\": {\n    \"empty_masks\": " << json_string(kConventions)
    << ",\n    \"aggregation\": " << json_string(kPatientNote) << "\n  }\n}\n";
  return j.str();
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

// Overlays of the `count` images with the most tumour pixels (ties: dataset order).
// The overlays show the model's input; masks scored at another size are resampled to it.
void write_overlays(OutputFolder& out, const std::vector<const Sample*>& samples, const std::vector<Row>& images,
                    const std::vector<std::vector<float>>& masks, const std::vector<std::pair<int, int>>& sizes, int count) {
  std::vector<std::size_t> order(samples.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    return images[a].c.tp + images[a].c.fn > images[b].c.tp + images[b].c.fn;
  });
  order.resize(std::min(order.size(), std::size_t(count)));
  for (std::size_t i : order) {
    const Sample& s = *samples[i];
    OverlayInput in;
    in.channels = s.channels;
    in.height = s.height;
    in.width = s.width;
    in.image = s.image.data();
    in.truth = s.mask.data();
    const std::vector<float> shown =
        sizes[i] == std::pair(s.height, s.width)
            ? masks[i]
            : binary_mask(resize_map(masks[i], sizes[i].first, sizes[i].second, s.height, s.width), 0.5f);
    in.prediction = shown.data();
    in.display_channels = display_channels(s.channels);
    in.scale = overlay_scale(s.height, s.width);
    char header[160];
    std::snprintf(header, sizeof header, "%s  Dice %.3f  IoU %.3f", s.id.c_str(), images[i].s.dice, images[i].s.iou);
    in.header = header;
    plot_overlay(out.path("overlays/" + file_name_of(s.id) + ".png"), in);
  }
}

}  // namespace

int run_eval(int argc, char** argv) {
  Args args("eval", "Scores a checkpoint on a labelled dataset: Dice, IoU, precision, recall, specificity, F1,\n"
                    "pixel accuracy and HD95 per image, per patient (pooled counts) and overall, against each\n"
                    "mask at its stored size (see --score-at). With --out,\n"
                    "writes per_image.csv, per_patient.csv, summary.json and overlays/<id>.png.");
  args.option("checkpoint", "file", "", "the model to score (required); several, comma-separated, or a folder of runs: their ensemble")
      .option("data", "source", "", "labelled dataset: phantom[:N], LGG, BraTS, npy or image folder (required)")
      .option("split", "file", "", "split file of a training run (see --subset)")
      .option("subset", "name", "val", "val, train or all patients of --split (all without --split)")
      .option("size", "pixels", "240", "input height and width the images are resized to (default: the checkpoint's training size)")
      .option("threshold", "p", "0.5", "probability >= p is tumour")
      .option("score-at", "size", "native",
              "native: against each mask at its stored size (probabilities resampled back before thresholding); "
              "input: at --size, as the model sees them")
      .option("batch", "n", "8", "images per forward pass")
      .option("device", "name", "auto", "auto (CUDA when a GPU is usable, else CPU), cpu or cuda")
      .option("threads", "n", "0", "CPU threads (0: all cores)")
      .option("out", "dir", "", "write the results here (none: print only)")
      .option("overlays", "n", "8", "overlays of the n slices with the most tumour pixels (with --out)");
  Predictor::add_flags(args);
  add_kernels_flag(args);
  add_input_limit_flag(args);
  if (!args.parse(argc, argv)) return 0;
  for (const char* required : {"checkpoint", "data"})
    if (args.get(required).empty()) throw UsageError(std::string("unet eval: --") + required + " is required");
  const float threshold = args.get_float("threshold");
  const int batch = args.get_int("batch"), overlays = args.get_int("overlays");
  check_common_flags(threshold, batch, args.get_int("threads"), "eval");
  if (overlays < 0) throw UsageError("unet eval: --overlays must be >= 0");
  const std::string subset = args.get("subset");
  if (subset != "val" && subset != "train" && subset != "all")
    throw UsageError("unet eval: --subset must be val, train or all, got '" + subset + "'");
  if (args.get("score-at") != "native" && args.get("score-at") != "input")
    throw UsageError("unet eval: --score-at must be native or input, got '" + args.get("score-at") + "'");
  if (args.get("split").empty() && args.has("subset") && subset != "all")
    throw UsageError("unet eval: --subset " + subset + " needs --split FILE");

  apply_kernels_flag(args, "eval");
  apply_input_limit_flag(args, "eval");
  const Device device = resolve_device(args.get("device"));
  Predictor predictor(args, device, "eval");
  const bool at_native = args.get("score-at") == "native";
  DatasetOptions options = model_data_options(predictor.model(), args.get_int("size"));
  options.keep_native_masks = at_native;
  const std::vector<Sample> data = load_dataset(args.get("data"), options);
  const std::vector<const Sample*> samples = selected(data, args);
  for (const Sample* s : samples)
    if (!s->has_mask())
      throw std::runtime_error(s->source + ": no tumour mask; eval needs ground truth for every slice");

  if (!predictor.description().empty()) std::printf("predicting with %s\n", predictor.description().c_str());
  const std::vector<std::vector<float>> probabilities = predictor.probabilities(samples, batch);
  // Masks at the size they are scored at: the truth's own (the probabilities resampled back to it
  // before thresholding), or the model's input size.
  std::vector<std::vector<float>> masks(samples.size());
  std::vector<std::pair<int, int>> sizes(samples.size());
  for (std::size_t i = 0; i < samples.size(); ++i) {
    const Sample& s = *samples[i];
    const bool native = at_native && !s.native_mask.empty();
    sizes[i] = native ? std::pair(s.native_height, s.native_width) : std::pair(s.height, s.width);
    masks[i] = binary_mask(native ? resize_map(probabilities[i], s.height, s.width, sizes[i].first, sizes[i].second)
                                  : probabilities[i],
                           threshold);
  }
  postprocess_patients(predictor.postprocess(), samples, sizes, masks);
  std::vector<Row> images(samples.size());
#pragma omp parallel for schedule(dynamic)
  for (std::ptrdiff_t k = 0; k < std::ptrdiff_t(samples.size()); ++k) {  // HD95 is the costly part
    const auto i = std::size_t(k);
    const Sample& s = *samples[i];
    const float* truth = at_native ? s.truth_at_native_size().data() : s.mask.data();
    const auto [height, width] = sizes[i];
    Row& r = images[i];
    r = {s.id, s.patient, 1, confusion(truth, masks[i].data(), height, width), {}, 0};
    r.s = image_scores(truth, masks[i].data(), height, width);
    r.hd95_defined = std::isfinite(r.s.hd95);
  }
  const std::vector<Row> patients = per_patient(images);
  const Overall totals = overall(images, patients);
  print_report(images, patients, totals);

  if (args.get("out").empty()) return 0;
  OutputFolder out(args.get("out"));
  write_text(out.path("per_image.csv"), table_csv("id,patient,tumour_pixels,predicted_pixels", images, false));
  write_text(out.path("per_patient.csv"), table_csv("patient,slices,tumour_pixels,predicted_pixels", patients, true));
  write_text(out.path("summary.json"), summary_json(args, images, patients, totals, to_string(device)));
  write_overlays(out, samples, images, masks, sizes, overlays);
  out.commit();
  std::printf("written: %s/{per_image.csv, per_patient.csv, summary.json}, %d overlays in %s/overlays\n",
              args.get("out").c_str(), std::min(overlays, int(samples.size())), args.get("out").c_str());
  return 0;
}

}  // namespace unet::cli
