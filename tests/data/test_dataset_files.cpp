// load_dataset on files generated in a temporary folder: NumPy pairs (HxWxC and CxHxW, uint8 and
// float64), image folders with masks, a single file, a small BraTS-like tree of NIfTI volumes,
// the phantom, and broken inputs whose errors must name the culprit file.
//
// Images carry a different non-zero region per channel, filled with 1s and 2s in a checkerboard
// (equal counts, so the normalised values are exactly -1 and +1): a wrong channel axis,
// transposition or channel order moves a region and is caught by comparing zero patterns.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <limits>
#include <set>

#include "tests/io/io_test_support.h"
#include "train/dataset.h"
#include "train/io/image.h"
#include "train/io/nifti.h"
#include "train/io/npy.h"

using namespace unet;
using Catch::Matchers::Contains;
using unet::io::test::TempDir;

namespace {

constexpr int kSize = 24;

// Channel c's region: left half, top half, then everything.
bool in_region(int c, int y, int x) {
  if (c == 0) return x < kSize / 2;
  if (c == 1) return y < kSize / 2;
  return true;
}

float pattern(int c, int y, int x) { return in_region(c, y, x) ? float(1 + (x + y) % 2) : 0.0f; }

bool in_tumour(int y, int x) { return x >= 4 && x < 10 && y >= 6 && y < 12; }

std::vector<float> hwc_image(int channels, float scale) {
  std::vector<float> data;
  for (int y = 0; y < kSize; ++y)
    for (int x = 0; x < kSize; ++x)
      for (int c = 0; c < channels; ++c) data.push_back(scale * pattern(c, y, x));
  return data;
}

std::vector<float> chw_image(int channels, float scale) {
  std::vector<float> data;
  for (int c = 0; c < channels; ++c)
    for (int y = 0; y < kSize; ++y)
      for (int x = 0; x < kSize; ++x) data.push_back(scale * pattern(c, y, x));
  return data;
}

std::vector<uint8_t> mask_bytes(uint8_t on) {
  std::vector<uint8_t> data;
  for (int y = 0; y < kSize; ++y)
    for (int x = 0; x < kSize; ++x) data.push_back(in_tumour(y, x) ? on : 0);
  return data;
}

std::vector<uint8_t> to_bytes(const std::vector<float>& values) {
  return std::vector<uint8_t>(values.begin(), values.end());
}

// A float64 .npy (write_npy writes float32 and uint8 only).
void write_npy_f64(const std::string& path, const std::vector<int64_t>& shape,
                   const std::vector<float>& values) {
  std::string dims;
  for (int64_t d : shape) dims += std::to_string(d) + ", ";
  std::string header = "{'descr': '<f8', 'fortran_order': False, 'shape': (" + dims + "), }";
  header.append((64 - (10 + header.size() + 1) % 64) % 64, ' ');
  header += '\n';
  std::string out("\x93NUMPY\x01\x00", 8);
  out += char(header.size() & 0xFF);
  out += char(header.size() >> 8);
  out += header;
  for (float v : values) {
    const double d = v;
    char raw[8];
    std::memcpy(raw, &d, 8);
    out.append(raw, 8);
  }
  io::test::write_bytes(path, std::vector<uint8_t>(out.begin(), out.end()));
}

void check_pattern(const Sample& s, int channels) {
  REQUIRE(s.channels == channels);
  REQUIRE(s.height == kSize);
  REQUIRE(s.width == kSize);
  const std::size_t plane = kSize * kSize;
  int wrong = 0;
  for (int c = 0; c < channels; ++c)
    for (int y = 0; y < kSize; ++y)
      for (int x = 0; x < kSize; ++x) {
        const float v = s.image[c * plane + std::size_t(y * kSize + x)];
        wrong += in_region(c, y, x) ? std::abs(std::abs(v) - 1.0f) > 1e-5f : v != 0.0f;
      }
  CHECK(wrong == 0);
}

void check_mask(const Sample& s) {
  REQUIRE(s.mask.size() == std::size_t(kSize * kSize));
  int wrong = 0;
  for (int y = 0; y < kSize; ++y)
    for (int x = 0; x < kSize; ++x)
      wrong += s.mask[std::size_t(y * kSize + x)] != (in_tumour(y, x) ? 1.0f : 0.0f);
  CHECK(wrong == 0);
}

struct Loaded {
  std::vector<Sample> samples;
  std::string notes;
};

Loaded load(const std::string& source, DatasetOptions options = {.size = kSize}) {
  Loaded out;
  options.report = [&](const std::string& note) { out.notes += note + "\n"; };
  out.samples = load_dataset(source, options);
  return out;
}

std::string message_of(const std::string& source, DatasetOptions options = {.size = kSize}) {
  options.report = [](const std::string&) {};
  try {
    load_dataset(source, options);
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no exception)";
}

std::string mkdir(const TempDir& dir, const std::string& name) {
  std::filesystem::create_directories(dir.path / name);
  return dir.file(name);
}

}  // namespace

TEST_CASE("dataset: npy pairs, HxWxC uint8 images with HxW and HxWx1 masks", "[data]") {
  TempDir dir;
  mkdir(dir, "images");
  mkdir(dir, "masks");
  const std::vector<uint8_t> image = to_bytes(hwc_image(3, 50.0f));
  for (std::string stem : {"p1_slice_2", "p1_slice_10", "p2_slice_1"}) {
    io::write_npy(dir.file("images/" + stem + ".npy"), {kSize, kSize, 3}, image.data());
    if (stem == "p2_slice_1") {
      const std::vector<uint8_t> bytes = mask_bytes(1);
      std::vector<float> mask(bytes.begin(), bytes.end());
      io::write_npy(dir.file("masks/" + stem + ".npy"), {kSize, kSize, 1}, mask.data());
    } else {
      io::write_npy(dir.file("masks/" + stem + ".npy"), {kSize, kSize}, mask_bytes(255).data());
    }
  }
  CHECK(detect_format(dir.path.string()) == "npy");
  Loaded loaded = load(dir.path.string());
  REQUIRE(loaded.samples.size() == 3);
  CHECK(loaded.samples[0].id == "p1_slice_2");  // natural order
  CHECK(loaded.samples[1].id == "p1_slice_10");
  CHECK(loaded.samples[0].patient == "p1");
  CHECK(loaded.samples[2].patient == "p2");
  for (const Sample& s : loaded.samples) {
    check_pattern(s, 3);
    check_mask(s);
  }
  CHECK_THAT(loaded.notes, Contains("HxWxC in 3 file(s)"));
  CHECK_THAT(loaded.notes, Contains("inferred"));
}

TEST_CASE("dataset: npy pairs, CxHxW float64 images with <stem>_mask masks", "[data]") {
  TempDir dir;
  mkdir(dir, "images");
  mkdir(dir, "masks");
  for (std::string stem : {"a", "b"}) {
    write_npy_f64(dir.file("images/" + stem + ".npy"), {2, kSize, kSize}, chw_image(2, 0.25f));
    io::write_npy(dir.file("masks/" + stem + "_mask.npy"), {kSize, kSize}, mask_bytes(1).data());
  }
  Loaded loaded = load(dir.path.string());
  REQUIRE(loaded.samples.size() == 2);
  for (const Sample& s : loaded.samples) {
    check_pattern(s, 2);
    check_mask(s);
    CHECK(s.patient == s.id);  // no patient id in "a", "b"
  }
  CHECK_THAT(loaded.notes, Contains("CxHxW in 2 file(s)"));
  CHECK_THAT(loaded.notes, Contains("every file is its own patient"));
}

TEST_CASE("dataset: an npy image whose both ends are small takes its axes from the mask",
          "[data]") {
  TempDir dir;
  mkdir(dir, "images");
  mkdir(dir, "masks");
  std::vector<float> image(8 * 8 * 3, 1.0f);
  io::write_npy(dir.file("images/x.npy"), {8, 8, 3}, image.data());
  std::vector<uint8_t> mask(64, 0);
  io::write_npy(dir.file("masks/x.npy"), {8, 8}, mask.data());
  Loaded loaded = load(dir.path.string(), {.size = 8});
  REQUIRE(loaded.samples.size() == 1);
  CHECK(loaded.samples[0].channels == 3);
  CHECK_THAT(loaded.notes, Contains("chosen by the mask's shape"));
}

TEST_CASE("dataset: image folders with masks beside or in masks/", "[data]") {
  const std::vector<uint8_t> rgb = to_bytes(hwc_image(3, 60.0f));
  const std::vector<uint8_t> mask = mask_bytes(255);
  SECTION("masks beside the images") {
    TempDir dir;
    for (std::string stem : {"scan_b", "scan_a"}) {
      io::write_png(dir.file(stem + ".png"), kSize, kSize, 3, rgb.data());
      io::write_png(dir.file(stem + "_mask.png"), kSize, kSize, 1, mask.data());
    }
    CHECK(detect_format(dir.path.string()) == "images");
    Loaded loaded = load(dir.path.string());
    REQUIRE(loaded.samples.size() == 2);
    CHECK(loaded.samples[0].id == "scan_a");
    for (const Sample& s : loaded.samples) {
      check_pattern(s, 3);
      check_mask(s);
    }
  }
  SECTION("images/ and masks/, an RGB mask") {
    TempDir dir;
    mkdir(dir, "images");
    mkdir(dir, "masks");
    std::vector<uint8_t> rgb_mask;
    for (uint8_t v : mask) rgb_mask.insert(rgb_mask.end(), {0, v, 0});
    io::write_png(dir.file("images/one.png"), kSize, kSize, 3, rgb.data());
    io::write_png(dir.file("masks/one.png"), kSize, kSize, 3, rgb_mask.data());
    Loaded loaded = load(dir.path.string());
    REQUIRE(loaded.samples.size() == 1);
    check_pattern(loaded.samples[0], 3);
    check_mask(loaded.samples[0]);
  }
}

TEST_CASE("dataset: channel selection and resizing", "[data]") {
  TempDir dir;
  const std::vector<uint8_t> rgb = to_bytes(hwc_image(3, 60.0f));
  io::write_png(dir.file("a.png"), kSize, kSize, 3, rgb.data());
  io::write_png(dir.file("a_mask.png"), kSize, kSize, 1, mask_bytes(255).data());

  Loaded first = load(dir.path.string(), {.size = kSize, .channels = 2});
  REQUIRE(first.samples.size() == 1);
  check_pattern(first.samples[0], 2);

  CHECK_THAT(message_of(dir.path.string(), {.size = kSize, .channels = 4}),
             Contains("a.png") && Contains("3 channel(s), but 4 were requested"));

  Loaded small = load(dir.path.string(), {.size = 12});
  const Sample& s = small.samples[0];
  REQUIRE(s.height == 12);
  REQUIRE(s.width == 12);
  REQUIRE(s.image.size() == std::size_t(3 * 144));
  // Nearest neighbour: the 6x6 tumour at (4..9, 6..11) becomes 3x3, still binary.
  CHECK(std::count(s.mask.begin(), s.mask.end(), 1.0f) == 9);
  CHECK(std::all_of(s.mask.begin(), s.mask.end(), [](float v) { return v == 0.0f || v == 1.0f; }));
  // Channel 0 is zero in the right half, also after resizing.
  for (int y = 0; y < 12; ++y)
    for (int x = 6; x < 12; ++x) CHECK(s.image[std::size_t(y * 12 + x)] == 0.0f);
}

TEST_CASE("dataset: a single file and folders without masks load for prediction", "[data]") {
  TempDir dir;
  const std::vector<uint8_t> image = to_bytes(hwc_image(3, 50.0f));
  io::write_npy(dir.file("single.npy"), {kSize, kSize, 3}, image.data());
  CHECK(detect_format(dir.file("single.npy")) == "file");
  Loaded single = load(dir.file("single.npy"));
  REQUIRE(single.samples.size() == 1);
  CHECK_FALSE(single.samples[0].has_mask());
  CHECK(single.samples[0].id == "single");
  check_pattern(single.samples[0], 3);

  mkdir(dir, "folder");
  io::write_png(dir.file("folder/x.png"), kSize, kSize, 3, image.data());
  CHECK_THAT(message_of(dir.file("folder")), Contains("x.png") && Contains("image without mask"));
  Loaded unlabelled = load(dir.file("folder"), {.size = kSize, .require_masks = false});
  REQUIRE(unlabelled.samples.size() == 1);
  CHECK_FALSE(unlabelled.samples[0].has_mask());
}

TEST_CASE("dataset: BraTS-like NIfTI folders: channel order, orientation, labels, skipping",
          "[data]") {
  TempDir dir;
  constexpr int n = 16, depth = 4;
  constexpr float fill = -2.0f;  // the constant outside the head, as in z-scored BraTS volumes
  // a_t1: box x 2..11, y 3..8; b_flair: box x 4..13, y 1..6; slice 0 is all fill.
  auto volume = [&](int x0, int x1, int y0, int y1) {
    std::vector<float> data(std::size_t(n * n * depth), fill);
    for (int z = 1; z < depth; ++z)
      for (int y = y0; y <= y1; ++y)
        for (int x = x0; x <= x1; ++x)
          data[std::size_t((z * n + y) * n + x)] = float(1 + (x + y) % 2);
    return data;
  };
  std::vector<float> label(std::size_t(n * n * depth), 0.0f);
  label[std::size_t((2 * n + 4) * n + 5)] = 2.0f;  // z 2, y 4, x 5
  label[std::size_t((2 * n + 4) * n + 6)] = 4.0f;
  io::Volume like;
  like.nx = like.ny = n;
  like.nz = depth;
  for (std::string patient : {"train/patA", "validation/patB"}) {
    const std::string folder = mkdir(dir, patient);
    io::write_nifti(folder + "/b_flair.nii.gz", like, volume(4, 13, 1, 6), false);
    io::write_nifti(folder + "/a_t1.nii", like, volume(2, 11, 3, 8), false);
    io::write_nifti(folder + "/x_seg.nii.gz", like, label, true);
    io::write_nifti(folder + "/brainmask.nii.gz", like, std::vector<float>(label.size(), 1.0f),
                    true);
  }
  CHECK(detect_format(dir.path.string()) == "brats");
  Loaded loaded = load(dir.path.string(), {.size = n});
  REQUIRE(loaded.samples.size() == 6);
  CHECK(loaded.samples[0].id == "patA/1");
  CHECK(loaded.samples[0].patient == "patA");
  CHECK(loaded.samples[3].patient == "patB");
  CHECK_THAT(loaded.notes, Contains("skipped 2 slices"));
  CHECK_THAT(loaded.notes, Contains("a_t1, b_flair"));
  const Sample& s = loaded.samples[1];  // z = 2
  REQUIRE(s.channels == 2);
  for (int y = 0; y < n; ++y)
    for (int x = 0; x < n; ++x) {
      INFO("row " << y << ", column " << x);
      const std::size_t pixel = std::size_t(y * n + x);
      CHECK((s.image[pixel] != 0.0f) == (x >= 2 && x <= 11 && y >= 3 && y <= 8));
      CHECK((s.image[n * n + pixel] != 0.0f) == (x >= 4 && x <= 13 && y >= 1 && y <= 6));
      CHECK(s.mask[pixel] == ((y == 4 && (x == 5 || x == 6)) ? 1.0f : 0.0f));
    }
}

TEST_CASE("dataset: the phantom source", "[data]") {
  DatasetOptions options{.size = 64, .phantom_slices = 4};
  CHECK(detect_format("phantom") == "phantom");
  Loaded a = load("phantom:3", options);
  REQUIRE(a.samples.size() == 12);
  CHECK(a.samples[0].id == "phantom-000/0");
  CHECK(a.samples[11].id == "phantom-002/3");
  CHECK(a.samples[5].patient == "phantom-001");
  CHECK(a.samples[0].channels == 3);
  CHECK(a.samples[0].height == 64);
  Loaded b = load("phantom:3", options);
  for (std::size_t i = 0; i < a.samples.size(); ++i) {
    CHECK(a.samples[i].image == b.samples[i].image);
    CHECK(a.samples[i].mask == b.samples[i].mask);
  }
  options.channels = 1;
  CHECK(load("phantom:1", options).samples[0].channels == 1);
  CHECK_THAT(message_of("phantom:x"), Contains("phantom:PATIENTS"));
}

TEST_CASE("dataset: broken inputs give errors naming the file and the problem", "[data]") {
  TempDir dir;
  const std::vector<uint8_t> image = to_bytes(hwc_image(3, 50.0f));
  auto pair_folder = [&](const std::string& name) {
    mkdir(dir, name + "/images");
    mkdir(dir, name + "/masks");
    io::write_npy(dir.file(name + "/images/a.npy"), {kSize, kSize, 3}, image.data());
    io::write_npy(dir.file(name + "/masks/a.npy"), {kSize, kSize}, mask_bytes(1).data());
    return dir.file(name);
  };

  SECTION("image without mask") {
    const std::string root = pair_folder("missing");
    io::write_npy(dir.file("missing/images/b.npy"), {kSize, kSize, 3}, image.data());
    CHECK_THAT(message_of(root),
               Contains(root + "/images/b.npy") && Contains("image without mask"));
  }
  SECTION("mask without image") {
    const std::string root = pair_folder("orphan");
    io::write_npy(dir.file("orphan/masks/c.npy"), {kSize, kSize}, mask_bytes(1).data());
    CHECK_THAT(message_of(root), Contains(root + "/masks/c.npy") && Contains("mask without image"));
  }
  SECTION("mask shape differs from the image") {
    const std::string root = pair_folder("shape");
    io::write_npy(dir.file("shape/masks/a.npy"), {kSize, kSize - 4}, mask_bytes(1).data());
    CHECK_THAT(message_of(root),
               Contains(root + "/masks/a.npy") && Contains("24x20") && Contains("24x24"));
  }
  SECTION("NaN in an image") {
    const std::string root = pair_folder("nan");
    std::vector<float> values = hwc_image(3, 1.0f);
    values[7] = std::numeric_limits<float>::quiet_NaN();
    io::write_npy(dir.file("nan/images/a.npy"), {kSize, kSize, 3}, values.data());
    CHECK_THAT(message_of(root), Contains(root + "/images/a.npy") && Contains("NaN"));
  }
  SECTION("truncated file") {
    const std::string root = pair_folder("truncated");
    io::test::truncate_to(dir.file("truncated/images/a.npy"), 300);
    CHECK_THAT(message_of(root), Contains(root + "/images/a.npy") && Contains("truncated"));
  }
  SECTION("unreadable image") {
    io::test::write_bytes(dir.file("junk.png"), {1, 2, 3, 4, 5, 6, 7, 8});
    io::test::write_bytes(dir.file("junk_mask.png"), {1, 2, 3, 4, 5, 6, 7, 8});
    CHECK_THAT(message_of(dir.path.string()), Contains(dir.file("junk")));
  }
  SECTION("unsupported dtype") {
    const std::string root = pair_folder("dtype");
    std::string header = "{'descr': '<c8', 'fortran_order': False, 'shape': (2,), }";
    header.append((64 - (10 + header.size() + 1) % 64) % 64, ' ');
    header += '\n';
    std::string bytes = std::string("\x93NUMPY\x01\x00", 8) + char(header.size()) + '\0' + header +
                        std::string(16, '\0');
    io::test::write_bytes(dir.file("dtype/images/a.npy"),
                          std::vector<uint8_t>(bytes.begin(), bytes.end()));
    CHECK_THAT(message_of(root), Contains(root + "/images/a.npy") && Contains("unsupported dtype"));
  }
  SECTION("channel axis cannot be told") {
    const std::string root = pair_folder("axes");
    std::vector<float> cube(20 * 24 * 24, 1.0f);
    io::write_npy(dir.file("axes/images/a.npy"), {20, 24, 24}, cube.data());
    CHECK_THAT(message_of(root), Contains(root + "/images/a.npy") && Contains("channel axis"));
  }
  SECTION("empty folder, unknown folder, missing path") {
    mkdir(dir, "empty");
    CHECK_THAT(message_of(dir.file("empty")),
               Contains("no dataset found in " + dir.file("empty")) && Contains("empty") &&
                   Contains("expected"));
    CHECK_THAT(
        [&] {
          try {
            detect_format(dir.file("empty"));
          } catch (const std::runtime_error& e) {
            return std::string(e.what());
          }
          return std::string();
        }(),
        Contains("no dataset found"));
    mkdir(dir, "text");
    io::test::write_bytes(dir.file("text/notes.txt"), {'h', 'i'});
    CHECK_THAT(message_of(dir.file("text")), Contains("no dataset found in " + dir.file("text")) &&
                                                 Contains("two levels down") && Contains("1 file(s) and 0 folder(s) (notes.txt)"));
    CHECK_THAT(message_of(dir.file("nowhere")),
               Contains("no dataset found in " + dir.file("nowhere")));
  }
  SECTION("images of different channel counts") {
    const std::string root = pair_folder("channels");
    std::vector<uint8_t> grey(kSize * kSize, 10);
    io::write_npy(dir.file("channels/images/b.npy"), {kSize, kSize}, grey.data());
    io::write_npy(dir.file("channels/masks/b.npy"), {kSize, kSize}, mask_bytes(1).data());
    CHECK_THAT(message_of(root), Contains("b.npy") && Contains("same channels"));
  }
}
