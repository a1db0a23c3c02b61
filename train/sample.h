// One training or evaluation example: an image slice, its tumour mask, and where it came from.
#pragma once

#include <string>
#include <vector>

namespace unet {

struct Sample {
  int channels = 0, height = 0, width = 0;
  std::vector<float> image;  // channels x height x width, normalised (see train/dataset.h)
  std::vector<float> mask;   // height x width, 0 or 1; empty when the truth is unknown
  std::string patient;       // patient id from the dataset layout (the split unit)
  std::string id;            // unique slice id, e.g. "TCGA_CS_4941_19960909/12"
  std::string source;        // the file(s) the slice was read from, for error messages
  // The slice's stored size, and its mask at that size when the loader was asked to keep it
  // (DatasetOptions::keep_native_masks) and the slice was resized: scores against the truth as
  // drawn, not as resized to the model's input.
  int native_height = 0, native_width = 0;
  std::vector<float> native_mask;

  bool has_mask() const { return !mask.empty(); }
  const std::vector<float>& truth_at_native_size() const { return native_mask.empty() ? mask : native_mask; }
};

}  // namespace unet
