// Connected-component filters of binary masks (see postprocess.h).
#include "train/postprocess.h"

#include <algorithm>
#include <cstddef>
#include <stdexcept>

namespace unet {

PostProcess PostProcess::parse(const std::string& text) {
  if (text == "none") return {};
  if (text == "largest") return {Kind::largest, 0};
  if (text.starts_with("min:")) {
    const std::string number = text.substr(4);
    std::size_t used = 0;
    long long n = 0;
    try {
      n = std::stoll(number, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == number.size() && !number.empty() && n >= 1) return {Kind::min_size, n};
  }
  throw std::invalid_argument("post-processing must be none, largest or min:N with N >= 1 voxels, got '" + text + "'");
}

std::string PostProcess::to_string() const {
  switch (kind) {
    case Kind::none: return "none";
    case Kind::largest: return "largest";
    case Kind::min_size: return "min:" + std::to_string(min_voxels);
  }
  return "none";
}

int label_components(const std::vector<float>& mask, int depth, int height, int width, std::vector<int>& labels,
                     std::vector<long long>& sizes) {
  const std::size_t plane = std::size_t(height) * std::size_t(width), n = plane * std::size_t(depth);
  if (mask.size() != n) throw std::invalid_argument("label_components: mask size does not match its shape");
  labels.assign(n, 0);
  sizes.clear();
  // Flood fill with an explicit stack: a tumour volume can be far deeper than the call stack.
  std::vector<std::size_t> stack;
  for (std::size_t start = 0; start < n; ++start) {
    if (mask[start] == 0.0f || labels[start] != 0) continue;
    const int label = int(sizes.size()) + 1;
    long long size = 0;
    labels[start] = label;
    stack.push_back(start);
    while (!stack.empty()) {
      const std::size_t v = stack.back();
      stack.pop_back();
      ++size;
      const std::size_t z = v / plane, y = (v % plane) / std::size_t(width), x = v % std::size_t(width);
      auto visit = [&](std::size_t u) {
        if (mask[u] != 0.0f && labels[u] == 0) {
          labels[u] = label;
          stack.push_back(u);
        }
      };
      if (x > 0) visit(v - 1);
      if (x + 1 < std::size_t(width)) visit(v + 1);
      if (y > 0) visit(v - std::size_t(width));
      if (y + 1 < std::size_t(height)) visit(v + std::size_t(width));
      if (z > 0) visit(v - plane);
      if (z + 1 < std::size_t(depth)) visit(v + plane);
    }
    sizes.push_back(size);
  }
  return int(sizes.size());
}

long long apply_postprocess(const PostProcess& p, std::vector<float>& mask, int depth, int height, int width) {
  if (p.kind == PostProcess::Kind::none) return 0;
  std::vector<int> labels;
  std::vector<long long> sizes;
  const int count = label_components(mask, depth, height, width, labels, sizes);
  if (count == 0) return 0;
  std::vector<char> keep(std::size_t(count) + 1, 0);
  if (p.kind == PostProcess::Kind::largest) {
    // Ties go to the first component in scan order, so the result never depends on anything else.
    keep[std::size_t(std::max_element(sizes.begin(), sizes.end()) - sizes.begin()) + 1] = 1;
  } else {
    for (int k = 0; k < count; ++k) keep[std::size_t(k) + 1] = sizes[std::size_t(k)] >= p.min_voxels;
  }
  long long removed = 0;
  for (std::size_t i = 0; i < mask.size(); ++i)
    if (labels[i] != 0 && !keep[std::size_t(labels[i])]) {
      mask[i] = 0.0f;
      ++removed;
    }
  return removed;
}

}  // namespace unet
