// `unet predict`: tumour masks for new data with a trained checkpoint. 2-D slices (.npy, images,
// or a folder of them) get a mask (.npy and .png), a probability map and an overlay at their own
// size; a NIfTI patient folder or volume gets a mask volume with the scan's geometry and overlays
// of its three slices with the largest predicted area. The network sees exactly what training
// saw: every input goes through load_dataset (same channels, resize and normalisation).
#include <algorithm>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <optional>

#include <unistd.h>

#include "tools/args.h"
#include "tools/commands.h"
#include "tools/inference.h"
#include "tools/model_flags.h"
#include "train/io/image.h"
#include "train/io/nifti.h"
#include "train/io/npy.h"
#include "train/metrics.h"
#include "train/plot.h"

namespace unet::cli {
namespace {

namespace fs = std::filesystem;

const char* const kSliceExtensions[] = {".npy", ".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"};
const char* const kMaskSuffixes[] = {"_mask", "_seg", "_label"};  // as train/dataset.h

bool is_slice_file(const fs::path& p) {
  return std::any_of(std::begin(kSliceExtensions), std::end(kSliceExtensions),
                     [&](const char* ext) { return io::ends_with_icase(p.string(), ext); });
}
bool is_nifti(const fs::path& p) {
  return io::ends_with_icase(p.string(), ".nii") || io::ends_with_icase(p.string(), ".nii.gz");
}
bool is_mask_stem(const std::string& stem) {
  return std::any_of(std::begin(kMaskSuffixes), std::end(kMaskSuffixes),
                     [&](const char* suffix) { return io::ends_with_icase(stem, suffix); });
}
std::string stem_of(const fs::path& p) {
  const std::string name = p.filename().string();
  return io::ends_with_icase(name, ".nii.gz") ? name.substr(0, name.size() - 7) : p.stem().string();
}
std::string lower(std::string s) {
  for (char& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Regular, non-hidden files of a folder that pass `keep`, sorted by name.
template <typename Keep>
std::vector<fs::path> files_in(const fs::path& dir, Keep keep) {
  std::vector<fs::path> out;
  for (const fs::directory_entry& e : fs::directory_iterator(dir))
    if (e.is_regular_file() && !e.path().filename().string().starts_with(".") && keep(e.path())) out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

// The mask file for `stem` in `dir`: <stem><suffix>.<ext> for the mask suffixes (and the bare
// stem when `bare`, for a separate truth folder), or empty.
fs::path mask_for(const fs::path& dir, const std::string& stem, bool bare) {
  std::vector<std::string> names;
  if (bare) names.push_back(stem);
  for (const char* suffix : kMaskSuffixes) names.push_back(stem + suffix);
  for (const std::string& name : names)
    for (const char* ext : kSliceExtensions)
      if (fs::is_regular_file(dir / (name + ext))) return dir / (name + ext);
  return {};
}

// ---------------------------------------------------------------------------------------------
// 2-D slices

struct SliceInput {
  std::string name;  // output prefix: the file's stem
  fs::path image, truth;
};

struct Planes {
  int channels = 0, height = 0, width = 0;
  std::vector<float> chw;
};

// The stored image for display and its size. Axes as the loader reads a file without a mask:
// a 3-D .npy is HxWxC when its last dimension is <= 16, else CxHxW (the loader has already
// rejected any other shape).
Planes read_planes(const fs::path& path) {
  std::vector<int64_t> shape;
  std::vector<float> values;
  bool channels_last = true;
  if (io::ends_with_icase(path.string(), ".npy")) {
    io::NpyArray a = io::read_npy(path.string());
    io::check_decoded_size(path.string(), "image of shape", a.shape);
    shape = a.shape.size() == 2 ? std::vector<int64_t>{a.shape[0], a.shape[1], 1} : a.shape;
    channels_last = shape[2] <= 16;
    if (!channels_last) shape = {shape[1], shape[2], shape[0]};
    values = std::move(a.data);
  } else {
    io::Image image = io::read_image(path.string());
    shape = {image.height, image.width, image.channels};
    values = std::move(image.pixels);
  }
  Planes p{int(shape[2]), int(shape[0]), int(shape[1]), {}};
  if (!channels_last) {
    p.chw = std::move(values);
    return p;
  }
  const std::size_t plane = std::size_t(p.height) * std::size_t(p.width);
  p.chw.resize(values.size());
  for (std::size_t i = 0; i < plane; ++i)
    for (int c = 0; c < p.channels; ++c) p.chw[std::size_t(c) * plane + i] = values[i * std::size_t(p.channels) + std::size_t(c)];
  return p;
}

// A truth mask as the loader reads masks: tumour where the value (any colour channel of an
// image, alpha ignored) is > 0. It must have its image's size.
std::vector<float> read_truth(const fs::path& path, int height, int width, const fs::path& image) {
  int h = 0, w = 0, channels = 1;
  std::vector<float> values;
  if (io::ends_with_icase(path.string(), ".npy")) {
    io::NpyArray a = io::read_npy(path.string());
    io::check_decoded_size(path.string(), "mask of shape", a.shape);
    std::erase(a.shape, 1);  // HxWx1 and 1xHxW are HxW
    if (a.shape.size() != 2) throw io::FileError(path.string(), "a mask must be HxW (or HxWx1)");
    h = int(a.shape[0]), w = int(a.shape[1]);
    values = std::move(a.data);
  } else {
    io::Image m = io::read_image(path.string());
    h = m.height, w = m.width, channels = m.channels;
    values = std::move(m.pixels);
  }
  if (h != height || w != width)
    throw io::FileError(path.string(), "mask is " + std::to_string(h) + "x" + std::to_string(w) + " but its image " +
                                           image.string() + " is " + std::to_string(height) + "x" + std::to_string(width));
  const int colours = channels == 2 || channels == 4 ? channels - 1 : channels;
  std::vector<float> mask(std::size_t(h) * std::size_t(w), 0.0f);
  for (std::size_t i = 0; i < mask.size(); ++i)
    for (int c = 0; c < colours; ++c)
      if (values[i * std::size_t(channels) + std::size_t(c)] > 0.0f) mask[i] = 1.0f;
  return mask;
}

std::vector<SliceInput> slice_inputs(const fs::path& input, const std::string& truth) {
  const bool folder = fs::is_directory(input);
  std::vector<SliceInput> out;
  for (const fs::path& file : folder ? files_in(input, [](const fs::path& p) { return is_slice_file(p) && !is_mask_stem(stem_of(p)); })
                                     : std::vector<fs::path>{input}) {
    SliceInput s{stem_of(file), file, {}};
    if (truth.empty()) {
      s.truth = mask_for(file.parent_path(), s.name, false);
    } else if (!folder) {
      s.truth = truth;
    } else if (s.truth = mask_for(truth, s.name, true); s.truth.empty()) {
      throw io::FileError(truth, "no mask for " + file.string() + " (expected " + s.name + "[_mask].<npy|png|...>)");
    }
    for (const SliceInput& other : out)
      if (other.name == s.name) throw io::FileError(file.string(), "second input named '" + s.name + "' (also " + other.image.string() + ")");
    out.push_back(std::move(s));
  }
  if (out.empty()) throw io::FileError(input.string(), "no .npy or image slices in the folder");
  return out;
}

std::string dice_text(const std::vector<float>& truth, const std::vector<float>& mask, int height, int width) {
  if (truth.empty()) return "";
  char text[48];
  std::snprintf(text, sizeof text, ", Dice %.3f vs truth", scores(confusion(truth.data(), mask.data(), height, width)).dice);
  return text;
}

void write_slice(OutputFolder& out, const SliceInput& in, const std::vector<float>& probability, int size, float threshold,
                 const PostProcess& postprocess) {
  const Planes image = read_planes(in.image);
  const std::vector<float> truth = in.truth.empty() ? std::vector<float>() : read_truth(in.truth, image.height, image.width, in.image);
  const std::vector<float> prob = resize_map(probability, size, size, image.height, image.width);
  std::vector<float> mask = binary_mask(prob, threshold);
  apply_postprocess(postprocess, mask, 1, image.height, image.width);
  std::vector<uint8_t> mask01(mask.size()), mask255(mask.size());
  for (std::size_t i = 0; i < mask.size(); ++i) {
    mask01[i] = uint8_t(mask[i]);
    mask255[i] = uint8_t(255 * mask01[i]);  // visible in an image viewer; loaders read > 0 as tumour
  }
  const std::vector<int64_t> shape = {image.height, image.width};
  io::write_npy(out.path(in.name + "_mask.npy"), shape, mask01.data());
  io::write_png(out.path(in.name + "_mask.png"), image.width, image.height, 1, mask255.data());
  io::write_npy(out.path(in.name + "_prob.npy"), shape, prob.data());
  OverlayInput overlay;
  overlay.channels = image.channels;
  overlay.height = image.height;
  overlay.width = image.width;
  overlay.image = image.chw.data();
  overlay.truth = truth.empty() ? nullptr : truth.data();
  overlay.prediction = mask.data();
  overlay.display_channels = display_channels(image.channels);
  overlay.scale = overlay_scale(image.height, image.width);
  const std::string dice = dice_text(truth, mask, image.height, image.width);
  overlay.header = in.name + (in.truth.empty() ? "" : "  " + dice.substr(2) + " " + in.truth.filename().string());
  plot_overlay(out.path(in.name + "_overlay.png"), overlay);
  const auto area = std::count(mask01.begin(), mask01.end(), uint8_t(1));
  std::printf("%s -> %s_{mask.npy,mask.png,prob.npy,overlay.png}: %dx%d, %lld tumour pixels%s\n", in.image.string().c_str(),
              (out.dir() / in.name).string().c_str(), image.height, image.width, static_cast<long long>(area), dice.c_str());
}

// Slices are loaded and predicted a batch at a time, so a large folder never sits in memory.
void predict_slices(Predictor& predictor, const std::vector<SliceInput>& inputs, const Args& args, float threshold,
                    OutputFolder& out) {
  const int size = args.get_int("size"), batch = args.get_int("batch");
  DatasetOptions options = model_data_options(predictor.model(), size);
  options.require_masks = false;
  options.report = [](const std::string&) {};  // one line per output is printed instead
  for (std::size_t start = 0; start < inputs.size(); start += std::size_t(batch)) {
    const std::size_t end = std::min(inputs.size(), start + std::size_t(batch));
    std::vector<Sample> samples;
    for (std::size_t i = start; i < end; ++i) samples.push_back(std::move(load_dataset(inputs[i].image.string(), options).front()));
    std::vector<const Sample*> pointers;
    for (const Sample& s : samples) pointers.push_back(&s);
    const std::vector<std::vector<float>> probabilities = predictor.probabilities(pointers, batch);
    for (std::size_t i = start; i < end; ++i)
      write_slice(out, inputs[i], probabilities[i - start], size, threshold, predictor.postprocess());
  }
}

// ---------------------------------------------------------------------------------------------
// NIfTI volumes

// A patient folder as train/dataset.h reads it: channels are the volumes in byte order of their
// names, without the label ("OTMultiClass" or "seg" in the name) and "brainmask" files.
struct VolumeInput {
  std::string patient;
  fs::path folder;         // what load_dataset reads
  fs::path first_channel;  // geometry of the written mask; the overlays' image
  fs::path truth;          // label volume, or empty
};

bool is_label(const fs::path& p) {
  const std::string name = lower(p.filename().string());
  return name.find("otmulticlass") != std::string::npos || name.find("seg") != std::string::npos;
}

VolumeInput volume_folder(const fs::path& folder, const std::string& truth) {
  VolumeInput v{folder.filename().string(), folder, {}, truth};
  if (v.patient.empty()) v.patient = fs::absolute(folder).parent_path().filename().string();  // "dir/" ends in ""
  for (const fs::path& file : files_in(folder, is_nifti)) {
    if (lower(file.filename().string()).find("brainmask") != std::string::npos) continue;
    if (!is_label(file) && v.first_channel.empty()) v.first_channel = file;
    if (is_label(file) && truth.empty()) v.truth = file;
  }
  if (v.first_channel.empty()) throw io::FileError(folder.string(), "no image volume (only label or brainmask files)");
  return v;
}

// load_dataset reads NIfTI patient folders, not lone volumes: a lone volume is shown to it as a
// one-file folder of a link under a neutral name (so that a name with "seg" in it is still read
// as an image). The folder goes when this does.
class LinkFolder {
 public:
  explicit LinkFolder(const fs::path& volume)
      : dir_(fs::temp_directory_path() / ("unet-predict-" + std::to_string(::getpid()))) {
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    fs::create_symlink(fs::absolute(volume), dir_ / (io::ends_with_icase(volume.string(), ".gz") ? "volume.nii.gz" : "volume.nii"));
  }
  ~LinkFolder() {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  LinkFolder(const LinkFolder&) = delete;
  LinkFolder& operator=(const LinkFolder&) = delete;
  // The volume's slices; errors name the user's file, never the link.
  std::vector<Sample> load(const DatasetOptions& options, const fs::path& volume) const {
    try {
      return load_dataset(dir_.string(), options);
    } catch (const std::exception& e) {
      std::string message = e.what();
      for (const char* name : {"/volume.nii.gz", "/volume.nii"}) {
        const std::string linked = dir_.string() + name;
        for (std::size_t at; (at = message.find(linked)) != std::string::npos;) message.replace(at, linked.size(), volume.string());
      }
      for (std::size_t at; (at = message.find(dir_.string())) != std::string::npos;)
        message.replace(at, dir_.string().size(), volume.string());
      throw std::runtime_error(message);
    }
  }

 private:
  fs::path dir_;
};

// Slice z of volume data (x fastest) as a height (y) x width (x) image: the loader's
// orientation, no flips.
std::vector<float> plane(const std::vector<float>& data, const io::Volume& geometry, int z) {
  const std::size_t n = std::size_t(geometry.nx) * std::size_t(geometry.ny);
  return {data.begin() + std::ptrdiff_t(n * std::size_t(z)), data.begin() + std::ptrdiff_t(n * std::size_t(z + 1))};
}

void predict_volume(Predictor& predictor, const VolumeInput& in, const Args& args, float threshold, OutputFolder& out) {
  const UNet& model = predictor.model();
  const int size = args.get_int("size");
  const io::Volume like = io::read_nifti(in.first_channel.string());  // read first: errors name the user's file
  std::optional<io::Volume> truth;
  if (!in.truth.empty()) {
    truth = io::read_nifti(in.truth.string());
    if (truth->nx != like.nx || truth->ny != like.ny || truth->nz != like.nz)
      throw io::FileError(in.truth.string(), "label volume size differs from " + in.first_channel.string());
    for (float& t : truth->data) t = t > 0.0f ? 1.0f : 0.0f;
  }
  std::optional<LinkFolder> link;
  if (!fs::is_directory(in.folder)) {
    if (model.config().in_channels != 1)
      throw io::FileError(in.folder.string(), "a single volume is one channel, but the model in " + args.get("checkpoint") +
                                                  " takes " + std::to_string(model.config().in_channels) +
                                                  "; give the patient folder with all its volumes");
    link.emplace(in.folder);
  }
  DatasetOptions options = model_data_options(model, size);
  options.require_masks = false;
  options.report = [](const std::string&) {};
  const std::vector<Sample> samples = link ? link->load(options, in.folder) : load_dataset(in.folder.string(), options);
  std::vector<const Sample*> pointers;
  for (const Sample& s : samples) pointers.push_back(&s);
  const std::vector<std::vector<float>> probabilities = predictor.probabilities(pointers, args.get_int("batch"));

  // Slices the loader skipped (no tissue) stay 0 in the mask.
  const std::size_t n = std::size_t(like.nx) * std::size_t(like.ny);
  std::vector<float> volume(n * std::size_t(like.nz), 0.0f);
  std::vector<std::pair<int64_t, int>> area_z;  // predicted area, slice
  for (std::size_t i = 0; i < samples.size(); ++i) {
    const int z = std::stoi(samples[i].id.substr(samples[i].id.rfind('/') + 1));
    const std::vector<float> mask = binary_mask(resize_map(probabilities[i], size, size, like.ny, like.nx), threshold);
    std::copy(mask.begin(), mask.end(), volume.begin() + std::ptrdiff_t(n * std::size_t(z)));
    area_z.emplace_back(0, z);
  }
  apply_postprocess(predictor.postprocess(), volume, like.nz, like.ny, like.nx);
  for (auto& [area, z] : area_z) {
    const auto from = volume.begin() + std::ptrdiff_t(n * std::size_t(z));
    area = std::count(from, from + std::ptrdiff_t(n), 1.0f);
  }
  const std::string mask_path = out.path(in.patient + "_mask.nii.gz");
  io::write_nifti(mask_path, like, volume, true);
  const auto voxels = std::count(volume.begin(), volume.end(), 1.0f);
  const std::string dice = truth ? dice_text(truth->data, volume, like.nz * like.ny, like.nx) : "";
  std::printf("%s -> %s: %dx%dx%d, %lld tumour voxels%s\n", in.folder.string().c_str(), mask_path.c_str(), like.nx, like.ny,
              like.nz, static_cast<long long>(voxels), dice.c_str());

  std::stable_sort(area_z.begin(), area_z.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  for (std::size_t k = 0; k < std::min<std::size_t>(3, area_z.size()); ++k) {
    const int z = area_z[k].second;
    const std::vector<float> image = plane(like.data, like, z), prediction = plane(volume, like, z);
    const std::vector<float> truth_plane = truth ? plane(truth->data, like, z) : std::vector<float>();
    OverlayInput overlay;
    overlay.channels = 1;
    overlay.height = like.ny;
    overlay.width = like.nx;
    overlay.image = image.data();
    overlay.truth = truth ? truth_plane.data() : nullptr;
    overlay.prediction = prediction.data();
    overlay.scale = overlay_scale(like.ny, like.nx);
    const std::string slice_dice = dice_text(truth_plane, prediction, like.ny, like.nx);
    overlay.header = in.patient + " slice " + std::to_string(z) + " (" + in.first_channel.filename().string() + ")" +
                     (truth ? "  " + slice_dice.substr(2) : "");
    const std::string path = out.path(in.patient + "_z" + std::to_string(z) + "_overlay.png");
    plot_overlay(path, overlay);
    std::printf("%s slice %d -> %s: %lld tumour pixels%s\n", in.folder.string().c_str(), z, path.c_str(),
                static_cast<long long>(area_z[k].first), slice_dice.c_str());
  }
}

}  // namespace

int run_predict(int argc, char** argv) {
  Args args("predict", "Predicts tumour masks with a trained checkpoint. --input is a .npy slice (HxW, HxWxC or\n"
                       "CxHxW), a 2-D image (png/jpg/bmp/tif), a folder of them, a NIfTI patient folder (one\n"
                       "volume per channel, as for training) or a single NIfTI volume. Per slice: <name>_mask.npy\n"
                       "(uint8 0/1), <name>_mask.png, <name>_prob.npy (float32) and <name>_overlay.png, at the\n"
                       "input's size. Per volume: <patient>_mask.nii.gz with the scan's geometry and overlays of\n"
                       "the 3 slices with the largest predicted area. A mask beside a slice (<name>_mask.<ext>,\n"
                       "also _seg, _label) or the label volume of a patient folder is shown as the truth.");
  args.option("checkpoint", "file", "", "the trained model (required); several, comma-separated, or a folder of runs: their ensemble")
      .option("input", "path", "", "slice, image, folder or NIfTI volume (required)")
      .option("truth", "path", "", "truth mask file, folder of masks, or label volume (default: found beside the input)")
      .option("out", "dir", "", "output folder (required)")
      .option("size", "pixels", "240", "model input height and width the images are resized to (default: the checkpoint's training size)")
      .option("batch", "n", "8", "slices per forward pass")
      .option("device", "name", "auto", "auto (CUDA when a GPU is usable, else CPU), cpu or cuda")
      .option("threads", "n", "0", "CPU threads (0: all cores)");
  Predictor::add_flags(args);
  add_kernels_flag(args);
  add_input_limit_flag(args);
  if (!args.parse(argc, argv)) return 0;
  for (const char* required : {"checkpoint", "input", "out"})
    if (args.get(required).empty()) throw UsageError(std::string("unet predict: --") + required + " is required");
  const float threshold = threshold_flag(args, "predict");
  check_common_flags(args.get_int("batch"), args.get_int("threads"), "predict");

  const fs::path input = args.get("input");
  const std::string truth = args.get("truth");
  std::error_code ec;
  if (!fs::exists(input, ec)) throw io::FileError(input.string(), "no such file or folder");
  if (!truth.empty() && !fs::exists(truth, ec)) throw io::FileError(truth, "no such file or folder");
  const bool volume_input = fs::is_directory(input) ? !files_in(input, is_nifti).empty() : is_nifti(input);
  if (!volume_input && !fs::is_directory(input) && !is_slice_file(input))
    throw io::FileError(input.string(), "not a .npy, image or NIfTI file");

  apply_kernels_flag(args, "predict");
  apply_input_limit_flag(args, "predict");
  const Device device = resolve_device(args.get("device"));
  Predictor predictor(args, device, "predict");
  if (!predictor.description().empty()) std::printf("predicting with %s\n", predictor.description().c_str());
  if (args.get("threshold") == "auto" && threshold != 0.5f)
    std::printf("threshold %s, as chosen by unet cv for %s\n", json_number(threshold).c_str(), args.get("checkpoint").c_str());
  OutputFolder out(args.get("out"));
  if (!volume_input) {
    predict_slices(predictor, slice_inputs(input, truth), args, threshold, out);
  } else if (fs::is_directory(input)) {
    predict_volume(predictor, volume_folder(input, truth), args, threshold, out);
  } else {
    predict_volume(predictor, {stem_of(input), input, input, truth}, args, threshold, out);
  }
  out.commit();
  return 0;
}

}  // namespace unet::cli
