// The readers on the real datasets of shared/data (see its README): LGG slices as 8-bit RGB TIFF
// with 1-channel masks, whose tumour pixel counts and image maxima are listed in manifest.csv,
// and BraTS 2013 volumes as gzipped NIfTI. Each test says it was skipped when the data is absent.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "train/io/image.h"
#include "train/io/nifti.h"

using namespace unet::io;

namespace {

const std::string kData = UNET_SHARED_DATA;

std::vector<std::string> split_csv_line(const std::string& line) {
  std::vector<std::string> fields;
  std::stringstream stream(line);
  std::string field;
  while (std::getline(stream, field, ',')) fields.push_back(field);
  return fields;
}

// The manifest's rows as column name -> value, columns found by the header line.
std::vector<std::map<std::string, std::string>> read_manifest(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  REQUIRE(std::getline(in, line));
  std::vector<std::string> columns = split_csv_line(line);
  std::vector<std::map<std::string, std::string>> rows;
  while (std::getline(in, line)) {
    std::vector<std::string> fields = split_csv_line(line);
    REQUIRE(fields.size() == columns.size());
    std::map<std::string, std::string> row;
    for (std::size_t i = 0; i < columns.size(); ++i) row[columns[i]] = fields[i];
    rows.push_back(row);
  }
  return rows;
}

// A few rows with a tumour and a few without, from different patients where possible.
std::vector<std::map<std::string, std::string>> sample_rows(
    const std::vector<std::map<std::string, std::string>>& rows) {
  std::vector<std::map<std::string, std::string>> chosen;
  std::map<std::string, int> per_patient;
  int with = 0, without = 0;
  for (const auto& row : rows) {
    bool tumour = std::stol(row.at("tumour_pixels")) > 0;
    if ((tumour ? with : without) >= (tumour ? 4 : 2) || per_patient[row.at("patient")] >= 2)
      continue;
    (tumour ? with : without)++;
    per_patient[row.at("patient")]++;
    chosen.push_back(row);
  }
  return chosen;
}

}  // namespace

TEST_CASE("real data: LGG TIFF slices and masks match manifest.csv", "[io][real]") {
  std::string root = kData + "/lgg-kaggle-3m";
  if (!std::filesystem::exists(root + "/kaggle_3m")) {
    WARN("skipped: " << root << "/kaggle_3m not found");
    return;
  }
  auto rows = read_manifest(root + "/manifest.csv");
  REQUIRE(rows.size() > 10);
  REQUIRE(rows[0].count("image") == 1);
  REQUIRE(rows[0].count("mask") == 1);
  REQUIRE(rows[0].count("tumour_pixels") == 1);
  auto chosen = sample_rows(rows);
  REQUIRE(chosen.size() == 6);
  for (const auto& row : chosen) {
    INFO(row.at("image"));
    Image image = read_image(root + "/" + row.at("image"));
    CHECK(image.width == 256);
    CHECK(image.height == 256);
    CHECK(image.channels == 3);
    CHECK(image.bits == 8);
    float max = *std::max_element(image.pixels.begin(), image.pixels.end());
    if (row.count("image_max")) CHECK(max == std::stof(row.at("image_max")));

    Image mask = read_image(root + "/" + row.at("mask"));
    CHECK(mask.width == 256);
    CHECK(mask.height == 256);
    CHECK(mask.channels == 1);
    long tumour = 0, other = 0;
    for (float v : mask.pixels) {
      tumour += v == 255.0f;
      other += v != 0.0f && v != 255.0f;
    }
    CHECK(other == 0);
    CHECK(tumour == std::stol(row.at("tumour_pixels")));
  }
}

TEST_CASE("real data: BraTS 2013 FLAIR volume and its label map", "[io][real]") {
  std::string patient = kData + "/brats2013/train/brats_2013_pat0005_1";
  if (!std::filesystem::exists(patient)) {
    WARN("skipped: " << patient << " not found");
    return;
  }
  Volume flair = read_nifti(patient + "/Flair_subtrMeanDivStd.nii.gz");
  CHECK(flair.nx == 240);
  CHECK(flair.ny == 240);
  CHECK(flair.nz == 155);
  CHECK(flair.dx == 1.0f);
  CHECK(flair.data.size() == std::size_t(240 * 240 * 155));
  CHECK_FALSE(has_non_finite(flair.data));
  // z-scored inside the brain: both signs occur.
  CHECK(*std::min_element(flair.data.begin(), flair.data.end()) < 0);
  CHECK(*std::max_element(flair.data.begin(), flair.data.end()) > 0);

  Volume labels = read_nifti(patient + "/OTMultiClass.nii.gz");
  CHECK(labels.nx == flair.nx);
  CHECK(labels.ny == flair.ny);
  CHECK(labels.nz == flair.nz);
  std::size_t bad = 0, tumour = 0;
  for (float v : labels.data) {
    bad += !(v >= 0 && v <= 4 && v == std::round(v));
    tumour += v > 0;
  }
  CHECK(bad == 0);
  CHECK(tumour > 1000);
}
