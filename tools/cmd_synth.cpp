// `unet synth`: writes synthetic phantom MRI slices (train/phantom.h) as NumPy image/mask pairs,
// in the layout `unet train --data` reads (images/ + masks/, "<patient>_slice_<k>.npy"), with
// images H x W x C float32 like the reference work's slices and masks H x W uint8 (0/1).
#include <cstdio>
#include <filesystem>

#include "train/io/npy.h"
#include "train/phantom.h"
#include "tools/args.h"
#include "tools/commands.h"

namespace unet::cli {

int run_synth(int argc, char** argv) {
  Args args("synth", "Writes synthetic brain-MRI phantom slices with tumour masks as .npy pairs:\n"
                     "OUT/images/<patient>_slice_<k>.npy (H x W x C float32) and OUT/masks/... (H x W uint8).");
  args.option("out", "dir", "data/phantom", "output folder")
      .option("patients", "n", "20", "synthetic patients")
      .option("slices", "n", "8", "slices per patient, spread over the head")
      .option("size", "pixels", "240", "height and width")
      .option("channels", "n", "3", "contrasts (T1, FLAIR, T1 post-contrast, T2, ...)")
      .option("seed", "n", "1", "seed: the same seed gives the same files");
  if (!args.parse(argc, argv)) return 0;
  const int patients = args.get_int("patients"), slices = args.get_int("slices");
  PhantomOptions o;
  o.size = args.get_int("size");
  o.channels = args.get_int("channels");
  if (patients < 1 || slices < 1 || o.size < 8 || o.channels < 1) {
    throw UsageError("unet synth: need --patients >= 1, --slices >= 1, --size >= 8, --channels >= 1");
  }
  const auto seed = uint64_t(args.get_int64("seed"));
  const std::filesystem::path out(args.get("out"));
  std::filesystem::create_directories(out / "images");
  std::filesystem::create_directories(out / "masks");
  for (int p = 0; p < patients; ++p) {
    for (int k = 0; k < slices; ++k) {
      // Slices spread evenly over the phantom's volume, away from its empty top and bottom.
      const int index = (2 * k + 1) * o.slices_per_patient / (2 * slices);
      const PhantomSlice s = make_phantom_slice(o, seed, uint64_t(p), index);
      std::vector<float> hwc(s.image.size());
      const std::size_t plane = std::size_t(s.size) * s.size;
      for (std::size_t i = 0; i < plane; ++i)
        for (int c = 0; c < s.channels; ++c) hwc[i * std::size_t(s.channels) + std::size_t(c)] = s.image[std::size_t(c) * plane + i];
      std::vector<uint8_t> mask(s.mask.size());
      for (std::size_t i = 0; i < mask.size(); ++i) mask[i] = s.mask[i] > 0.5f ? 1 : 0;
      char name[64];
      std::snprintf(name, sizeof name, "phantom%03d_slice_%02d.npy", p, k);
      io::write_npy((out / "images" / name).string(), {s.size, s.size, s.channels}, hwc.data());
      io::write_npy((out / "masks" / name).string(), {s.size, s.size}, mask.data());
    }
  }
  std::printf("wrote %d phantom slices (%d patients) of %dx%dx%d to %s/images and %s/masks\n", patients * slices, patients,
              o.size, o.size, o.channels, out.c_str(), out.c_str());
  return 0;
}

}  // namespace unet::cli
