// Datasets: every supported source read eagerly into preprocessed Samples (sample.h), ready for
// split.h, augment.h and loader.h. The sets are small (hundreds to thousands of slices), so all
// of a set is read up front, files in parallel (OpenMP), and errors surface before training.
//
// Sources (detect_format() names the kind; tried in this order):
//   "phantom"   "phantom" or "phantom:PATIENTS": synthetic slices (phantom.h), phantom_slices per
//               patient (the phantom's whole volume), patients "phantom-000"..., ids
//               "phantom-000/3", seeded by options.seed; channels default to the phantom's 3.
//   "file"      one .npy or image file: one sample without mask (prediction); patient = id = stem.
//   "npy" /     a folder with images/ and masks/ whose masks are named like the image (same stem,
//   "images"    or stem + "_mask"/"_seg"/"_label"), or a folder of images with masks beside them
//               named <stem>_mask.<ext> (also _seg, _label; any supported extension). "npy" when
//               every image is a .npy, else "images" (.png .jpg .jpeg .bmp .tif .tiff, read_image).
//               Ids are the file stems. Patient ids are inferred from the stems when they look
//               like <patient><sep><number> (sep one of "_-. ", optionally "slice" before the
//               number, e.g. "pat012_slice_34" -> "pat012") for EVERY file and give >= 2
//               patients with several slices; otherwise each file is its own patient (the layout
//               has no patient id; the split is then per slice, which the notes say).
//   "lgg"       the Kaggle LGG layout, root lgg-kaggle-3m/ or its kaggle_3m/: <case>/<case>_<n>.tif
//               (RGB: pre-contrast, FLAIR, post-contrast) with <case>_<n>_mask.tif (0/255).
//               Patient = case folder name, id = "<case>/<n>".
//   "brats"     NIfTI volumes (.nii/.nii.gz), one folder per patient, directly in the root or one
//               level down (train/, validation/), or the root itself as the only patient. Per
//               patient: the label file is the one whose name contains "OTMultiClass" or "seg"
//               (case-insensitive), whole tumour = label > 0; files containing "brainmask" are
//               ignored; the other volumes are the channels, in byte order of their file names
//               (BraTS 2013: 0 = Flair_subtrMeanDivStd, 1 = T1c_subtrMeanDivStd; BraTS 2018+:
//               flair, t1, t1ce, t2). Every axial slice z is a sample, id "<patient>/<z>".
//               Orientation: image row r, column c of slice z is voxel (x = c, y = r, z): x, the
//               fastest NIfTI axis, runs along rows, no flips. In BraTS (sform diag(-1, -1, 1))
//               that puts anterior at the top and the patient's right on the left (radiological
//               view), like the LGG slices; a predicted slice maps back to voxels the same way.
//               Background: the constant that fills the outside of the head (the volume's minimum
//               when >= 10% of voxels hold it: 0 in raw data, about -3.5 in the z-scored
//               "subtrMeanDivStd" volumes) becomes 0. Slices whose channels are all background and
//               whose mask is empty (above and below the head) are skipped; the notes count them.
// Samples come sorted by id in natural order (numbers by value: "<case>/2" before "<case>/10").
//
// Preprocessing, the same for every source (the model always sees the same conventions):
//   1. channels: options.channels = 0 keeps the data's channels; fewer keeps the first ones;
//      more than the data has is an error. Every sample must end with the same count.
//   2. resize to size x size: bilinear (pixel centres aligned) for the image, nearest for the
//      mask. LGG 256 -> 240; BraTS is 240 already. A non-square image is stretched.
//   3. masks: > 0 -> 1, else 0 (LGG 255 -> 1, BraTS labels 1..4 -> 1).
//   4. per slice and channel, z-score over the foreground = the non-zero pixels: their values
//      are clipped to their 0.5 and 99.5 percentiles (a few hot pixels must not set the scale),
//      then (v - mean) / sd of the clipped values; zero pixels stay 0 (the network sees "no
//      tissue" as exactly 0 everywhere). A channel without foreground stays 0; one whose
//      foreground is constant becomes 0. Note: where the background is noise rather than exact
//      zeros (the phantom, LGG's dark background of values 1..5) it counts as foreground.
//
// Errors are io::FileError (naming the file and the problem) or std::runtime_error: unreadable,
// truncated or unsupported files (the readers' messages), an image without its mask (when
// require_masks), a mask without its image, a mask whose size differs from its image's, NaN or
// infinity in an image or mask, an npy image whose channel axis cannot be told, an empty folder
// or a folder matching no layout ("no dataset found in X: expected ..."), duplicate ids.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "train/io/files.h"
#include "train/sample.h"

namespace unet {

// The largest model input side the commands accept: the reference model's training step needs
// ~10 GB at 2048x2048 and batch 1, and a larger --size is far more likely a typo than intended.
inline constexpr int kMaxImageSize = 2048;

struct DatasetOptions {
  int size = 240;             // model input height = width
  int channels = 0;           // 0: as the data has
  uint64_t seed = 1;          // phantom only
  int phantom_patients = 20;  // "phantom:N" overrides
  int phantom_slices = 8;     // slices per phantom patient
  bool require_masks = true;  // false: images without a mask load with an empty mask
  bool keep_native_masks = false;  // also keep each mask at its stored size (Sample::native_mask)
  // Receives notes on what was found (layout, channel axis, inferred patients, skipped slices,
  // a summary). Empty: printed to std::cerr as "dataset: <note>".
  std::function<void(const std::string&)> report{};
};

// The kind of `source` (see above): "phantom", "file", "npy", "images", "lgg" or "brats".
// Throws std::runtime_error "no dataset found in <source>: ..." when nothing matches.
std::string detect_format(const std::string& source);

std::vector<Sample> load_dataset(const std::string& source, const DatasetOptions& options = {});

}  // namespace unet
