// What `unet eval` and `unet predict` share: the checkpoint's model on its device, batched
// prediction without grad, binary masks and resizing of probability maps, an output folder that
// a failed run leaves as it found it, and small CSV/JSON formatting helpers.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/backend.h"
#include "models/unet.h"
#include "tools/args.h"
#include "train/dataset.h"
#include "train/postprocess.h"
#include "train/sample.h"

namespace unet::cli {

// What eval and predict run: the model(s) of --checkpoint in eval mode on one device, with
// test-time flips (--tta) and connected-component post-processing (--postprocess).
//
// --checkpoint is one file, several separated by commas (an ensemble), or a folder: its best.ckpt,
// or else the best.ckpt of each of its sub-folders in name order (the fold runs of a
// cross-validation). The models must agree on input channels, depth and training size. --size
// defaults to the size they were trained at (their "data.size"; 240 for checkpoints that do not
// record one), and an explicit --size that differs is allowed and said.
class Predictor {
 public:
  // Reads --checkpoint, --size, --tta and --postprocess of `args` (see add_flags). Throws
  // UsageError for a bad flag, std::runtime_error naming the checkpoint when the models
  // disagree or have other than one output channel (binary tumour masks).
  Predictor(Args& args, Device device, const std::string& command);
  // The models of `files` (at least one), without flag handling.
  Predictor(const std::vector<std::string>& files, Device device, bool flips, PostProcess postprocess);

  // --tta, --postprocess and --threshold (read by threshold_flag), with their help.
  static void add_flags(Args& args);

  // The first model: channels and depth of them all.
  UNet& model() { return *models_.front(); }
  const PostProcess& postprocess() const { return postprocess_; }
  // "2 models x 4 flips, post-processing largest" for the report; empty for one plain model.
  std::string description() const;

  // Tumour probabilities (height x width per sample) for samples of the model's channels, in
  // batches of `batch`, without recording a graph: the mean over models and flips. Each model's
  // four flips are summed as (identity + horizontal) + (vertical + both), a sum that a flip of
  // the input only reorders within commutative pairs: a flipped input gives exactly the flipped
  // probabilities.
  std::vector<std::vector<float>> probabilities(const std::vector<const Sample*>& samples, int batch);

 private:
  std::vector<std::unique_ptr<UNet>> models_;
  bool flips_ = false;
  PostProcess postprocess_;
  std::string trained_size_;  // the models' "data.size"; empty when they do not record one
  std::string first_checkpoint_;  // named in messages about the ensemble as a whole
};

// The file in a cross-validation folder where `unet cv` records the test-time flips, the
// post-processing and the threshold it chose ("tta=flips", "postprocess=largest",
// "threshold=0.4", one per line; a file without a threshold line means 0.5), and its reader:
// empty when the folder has none; io::FileError for a malformed file.
inline constexpr const char* kInferenceChoicesFile = "inference.txt";
std::map<std::string, std::string> read_inference_choices(const std::string& folder);

// Dataset options that give the model what it was built for: its input channels at `size`.
DatasetOptions model_data_options(const UNet& model, int size);

// The checkpoint files that --checkpoint names (see Predictor); throws io::FileError naming the
// path when there are none.
std::vector<std::string> checkpoint_files(const std::string& spec);

// Applies `p` to the masks (one per sample, sizes[i] = {height, width} of mask i) patient by
// patient: a patient's slices are stacked in the order of their slice numbers (the number after
// the last '/' of the id; missing numbers are empty slices, so that only neighbouring slices
// connect), or in the given order when an id has no number. A patient whose slices differ in size
// is filtered slice by slice in 2-D.
void postprocess_patients(const PostProcess& p, const std::vector<const Sample*>& samples,
                          const std::vector<std::pair<int, int>>& sizes, std::vector<std::vector<float>>& masks);

// 1 where probability >= threshold, else 0: the one binarisation every output uses (metrics,
// mask files and overlays), so they always agree.
std::vector<float> binary_mask(const std::vector<float>& probabilities, float threshold);

// A height x width map resized bilinearly to out_height x out_width, pixel centres aligned (as
// the dataset loader resizes images), to bring a prediction back to its input's size.
std::vector<float> resize_map(const std::vector<float>& map, int height, int width,
                              int out_height, int out_width);

// Overlay settings for `channels` image channels: an RGB composite of the first three (the LGG
// slices are RGB), else the first channel in grey; small slices are drawn enlarged.
std::vector<int> display_channels(int channels);
int overlay_scale(int height, int width);

// A slice id as a file name: "TCGA_CS_4941/12" -> "TCGA_CS_4941_12".
std::string file_name_of(const std::string& id);

// Checks --batch (>= 1) and applies --threads (0: all cores).
void check_common_flags(int batch, int threads, const std::string& command);

// A --threshold value, 0 < p < 1, or a UsageError naming the flag and the value.
float parse_threshold(const std::string& value, const std::string& command);
// --threshold of eval / predict: the value given, or for "auto" the --checkpoint folder's
// choice (inference.txt), else 0.5.
float threshold_flag(const Args& args, const std::string& command);

// An output folder whose new content is removed again unless commit() is called: a run that
// fails half-way leaves no partial results. The folder and its missing parents are created
// here; files that existed before are not recorded, so an error never deletes older results.
class OutputFolder {
 public:
  explicit OutputFolder(const std::string& dir);
  ~OutputFolder();
  OutputFolder(const OutputFolder&) = delete;
  OutputFolder& operator=(const OutputFolder&) = delete;

  // dir/name, recorded when new; sub-folders in `name` are created (and recorded when new).
  std::string path(const std::string& name);
  void commit() { committed_ = true; }
  const std::filesystem::path& dir() const { return dir_; }

 private:
  void create_folders(const std::filesystem::path& dir);

  std::filesystem::path dir_;
  std::vector<std::filesystem::path> created_;  // removed in reverse order
  bool committed_ = false;
};

// Atomic text file (io::write_file_atomic).
void write_text(const std::string& path, const std::string& text);

// Numbers for CSV ("nan" when undefined) and JSON (null when undefined), and a JSON string.
std::string csv_number(double v);
std::string json_number(double v);
std::string json_string(const std::string& s);

}  // namespace unet::cli
