// `unet eval`: scores a checkpoint on a labelled dataset per image, per patient and overall,
// writes the scores as CSV and JSON with overlays of the slices with the most tumour, and prints
// a table of per-patient Dice. Nothing is written before every score is known, and a failed write
// removes what the run created (OutputFolder).
#include <algorithm>
#include <cstdio>
#include <sstream>

#include "tools/args.h"
#include "tools/commands.h"
#include "tools/inference.h"
#include "tools/model_flags.h"
#include "tools/scoring.h"
#include "train/metrics.h"
#include "train/plot.h"
#include "train/split.h"

namespace unet::cli {
namespace {

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

std::string summary_json(const Args& args, float threshold, const std::vector<Row>& images,
                         const std::vector<Row>& patients, const Overall& o, const std::string& device) {
  std::ostringstream j;
  j << "{\n  \"checkpoint\": " << json_string(args.get("checkpoint")) << ",\n  \"data\": " << json_string(args.get("data"))
    << ",\n  \"split\": " << (args.get("split").empty() ? "null" : json_string(args.get("split")))
    << ",\n  \"subset\": " << json_string(args.get("split").empty() ? "all" : args.get("subset"))
    << ",\n  \"tta\": " << json_string(args.get("tta")) << ",\n  \"postprocess\": " << json_string(args.get("postprocess"))
    << ",\n  \"score_at\": " << json_string(args.get("score-at"))
    << ",\n  \"threshold\": " << json_number(threshold) << ",\n  \"size\": " << args.get_int("size")
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
  const float threshold = threshold_flag(args, "eval");
  const int batch = args.get_int("batch"), overlays = args.get_int("overlays");
  check_common_flags(batch, args.get_int("threads"), "eval");
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
  if (args.get("threshold") == "auto" && threshold != 0.5f)
    std::printf("threshold %s, as chosen by unet cv for %s\n", json_number(threshold).c_str(), args.get("checkpoint").c_str());
  const std::vector<std::vector<float>> probabilities = predictor.probabilities(samples, batch);
  const Scored scored = score_predictions(samples, probabilities, threshold, at_native, predictor.postprocess());
  const std::vector<Row>& images = scored.images;
  const std::vector<Row>& patients = scored.patients;
  const Overall& totals = scored.overall;
  print_report(images, patients, totals);

  if (args.get("out").empty()) return 0;
  OutputFolder out(args.get("out"));
  write_text(out.path("per_image.csv"), table_csv("id,patient,tumour_pixels,predicted_pixels", images, false));
  write_text(out.path("per_patient.csv"), table_csv("patient,slices,tumour_pixels,predicted_pixels", patients, true));
  write_text(out.path("summary.json"), summary_json(args, threshold, images, patients, totals, to_string(device)));
  write_overlays(out, samples, images, scored.masks, scored.sizes, overlays);
  out.commit();
  std::printf("written: %s/{per_image.csv, per_patient.csv, summary.json}, %d overlays in %s/overlays\n",
              args.get("out").c_str(), std::min(overlays, int(samples.size())), args.get("out").c_str());
  return 0;
}

}  // namespace unet::cli
