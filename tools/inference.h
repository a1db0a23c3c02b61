// What `unet eval` and `unet predict` share: the checkpoint's model on its device, batched
// prediction without grad, binary masks and resizing of probability maps, an output folder that
// a failed run leaves as it found it, and small CSV/JSON formatting helpers.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "engine/backend.h"
#include "models/unet.h"
#include "tools/args.h"
#include "train/dataset.h"
#include "train/sample.h"

namespace unet::cli {

// The model of --checkpoint in eval mode on `device`. --size defaults to the input size the
// checkpoint was trained at (its "data.size"; 240 for checkpoints that do not record one), and an
// explicit --size that differs from it is allowed and said. Throws UsageError when the size is not
// a positive multiple of 2^depth (the model's poolings need it) and std::runtime_error naming the
// checkpoint when the model has other than one output channel (binary tumour masks).
std::unique_ptr<UNet> load_model(Args& args, Device device, const std::string& command);

// Dataset options that give the model what it was built for: its input channels at `size`.
DatasetOptions model_data_options(const UNet& model, int size);

// Tumour probabilities (height x width per sample) for samples of the model's channels, in
// batches of `batch`, without recording a graph.
std::vector<std::vector<float>> predict_probabilities(UNet& model,
                                                      const std::vector<const Sample*>& samples,
                                                      int batch);

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

// Checks --threshold (0 < t < 1) and --batch (>= 1), and applies --threads (0: all cores).
void check_common_flags(float threshold, int batch, int threads, const std::string& command);

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
