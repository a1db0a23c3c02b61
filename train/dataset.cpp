// Dataset loading (sources, ids and preprocessing are described in dataset.h). Structure:
//   1. names and folder listings (natural order, extensions, stems)
//   2. preprocessing of one slice: channels, resize, mask binarisation, normalisation
//   3. layout detection
//   4. readers per layout, each producing independent tasks (a file pair, a patient volume, a
//      phantom slice) that run in parallel; their results are merged, sorted and checked
#include "train/dataset.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <iostream>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>

#include "train/io/image.h"
#include "train/io/nifti.h"
#include "train/io/npy.h"
#include "train/phantom.h"

namespace unet {
namespace {

namespace fs = std::filesystem;

// ---------------------------------------------------------------------------------------------
// 1. Names and listings

const char* const kExpected =
    "expected 'phantom[:PATIENTS]', a .npy or image file, a folder with images/ and masks/, "
    "image or .npy files with <name>_mask masks beside them, the LGG layout "
    "(<case>/<case>_<n>.tif with <case>_<n>_mask.tif) or BraTS patient folders of "
    ".nii/.nii.gz volumes";

const char* const kImageExtensions[] = {".npy", ".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"};
const char* const kMaskSuffixes[] = {"_mask", "_seg", "_label"};

std::string lower(std::string text) {
  for (char& c : text) c = char(std::tolower(static_cast<unsigned char>(c)));
  return text;
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

bool all_digits(const std::string& text) {
  return !text.empty() && std::all_of(text.begin(), text.end(), is_digit);
}

// Natural order: digit runs compare by value, so "case_2" < "case_10".
bool natural_less(const std::string& a, const std::string& b) {
  std::size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    if (is_digit(a[i]) && is_digit(b[j])) {
      std::size_t i_end = i, j_end = j;
      while (i_end < a.size() && a[i_end] == '0') ++i_end;  // leading zeros do not count
      while (j_end < b.size() && b[j_end] == '0') ++j_end;
      std::size_t i_digits = i_end, j_digits = j_end;
      while (i_digits < a.size() && is_digit(a[i_digits])) ++i_digits;
      while (j_digits < b.size() && is_digit(b[j_digits])) ++j_digits;
      const std::string x = a.substr(i_end, i_digits - i_end),
                        y = b.substr(j_end, j_digits - j_end);
      if (x.size() != y.size()) return x.size() < y.size();
      if (x != y) return x < y;
      i = i_digits;
      j = j_digits;
    } else {
      if (a[i] != b[j]) return a[i] < b[j];
      ++i;
      ++j;
    }
  }
  return a.size() - i < b.size() - j || (a.size() - i == b.size() - j && a < b);
}

bool is_image_file(const fs::path& path) {
  return std::any_of(std::begin(kImageExtensions), std::end(kImageExtensions),
                     [&](const char* ext) { return io::ends_with_icase(path.string(), ext); });
}

bool is_npy(const fs::path& path) { return io::ends_with_icase(path.string(), ".npy"); }

bool is_nifti(const fs::path& path) {
  return io::ends_with_icase(path.string(), ".nii") ||
         io::ends_with_icase(path.string(), ".nii.gz");
}

// The file name without its extension (".nii.gz" counts as one).
std::string stem_of(const fs::path& path) {
  const std::string name = path.filename().string();
  if (io::ends_with_icase(name, ".nii.gz")) return name.substr(0, name.size() - 7);
  return path.stem().string();
}

// Entries of `dir` that are folders (want_folders) or regular files, hidden ones skipped, in
// natural order of their names.
std::vector<fs::path> list(const fs::path& dir, bool want_folders) {
  std::error_code error;
  fs::directory_iterator it(dir, error);
  if (error) throw io::FileError(dir.string(), "cannot list the folder: " + error.message());
  std::vector<fs::path> entries;
  for (const fs::directory_entry& entry : it) {
    if (entry.path().filename().string().starts_with(".")) continue;
    if (want_folders ? entry.is_directory() : entry.is_regular_file())
      entries.push_back(entry.path());
  }
  std::sort(entries.begin(), entries.end(), [](const fs::path& a, const fs::path& b) {
    return natural_less(a.filename().string(), b.filename().string());
  });
  return entries;
}

template <typename Predicate>
std::vector<fs::path> files_where(const fs::path& dir, Predicate&& keep) {
  std::vector<fs::path> files = list(dir, false);
  std::erase_if(files, [&](const fs::path& p) { return !keep(p); });
  return files;
}

std::string dims_text(const std::vector<int64_t>& shape) {
  std::string text = "(";
  for (std::size_t i = 0; i < shape.size(); ++i) text += (i ? ", " : "") + std::to_string(shape[i]);
  return text + (shape.size() == 1 ? ",)" : ")");
}

std::string size_text(int height, int width) {
  return std::to_string(height) + "x" + std::to_string(width);
}

// ---------------------------------------------------------------------------------------------
// 2. Preprocessing of one slice

// One slice as read: channel planes and the binarised mask at the stored size.
struct Raw {
  int channels = 0, height = 0, width = 0;
  std::vector<float> image;  // CHW
  std::vector<float> mask;   // HW, 0 or 1; empty without mask
};

std::vector<float> resize_bilinear(const std::vector<float>& src, int channels, int h, int w,
                                   int size) {
  // Taps per output column and row, pixel centres aligned: src = (dst + 0.5) * in / out - 0.5.
  struct Tap {
    int lo, hi;
    float frac;
  };
  auto taps = [size](int in) {
    std::vector<Tap> out(static_cast<std::size_t>(size));
    for (int i = 0; i < size; ++i) {
      const double s = std::clamp((i + 0.5) * in / size - 0.5, 0.0, double(in - 1));
      const int lo = int(s);
      out[std::size_t(i)] = {lo, std::min(lo + 1, in - 1), float(s - lo)};
    }
    return out;
  };
  const std::vector<Tap> xs = taps(w), ys = taps(h);
  const std::size_t in_plane = std::size_t(h) * std::size_t(w),
                    plane = std::size_t(size) * std::size_t(size);
  std::vector<float> out(std::size_t(channels) * plane);
  for (int c = 0; c < channels; ++c) {
    const float* in = src.data() + c * in_plane;
    for (int y = 0; y < size; ++y) {
      const Tap ty = ys[std::size_t(y)];
      const float* row0 = in + std::size_t(ty.lo) * std::size_t(w);
      const float* row1 = in + std::size_t(ty.hi) * std::size_t(w);
      for (int x = 0; x < size; ++x) {
        const Tap tx = xs[std::size_t(x)];
        const float top = row0[tx.lo] + tx.frac * (row0[tx.hi] - row0[tx.lo]);
        const float bottom = row1[tx.lo] + tx.frac * (row1[tx.hi] - row1[tx.lo]);
        out[c * plane + std::size_t(y) * std::size_t(size) + std::size_t(x)] =
            top + ty.frac * (bottom - top);
      }
    }
  }
  return out;
}

std::vector<float> resize_nearest(const std::vector<float>& src, int h, int w, int size) {
  std::vector<float> out(std::size_t(size) * std::size_t(size));
  for (int y = 0; y < size; ++y) {
    const int sy = std::min(h - 1, int((y + 0.5) * h / size));
    for (int x = 0; x < size; ++x) {
      const int sx = std::min(w - 1, int((x + 0.5) * w / size));
      out[std::size_t(y) * std::size_t(size) + std::size_t(x)] =
          src[std::size_t(sy) * std::size_t(w) + std::size_t(sx)];
    }
  }
  return out;
}

// The nearest-rank q-quantile of values[from, end), which it partially sorts: everything before
// the returned rank is <= the quantile, so a later, higher quantile searches only the rest.
std::size_t quantile_rank(std::vector<float>& values, std::size_t from, double q) {
  const auto k = std::max(from, std::size_t(std::llround(q * double(values.size() - 1))));
  std::nth_element(values.begin() + std::ptrdiff_t(from), values.begin() + std::ptrdiff_t(k),
                   values.end());
  return k;
}

// Robust z-score of the non-zero values of one channel plane (see dataset.h, step 4).
void normalise_channel(float* values, std::size_t count) {
  std::vector<float> foreground;
  for (std::size_t i = 0; i < count; ++i)
    if (values[i] != 0.0f) foreground.push_back(values[i]);
  if (foreground.empty()) return;
  const std::size_t lo_rank = quantile_rank(foreground, 0, 0.005);
  const float lo = foreground[lo_rank];
  const float hi = foreground[quantile_rank(foreground, lo_rank, 0.995)];
  double sum = 0.0;
  for (float& v : foreground) sum += (v = std::clamp(v, lo, hi));
  const double mean = sum / double(foreground.size());
  double squares = 0.0;
  for (float v : foreground) squares += (v - mean) * (v - mean);
  const double sd = std::sqrt(squares / double(foreground.size()));
  const double scale = sd > 1e-12 ? 1.0 / sd : 0.0;
  for (std::size_t i = 0; i < count; ++i)
    if (values[i] != 0.0f) values[i] = float((std::clamp(values[i], lo, hi) - mean) * scale);
}

Sample preprocess(Raw raw, const DatasetOptions& options, std::string patient, std::string id,
                  std::string source) {
  if (options.channels > raw.channels)
    throw io::FileError(source, "has " + std::to_string(raw.channels) + " channel(s), but " +
                                    std::to_string(options.channels) +
                                    " were requested (the model's --in-channels; leave it out to train on what the data has)");
  const int channels = options.channels > 0 ? options.channels : raw.channels;
  raw.image.resize(std::size_t(channels) * std::size_t(raw.height) * std::size_t(raw.width));
  Sample s;
  s.channels = channels;
  s.height = s.width = options.size;
  const bool resize = raw.height != options.size || raw.width != options.size;
  s.image = resize ? resize_bilinear(raw.image, channels, raw.height, raw.width, options.size)
                   : std::move(raw.image);
  s.native_height = raw.height;
  s.native_width = raw.width;
  if (!raw.mask.empty() && resize) {
    s.mask = resize_nearest(raw.mask, raw.height, raw.width, options.size);
    if (options.keep_native_masks) s.native_mask = std::move(raw.mask);
  } else {
    s.mask = std::move(raw.mask);
  }
  const std::size_t plane = std::size_t(options.size) * std::size_t(options.size);
  for (int c = 0; c < channels; ++c) normalise_channel(s.image.data() + c * plane, plane);
  s.patient = std::move(patient);
  s.id = std::move(id);
  s.source = std::move(source);
  return s;
}

void check_finite(const std::string& path, const std::vector<float>& values) {
  if (io::has_non_finite(values)) throw io::FileError(path, "contains NaN or infinite values");
}

std::vector<float> binarised(const std::vector<float>& values) {
  std::vector<float> out(values.size());
  for (std::size_t i = 0; i < values.size(); ++i) out[i] = values[i] > 0.0f ? 1.0f : 0.0f;
  return out;
}

// ---------------------------------------------------------------------------------------------
// 3. Layout detection

enum class Kind { phantom, file, npy, images, lgg, brats };

struct Layout {
  Kind kind = Kind::phantom;
  fs::path root;                   // lgg: the folder of case folders; pairs: the images' folder
  fs::path masks;                  // pairs: the masks' folder (== root for masks beside images)
  std::vector<fs::path> patients;  // brats: patient folders
};

std::string kind_name(Kind kind) {
  switch (kind) {
    case Kind::phantom:
      return "phantom";
    case Kind::file:
      return "file";
    case Kind::npy:
      return "npy";
    case Kind::images:
      return "images";
    case Kind::lgg:
      return "lgg";
    case Kind::brats:
      return "brats";
  }
  return "?";
}

[[noreturn]] void no_dataset(const std::string& source, const std::string& why) {
  throw std::runtime_error("no dataset found in " + source + ": " + why + kExpected);
}

bool is_phantom(const std::string& source) {
  return source == "phantom" || source.starts_with("phantom:");
}

// An LGG case folder holds <folder name>_<n>.tif slices.
bool is_lgg_case(const fs::path& dir) {
  const std::string prefix = dir.filename().string() + "_";
  for (const fs::path& file : list(dir, false)) {
    const std::string stem = stem_of(file);
    if (io::ends_with_icase(file.string(), ".tif") && stem.starts_with(prefix) &&
        all_digits(stem.substr(prefix.size())))
      return true;
  }
  return false;
}

std::optional<fs::path> lgg_root(const fs::path& root) {
  const fs::path inner = root / "kaggle_3m";
  const fs::path dir = fs::is_directory(inner) ? inner : root;
  for (const fs::path& sub : list(dir, true))
    if (is_lgg_case(sub)) return dir;
  return std::nullopt;
}

bool has_nifti(const fs::path& dir) { return !files_where(dir, is_nifti).empty(); }

// Patient folders: the root itself, or folders one or two levels down (train/, validation/).
std::vector<fs::path> brats_patients(const fs::path& root) {
  if (has_nifti(root)) return {root};
  std::vector<fs::path> patients;
  for (const fs::path& sub : list(root, true)) {
    if (has_nifti(sub)) {
      patients.push_back(sub);
      continue;
    }
    for (const fs::path& subsub : list(sub, true))
      if (has_nifti(subsub)) patients.push_back(subsub);
  }
  return patients;
}

Kind pair_kind(const fs::path& images) {
  std::vector<fs::path> files = files_where(images, is_image_file);
  return std::all_of(files.begin(), files.end(), is_npy) ? Kind::npy : Kind::images;
}

// What detect() looked at in a folder that matched no layout: how deep, and what it saw there.
std::string searched(const fs::path& root) {
  std::size_t files = 0, folders = 0;
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(root)) {
    (entry.is_directory() ? folders : files) += 1;
    names.push_back(entry.path().filename().string() + (entry.is_directory() ? "/" : ""));
  }
  std::sort(names.begin(), names.end());
  std::string examples;
  for (std::size_t i = 0; i < std::min<std::size_t>(3, names.size()); ++i) examples += (i ? ", " : "") + names[i];
  return "looked at the folder itself (images/ and masks/, image or .npy files with their masks), one level "
         "down (LGG <case>/<case>_<n>.tif, BraTS patient folders of .nii/.nii.gz) and two levels down "
         "(BraTS train/ and validation/ patient folders); it holds " +
         std::to_string(files) + " file(s) and " + std::to_string(folders) + " folder(s) (" + examples +
         (files + folders > 3 ? ", ..." : "") + ") and none matched; ";
}

Layout detect(const std::string& source) {
  if (is_phantom(source)) return {Kind::phantom, {}, {}, {}};
  const fs::path root(source);
  std::error_code error;
  const fs::file_status status = fs::status(root, error);
  if (status.type() == fs::file_type::regular) {
    if (!is_image_file(root)) no_dataset(source, "not a .npy or image file; ");
    return {Kind::file, root, {}, {}};
  }
  if (status.type() != fs::file_type::directory) no_dataset(source, "no such file or folder; ");
  if (fs::is_directory(root / "images"))
    return {pair_kind(root / "images"), root / "images", root / "masks", {}};
  if (std::optional<fs::path> lgg = lgg_root(root)) return {Kind::lgg, *lgg, {}, {}};
  if (std::vector<fs::path> patients = brats_patients(root); !patients.empty())
    return {Kind::brats, root, {}, patients};
  if (!files_where(root, is_image_file).empty()) return {pair_kind(root), root, root, {}};
  if (fs::is_empty(root, error)) no_dataset(source, "the folder is empty; ");
  no_dataset(source, searched(root));
}

// ---------------------------------------------------------------------------------------------
// 4. Readers

// What a task returns: its samples and what the notes report about them.
struct Loaded {
  std::vector<Sample> samples;
  int skipped = 0;     // brats: all-background slices left out
  std::string layout;  // npy: how the image's axes were read
};

using Task = std::function<Loaded()>;

// Runs the tasks in parallel; rethrows the error of the first failing task (in task order, so
// the message does not depend on thread timing).
std::vector<Loaded> run_all(const std::vector<Task>& tasks) {
  std::vector<Loaded> results(tasks.size());
  std::vector<std::exception_ptr> errors(tasks.size());
#pragma omp parallel for schedule(dynamic)
  for (std::ptrdiff_t i = 0; i < std::ptrdiff_t(tasks.size()); ++i) {
    try {
      results[std::size_t(i)] = tasks[std::size_t(i)]();
    } catch (...) {
      errors[std::size_t(i)] = std::current_exception();
    }
  }
  for (const std::exception_ptr& e : errors)
    if (e) std::rethrow_exception(e);
  return results;
}

// --- 2D files: .npy arrays and images

struct Planes {
  int channels = 0, height = 0, width = 0;
  std::vector<float> data;  // CHW
  std::string layout;
};

Planes from_hwc(std::vector<float> hwc, int height, int width, int channels) {
  Planes p{channels, height, width, std::vector<float>(hwc.size()), ""};
  const std::size_t plane = std::size_t(height) * std::size_t(width);
  for (std::size_t i = 0; i < plane; ++i)
    for (int c = 0; c < channels; ++c) p.data[c * plane + i] = hwc[i * std::size_t(channels) + c];
  return p;
}

// The channel axis of a 3-D image array is the small one (<= 16) of the first and the last;
// when both are small, the one that makes the rest match the mask, else the last (HxWxC, the
// image convention).
Planes npy_planes(const std::string& path, io::NpyArray array,
                  std::optional<std::pair<int, int>> mask_hw) {
  const std::vector<int64_t>& s = array.shape;
  auto dim = [&](std::size_t i) { return int(s[i]); };
  if (s.size() != 2 && s.size() != 3)
    throw io::FileError(path, "image shape " + dims_text(s) + " is not HxW, HxWxC or CxHxW");
  io::check_decoded_size(path, "image of shape", s);
  if (s.size() == 2) return {1, dim(0), dim(1), std::move(array.data), "HxW"};
  const bool first_small = s[0] <= 16, last_small = s[2] <= 16;
  bool channels_last = last_small;
  std::string why;
  if (first_small && last_small) {
    const bool hwc_fits = mask_hw && *mask_hw == std::pair(dim(0), dim(1));
    const bool chw_fits = mask_hw && *mask_hw == std::pair(dim(1), dim(2));
    channels_last = hwc_fits || !chw_fits;
    why = hwc_fits != chw_fits ? " (both ends <= 16: chosen by the mask's shape)"
                               : " (both ends <= 16: assumed)";
  } else if (!first_small && !last_small) {
    throw io::FileError(path, "cannot tell the channel axis of shape " + dims_text(s) +
                                  ": neither the first nor the last dimension is <= 16");
  }
  if (!channels_last) return {dim(0), dim(1), dim(2), std::move(array.data), "CxHxW" + why};
  Planes p = from_hwc(std::move(array.data), dim(0), dim(1), dim(2));
  p.layout = "HxWxC" + why;
  return p;
}

Planes read_planes(const std::string& path, std::optional<std::pair<int, int>> mask_hw) {
  if (is_npy(path)) {
    io::NpyArray array = io::read_npy(path);
    check_finite(path, array.data);
    return npy_planes(path, std::move(array), mask_hw);
  }
  io::Image image = io::read_image(path);
  return from_hwc(std::move(image.pixels), image.height, image.width, image.channels);
}

struct Mask {
  int height = 0, width = 0;
  std::vector<float> data;  // HW, 0 or 1
};

Mask read_mask(const std::string& path) {
  if (is_npy(path)) {
    io::NpyArray array = io::read_npy(path);
    check_finite(path, array.data);
    const std::vector<int64_t>& s = array.shape;
    io::check_decoded_size(path, "mask of shape", s);
    if (s.size() == 2) return {int(s[0]), int(s[1]), binarised(array.data)};
    if (s.size() == 3 && s[2] == 1) return {int(s[0]), int(s[1]), binarised(array.data)};
    if (s.size() == 3 && s[0] == 1) return {int(s[1]), int(s[2]), binarised(array.data)};
    throw io::FileError(path, "mask shape " + dims_text(s) + " is not HxW or HxWx1");
  }
  // Image masks: tumour where any colour channel is set (alpha, if any, ignored).
  io::Image image = io::read_image(path);
  const int colours =
      image.channels == 2 || image.channels == 4 ? image.channels - 1 : image.channels;
  Mask m{image.height, image.width,
         std::vector<float>(std::size_t(image.height) * std::size_t(image.width))};
  for (std::size_t i = 0; i < m.data.size(); ++i)
    for (int c = 0; c < colours; ++c)
      if (image.pixels[i * std::size_t(image.channels) + c] > 0.0f) m.data[i] = 1.0f;
  return m;
}

// An image file and its mask file (mask empty: none).
struct Pair {
  std::string stem;
  fs::path image, mask;
};

Raw read_pair(const Pair& pair, std::string& layout) {
  std::optional<Mask> mask;
  if (!pair.mask.empty()) mask = read_mask(pair.mask.string());
  std::optional<std::pair<int, int>> mask_hw;
  if (mask) mask_hw = std::pair(mask->height, mask->width);
  Planes planes = read_planes(pair.image.string(), mask_hw);
  if (mask && (mask->height != planes.height || mask->width != planes.width))
    throw io::FileError(pair.mask.string(), "mask is " + size_text(mask->height, mask->width) +
                                                " but its image " + pair.image.string() + " is " +
                                                size_text(planes.height, planes.width));
  layout = std::move(planes.layout);
  return {planes.channels, planes.height, planes.width, std::move(planes.data),
          mask ? std::move(mask->data) : std::vector<float>()};
}

std::string pair_source(const Pair& pair) {
  return pair.mask.empty() ? pair.image.string() : pair.image.string() + " + " + pair.mask.string();
}

// The stem without a mask suffix, or nullopt when it has none.
std::optional<std::string> mask_key(const std::string& stem) {
  for (const char* suffix : kMaskSuffixes)
    if (io::ends_with_icase(stem, suffix))
      return stem.substr(0, stem.size() - std::string(suffix).size());
  return std::nullopt;
}

// Images of `images` and their masks: in `masks` (== images: masks beside their images, named
// <stem>_mask etc.; else also plain <stem>). Every image needs a mask when require_masks, every
// mask an image.
std::vector<Pair> find_pairs(const fs::path& images, const fs::path& masks, bool require_masks) {
  const bool beside = images == masks;
  std::map<std::string, fs::path> mask_of;  // key: the image stem it belongs to
  std::vector<Pair> pairs;
  std::set<std::string> image_stems;
  auto add_mask = [&](const std::string& key, const fs::path& path) {
    if (!mask_of.emplace(key, path).second)
      throw io::FileError(path.string(),
                          "second mask for '" + key + "' (also " + mask_of[key].string() + ")");
  };
  if (!beside && fs::is_directory(masks))
    for (const fs::path& file : files_where(masks, is_image_file))
      add_mask(mask_key(stem_of(file)).value_or(stem_of(file)), file);
  for (const fs::path& file : files_where(images, is_image_file)) {
    const std::string stem = stem_of(file);
    if (std::optional<std::string> key = mask_key(stem); beside && key) {
      add_mask(*key, file);
    } else {
      if (!image_stems.insert(stem).second)
        throw io::FileError(file.string(), "second image with the stem '" + stem + "'");
      pairs.push_back({stem, file, {}});
    }
  }
  if (pairs.empty()) throw io::FileError(images.string(), "no .npy or image files");
  if (!beside && require_masks && !fs::is_directory(masks))
    throw io::FileError(masks.string(), "missing: expected the masks of " + images.string());
  for (Pair& pair : pairs) {
    auto it = mask_of.find(pair.stem);
    if (it != mask_of.end()) {
      pair.mask = it->second;
      mask_of.erase(it);
    } else if (require_masks) {
      throw io::FileError(pair.image.string(), "image without mask (expected " +
                                                   (masks / (pair.stem + "_mask")).string() +
                                                   " with an image or .npy extension)");
    }
  }
  if (!mask_of.empty()) throw io::FileError(mask_of.begin()->second.string(), "mask without image");
  return pairs;
}

// --- Patient ids from file stems

// "<patient><sep><number>" -> "<patient>" (an optional "slice" before the number is dropped).
std::optional<std::string> patient_key(const std::string& stem) {
  std::string key = stem;
  auto drop_separators = [&] {
    while (!key.empty() && std::string("_-. ").find(key.back()) != std::string::npos)
      key.pop_back();
  };
  const std::size_t digits_begin = key.find_last_not_of("0123456789") + 1;
  if (digits_begin == key.size() || digits_begin == 0) return std::nullopt;
  key.erase(digits_begin);
  drop_separators();
  if (lower(key).ends_with("slice")) key.erase(key.size() - 5);
  drop_separators();
  if (key.empty() || key.size() + 1 > digits_begin) return std::nullopt;  // no separator
  return key;
}

// Patient ids for files named by stems (see dataset.h), and the note that says which rule won.
std::vector<std::string> infer_patients(const std::vector<std::string>& stems, std::string& note) {
  std::vector<std::string> keys;
  for (const std::string& stem : stems) {
    std::optional<std::string> key = patient_key(stem);
    if (!key) break;
    keys.push_back(*key);
  }
  const std::size_t patients = std::set<std::string>(keys.begin(), keys.end()).size();
  if (keys.size() == stems.size() && patients >= 2 && patients < stems.size()) {
    note = "patient ids inferred from file names (e.g. " + stems.front() + " -> " + keys.front() +
           "): " + std::to_string(patients) + " patients";
    return keys;
  }
  note = "no patient ids in the file names: every file is its own patient (the split is per slice)";
  return stems;
}

std::vector<Task> pair_tasks(const std::vector<Pair>& pairs,
                             const std::vector<std::string>& patients,
                             const DatasetOptions& options, const std::vector<std::string>& ids) {
  std::vector<Task> tasks;
  for (std::size_t i = 0; i < pairs.size(); ++i)
    tasks.push_back([&pair = pairs[i], patient = patients[i], id = ids[i], &options] {
      Loaded loaded;
      Raw raw = read_pair(pair, loaded.layout);
      loaded.samples.push_back(preprocess(std::move(raw), options, patient, id, pair_source(pair)));
      return loaded;
    });
  return tasks;
}

// "HxWxC in 10 files, CxHxW in 2 files" for npy images; empty for image files.
std::string layout_note(const std::vector<Loaded>& results) {
  std::map<std::string, int> counts;
  for (const Loaded& r : results)
    if (!r.layout.empty()) counts[r.layout]++;
  std::string note;
  for (const auto& [layout, count] : counts)
    note += (note.empty() ? "npy image axes: " : ", ") + layout + " in " + std::to_string(count) +
            " file(s)";
  return note;
}

using Notes = std::vector<std::string>;

std::vector<Loaded> load_pairs(const Layout& layout, const DatasetOptions& options, Notes& notes) {
  const std::vector<Pair> pairs = find_pairs(layout.root, layout.masks, options.require_masks);
  std::vector<std::string> stems;
  for (const Pair& pair : pairs) stems.push_back(pair.stem);
  std::string note;
  const std::vector<std::string> patients = infer_patients(stems, note);
  notes.push_back(note);
  std::vector<Loaded> results = run_all(pair_tasks(pairs, patients, options, stems));
  if (std::string axes = layout_note(results); !axes.empty()) notes.push_back(axes);
  return results;
}

std::vector<Loaded> load_file(const Layout& layout, const DatasetOptions& options, Notes& notes) {
  const std::vector<Pair> pairs = {{stem_of(layout.root), layout.root, {}}};
  std::vector<Loaded> results =
      run_all(pair_tasks(pairs, {pairs[0].stem}, options, {pairs[0].stem}));
  notes.push_back("a single file: one sample without mask");
  if (std::string axes = layout_note(results); !axes.empty()) notes.push_back(axes);
  return results;
}

// --- LGG

std::vector<Loaded> load_lgg(const Layout& layout, const DatasetOptions& options, Notes& notes) {
  std::vector<Pair> pairs;
  std::vector<std::string> patients, ids;
  for (const fs::path& dir : list(layout.root, true)) {
    if (!is_lgg_case(dir)) continue;
    const std::string name = dir.filename().string();
    for (Pair& pair : find_pairs(dir, dir, options.require_masks)) {
      const std::string number = pair.stem.substr(std::min(pair.stem.size(), name.size() + 1));
      if (!pair.stem.starts_with(name + "_") || !all_digits(number))
        throw io::FileError(pair.image.string(),
                            "not named " + name + "_<n> like the other slices of " + dir.string());
      patients.push_back(name);
      ids.push_back(name + "/" + number);
      pairs.push_back(std::move(pair));
    }
  }
  notes.push_back("LGG layout in " + layout.root.string() + ": patient = case folder");
  return run_all(pair_tasks(pairs, patients, options, ids));
}

// --- BraTS

struct BratsPatient {
  fs::path folder;
  std::vector<fs::path> channels;
  fs::path label;  // empty: none
};

bool is_label(const fs::path& file) {
  const std::string name = lower(file.filename().string());
  return name.find("otmulticlass") != std::string::npos || name.find("seg") != std::string::npos;
}

BratsPatient brats_files(const fs::path& folder, const DatasetOptions& options) {
  BratsPatient p{folder, {}, {}};
  std::vector<fs::path> files = files_where(folder, is_nifti);
  std::sort(files.begin(), files.end(),
            [](const fs::path& a, const fs::path& b) { return a.filename() < b.filename(); });
  for (const fs::path& file : files) {
    if (lower(file.filename().string()).find("brainmask") != std::string::npos) continue;
    if (!is_label(file)) {
      p.channels.push_back(file);
    } else if (!p.label.empty()) {
      throw io::FileError(file.string(),
                          "second label file in the folder (also " + p.label.string() + ")");
    } else {
      p.label = file;
    }
  }
  if (p.channels.empty())
    throw io::FileError(folder.string(), "no image volumes besides the label");
  if (p.label.empty() && options.require_masks)
    throw io::FileError(folder.string(),
                        "no label file (a name containing 'OTMultiClass' or 'seg')");
  if (options.channels > int(p.channels.size()))
    throw io::FileError(folder.string(), "has " + std::to_string(p.channels.size()) +
                                             " volume(s), but " + std::to_string(options.channels) +
                                             " channels were requested (the model's --in-channels; leave it out to "
                                             "train on what the data has)");
  if (options.channels > 0) p.channels.resize(std::size_t(options.channels));
  return p;
}

// The constant filling the outside of the head becomes 0 (see dataset.h).
void zero_background(std::vector<float>& data) {
  const float fill = *std::min_element(data.begin(), data.end());
  const auto count = std::size_t(std::count(data.begin(), data.end(), fill));
  if (fill == 0.0f || count * 10 < data.size()) return;
  for (float& v : data)
    if (v == fill) v = 0.0f;
}

io::Volume read_volume(const fs::path& path, const io::Volume* like) {
  io::Volume v = io::read_nifti(path.string());
  check_finite(path.string(), v.data);
  if (like && (v.nx != like->nx || v.ny != like->ny || v.nz != like->nz))
    throw io::FileError(path.string(),
                        "size " + std::to_string(v.nx) + "x" + std::to_string(v.ny) + "x" +
                            std::to_string(v.nz) + " differs from the patient's other volumes (" +
                            std::to_string(like->nx) + "x" + std::to_string(like->ny) + "x" +
                            std::to_string(like->nz) + ")");
  return v;
}

Loaded load_brats_patient(const BratsPatient& p, const DatasetOptions& options) {
  std::vector<io::Volume> volumes;
  for (const fs::path& file : p.channels) {
    volumes.push_back(read_volume(file, volumes.empty() ? nullptr : &volumes.front()));
    zero_background(volumes.back().data);
  }
  std::vector<float> label;
  if (!p.label.empty()) label = read_volume(p.label, &volumes.front()).data;
  const io::Volume& first = volumes.front();
  const std::size_t plane = std::size_t(first.nx) * std::size_t(first.ny);
  const std::string patient = p.folder.filename().string();
  Loaded loaded;
  for (int z = 0; z < first.nz; ++z) {
    const std::size_t offset = std::size_t(z) * plane;
    Raw raw{int(volumes.size()), first.ny, first.nx, {}, {}};
    for (const io::Volume& v : volumes)  // rows = y, columns = x: the plane is contiguous
      raw.image.insert(raw.image.end(), v.data.begin() + std::ptrdiff_t(offset),
                       v.data.begin() + std::ptrdiff_t(offset + plane));
    if (!label.empty())
      raw.mask = binarised(std::vector<float>(label.begin() + std::ptrdiff_t(offset),
                                              label.begin() + std::ptrdiff_t(offset + plane)));
    const auto is_zero = [](float v) { return v == 0.0f; };
    if (std::all_of(raw.image.begin(), raw.image.end(), is_zero) &&
        std::all_of(raw.mask.begin(), raw.mask.end(), is_zero)) {
      ++loaded.skipped;
      continue;
    }
    loaded.samples.push_back(preprocess(std::move(raw), options, patient,
                                        patient + "/" + std::to_string(z),
                                        p.folder.string() + " z " + std::to_string(z)));
  }
  return loaded;
}

std::vector<Loaded> load_brats(const Layout& layout, const DatasetOptions& options, Notes& notes) {
  std::vector<BratsPatient> patients;
  for (const fs::path& folder : layout.patients) patients.push_back(brats_files(folder, options));
  std::vector<Task> tasks;
  for (const BratsPatient& p : patients)
    tasks.push_back([&p, &options] { return load_brats_patient(p, options); });
  std::vector<Loaded> results = run_all(tasks);
  std::string channels;
  for (const fs::path& file : patients.front().channels)
    channels += (channels.empty() ? "" : ", ") + stem_of(file);
  int skipped = 0;
  for (const Loaded& r : results) skipped += r.skipped;
  notes.push_back("BraTS layout, " + std::to_string(patients.size()) +
                  " patient folders; channels " + "(sorted file names): " + channels);
  notes.push_back("skipped " + std::to_string(skipped) + " slices without tissue or tumour");
  return results;
}

// --- Phantom

int phantom_patients(const std::string& source, const DatasetOptions& options) {
  if (source == "phantom") return options.phantom_patients;
  const std::string count = source.substr(std::string("phantom:").size());
  if (!all_digits(count) || count.size() > 6 || std::stoi(count) < 1)
    throw std::runtime_error("bad source '" + source +
                             "': expected phantom:PATIENTS, PATIENTS >= 1");
  return std::stoi(count);
}

std::vector<Loaded> load_phantom(const std::string& source, const DatasetOptions& options,
                                 Notes& notes) {
  PhantomOptions phantom;
  phantom.size = options.size;
  if (options.channels > 0) phantom.channels = options.channels;
  phantom.slices_per_patient = options.phantom_slices;
  const int patients = phantom_patients(source, options);
  std::vector<Task> tasks;
  for (int p = 0; p < patients; ++p)
    for (int slice = 0; slice < options.phantom_slices; ++slice)
      tasks.push_back([=, &options] {
        PhantomSlice s = make_phantom_slice(phantom, options.seed, uint64_t(p), slice);
        char name[32];
        std::snprintf(name, sizeof name, "phantom-%03d", p);
        Raw raw{s.channels, s.size, s.size, std::move(s.image), std::move(s.mask)};
        Loaded loaded;
        loaded.samples.push_back(preprocess(std::move(raw), options, name,
                                            std::string(name) + "/" + std::to_string(slice),
                                            source + " seed " + std::to_string(options.seed)));
        return loaded;
      });
  notes.push_back("synthetic phantom, seed " + std::to_string(options.seed));
  return run_all(tasks);
}

// ---------------------------------------------------------------------------------------------
// Merging

void validate(const DatasetOptions& o) {
  if (o.size < 8 || o.size > kMaxImageSize)
    throw std::invalid_argument("dataset: size must be from 8 to " + std::to_string(kMaxImageSize));
  if (o.channels < 0) throw std::invalid_argument("dataset: channels must be >= 0");
  if (o.phantom_patients < 1 || o.phantom_slices < 1)
    throw std::invalid_argument("dataset: phantom_patients and phantom_slices must be >= 1");
}

std::vector<Sample> merged(std::vector<Loaded> results, const std::string& source) {
  std::vector<Sample> samples;
  for (Loaded& r : results)
    for (Sample& s : r.samples) samples.push_back(std::move(s));
  if (samples.empty()) throw std::runtime_error(source + ": no slices left to load");
  std::sort(samples.begin(), samples.end(),
            [](const Sample& a, const Sample& b) { return natural_less(a.id, b.id); });
  for (std::size_t i = 1; i < samples.size(); ++i)
    if (samples[i].id == samples[i - 1].id)
      throw std::runtime_error("duplicate sample id '" + samples[i].id + "' from " +
                               samples[i - 1].source + " and " + samples[i].source);
  for (const Sample& s : samples)
    if (s.channels != samples.front().channels)
      throw io::FileError(s.source, "has " + std::to_string(s.channels) + " channel(s), but " +
                                        samples.front().source + " has " +
                                        std::to_string(samples.front().channels) +
                                        ": every slice needs the same channels");
  return samples;
}

std::string summary(const std::string& source, const Layout& layout,
                    const std::vector<Sample>& samples) {
  std::set<std::string> patients;
  int with_mask = 0;
  for (const Sample& s : samples) {
    patients.insert(s.patient);
    with_mask += s.has_mask();
  }
  return source + ": " + kind_name(layout.kind) + ", " + std::to_string(samples.size()) +
         " slices of " + std::to_string(patients.size()) + " patients, " +
         std::to_string(samples.front().channels) + " channel(s), " +
         size_text(samples.front().height, samples.front().width) + ", " +
         std::to_string(with_mask) + " with masks";
}

}  // namespace

std::string detect_format(const std::string& source) { return kind_name(detect(source).kind); }

std::vector<Sample> load_dataset(const std::string& source, const DatasetOptions& options) {
  validate(options);
  const Layout layout = detect(source);
  Notes notes;
  std::vector<Loaded> results;
  switch (layout.kind) {
    case Kind::phantom:
      results = load_phantom(source, options, notes);
      break;
    case Kind::file:
      results = load_file(layout, options, notes);
      break;
    case Kind::npy:
    case Kind::images:
      results = load_pairs(layout, options, notes);
      break;
    case Kind::lgg:
      results = load_lgg(layout, options, notes);
      break;
    case Kind::brats:
      results = load_brats(layout, options, notes);
      break;
  }
  std::vector<Sample> samples = merged(std::move(results), source);
  notes.push_back(summary(source, layout, samples));
  for (const std::string& note : notes) {
    if (options.report)
      options.report(note);
    else
      std::cerr << "dataset: " << note << "\n";
  }
  return samples;
}

}  // namespace unet
