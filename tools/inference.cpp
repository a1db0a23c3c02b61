// Shared inference helpers of `unet eval` and `unet predict` (see inference.h).
#include "tools/inference.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <stdexcept>
#include <system_error>
#include <utility>

#include <omp.h>

#include "engine/autograd.h"
#include "tools/args.h"
#include "train/io/files.h"

namespace unet::cli {

namespace fs = std::filesystem;

std::unique_ptr<UNet> load_model(Args& args, Device device, const std::string& command) {
  const std::string checkpoint = args.get("checkpoint");
  const Checkpoint ck = load_checkpoint(checkpoint);
  std::unique_ptr<UNet> model = load_unet(ck, checkpoint);
  if (const auto it = ck.meta.find("data.size"); it != ck.meta.end()) {
    if (!args.has("size")) args.set_fallback("size", it->second);
    else if (args.get("size") != it->second)
      std::fprintf(stderr, "unet %s: --size %s, but %s was trained at %s px: scores and masks may suffer\n",
                   command.c_str(), args.get("size").c_str(), checkpoint.c_str(), it->second.c_str());
  }
  const int size = args.get_int("size");
  const int multiple = 1 << model->config().depth;
  if (size <= 0 || size > kMaxImageSize || size % multiple != 0)
    throw UsageError("unet " + command + ": --size must be a multiple of " + std::to_string(multiple) +
                     " (2^depth of the model in " + checkpoint + ") up to " + std::to_string(kMaxImageSize) +
                     ", got " + std::to_string(size));
  if (model->config().out_channels != 1)
    throw std::runtime_error(checkpoint + ": the model has " +
                             std::to_string(model->config().out_channels) +
                             " output channels; tumour masks need exactly 1");
  model->eval();
  model->to(device);
  return model;
}

DatasetOptions model_data_options(const UNet& model, int size) {
  DatasetOptions options;
  options.size = size;
  options.channels = model.config().in_channels;
  return options;
}

std::vector<std::vector<float>> predict_probabilities(UNet& model,
                                                      const std::vector<const Sample*>& samples,
                                                      int batch) {
  NoGradGuard no_grad;
  const int channels = model.config().in_channels;
  std::vector<std::vector<float>> out;
  for (std::size_t start = 0; start < samples.size(); start += std::size_t(batch)) {
    const std::size_t end = std::min(samples.size(), start + std::size_t(batch));
    const Sample& first = *samples[start];
    std::vector<float> input;
    for (std::size_t i = start; i < end; ++i) {
      const Sample& s = *samples[i];
      if (s.channels != channels || s.height != first.height || s.width != first.width)
        throw std::logic_error("predict_probabilities: " + s.id + " does not match the batch");
      input.insert(input.end(), s.image.begin(), s.image.end());
    }
    const Tensor x = Tensor::from_vector({int64_t(end - start), channels, first.height, first.width},
                                         input, model.device());
    const std::vector<float> p = model.probabilities(x).to_vector();
    const std::size_t plane = std::size_t(first.height) * std::size_t(first.width);
    for (std::size_t i = 0; i < end - start; ++i)
      out.emplace_back(p.begin() + std::ptrdiff_t(i * plane), p.begin() + std::ptrdiff_t((i + 1) * plane));
  }
  return out;
}

std::vector<float> binary_mask(const std::vector<float>& probabilities, float threshold) {
  std::vector<float> mask(probabilities.size());
  for (std::size_t i = 0; i < mask.size(); ++i) mask[i] = probabilities[i] >= threshold ? 1.0f : 0.0f;
  return mask;
}

std::vector<float> resize_map(const std::vector<float>& map, int height, int width,
                              int out_height, int out_width) {
  if (height == out_height && width == out_width) return map;
  // Source coordinate of each output row or column: (dst + 0.5) * in / out - 0.5, clamped.
  auto taps = [](int in, int out_size) {
    std::vector<std::pair<int, float>> t(static_cast<std::size_t>(out_size));
    for (int i = 0; i < out_size; ++i) {
      const double s = std::clamp((i + 0.5) * in / out_size - 0.5, 0.0, double(in - 1));
      t[std::size_t(i)] = {int(s), float(s - std::floor(s))};
    }
    return t;
  };
  const auto ys = taps(height, out_height), xs = taps(width, out_width);
  auto at = [&](int y, int x) { return map[std::size_t(y) * std::size_t(width) + std::size_t(x)]; };
  std::vector<float> out(std::size_t(out_height) * std::size_t(out_width));
  for (int y = 0; y < out_height; ++y) {
    const auto [y0, fy] = ys[std::size_t(y)];
    const int y1 = std::min(y0 + 1, height - 1);
    for (int x = 0; x < out_width; ++x) {
      const auto [x0, fx] = xs[std::size_t(x)];
      const int x1 = std::min(x0 + 1, width - 1);
      const float top = at(y0, x0) + fx * (at(y0, x1) - at(y0, x0));
      const float bottom = at(y1, x0) + fx * (at(y1, x1) - at(y1, x0));
      out[std::size_t(y) * std::size_t(out_width) + std::size_t(x)] = top + fy * (bottom - top);
    }
  }
  return out;
}

std::vector<int> display_channels(int channels) {
  return channels >= 3 ? std::vector<int>{0, 1, 2} : std::vector<int>{0};
}

int overlay_scale(int height, int width) { return std::clamp(256 / std::max(height, width), 1, 8); }

std::string file_name_of(const std::string& id) {
  std::string name = id;
  for (char& c : name)
    if (c == '/' || c == '\\' || c == ':' || c == ' ') c = '_';
  return name;
}

void check_common_flags(float threshold, int batch, int threads, const std::string& command) {
  if (!(threshold > 0.0f && threshold < 1.0f))
    throw UsageError("unet " + command + ": --threshold must lie strictly between 0 and 1");
  if (batch < 1) throw UsageError("unet " + command + ": --batch must be >= 1");
  if (threads < 0) throw UsageError("unet " + command + ": --threads must be >= 0");
  if (threads > 0) omp_set_num_threads(threads);
}

// ---------------------------------------------------------------------------------------------
// OutputFolder

OutputFolder::OutputFolder(const std::string& dir) : dir_(dir) {
  std::error_code ec;
  if (fs::exists(dir_, ec) && !fs::is_directory(dir_, ec))
    throw io::FileError(dir, "exists and is not a folder");
  create_folders(dir_);
}

void OutputFolder::create_folders(const fs::path& dir) {
  // The missing folders from the outermost in, so that removing them in reverse works.
  std::vector<fs::path> missing;
  std::error_code ec;
  for (fs::path p = dir; !p.empty() && !fs::exists(p, ec); p = p.parent_path()) {
    missing.insert(missing.begin(), p);
    if (p == p.parent_path()) break;
  }
  for (const fs::path& p : missing) {
    if (!fs::create_directory(p, ec) && ec)
      throw io::FileError(p.string(), "cannot create the folder: " + ec.message());
    created_.push_back(p);
  }
}

OutputFolder::~OutputFolder() {
  if (committed_) return;
  std::error_code ec;  // best effort: the error that brought us here is what the user must see
  for (auto it = created_.rbegin(); it != created_.rend(); ++it) fs::remove_all(*it, ec);
}

std::string OutputFolder::path(const std::string& name) {
  const fs::path p = dir_ / name;
  create_folders(p.parent_path());
  std::error_code ec;
  if (!fs::exists(p, ec)) created_.push_back(p);
  return p.string();
}

void write_text(const std::string& path, const std::string& text) {
  io::write_file_atomic(path, std::vector<uint8_t>(text.begin(), text.end()));
}

std::string csv_number(double v) {
  if (!std::isfinite(v)) return "nan";
  char text[32];
  std::snprintf(text, sizeof text, "%.6g", v);
  return text;
}

std::string json_number(double v) {
  if (!std::isfinite(v)) return "null";
  char text[32];
  std::snprintf(text, sizeof text, "%.7g", v);
  return text;
}

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\u%04x", unsigned(c));
      out += escaped;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

}  // namespace unet::cli
