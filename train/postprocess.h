// Connected-component post-processing of binary tumour masks: drop the small islands a model
// predicts away from the tumour, or keep only the largest one. A patient's slices are filtered as
// one volume (components connect across neighbouring slices), a lone slice as a 2-D image.
//
// Connectivity is by faces: 4 neighbours in 2-D, 6 in 3-D (what scipy.ndimage.label uses by
// default, as most published post-processing does). Diagonal contact does not join components.
#pragma once

#include <string>
#include <vector>

namespace unet {

struct PostProcess {
  enum class Kind { none, largest, min_size };
  Kind kind = Kind::none;
  long long min_voxels = 0;  // min_size: components with fewer voxels are removed

  // "none", "largest" or "min:N" (N >= 1): the spelling of --postprocess and of checkpoints.
  static PostProcess parse(const std::string& text);  // throws std::invalid_argument
  std::string to_string() const;
};

// Applies `p` in place to a depth x height x width mask of 0 / 1 values (depth 1: a 2-D image).
// Returns the number of voxels removed.
long long apply_postprocess(const PostProcess& p, std::vector<float>& mask, int depth, int height, int width);

// Component labels of a 0 / 1 mask: 0 for background, 1.. for components numbered in scan order
// (first voxel in depth, row, column order). Returns the number of components; `sizes[k]` is the
// voxel count of component k + 1.
int label_components(const std::vector<float>& mask, int depth, int height, int width, std::vector<int>& labels,
                     std::vector<long long>& sizes);

}  // namespace unet
