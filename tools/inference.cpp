// Shared inference helpers of `unet eval` and `unet predict` (see inference.h).
#include "tools/inference.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <stdexcept>
#include <system_error>
#include <utility>

#include <omp.h>

#include "engine/autograd.h"
#include "tools/args.h"
#include "train/io/files.h"

namespace unet::cli {

namespace fs = std::filesystem;

std::vector<std::string> checkpoint_files(const std::string& spec) {
  std::vector<std::string> files;
  if (spec.find(',') != std::string::npos) {
    for (std::size_t start = 0; start <= spec.size();) {
      const std::size_t end = std::min(spec.find(',', start), spec.size());
      const std::string file = spec.substr(start, end - start);
      if (file.empty()) throw UsageError("--checkpoint: an empty name in the list '" + spec + "'");
      files.push_back(file);
      start = end + 1;
    }
    return files;
  }
  std::error_code ec;
  if (!fs::is_directory(spec, ec)) return {spec};  // a missing file is reported by the loader
  if (fs::is_regular_file(fs::path(spec) / "best.ckpt", ec)) return {(fs::path(spec) / "best.ckpt").string()};
  for (const fs::directory_entry& e : fs::directory_iterator(spec, ec))
    if (e.is_directory() && fs::is_regular_file(e.path() / "best.ckpt", ec)) files.push_back((e.path() / "best.ckpt").string());
  std::sort(files.begin(), files.end());
  if (files.empty())
    throw io::FileError(spec, "is a folder without best.ckpt, and none of its sub-folders has one (expected a training "
                              "run folder, or a folder of them such as a cross-validation's)");
  return files;
}

void Predictor::add_flags(Args& args) {
  args.option("tta", "mode", "auto",
              "test-time augmentation: flips (mean of the identity and the horizontal, vertical and both "
              "flips, 4x the time), none, or auto: what `unet cv` chose for the --checkpoint folder, else none")
      .option("postprocess", "rule", "auto",
              "connected components of each patient's mask (3-D over its slices; 2-D for lone slices): "
              "none, largest (keep the largest), min:N (remove those under N voxels), or auto: what `unet cv` "
              "chose for the --checkpoint folder, else none")
      .option("threshold", "p", "auto",
              "probability >= p is tumour (0 < p < 1), or auto: what `unet cv` chose for the --checkpoint "
              "folder, else 0.5");
}

std::map<std::string, std::string> read_inference_choices(const std::string& folder) {
  std::map<std::string, std::string> choices;
  const std::string path = (fs::path(folder) / kInferenceChoicesFile).string();
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) return choices;
  const std::vector<uint8_t> bytes = io::read_file(path);
  std::string line;
  for (std::size_t i = 0; i <= bytes.size(); ++i) {
    if (i < bytes.size() && bytes[i] != '\n') {
      line += char(bytes[i]);
      continue;
    }
    if (!line.empty() && line[0] != '#') {
      const std::size_t eq = line.find('=');
      const std::string key = eq == std::string::npos ? "" : line.substr(0, eq);
      if (key != "tta" && key != "postprocess" && key != "threshold")
        throw io::FileError(path, "expected lines tta=<mode>, postprocess=<rule> and threshold=<p>, got '" + line + "'");
      choices[line.substr(0, eq)] = line.substr(eq + 1);
    }
    line.clear();
  }
  return choices;
}

namespace {

// --tta, --postprocess or --threshold: the flag's value, or for "auto" the --checkpoint folder's
// choice, else `fallback`.
std::string choice_of(const Args& args, const std::string& flag, const std::string& fallback = "none") {
  const std::string value = args.get(flag);
  if (value != "auto") return value;
  std::error_code ec;
  if (!fs::is_directory(args.get("checkpoint"), ec)) return fallback;
  const auto choices = read_inference_choices(args.get("checkpoint"));
  const auto it = choices.find(flag);
  return it == choices.end() ? fallback : it->second;
}

bool tta_flag(const Args& args, const std::string& command) {
  const std::string tta = choice_of(args, "tta");
  if (tta != "flips" && tta != "none")
    throw UsageError("unet " + command + ": --tta must be flips, none or auto, got '" + tta + "'");
  return tta == "flips";
}

PostProcess postprocess_flag(const Args& args, const std::string& command) {
  try {
    return PostProcess::parse(choice_of(args, "postprocess"));
  } catch (const std::invalid_argument& e) {
    throw UsageError("unet " + command + ": --postprocess: " + e.what() + " (or auto)");
  }
}

}  // namespace

float parse_threshold(const std::string& value, const std::string& command) {
  std::size_t used = 0;
  float p = 0.0f;
  try {
    p = std::stof(value, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != value.size() || !(p > 0.0f && p < 1.0f))
    throw UsageError("unet " + command + ": --threshold must lie strictly between 0 and 1, got '" + value + "'");
  return p;
}

float threshold_flag(const Args& args, const std::string& command) {
  const std::string value = choice_of(args, "threshold", "0.5");
  try {
    return parse_threshold(value, command);
  } catch (const UsageError&) {
    if (args.get("threshold") != "auto") throw;
    throw io::FileError((fs::path(args.get("checkpoint")) / kInferenceChoicesFile).string(),
                        "threshold=" + value + ": must lie strictly between 0 and 1");
  }
}

Predictor::Predictor(const std::vector<std::string>& files, Device device, bool flips, PostProcess postprocess)
    : flips_(flips), postprocess_(postprocess), first_checkpoint_(files.front()) {
  for (const std::string& file : files) {
    const Checkpoint ck = load_checkpoint(file);
    std::unique_ptr<UNet> model = load_unet(ck, file);
    const auto it = ck.meta.find("data.size");
    const std::string size = it == ck.meta.end() ? "" : it->second;
    if (models_.empty()) {
      trained_size_ = size;
    } else {
      const UNetConfig& a = models_.front()->config();
      const UNetConfig& b = model->config();
      if (a.in_channels != b.in_channels || a.depth != b.depth || size != trained_size_)
        throw std::runtime_error(file + ": an ensemble needs models of the same input channels, depth and training "
                                 "size; this one has " + std::to_string(b.in_channels) + " channels, depth " +
                                 std::to_string(b.depth) + ", size " + (size.empty() ? "unrecorded" : size) + ", but " +
                                 files.front() + " has " + std::to_string(a.in_channels) + ", " +
                                 std::to_string(a.depth) + ", " + (trained_size_.empty() ? "unrecorded" : trained_size_));
    }
    if (model->config().out_channels != 1)
      throw std::runtime_error(file + ": the model has " + std::to_string(model->config().out_channels) +
                               " output channels; tumour masks need exactly 1");
    model->eval();
    model->to(device);
    models_.push_back(std::move(model));
  }
}

Predictor::Predictor(Args& args, Device device, const std::string& command)
    : Predictor(checkpoint_files(args.get("checkpoint")), device, tta_flag(args, command), postprocess_flag(args, command)) {
  const std::string& first = first_checkpoint_;
  if (!trained_size_.empty()) {
    if (!args.has("size")) args.set_fallback("size", trained_size_);
    else if (args.get("size") != trained_size_)
      std::fprintf(stderr, "unet %s: --size %s, but %s was trained at %s px: scores and masks may suffer\n",
                   command.c_str(), args.get("size").c_str(), first.c_str(), trained_size_.c_str());
  }
  const int size = args.get_int("size");
  const int multiple = 1 << model().config().depth;
  if (size <= 0 || size > kMaxImageSize || size % multiple != 0)
    throw UsageError("unet " + command + ": --size must be a multiple of " + std::to_string(multiple) +
                     " (2^depth of the model in " + first + ") up to " + std::to_string(kMaxImageSize) +
                     ", got " + std::to_string(size));
}

std::string Predictor::description() const {
  const std::size_t n = models_.size();
  if (n == 1 && !flips_ && postprocess_.kind == PostProcess::Kind::none) return "";
  return std::to_string(n) + (n == 1 ? " model" : " models") + (flips_ ? " x 4 flips" : "") +
         (postprocess_.kind == PostProcess::Kind::none ? "" : ", post-processing " + postprocess_.to_string());
}

DatasetOptions model_data_options(const UNet& model, int size) {
  DatasetOptions options;
  options.size = size;
  options.channels = model.config().in_channels;
  return options;
}

namespace {

// A channels x height x width image mirrored left-right (horizontal) and / or top-bottom
// (vertical); each flip is its own inverse.
void flip_planes(const float* in, float* out, int planes, int height, int width, bool horizontal, bool vertical) {
  for (int c = 0; c < planes; ++c)
    for (int y = 0; y < height; ++y) {
      const float* row = in + (std::size_t(c) * std::size_t(height) + std::size_t(vertical ? height - 1 - y : y)) * std::size_t(width);
      float* to = out + (std::size_t(c) * std::size_t(height) + std::size_t(y)) * std::size_t(width);
      for (int x = 0; x < width; ++x) to[x] = row[horizontal ? width - 1 - x : x];
    }
}

// The model's probabilities of one batch (end - start samples of equal size), flipped and flipped back.
std::vector<float> batch_probabilities(UNet& model, const std::vector<const Sample*>& samples, std::size_t start,
                                       std::size_t end, bool horizontal, bool vertical) {
  const int channels = model.config().in_channels;
  const Sample& first = *samples[start];
  const std::size_t image = std::size_t(channels) * std::size_t(first.height) * std::size_t(first.width);
  std::vector<float> input((end - start) * image);
  for (std::size_t i = start; i < end; ++i) {
    const Sample& s = *samples[i];
    if (s.channels != channels || s.height != first.height || s.width != first.width)
      throw std::logic_error("Predictor: " + s.id + " does not match the batch");
    flip_planes(s.image.data(), input.data() + (i - start) * image, channels, s.height, s.width, horizontal, vertical);
  }
  const Tensor x = Tensor::from_vector({int64_t(end - start), channels, first.height, first.width}, input, model.device());
  const std::vector<float> p = model.probabilities(x).to_vector();
  std::vector<float> out(p.size());
  flip_planes(p.data(), out.data(), int(end - start), first.height, first.width, horizontal, vertical);
  return out;
}

}  // namespace

std::vector<std::vector<float>> Predictor::probabilities(const std::vector<const Sample*>& samples, int batch) {
  NoGradGuard no_grad;
  std::vector<std::vector<float>> out;
  const float scale = 1.0f / float(models_.size() * (flips_ ? 4 : 1));
  for (std::size_t start = 0; start < samples.size(); start += std::size_t(batch)) {
    const std::size_t end = std::min(samples.size(), start + std::size_t(batch));
    std::vector<float> sum;
    for (const std::unique_ptr<UNet>& model : models_) {
      std::vector<float> p = batch_probabilities(*model, samples, start, end, false, false);
      if (flips_) {
        const std::vector<float> h = batch_probabilities(*model, samples, start, end, true, false);
        const std::vector<float> v = batch_probabilities(*model, samples, start, end, false, true);
        const std::vector<float> hv = batch_probabilities(*model, samples, start, end, true, true);
        for (std::size_t i = 0; i < p.size(); ++i) p[i] = (p[i] + h[i]) + (v[i] + hv[i]);
      }
      if (sum.empty()) sum = std::move(p);
      else for (std::size_t i = 0; i < sum.size(); ++i) sum[i] += p[i];
    }
    const std::size_t plane = std::size_t(samples[start]->height) * std::size_t(samples[start]->width);
    for (std::size_t i = 0; i < end - start; ++i) {
      out.emplace_back(sum.begin() + std::ptrdiff_t(i * plane), sum.begin() + std::ptrdiff_t((i + 1) * plane));
      for (float& v : out.back()) v *= scale;
    }
  }
  return out;
}

namespace {

// The slice number of an id "patient/12", or -1.
long slice_number(const std::string& id) {
  const std::size_t slash = id.rfind('/');
  const std::string tail = slash == std::string::npos ? "" : id.substr(slash + 1);
  if (tail.empty() || tail.size() > 9 || !std::all_of(tail.begin(), tail.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return -1;
  return std::stol(tail);
}

}  // namespace

void postprocess_patients(const PostProcess& p, const std::vector<const Sample*>& samples,
                          const std::vector<std::pair<int, int>>& sizes, std::vector<std::vector<float>>& masks) {
  if (p.kind == PostProcess::Kind::none) return;
  std::map<std::string, std::vector<std::size_t>> patients;
  for (std::size_t i = 0; i < samples.size(); ++i) patients[samples[i]->patient].push_back(i);
  for (const auto& [patient, indices] : patients) {
    const auto [height, width] = sizes[indices.front()];
    const bool same_size = std::all_of(indices.begin(), indices.end(), [&](std::size_t i) { return sizes[i] == sizes[indices.front()]; });
    if (!same_size) {
      for (std::size_t i : indices) apply_postprocess(p, masks[i], 1, sizes[i].first, sizes[i].second);
      continue;
    }
    // Depth position of each slice: its number relative to the smallest, or its rank.
    std::vector<long> z(indices.size());
    for (std::size_t k = 0; k < indices.size(); ++k) z[k] = slice_number(samples[indices[k]]->id);
    std::vector<long> sorted = z;
    std::sort(sorted.begin(), sorted.end());
    const bool numbered = sorted.front() >= 0 && std::adjacent_find(sorted.begin(), sorted.end()) == sorted.end() &&
                          sorted.back() - sorted.front() < long(4 * indices.size()) + 16;  // not mostly empty
    for (std::size_t k = 0; k < z.size(); ++k) z[k] = numbered ? z[k] - sorted.front() : long(k);
    const std::size_t plane = std::size_t(height) * std::size_t(width);
    const long depth = *std::max_element(z.begin(), z.end()) + 1;
    std::vector<float> volume(std::size_t(depth) * plane, 0.0f);
    for (std::size_t k = 0; k < indices.size(); ++k)
      std::copy(masks[indices[k]].begin(), masks[indices[k]].end(), volume.begin() + std::ptrdiff_t(std::size_t(z[k]) * plane));
    apply_postprocess(p, volume, int(depth), height, width);
    for (std::size_t k = 0; k < indices.size(); ++k) {
      const auto from = volume.begin() + std::ptrdiff_t(std::size_t(z[k]) * plane);
      std::copy(from, from + std::ptrdiff_t(plane), masks[indices[k]].begin());
    }
  }
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

void check_common_flags(int batch, int threads, const std::string& command) {
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
