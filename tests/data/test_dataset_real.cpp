// load_dataset on the real sets of shared/data (see its README): the LGG TIFF slices against
// manifest.csv, and the BraTS 2013 volumes against their own NIfTI files (channel order, masks,
// orientation). Each test says it was skipped when the data is absent.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "train/dataset.h"
#include "train/io/nifti.h"

using namespace unet;

namespace {

const std::string kData = UNET_SHARED_DATA;

std::map<std::string, long> manifest_tumour_pixels(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  REQUIRE(std::getline(in, line));
  REQUIRE(line.starts_with("patient,slice,image,mask,tumour_pixels"));
  std::map<std::string, long> counts;
  while (std::getline(in, line)) {
    std::vector<std::string> fields;
    std::stringstream stream(line);
    for (std::string field; std::getline(stream, field, ',');) fields.push_back(field);
    counts[fields[0] + "/" + fields[1]] = std::stol(fields[4]);
  }
  return counts;
}

long mask_pixels(const Sample& s) { return long(std::count(s.mask.begin(), s.mask.end(), 1.0f)); }

bool binary(const std::vector<float>& mask) {
  return std::all_of(mask.begin(), mask.end(), [](float v) { return v == 0.0f || v == 1.0f; });
}

// Mean and standard deviation of the non-zero values of channel c.
std::pair<double, double> foreground_stats(const Sample& s, int c) {
  const std::size_t plane = std::size_t(s.height) * std::size_t(s.width);
  double sum = 0, squares = 0, n = 0;
  for (std::size_t i = 0; i < plane; ++i) {
    const float v = s.image[c * plane + i];
    if (v == 0.0f) continue;
    sum += v;
    squares += double(v) * v;
    ++n;
  }
  const double mean = sum / n;
  return {mean, std::sqrt(squares / n - mean * mean)};
}

// Pearson correlation of two equally long value lists.
double correlation(const std::vector<double>& a, const std::vector<double>& b) {
  double ma = 0, mb = 0;
  for (std::size_t i = 0; i < a.size(); ++i) ma += a[i], mb += b[i];
  ma /= double(a.size());
  mb /= double(b.size());
  double ab = 0, aa = 0, bb = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    ab += (a[i] - ma) * (b[i] - mb);
    aa += (a[i] - ma) * (a[i] - ma);
    bb += (b[i] - mb) * (b[i] - mb);
  }
  return ab / std::sqrt(aa * bb);
}

}  // namespace

TEST_CASE("real data: the LGG layout loads 537 slices of 17 patients matching manifest.csv",
          "[data][real]") {
  const std::string root = kData + "/lgg-kaggle-3m";
  if (!std::filesystem::exists(root + "/kaggle_3m")) {
    WARN("skipped: " << root << "/kaggle_3m not found");
    return;
  }
  CHECK(detect_format(root) == "lgg");
  CHECK(detect_format(root + "/kaggle_3m") == "lgg");
  std::vector<std::string> notes;
  DatasetOptions options;
  options.report = [&](const std::string& note) { notes.push_back(note); };
  const std::vector<Sample> samples = load_dataset(root, options);

  REQUIRE(samples.size() == 537);
  std::set<std::string> patients;
  for (const Sample& s : samples) patients.insert(s.patient);
  CHECK(patients.size() == 17);
  CHECK(samples[0].id == "TCGA_CS_4941_19960909/1");
  CHECK(samples[1].id == "TCGA_CS_4941_19960909/2");  // numeric order, not "10" after "1"
  CHECK(samples[0].patient == "TCGA_CS_4941_19960909");
  CHECK_FALSE(notes.empty());

  const std::map<std::string, long> manifest = manifest_tumour_pixels(root + "/manifest.csv");
  const double area = (240.0 / 256.0) * (240.0 / 256.0);
  int empty = 0;
  for (const Sample& s : samples) {
    INFO(s.id);
    REQUIRE(s.channels == 3);
    REQUIRE(s.height == 240);
    REQUIRE(s.width == 240);
    REQUIRE(s.mask.size() == std::size_t(240 * 240));
    CHECK(binary(s.mask));
    REQUIRE(manifest.count(s.id) == 1);
    const double expected = double(manifest.at(s.id)) * area;
    CHECK(std::abs(double(mask_pixels(s)) - expected) <= 0.05 * expected + 20);
    empty += mask_pixels(s) == 0;
  }
  CHECK(empty == 346);

  // A slice with tissue: every channel's foreground is z-scored (clipped, hence about 0 and 1).
  const Sample& middle = samples[12];
  for (int c = 0; c < 3; ++c) {
    auto [mean, sd] = foreground_stats(middle, c);
    CHECK(std::abs(mean) < 0.05);
    CHECK(sd == Approx(1.0).margin(0.05));
  }
}

TEST_CASE("real data: the BraTS layout loads 4 patients of 2 channels, Flair then T1c",
          "[data][real]") {
  const std::string root = kData + "/brats2013";
  const std::string patient = root + "/train/brats_2013_pat0005_1";
  if (!std::filesystem::exists(patient)) {
    WARN("skipped: " << patient << " not found");
    return;
  }
  CHECK(detect_format(root) == "brats");
  std::vector<std::string> notes;
  DatasetOptions options;
  options.report = [&](const std::string& note) { notes.push_back(note); };
  const std::vector<Sample> samples = load_dataset(root, options);

  std::map<std::string, int> per_patient;
  for (const Sample& s : samples) {
    per_patient[s.patient]++;
    REQUIRE(s.channels == 2);
    REQUIRE(s.height == 240);
    REQUIRE(s.width == 240);
    REQUIRE(binary(s.mask));
  }
  CHECK(per_patient.size() == 4);
  CHECK(per_patient.count("brats_2013_pat0005_1") == 1);
  // pat0005 has 17 slices outside the head (all background in every volume).
  CHECK(per_patient["brats_2013_pat0005_1"] == 155 - 17);
  bool noted = std::any_of(notes.begin(), notes.end(), [](const std::string& n) {
    return n.find("skipped") != std::string::npos;
  });
  CHECK(noted);

  // Slice 77 of pat0005 against the files: mask = label > 0 with rows = y, columns = x; channel
  // 0 follows FLAIR (a monotone map of it inside the head), channel 1 follows T1c.
  const int z = 77;
  auto it = std::find_if(samples.begin(), samples.end(),
                         [&](const Sample& s) { return s.id == "brats_2013_pat0005_1/77"; });
  REQUIRE(it != samples.end());
  const io::Volume label = io::read_nifti(patient + "/OTMultiClass.nii.gz");
  const io::Volume flair = io::read_nifti(patient + "/Flair_subtrMeanDivStd.nii.gz");
  const io::Volume t1c = io::read_nifti(patient + "/T1c_subtrMeanDivStd.nii.gz");
  const std::size_t plane = 240 * 240, offset = std::size_t(z) * plane;
  long mismatched = 0, tumour = 0;
  std::vector<double> channel0, channel1, flair_values, t1c_values;
  for (int y = 0; y < 240; ++y) {
    for (int x = 0; x < 240; ++x) {
      const std::size_t voxel = offset + std::size_t(y) * 240 + std::size_t(x);
      const std::size_t pixel = std::size_t(y) * 240 + std::size_t(x);
      mismatched += (label.data[voxel] > 0) != (it->mask[pixel] == 1.0f);
      tumour += label.data[voxel] > 0;
      if (it->image[pixel] == 0.0f) continue;
      channel0.push_back(it->image[pixel]);
      channel1.push_back(it->image[plane + pixel]);
      flair_values.push_back(flair.data[voxel]);
      t1c_values.push_back(t1c.data[voxel]);
    }
  }
  CHECK(tumour > 100);
  CHECK(mismatched == 0);
  CHECK(correlation(channel0, flair_values) > 0.98);
  CHECK(correlation(channel1, t1c_values) > 0.98);
  CHECK(correlation(channel0, t1c_values) < 0.9);
}
